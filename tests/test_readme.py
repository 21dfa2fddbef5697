"""Every Python example in the README runs as written (in a scratch directory)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
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
