"""The layering rule of the package, checked on its import graph (every import statement, lazy ones
inside functions included):

- ``common/`` imports nothing of the package outside itself;
- ``config/`` imports only ``common/`` (and the table of health rules, ``envs.health``, whose task
  names the terminal-label setting is checked against);
- the parts (agents, analysis, data, diffusion, envs, kernels, relevance, replay) import only
  ``common/``, ``config/`` and each other: never ``runs/``, ``pipelines/``, ``integrations/`` or
  the entry points (cli, api, the package's top level);
- ``runs/`` imports no pipeline, integration or entry point;
- ``pipelines/`` import no integration or entry point;
- the top level holds only the entry points: ``__init__``, ``__main__``, ``cli``, ``api``.

``kernels/`` sits at the repository's top level and ships as ``synther_fast.kernels``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PARTS = {"agents", "analysis", "data", "diffusion", "envs", "kernels", "relevance", "replay"}
ENTRY_POINTS = {"__init__", "__main__", "cli", "api"}
ALLOWED = {
    "common": {"common"},
    "config": {"common", "config"},
    "part": {"common", "config", "part"},
    "runs": {"common", "config", "part", "runs"},
    "pipelines": {"common", "config", "part", "runs", "pipelines"},
    "integrations": {"common", "config", "part", "runs", "pipelines", "integrations"},
    "entry": {"common", "config", "part", "runs", "pipelines", "integrations", "entry"},
}
EXCEPTIONS = {("synther_fast.config.diffusion", "synther_fast.envs.health")}
"""Edges the rule allows by name (see the module docstring)."""


def layer(module: str) -> str:
    """The layer of a module of the package; 'stray' for a flat module that belongs to none."""
    parts = module.split(".")
    if len(parts) == 1:
        return "entry"
    head = parts[1]
    if head == "_replay":  # the compiled extension behind replay/
        return "part"
    if head in PARTS:
        return "part"
    if head in ("common", "config", "runs", "pipelines", "integrations"):
        return head
    if head in ENTRY_POINTS:
        return "entry"
    return "stray"


def module_files() -> dict[str, Path]:
    """Every module of the package by its import name (kernels/ mapped to synther_fast.kernels)."""
    out = {}
    for root, name in ((REPO / "synther_fast", "synther_fast"), (REPO / "kernels", "synther_fast.kernels")):
        for path in root.rglob("*.py"):
            rel = path.relative_to(root).with_suffix("").parts
            rel = rel[:-1] if rel[-1] == "__init__" else rel
            out[".".join((name, *rel))] = path
    return out


def imports_of(module: str, path: Path, modules: Iterable[str]) -> set[str]:
    """The package modules ``module`` imports: ``from synther_fast.x import y`` counts as x.y where
    that is a module (a submodule imported from its package), else as x."""
    known = set(modules) | {"synther_fast._replay"}
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target)
    return {t for t in found if t == "synther_fast" or t.startswith("synther_fast.")}


def violations(edges: Iterable[tuple[str, str]], modules: Iterable[str]) -> list[str]:
    known = set(modules) | {"synther_fast._replay"}
    out = []
    for module in sorted(known):
        if layer(module) == "stray":
            out.append(f"{module}: a flat module in no layer (only {sorted(ENTRY_POINTS)} sit on top)")
    for source, target in sorted(set(edges)):
        if target not in known:  # a name imported from a module, not a module
            continue
        if source == target or (source, target) in EXCEPTIONS or layer(source) == "stray":
            continue
        if layer(target) not in ALLOWED.get(layer(source), set()):
            out.append(f"{source} ({layer(source)}) imports {target} ({layer(target)})")
    return out


def graph() -> tuple[list[tuple[str, str]], list[str]]:
    files = module_files()
    edges = [(m, t) for m, p in files.items() for t in imports_of(m, p, files)]
    return edges, list(files)


def test_the_package_follows_the_layering_rule() -> None:
    edges, modules = graph()
    assert len(modules) > 60 and len(edges) > 200  # the whole package was read
    assert violations(edges, modules) == []


@pytest.mark.parametrize("edge", [
    ("synther_fast.diffusion.synther", "synther_fast.runs.files"),  # the row format in the run-file table
    ("synther_fast.analysis.quality", "synther_fast.runs.summaries"),  # a part reading a run directory
    ("synther_fast.data.dataset", "synther_fast.pipelines.interaction"),  # a part running the online loop
    ("synther_fast.common.io", "synther_fast.config"),  # common/ reaching up
    ("synther_fast.config.pipelines", "synther_fast.replay.layout"),  # config/ reaching into a part
    ("synther_fast.runs.run", "synther_fast.pipelines.offline"),
    ("synther_fast.pipelines.online", "synther_fast.cli"),
])
def test_each_kind_of_violation_is_caught(edge) -> None:
    """Negative controls: one planted edge of each kind the rule forbids (the first three are the
    layering breaks the review of issue 30 found in the flat layout) is reported."""
    edges, modules = graph()
    assert violations([*edges, edge], modules) == [
        f"{edge[0]} ({layer(edge[0])}) imports {edge[1]} ({layer(edge[1])})"]


def test_a_flat_module_beside_the_entry_points_is_caught() -> None:
    """The layout of before issue 30 (runs.py, graphs.py, ... beside cli.py) fails the rule."""
    edges, modules = graph()
    flat = ["synther_fast.runs_flat", "synther_fast.graphs", "synther_fast.artifacts"]
    found = violations(edges + [("synther_fast.graphs", "synther_fast.common.rng")], modules + flat)
    assert found == [f"{m}: a flat module in no layer (only {sorted(ENTRY_POINTS)} sit on top)" for m in sorted(flat)]


def test_lazy_and_relative_imports_are_read(tmp_path) -> None:
    source = tmp_path / "mod.py"
    source.write_text("from . import sibling\n\ndef f():\n    from synther_fast.runs import Run\n"
                      "    import synther_fast.pipelines.online\n")
    found = imports_of("synther_fast.diffusion.mod", source, ["synther_fast.diffusion.sibling"])
    assert found == {"synther_fast.diffusion.sibling", "synther_fast.runs", "synther_fast.pipelines.online"}
