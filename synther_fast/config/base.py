"""The machinery of every config: checks run when a part is built, one versioned serialisation
(:func:`config_to_dict` / :func:`config_from_dict`) and one override rule for dotted keys
(:func:`with_overrides`)."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import difflib
import typing
from collections.abc import Iterator
from typing import Any, TypeVar

T = TypeVar("T")
S = TypeVar("S", bound="Serialisable")
CONFIG_FORMAT_VERSION = 1


_CHECKS_DEFERRED: contextvars.ContextVar[bool] = contextvars.ContextVar("synther_fast_checks_deferred", default=False)


class Checked:
    """A config part whose ``check()`` runs when it is built, so ``SACConfig(utd=0)`` fails at
    once, naming the field. The checks are written once, in ``check()``; :func:`validate` runs
    them over a whole tree (after :func:`deferred_checks`, or after ``dataclasses.replace``)."""

    def __post_init__(self) -> None:
        if not _CHECKS_DEFERRED.get():
            self.check()  # type: ignore[attr-defined]


@contextlib.contextmanager
def deferred_checks() -> Iterator[None]:
    """Build configs without running their checks in this context only (the CLI parser, which
    then calls :func:`validate`: tyro would report an error raised while it builds a nested
    config in its own truncated box)."""
    token = _CHECKS_DEFERRED.set(True)
    try:
        yield
    finally:
        _CHECKS_DEFERRED.reset(token)


class Serialisable:
    """The serialisation and override methods every top-level config shares."""

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls: type[S], data: dict[str, Any]) -> S:
        return config_from_dict(cls, data)

    def with_overrides(self: S, **overrides: Any) -> S:
        """Fields by name; nested ones by dotted keys ('synther.trainer.steps', 'td3_bc.alpha')."""
        return with_overrides(self, **overrides)

    def replace(self: S, **changes: Any) -> S:
        """The same as :meth:`with_overrides`."""
        return with_overrides(self, **changes)



# -- one serialisation, one override rule -----------------------------------------------------------
LEGACY_FORMATS = {"synther_fast.OfflineConfig": "OfflineConfig"}
"""Format names written by earlier releases (run directories of 0.1.0 keep loading)."""


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain JSON of a config tree, tagged with its class name and the format version."""
    return {"format": type(config).__name__, "version": CONFIG_FORMAT_VERSION, **_as_json(config)}


def config_from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """The inverse of :func:`config_to_dict`; fields missing from older files take their defaults,
    unknown fields and other formats or versions are refused with a message that names them."""
    fmt = LEGACY_FORMATS.get(data.get("format"), data.get("format"))
    if fmt != cls.__name__:
        raise ValueError(f"not a {cls.__name__} description: format {data.get('format')!r}")
    if data.get("version") != CONFIG_FORMAT_VERSION:
        raise ValueError(
            f"{cls.__name__} version {data.get('version')!r} is not supported "
            f"(this package reads {CONFIG_FORMAT_VERSION})"
        )
    return validate(_from_json(cls, {k: v for k, v in data.items() if k not in ("format", "version")}))


def with_overrides(config: T, **overrides: Any) -> T:
    """A copy of ``config`` with fields replaced, nested ones named by dotted keys.

    Values are checked against the field's type (``"ten"`` for an int is refused, ``1e5`` becomes
    100000, a scalar for a tuple field becomes a 1-tuple); an unknown key raises naming the valid
    keys at that level.
    """
    nested: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    names = {f.name: f for f in dataclasses.fields(config)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(type(config))
    for key, value in overrides.items():
        head, _, rest = key.partition(".")
        if head not in names:
            close = difflib.get_close_matches(head, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown {type(config).__name__} field {head!r}{hint}; valid: {', '.join(names)}")
        if rest:
            if not dataclasses.is_dataclass(getattr(config, head)):
                raise ValueError(f"{type(config).__name__}.{head} has no fields (got key {key!r})")
            nested.setdefault(head, {})[rest] = value
        else:
            top[head] = _coerce(value, hints[head], f"{type(config).__name__}.{head}")
    for head, changes in nested.items():
        top[head] = with_overrides(top.get(head, getattr(config, head)), **changes)
    return validate(dataclasses.replace(config, **top))  # type: ignore[type-var]


def validate(config: T) -> T:
    """Run every check of ``config`` and of each nested part (raises ValueError naming the field);
    returns the config. Each field is checked in one place, its part's ``check()``; building a
    part runs it, and every entry point (:func:`resolve`, :func:`with_overrides`,
    :func:`config_from_dict`, the pipelines, the models and agents built from a config) runs the
    whole tree's, which also covers parts built under :func:`deferred_checks`."""
    for f in dataclasses.fields(config):  # type: ignore[arg-type]
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            validate(value)
    check = getattr(config, "check", None)
    if check is not None:
        check()
    return config


def config_differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted names of the fields where two configs of one class differ, with both values."""
    out: list[str] = []
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if dataclasses.is_dataclass(x) and dataclasses.is_dataclass(y):
            out += config_differences(x, y, f"{prefix}{f.name}.")
        elif x != y:
            out.append(f"{prefix}{f.name}: {x!r} != {y!r}")
    return out


def _coerce(value: Any, hint: Any, name: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, hint):  # type: ignore[arg-type]
            raise ValueError(f"{name} takes a {hint.__name__}, got {value!r}")
        return value
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if type(None) in args and (value is None or (isinstance(value, str) and value.lower() == "none")):
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, name)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(errors[0])
    if origin is tuple:
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        inner = args[0] if args and (len(args) == 2 and args[1] is Ellipsis or len(args) == 1) else None
        if inner is None and args:
            if len(items) != len(args):
                raise ValueError(f"{name} takes {len(args)} values, got {value!r}")
            return tuple(_coerce(v, a, name) for v, a in zip(items, args))
        return tuple(_coerce(v, inner, name) for v in items) if inner is not None else tuple(items)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError(f"{name} takes true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise ValueError(f"{name} takes an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)  # exact, also beyond float precision
            except ValueError:
                pass
            try:
                number = float(value)
            except ValueError:
                raise ValueError(f"{name} takes an integer, got {value!r}") from None
            return _coerce(number, int, name)
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if hint is float:
        if isinstance(value, bool):
            raise ValueError(f"{name} takes a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} takes a number, got {value!r}") from None
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{name} takes a string, got {value!r}")
        return value
    return value


def _as_json(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _as_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return [_as_json(v) for v in obj]
    return obj


def _from_json(cls: type[T], data: dict[str, Any]) -> T:
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{cls.__name__} has no fields {sorted(unknown)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            kwargs[name] = _from_json(hint, value)  # type: ignore[arg-type]
        else:
            kwargs[name] = _coerce(value, hint, f"{cls.__name__}.{name}")
    return cls(**kwargs)


def _positive(config: Any, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not value > 0:
            raise ValueError(f"{type(config).__name__}.{name} must be positive, got {value!r}")


def _non_negative(config: Any, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or value < 0:
            raise ValueError(f"{type(config).__name__}.{name} must be >= 0, got {value!r}")


def _choice(config: Any, name: str, options: tuple[str, ...]) -> None:
    value = getattr(config, name)
    if value not in options:
        raise ValueError(f"{type(config).__name__}.{name} must be one of {options}, got {value!r}")
