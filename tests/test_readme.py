"""Every Python example in the README runs as written (in a scratch directory)."""

from __future__ import annotations

import re
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
