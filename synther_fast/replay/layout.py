"""The one place that knows the column order of a transition row."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FIELDS = ("obs", "action", "reward", "next_obs", "terminal")
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class TransitionLayout:
    """Column slices of a float32 row ``[obs | action | reward | next_obs | terminal]``.

    ``terminal`` is ``None`` when the layout has no terminal column (the published code models
    terminals for gym locomotion and not for DMC).
    """

    obs_dim: int
    act_dim: int
    has_terminal: bool = True
    obs: slice = field(init=False, repr=False, compare=False)
    action: slice = field(init=False, repr=False, compare=False)
    reward: slice = field(init=False, repr=False, compare=False)
    next_obs: slice = field(init=False, repr=False, compare=False)
    terminal: slice | None = field(init=False, repr=False, compare=False)
    width: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("obs_dim", "act_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"TransitionLayout.{name} must be a positive int, got {value!r}")
        if not isinstance(self.has_terminal, bool):
            raise ValueError(f"TransitionLayout.has_terminal must be a bool, got {self.has_terminal!r}")
        o, a = self.obs_dim, self.act_dim
        set_ = object.__setattr__
        set_(self, "obs", slice(0, o))
        set_(self, "action", slice(o, o + a))
        set_(self, "reward", slice(o + a, o + a + 1))
        set_(self, "next_obs", slice(o + a + 1, 2 * o + a + 1))
        set_(self, "terminal", slice(2 * o + a + 1, 2 * o + a + 2) if self.has_terminal else None)
        set_(self, "width", 2 * o + a + 1 + int(self.has_terminal))

    def field_slices(self) -> dict[str, slice]:
        """Name -> slice for the fields this layout has, in column order."""
        out = {name: getattr(self, name) for name in FIELDS}
        return {k: v for k, v in out.items() if v is not None}

    def column_name(self, column: int) -> str:
        """Human-readable name of one column, e.g. ``next_obs[3]``."""
        for name, sl in self.field_slices().items():
            if sl.start <= column < sl.stop:
                return name if sl.stop - sl.start == 1 else f"{name}[{column - sl.start}]"
        raise IndexError(f"column {column} outside a row of width {self.width}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form for file headers and model files."""
        return {
            "format": "TransitionLayout",
            "version": _FORMAT_VERSION,
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "has_terminal": self.has_terminal,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TransitionLayout:
        """Inverse of :meth:`to_dict`; rejects other formats and versions clearly."""
        if not isinstance(data, dict) or data.get("format") != "TransitionLayout":
            raise ValueError(f"not a TransitionLayout description: {data!r}")
        if data.get("version") != _FORMAT_VERSION:
            raise ValueError(
                f"TransitionLayout format version {data.get('version')!r} is not supported "
                f"(this package reads version {_FORMAT_VERSION})"
            )
        try:
            return cls(int(data["obs_dim"]), int(data["act_dim"]), bool(data["has_terminal"]))
        except KeyError as exc:
            raise ValueError(f"TransitionLayout description lacks {exc.args[0]!r}") from None
