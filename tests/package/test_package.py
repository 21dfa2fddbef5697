"""The package is installed (not imported from the bare source tree) and its parts import."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest

import synther_fast
from synther_fast import _replay

REPO = Path(__file__).resolve().parents[2]


def _direct_url() -> dict:
    text = importlib.metadata.distribution("synther_fast").read_text("direct_url.json")
    return json.loads(text) if text else {}


def test_installed_distribution_matches_package_version() -> None:
    assert importlib.metadata.version("synther_fast") == synther_fast.__version__


def test_imports_the_installed_copy() -> None:
    editable = _direct_url().get("dir_info", {}).get("editable", False)
    package_dir = Path(synther_fast.__file__).resolve().parent
    if editable:
        # An editable install maps the package onto the source tree; the extension is still the
        # one the install built, never an in-tree leftover.
        assert Path(_replay.__file__).resolve().parent != package_dir
    else:
        assert REPO not in package_dir.parents, f"imported from the source tree: {package_dir}"


def test_kernels_ship_as_subpackage() -> None:
    import synther_fast.kernels as kernels

    assert kernels.__name__ == "synther_fast.kernels"
    assert isinstance(kernels.triton_available(), bool)


def test_extension_does_not_link_libtorch() -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("ldd check is Linux-only")
    out = subprocess.run(["ldd", _replay.__file__], capture_output=True, text=True, check=True).stdout
    # library names only: load addresses are random hex and may spell "c10" (0x...c10...)
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    assert names and not any("torch" in n or n.startswith("libc10") for n in names), names


def _stub_members() -> dict[str, set[str]]:
    stub = Path(synther_fast.__file__).with_name("_replay.pyi")
    tree = ast.parse(stub.read_text())
    members: dict[str, set[str]] = {"": set()}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            members[""].add(node.name)
            members[node.name] = {
                n.name for n in node.body if isinstance(n, ast.FunctionDef) and n.name != "__init__"
            }
        elif isinstance(node, ast.FunctionDef):
            members[""].add(node.name)
        elif isinstance(node, ast.AnnAssign):
            members[""].add(node.target.id)
    return members


def test_stub_matches_extension() -> None:
    members = _stub_members()
    public = {n for n in dir(_replay) if not n.startswith("_")}
    assert members[""] == public
    for cls_name, names in members.items():
        if not cls_name:
            continue
        cls = getattr(_replay, cls_name)
        actual = {n for n in vars(cls) if not n.startswith("_") or n == "__len__"}
        assert names == actual, f"{cls_name}: stub {sorted(names)} vs module {sorted(actual)}"


@pytest.mark.slow
def test_cli_entry_point_runs() -> None:
    out = subprocess.run(["synther-fast", "info"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "synther_fast" in out.stdout and "_replay" in out.stdout
    import torch

    from synther_fast.config import DenoiserConfig
    from synther_fast.diffusion.denoiser import picks_fused_layers

    fused = picks_fused_layers(DenoiserConfig(), torch.cuda.is_available())
    expected = "fused Triton layers at tf32" if fused else "PyTorch reference (fp32)"
    assert expected in out.stdout, out.stdout


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd="/")


def test_import_pulls_in_no_simulator_and_no_torch() -> None:
    code = (
        "import sys, synther_fast, synther_fast.kernels, synther_fast.replay\n"
        "heavy = [m for m in ('gymnasium', 'dm_control', 'mujoco', 'torch', 'triton') if m in sys.modules]\n"
        "print(heavy)"
    )
    out = _run_python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_missing_extension_says_how_to_rebuild() -> None:
    code = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'synther_fast._replay':\n"
        "            raise ImportError('simulated missing extension')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import synther_fast\n"
    )
    out = _run_python(code)
    assert out.returncode != 0
    assert "synther_fast._replay could not be imported" in out.stderr
    assert "simulated missing extension" in out.stderr and "pip install" in out.stderr
