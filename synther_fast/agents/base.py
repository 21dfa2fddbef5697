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

from synther_fast.common.cuda_graphs import CapturedStep, load_optimizer_state
from synther_fast.replay.sampler import Batch

AGENT_STATE_VERSION = 1


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


class EnsembleSoftActorCritic:
    """What EDAC and CQL share around their maths (``_update``): one CapturedStep per update on
    the batch's static input, the parts a checkpoint holds, and acting. ``prepare_obs`` is where
    an agent normalises observations (CQL does, EDAC does not)."""

    kind: str
    device: torch.device
    captured: bool
    rng: Any
    total_updates: int
    _layout: Any
    _step: Any
    NETWORKS = ("actor", "critic", "critic_target")
    OPTIMISERS = ("actor_opt", "critic_opt", "alpha_opt")

    def prepare_obs(self, obs: torch.Tensor) -> torch.Tensor:
        return obs

    def update(self, batch: Any) -> dict[str, torch.Tensor]:
        """One update (temperature, actor, critics) on ``batch``; captured, its rows are copied
        into the step's static input."""
        self._layout = bind_layout(self._layout, batch.layout)
        if self._step is None:
            layout = batch.layout

            def fn(data: torch.Tensor) -> dict[str, torch.Tensor]:
                b = Batch(data, layout)
                return self._update(self.prepare_obs(b.obs), b.action, b.reward.squeeze(-1),
                                    self.prepare_obs(b.next_obs), terminal_of(b))

            self._step = CapturedStep(fn, self.device, state=self._learned_state(), capture=self.captured)
        with self.rng.scope():
            out = self._step(torch.as_tensor(batch.data))
        self.total_updates += 1
        return out

    def _learned_state(self) -> list:
        return [self.actor, self.critic, self.critic_target, self.log_alpha,
                self.actor_opt, self.critic_opt, self.alpha_opt]

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """tanh of the policy's mean (evaluation is deterministic, as CORL's)."""
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.device)
        return self.actor(self.prepare_obs(x), deterministic=True)[0].cpu().numpy()

    def extra_state(self) -> dict[str, Any]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return tag_state(self.kind, parts_state(self, self.NETWORKS + self.OPTIMISERS) | self.extra_state() | {
            "log_alpha": self.log_alpha.detach().clone(), "total_updates": self.total_updates,
            "generator": self.rng.state_dict(),
        })

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load a state (also one written on another device or in the other mode); optimisers
        replace their state tensors, so a captured graph is dropped and captured anew."""
        check_state(self.kind, state)
        self._step = None
        load_parts(self, state, self.NETWORKS, self.OPTIMISERS)
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
            for name in self.extra_state():
                getattr(self, name).copy_(state[name])
        self.total_updates = int(state["total_updates"])
        self.rng.load_state_dict(state["generator"], reseed_with=self.total_updates)
