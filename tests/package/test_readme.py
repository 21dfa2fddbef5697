"""Every Python example in the README runs as written, and every ``synther-fast`` command of the
README and docs/ runs to its end with its own arguments plus appended tiny overrides (in a
scratch directory, in the order the page gives them)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_examples() -> None:
    assert len(BLOCKS) >= 4


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index: int, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code = BLOCKS[index]  # exactly as shown
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(code, f"README.md example {index}", "exec"), namespace)
    assert namespace.keys() - {"__name__", "__builtins__"}  # the example defined its names


def _shell_commands(path: Path) -> list[str]:
    """Every ``synther-fast ...`` command of a markdown file's bash blocks (continuations joined,
    comments cut, ``&&`` chains split, a leading ``VAR=value`` dropped)."""
    commands, block = [], None
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            block = line[3:].strip() if block is None else None
            continue
        if block == "bash":
            commands.append(line)
    joined = "\n".join(commands).replace("\\\n", " ")
    parts = [part.split(" #")[0].strip() for line in joined.splitlines() for part in line.split("&&")]
    parts = [re.sub(r"^(\w+=\S+\s+)+", "", part) for part in parts]
    return [part for part in parts if part.startswith("synther-fast ")]


DOCS = [README, *sorted((README.parent / "docs").glob("*.md"))]
COMMANDS = _shell_commands(README)
DOC_COMMANDS = [(path.name, line) for path in DOCS for line in _shell_commands(path)]


EXEMPT = {
    "sweep": "a sweep's spec file sets its cells' scale (the shipped specs are whole experiments; one also names a "
             "Ray cluster address) and no option shrinks it; tests/pipelines/test_sweeps.py runs `synther-fast sweep` end to "
             "end on a tiny spec and builds every shipped spec's cells",
    "demo": "tests/package/test_commands.py runs it with the same appended override (`--preset tiny`), twice",
}
"""Documented commands not run here, and why. Commands under torchrun are not ``synther-fast`` lines:
tests/pipelines/test_distributed.py runs the same module under torchrun with gloo."""


def _config_value(config, option: str):
    """The value of the config field that ``--a.b-c`` names, or None if it names no field."""
    value = config
    for part in option.lstrip("-").split("=")[0].replace("-", "_").split("."):
        if not hasattr(value, part):
            return None
        value = getattr(value, part)
    return value


def tiny_arguments(args: list[str]) -> list[str]:
    """``args`` with the tiny overrides appended: ``--preset tiny``, and for each option the command
    sets itself whose value the tiny preset changes, the tiny value (appended options win)."""
    from types import SimpleNamespace

    from synther_fast.config import TINY, resolve

    command = args[0]
    if command in ("offline", "online", "fit"):
        algo = "sac-synther" if command == "online" else None  # the UTD-20 settings, which tiny caps
        tiny, quick = resolve(command, "tiny", algo), resolve(command, "quick", algo)
        if command == "fit":  # the fit's options are --synther.*
            tiny, quick = SimpleNamespace(synther=tiny), SimpleNamespace(synther=quick)
        extra = ["--preset", "tiny"]
        for option in (a for a in args if a.startswith("--") and a.split("=")[0] != "--preset"):
            small = _config_value(tiny, option)
            if small is not None and small != _config_value(quick, option):
                extra += [option.split("=")[0], *(map(str, small) if isinstance(small, tuple) else [str(small)])]
        return args + extra
    if command == "collect":
        return args + ["--steps", str(TINY["offline"]["collect_steps"])]
    if command == "generate":
        return args + ["--rows", str(TINY["offline"]["synthetic_rows"])]
    return args


def _written(args: list[str]) -> list[str]:
    """The files a command names as its outputs (--out ..., --policy-out)."""
    out, taking = [], False
    for arg in args:
        if arg.startswith("--"):
            taking = arg in ("--out", "--policy-out")
        elif taking:
            out.append(arg)
    return out


READS = {  # a line each command prints when it worked (the table's header for offline runs)
    "collect": r"wrote \d[\d,]* transitions to ",
    "fit": r"fitted \d+ steps \(final loss \d",
    "generate": r"wrote \d[\d,]* synthetic transitions to ",
    "report": r"report written to .*report\.md",
    "online": r"on \S+: 300 env steps, final return -?\d",
    "offline": r"(data +return +± spread +normalised|mean ± std over seeds)",
}


RUNNABLE = [path for path in DOCS if any(shlex.split(line)[1] not in EXEMPT for line in _shell_commands(path))]


@pytest.mark.slow
@pytest.mark.parametrize("doc", RUNNABLE, ids=lambda p: p.name)
def test_documented_commands_run_at_tiny_scale(doc: Path, tmp_path, monkeypatch) -> None:
    """The page's commands in its order (later ones read what earlier ones wrote), each at tiny
    scale: exit 0, its output files written, and a run's summary on disk."""
    from cli_runner import run_cli

    monkeypatch.chdir(tmp_path)
    ran = 0
    for line in _shell_commands(doc):
        args = shlex.split(line)[1:]
        if args[0] in EXEMPT:
            continue
        args = tiny_arguments(args)
        out = run_cli(*args)
        assert out.returncode == 0, f"{doc.name}: synther-fast {' '.join(args)}\n{out.stderr[-3000:]}"
        assert re.search(READS[args[0]], out.stdout), f"{doc.name}: {line}\n{out.stdout[-2000:]}"
        for path in _written(args):
            assert Path(path).exists(), f"{doc.name}: {line} did not write {path}"
        if args[0] in ("offline", "online") and "--run-dir" in args and "--seeds" not in args:
            assert (Path(args[args.index("--run-dir") + 1]) / "summary.json").exists(), line
        ran += 1
    assert ran >= 3


def test_tiny_overrides_replace_what_a_command_sets_itself() -> None:
    args = tiny_arguments(["offline", "--agent-steps", "60000", "--seeds", "0", "1", "--synther.edm.num-steps", "64"])
    assert args[8:] == ["--preset", "tiny", "--agent-steps", "60", "--synther.edm.num-steps", "6"]
    online = tiny_arguments(["online", "--algo", "sac", "--sac.utd", "20", "--threads", "1"])
    assert online[-4:] == ["--preset", "tiny", "--sac.utd", "2"]
    assert tiny_arguments(["fit", "--synther.trainer.steps", "9"])[-2:] == ["--synther.trainer.steps", "40"]
    assert tiny_arguments(["report", "r"]) == ["report", "r"]


def test_the_readme_has_commands() -> None:
    assert len(COMMANDS) >= 10 and COMMANDS[0] == "synther-fast demo"


@pytest.mark.parametrize(("doc", "line"), DOC_COMMANDS)
def test_documented_command_parses(doc: str, line: str) -> None:
    """Each command of the README and docs/: its options exist and its values pass the config
    checks (parsed, not run)."""
    from synther_fast.cli import parse

    args = shlex.split(line)[1:]
    command = parse(args)
    assert type(command).__name__.lower().replace("-", "") == args[0].replace("-", "")
