"""Progress bars for long work (tqdm), one look across the package."""

from __future__ import annotations

import sys


def progress_bar(total: int, desc: str, unit: str = "step", enabled: bool = True, initial: int = 0):
    """A tqdm bar; when stderr is not a terminal (a log file, CI) it prints a line every 60 s at
    most instead of flooding the log with redraws."""
    from tqdm.auto import tqdm

    interactive = sys.stderr.isatty()
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled,
                mininterval=1.0 if interactive else 60.0, dynamic_ncols=interactive,
                ascii=None if interactive else True)
