"""Progress bars for long work (tqdm), one look across the package."""

from __future__ import annotations


def progress_bar(total: int, desc: str, unit: str = "step", enabled: bool = True, initial: int = 0):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled, mininterval=1.0,
                dynamic_ncols=True)
