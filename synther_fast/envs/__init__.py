"""Environment factory: gymnasium MuJoCo v5 and dm_control suite tasks behind one name space.

The factory (and with it gymnasium) is imported on first use, so that the simulator-free parts
(names, health rules) import on machines without simulators.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ENV_NAMES", "EnvSpec", "env_spec", "make_env"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from synther_fast.envs import factory

        return getattr(factory, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
