"""Import of the C++ extension, with an error that says how to rebuild it (no silent fallback)."""

from __future__ import annotations

try:
    from synther_fast import _replay
except ImportError as exc:  # pragma: no cover - exercised only on a broken install
    raise ImportError(
        f"synther_fast's C++ extension synther_fast._replay could not be imported ({exc}). "
        "It is built by the package install: reinstall with `pip install .` from the source tree "
        "(or, for development, `pip install --no-build-isolation -Ceditable.rebuild=true "
        "-Cbuild-dir=build -e .`). Importing from the bare source tree without installing does "
        "not work."
    ) from exc

RingBuffer = _replay.RingBuffer
NativeMixedSampler = _replay.MixedSampler
find_nonfinite = _replay.find_nonfinite
ROW_ALIGNMENT = _replay.ROW_ALIGNMENT
