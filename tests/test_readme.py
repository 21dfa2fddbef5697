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


def _shell_commands() -> list[str]:
    """Every ``synther-fast ...`` line of the README's bash blocks (continuations joined, comments cut)."""
    commands, block = [], None
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            block = line[3:].strip() if block is None else None
            continue
        if block == "bash":
            commands.append(line)
    joined = "\n".join(commands).replace("\\\n", " ")
    parts = [part.split(" #")[0].strip() for line in joined.splitlines() for part in line.split("&&")]
    return [part for part in parts if part.startswith("synther-fast ")]


COMMANDS = _shell_commands()


def test_the_readme_has_commands() -> None:
    assert len(COMMANDS) >= 10 and COMMANDS[0] == "synther-fast demo"


@pytest.mark.parametrize("line", COMMANDS)
def test_readme_command_parses(line: str) -> None:
    """Each command's options exist and its values pass the config checks (parsed, not run)."""
    from synther_fast.cli import parse

    args = shlex.split(line)[1:]
    command = parse(args)
    assert type(command).__name__.lower().replace("-", "") == args[0].replace("-", "")
