"""Networks shared by the agents: plain MLPs and ensembles of MLPs evaluated as one batched network.

An ensemble of E critics as E separate nn.Sequential costs E launches per layer; stacked as
(E, in, out) weights it is one batched matmul per layer (``torch.baddbmm``), which is what makes the
fast update faster than the plain per-network reference on both CPU and GPU.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from synther_fast.common.cuda_graphs import optimizer_options

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
"""Bounds of a Gaussian policy's log standard deviation (CORL's and the REDQ code's values)."""


def mlp(in_dim: int, out_dim: int, hidden: tuple[int, ...] = (256, 256), out_act: nn.Module | None = None) -> nn.Sequential:
    layers: list[nn.Module] = []
    last = in_dim
    for width in hidden:
        layers += [nn.Linear(last, width), nn.ReLU()]
        last = width
    layers.append(nn.Linear(last, out_dim))
    if out_act is not None:
        layers.append(out_act)
    return nn.Sequential(*layers)


class EnsembleLinear(nn.Module):
    """E independent Linear layers applied to an (E, B, in) input with one batched matmul.

    Each member is initialised exactly as nn.Linear (uniform +-1/sqrt(in) for weight and bias).
    """

    def __init__(self, ensemble: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(ensemble, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(ensemble, 1, out_features))
        bound = 1 / math.sqrt(in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleMLP(nn.Module):
    """E MLPs with identical shapes; input (B, in) is shared by all members, output (E, B, out)."""

    def __init__(self, ensemble: int, in_dim: int, out_dim: int, hidden: tuple[int, ...] = (256, 256)) -> None:
        super().__init__()
        self.ensemble = ensemble
        dims = (in_dim, *hidden, out_dim)
        self.layers = nn.ModuleList(EnsembleLinear(ensemble, a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.unsqueeze(0).expand(self.ensemble, *x.shape)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = torch.relu(h)
        return h

    def forward_member(self, x: torch.Tensor, member: int, frozen: bool = False) -> torch.Tensor:
        """Only member ``member`` (B, in) -> (B, out): no work for the others. ``frozen``: no
        gradient reaches this network's weights (only the input's), which skips their GEMMs."""
        h = x
        for i, layer in enumerate(self.layers):
            weight, bias = layer.weight[member], layer.bias[member]
            if frozen:
                weight, bias = weight.detach(), bias.detach()
            h = torch.addmm(bias, h, weight)
            if i < len(self.layers) - 1:
                h = torch.relu(h)
        return h

    @torch.no_grad()
    def load_from_mlps(self, mlps: list[nn.Sequential]) -> None:
        """Copy the weights of E plain MLPs (nn.Linear layers) into this ensemble."""
        linears = [[m for m in net if isinstance(m, nn.Linear)] for net in mlps]
        for depth, layer in enumerate(self.layers):
            for member, lins in enumerate(linears):
                layer.weight[member].copy_(lins[depth].weight.T)
                layer.bias[member, 0].copy_(lins[depth].bias)


class TwinCritic(nn.Module):
    """Q_1..Q_E(s, a) as one EnsembleMLP: returns (E, B)."""

    def __init__(self, obs_dim: int, act_dim: int, ensemble: int = 2, hidden: tuple[int, ...] = (256, 256)) -> None:
        super().__init__()
        self.net = EnsembleMLP(ensemble, obs_dim + act_dim, 1, hidden)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([obs, action], dim=-1)).squeeze(-1)

    def q1(self, obs: torch.Tensor, action: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        return self.net.forward_member(torch.cat([obs, action], dim=-1), 0, frozen).squeeze(-1)


class SeparateCritics(nn.Module):
    """The plain reference: E nn.Sequential critics evaluated one after another; returns (E, B)."""

    def __init__(self, obs_dim: int, act_dim: int, ensemble: int = 2, hidden: tuple[int, ...] = (256, 256)) -> None:
        super().__init__()
        self.nets = nn.ModuleList(mlp(obs_dim + act_dim, 1, hidden) for _ in range(ensemble))

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, action], dim=-1)
        return torch.stack([net(x).squeeze(-1) for net in self.nets])

    def q1(self, obs: torch.Tensor, action: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        # The plain reference (as CORL) back-propagates into the critic's weights too.
        return self.nets[0](torch.cat([obs, action], dim=-1)).squeeze(-1)


def make_critic(fast: bool, obs_dim: int, act_dim: int, ensemble: int = 2,
                hidden: tuple[int, ...] = (256, 256)) -> nn.Module:
    cls = TwinCritic if fast else SeparateCritics
    return cls(obs_dim, act_dim, ensemble, hidden)


@torch.no_grad()
def xavier_init_(module: nn.Module) -> nn.Module:
    """The REDQ code's initialisation (``weights_init_`` in redq/algos/core.py, which SynthER's
    online agent uses): xavier-uniform weights (gain 1) and zero biases, for every nn.Linear and
    for every member of an EnsembleLinear (each member's own in x out matrix). PyTorch's default
    (what CORL's TD3+BC and IQL keep) draws uniform +-1/sqrt(fan_in) instead."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, EnsembleLinear):
            for member in m.weight:
                nn.init.xavier_uniform_(member)
            nn.init.zeros_(m.bias)
    return module


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """target <- (1 - tau) target + tau source, in place (one foreach lerp over all parameters)."""
    targets, sources = list(target.parameters()), list(source.parameters())
    torch._foreach_lerp_(targets, sources, tau)


def make_optimizer(params, lr: float, device: torch.device, fast: bool, captured: bool) -> torch.optim.Optimizer:
    """Adam. Fast: fused (one kernel for every parameter), capturable with a device-tensor lr when
    the update is captured (cuda_graphs.optimizer_options). The plain reference: per-parameter Adam."""
    if fast:
        return torch.optim.Adam(params, **optimizer_options(lr, device, captured))
    return torch.optim.Adam(params, lr=lr, foreach=False)
