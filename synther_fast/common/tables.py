"""The one markdown table writer (reports, sweeps, seed summaries) and its cell format."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def cell(value: Any) -> str:
    """A table cell: None as '-', NaN as 'n/a', ints with thousands separators, floats to 3
    significant digits (tiny ones in exponent form), anything else as str()."""
    if value is None:
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return "n/a"
        return f"{value:.3g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Lines of a markdown table (strings are kept as given; other values go through :func:`cell`)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(v if isinstance(v, str) else cell(v) for v in row) + " |" for row in rows]
    return lines
