"""Curiosity as PGR scores transitions (Wang et al. 2024, after ICM, Pathak et al. 2017).

A feature network phi(s), an inverse model predicting a from (phi(s), phi(s')) and a forward model
predicting phi(s') from (phi(s), a) are trained together on real batches (forward loss against a
detached phi(s'), plus the inverse loss that keeps phi from collapsing). A transition's relevance
is the forward model's squared error in feature space: high where the dynamics are still novel.

PGR's networks are deeper (residual forward blocks, BatchNorm in the inverse model); these are
plain MLPs of the same width, enough for a relevance score, and cheap to update once per
environment step on a CPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from synther_fast.agents.networks import mlp
from synther_fast.common.rng import seeded
from synther_fast.replay import TransitionLayout


class Curiosity:
    def __init__(self, layout: TransitionLayout, hidden: int = 256, lr: float = 3e-4,
                 device: str | torch.device = "cpu", seed: int = 0) -> None:
        self.layout, self.device = layout, torch.device(device)
        obs, act = layout.obs_dim, layout.act_dim
        with seeded(seed):
            self.feature = mlp(obs, hidden, (hidden, hidden)).to(self.device)
            self.inverse = mlp(2 * hidden, act, (hidden,)).to(self.device)
            self.forward_model = mlp(hidden + act, hidden, (hidden, hidden)).to(self.device)
        self.parameters = [*self.feature.parameters(), *self.inverse.parameters(), *self.forward_model.parameters()]
        self.optimizer = torch.optim.Adam(self.parameters, lr=lr)
        self.updates = 0

    def _split(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        lay = self.layout
        return rows[:, lay.obs], rows[:, lay.action], rows[:, lay.next_obs]

    def losses(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(per-row forward error, mean forward loss, mean inverse loss) of a batch of rows."""
        obs, act, next_obs = self._split(rows)
        phi, phi_next = self.feature(obs), self.feature(next_obs)
        predicted = self.forward_model(torch.cat([phi, act], dim=-1))
        error = ((predicted - phi_next.detach()) ** 2).mean(dim=-1)
        inverse = self.inverse(torch.cat([phi, phi_next], dim=-1))
        return error, error.mean(), nn.functional.mse_loss(inverse, act)

    def update(self, rows: Any) -> dict[str, torch.Tensor]:
        """One Adam step on a batch of real rows (n, layout.width); the losses come back as
        device tensors (no host sync in the online loop's step)."""
        batch = torch.as_tensor(np.asarray(rows, dtype=np.float32), device=self.device)
        _, forward_loss, inverse_loss = self.losses(batch)
        self.optimizer.zero_grad(set_to_none=True)
        (forward_loss + inverse_loss).backward()
        self.optimizer.step()
        self.updates += 1
        return {"curiosity_forward_loss": forward_loss.detach(), "curiosity_inverse_loss": inverse_loss.detach()}

    @torch.no_grad()
    def score(self, rows: Any, batch: int = 8192) -> np.ndarray:
        """Each row's forward-model error (n,), in batches."""
        data = np.asarray(rows, dtype=np.float32)
        out = np.empty(len(data), np.float32)
        for start in range(0, len(data), batch):
            chunk = torch.as_tensor(data[start:start + batch], device=self.device)
            out[start:start + batch] = self.losses(chunk)[0].cpu().numpy()
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"feature": self.feature.state_dict(), "inverse": self.inverse.state_dict(),
                "forward_model": self.forward_model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.feature.load_state_dict(state["feature"])
        self.inverse.load_state_dict(state["inverse"])
        self.forward_model.load_state_dict(state["forward_model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = int(state["updates"])
