"""Which tasks the environment factory accepts, checked without making (or simulating) one.

- Every gymnasium environment id that ``gymnasium.make`` resolves, including ones a plugin
  package registers on import: ``package:EnvId``, as gymnasium itself allows, imports
  ``package`` first (a user's own module that calls ``gymnasium.register`` works the same way).
- Every dm_control suite task as ``dmc:DOMAIN-TASK`` (``suite.ALL_TASKS``; underscores in the task
  may be written as hyphens: ``dmc:cartpole-swingup-sparse``).

GYM_TASKS and DMC_TASKS are the tasks the package is tested and benchmarked on (D4RL reference
returns, health rules, the published runs); any other task works with what it provides.
"""

from __future__ import annotations

import difflib
import importlib
import os
import re
from collections.abc import Callable
from typing import Any

GYM_TASKS = ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5")
DMC_TASKS = (
    "dmc:cheetah-run", "dmc:walker-walk", "dmc:walker-run", "dmc:quadruped-walk",
    "dmc:quadruped-run", "dmc:reacher-hard", "dmc:finger-turn-hard", "dmc:hopper-hop",
)
ENV_NAMES = GYM_TASKS + DMC_TASKS
"""The tested tasks (every other gymnasium id and dm_control task is accepted too)."""
NO_ENV = "none"
"""The offline run's env for a dataset alone: fit, generate, report and agents, no evaluation."""

NAMES_HELP = ("any gymnasium id (package:EnvId imports a package that registers it), or dmc:DOMAIN-TASK "
              f"for any dm_control suite task; tested: {', '.join(ENV_NAMES)}")


class UnknownEnvironment(ValueError):
    """A task name that names no gymnasium environment and no dm_control task."""


def dmc_tasks() -> tuple[str, ...]:
    """Every dm_control suite task as dmc:DOMAIN-TASK (hyphens in the task part)."""
    os.environ.setdefault("MUJOCO_GL", "disable")  # headless: dm_control picks a renderer on import
    from dm_control import suite  # the simulator package, imported only to list its tasks

    return tuple(f"dmc:{domain}-{task.replace('_', '-')}" for domain, task in suite.ALL_TASKS)


def dmc_domain_task(name: str) -> tuple[str, str]:
    """('cartpole', 'swingup_sparse') for dmc:cartpole-swingup-sparse (or ...-swingup_sparse)."""
    domain, _, task = name[len("dmc:"):].partition("-")
    return domain, task.replace("-", "_")


def check_env_name(name: str) -> str:
    """``name`` if it names a task; else UnknownEnvironment, one line with the closest names."""
    if not isinstance(name, str) or not name.strip():
        raise UnknownEnvironment(f"unknown environment {name!r}; {NAMES_HELP}")
    if name.startswith("dmc:"):
        try:
            known = dmc_tasks()
        except ImportError:
            raise UnknownEnvironment(f"environment {name!r} needs dm_control, which is not installed") from None
        domain, task = dmc_domain_task(name)
        if f"dmc:{domain}-{task.replace('_', '-')}" not in known:
            raise UnknownEnvironment(f"unknown environment {name!r}{_did_you_mean(name, known)}; {NAMES_HELP}")
        return name
    module, _, env_id = name.rpartition(":")
    if module:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise UnknownEnvironment(f"environment {name!r}: cannot import {module!r} ({exc})") from None
    import gymnasium as gym

    try:
        gym.spec(env_id)
    except gym.error.Error:
        known = tuple(gym.registry) + ENV_NAMES[len(GYM_TASKS):]
        raise UnknownEnvironment(f"unknown environment {name!r}{_did_you_mean(env_id, known)}; {NAMES_HELP}") from None
    return name


def register_factory(factory: Callable[..., Any], name: str | None = None) -> str:
    """Register a function that returns a gymnasium.Env (a research environment that is registered
    nowhere) and return the id the configs then name: ``user/NAME-v0`` (NAME: ``name`` or the
    function's name). Registration lives in this process: a resumed run, or a sweep cell in
    another process, must register the same factory again first."""
    import gymnasium as gym

    if not callable(factory):
        raise TypeError(f"env factory must be callable, got {type(factory).__name__}")
    base = re.sub(r"[^A-Za-z0-9_]", "_", name or getattr(factory, "__name__", "") or "env").strip("_") or "env"
    env_id = f"user/{base}-v0"
    gym.registry.pop(env_id, None)  # the same name registered again (a notebook redefining it) replaces it
    gym.register(env_id, entry_point=factory)
    return env_id


def _did_you_mean(name: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""
