"""Terminal labels for generated rows: the task's termination rule, or a classifier learned on the
real rows, instead of thresholding the generated 0/1 column.

Measured at quick scale on SAC-collected data (docs/RESULTS.md, bench/studies/terminal_study.py): a
diffusion model sampling the rare 0/1 column beside the continuous ones, thresholded at 0.5 as the
published code, gave Hopper-v5 0.15% terminals for a real 1.49% and Walker2d-v5 0.17% for 1.30%;
even where the generated next state was unhealthy, only 3-8% of those rows were terminal. The
raw column's mean is no better (about 0: the mass is not sitting between 0 and 1), a Bernoulli
draw on it gets the rate but labels at random, and standardising the column before the fit
(0.29%) barely helps. On these tasks an episode ends exactly when the next state leaves the
healthy region, so the label is a function of next_obs: applying the task's rule (where it is
known) makes every unhealthy generated next state terminal and no healthy one, as in the real data,
and the rate then equals the fraction of unhealthy generated states. Elsewhere a classifier on
next_obs, trained with cross-entropy on the real rows (positives weighted, since they are rare),
learns that function from the data.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from synther_fast.common.rng import seeded
from synther_fast.envs.health import HEALTH_RULES, unhealthy
from synther_fast.replay.layout import TransitionLayout


def terminal_mode(terminals: str, task: str | None) -> str:
    """'auto' resolved: the task's rule where it has one, else the classifier."""
    if terminals == "auto":
        return "rule" if task in HEALTH_RULES else "classifier"
    return terminals


class TerminationClassifier(nn.Module):
    """P(terminal | next_obs), learned from real rows; ``predict`` gives 0/1 labels."""

    def __init__(self, layout: TransitionLayout, hidden: tuple[int, ...] = (128, 128)) -> None:
        super().__init__()
        if layout.terminal is None:
            raise ValueError(f"{layout} has no terminal column to learn")
        self.layout = layout
        dims = (layout.obs_dim, *hidden)
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(dims[-1], 1))
        self.register_buffer("loc", torch.zeros(layout.obs_dim))
        self.register_buffer("scale", torch.ones(layout.obs_dim))
        # -1: the network decides; 0 or 1: the real rows held one class only (HalfCheetah never
        # terminates), so that is every label and nothing is trained.
        self.register_buffer("constant", torch.tensor(-1.0))

    def features(self, rows: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(np.ascontiguousarray(np.asarray(rows, dtype=np.float32)[:, self.layout.next_obs]))
        return (x - self.loc) / self.scale

    @classmethod
    def fit(cls, rows: np.ndarray, layout: TransitionLayout, steps: int = 3000, batch_size: int = 512,
            lr: float = 1e-3, positive_weight: float = 10.0, seed: int = 0) -> TerminationClassifier:
        """Train on real ``rows`` (n, layout.width); deterministic for a given seed. Positives are
        weighted ``positive_weight`` (measured on Hopper-v5: recall on the real rows 91% at 1,
        99.8% at 10)."""
        rows = np.asarray(rows, dtype=np.float32)
        with seeded(seed):
            model = cls(layout)
        positives = rows[:, layout.terminal][:, 0] > 0.5
        if positives.all() or not positives.any():
            model.constant.fill_(float(positives.any()))
            return model.eval()
        next_obs = torch.as_tensor(np.ascontiguousarray(rows[:, layout.next_obs]))
        model.loc.copy_(next_obs.mean(0))
        model.scale.copy_(next_obs.std(0).clamp_min(1e-6))
        x = model.features(rows)
        target = torch.as_tensor(rows[:, layout.terminal][:, 0] > 0.5, dtype=torch.float32)
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(positive_weight))
        for _ in range(steps):
            index = torch.randint(0, len(x), (min(batch_size, len(x)),), generator=generator)
            loss = loss_fn(model.net(x[index]).squeeze(-1), target[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return model.eval()

    @torch.no_grad()
    def probability(self, rows: np.ndarray) -> np.ndarray:
        if self.constant >= 0:
            return np.full(len(rows), float(self.constant), dtype=np.float32)
        return torch.sigmoid(self.net(self.features(rows)).squeeze(-1)).numpy()

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """0/1 terminal labels (float32) for rows of this layout."""
        return (self.probability(rows) > 0.5).astype(np.float32)


def label_terminals(rows: np.ndarray, layout: TransitionLayout, mode: str, task: str | None,
                    classifier: TerminationClassifier | None, threshold: float | None) -> None:
    """Write the terminal column of generated ``rows`` in place, by ``mode`` (terminal_mode)."""
    if layout.terminal is None:
        return
    column = layout.terminal.start
    if mode == "rule":
        rows[:, column] = unhealthy(task, rows[:, layout.next_obs]).astype(np.float32)
    elif mode == "classifier" and classifier is not None:
        rows[:, column] = classifier.predict(rows)
    elif threshold is not None:  # 'threshold', or a classifier that was never fitted (older files)
        rows[:, column] = (rows[:, column] >= threshold).astype(np.float32)


def load_classifier(state: dict[str, Any] | None, layout: TransitionLayout, mode: str, path: Any) -> TerminationClassifier | None:
    """The classifier stored in a model file, if any (a file written before classifiers existed
    labels by threshold, with a warning, when its config asks for one)."""
    if state is None:
        if mode == "classifier" and layout.terminal is not None:
            warnings.warn(f"{path} holds no termination classifier (written by an older version): its generated "
                          "terminals are thresholded at terminal_threshold", RuntimeWarning, stacklevel=3)
        return None
    model = TerminationClassifier(layout)
    model.load_state_dict(state)
    return model.eval()


def match_terminal_rate(rows: np.ndarray, layout: TransitionLayout, rate: float,
                        rng: np.random.Generator) -> np.ndarray:
    """Labelled rows thinned at random so that their terminal fraction is ``rate`` (the real
    data's) in expectation: stratified sampling on the terminal bit by rejection. Surplus rows of
    the over-represented class are dropped; the rows kept are in their original order."""
    if layout.terminal is None or len(rows) == 0:
        return rows
    keep = terminal_rate_mask(rows[:, layout.terminal.start] > 0.5, rate, rng)
    return rows if keep.all() else rows[keep]


def terminal_rate_mask(done: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Which rows :func:`match_terminal_rate` keeps, given their terminal flags."""
    keep = np.ones(len(done), bool)
    n1 = int(done.sum())
    n0 = len(done) - n1
    if n1 == 0 or n0 == 0 or not 0.0 < rate < 1.0:
        return keep  # nothing to rebalance against
    if n1 / len(done) > rate:  # too many terminals: keep rate * n0 / (1 - rate) of them
        target, pool = rate * n0 / (1.0 - rate), np.flatnonzero(done)
    else:  # too few: keep n1 (1 - rate) / rate of the non-terminal rows
        target, pool = n1 * (1.0 - rate) / rate, np.flatnonzero(~done)
    keep_n = min(len(pool), int(np.floor(target + rng.random())))  # stochastic rounding: exact in expectation
    keep[np.setdiff1d(pool, rng.choice(pool, keep_n, replace=False), assume_unique=True)] = False
    return keep
