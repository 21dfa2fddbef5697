"""What every agent offers (TD3+BC, IQL, SAC/REDQ), and the version tag of its state.

- ``update(batch) -> dict`` does exactly one update on a batch of static tensors and returns its
  metrics as device tensors (no host sync; read them when you log);
- ``act(obs, deterministic) -> np.ndarray`` for a (n, obs_dim) array;
- ``state_dict()`` / ``load_state_dict(state)``: everything needed to continue exactly, tagged with
  the agent's kind and a version that ``load_state_dict`` checks.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from synther_fast.graphs import load_optimizer_state

AGENT_STATE_VERSION = 1

INIT_STREAM, NOISE_STREAM, ACT_STREAM = 0, 1, 2
"""Sub-streams of an agent's seed (rng.derived_seed): weight initialisation, the update's noise
(target-policy smoothing, SAC's sampled actions) and, when the update is captured, acting. Each
its own stream, so no draw of one is a draw of another."""


@runtime_checkable
class Agent(Protocol):
    kind: str

    def update(self, batch: Any) -> dict[str, torch.Tensor]: ...

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def tag_state(kind: str, state: dict[str, Any]) -> dict[str, Any]:
    return {"agent_kind": kind, "agent_version": AGENT_STATE_VERSION, **state}


def parts_state(agent: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The state_dict of each named part (networks, optimisers) of an agent."""
    return {name: getattr(agent, name).state_dict() for name in names}


def load_parts(agent: Any, state: dict[str, Any], networks: tuple[str, ...], optimisers: tuple[str, ...]) -> None:
    """Load the named networks, then the optimisers in their own (capturable/fused) mode."""
    for name in networks:
        getattr(agent, name).load_state_dict(state[name])
    for name in optimisers:
        load_optimizer_state(getattr(agent, name), state[name])


def check_state(kind: str, state: dict[str, Any]) -> None:
    """Refuse another agent's state or another version, naming both."""
    found = state.get("agent_kind", "(untagged: synther_fast 0.1.0)")
    if found != kind and not (found.startswith("(untagged") and kind in ("td3_bc", "iql")):
        raise ValueError(f"agent state is of kind {found!r}, not {kind!r}")
    version = state.get("agent_version", AGENT_STATE_VERSION)
    if version != AGENT_STATE_VERSION:
        raise ValueError(f"{kind} agent state version {version} is not supported (reads {AGENT_STATE_VERSION})")


def terminal_of(batch: Any) -> torch.Tensor | float:
    """The terminal column as (B,), or 0 for layouts without one (DMC tasks never terminate)."""
    terminal = getattr(batch, "terminal", None)
    return 0.0 if terminal is None else terminal.squeeze(-1)


def bind_layout(bound: Any, layout: Any) -> Any:
    """The layout an agent updates on: the first call's, and every later call must match it
    (a captured update reads rows of that width only)."""
    if bound is not None and layout != bound:
        raise ValueError(f"this agent updates on rows of {bound}, got {layout}")
    return layout
