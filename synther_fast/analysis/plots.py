"""PNG figures of the data-quality report. matplotlib is imported only here and only when a figure
is drawn; figures are plain ``Figure`` objects rendered by Agg, so pyplot's global state and the
user's backend are never touched."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from synther_fast.replay.layout import TransitionLayout

COLOURS = {"real": "#444444", "real held-out": "#444444", "synthetic": "#1f77b4", "noise": "#d62728",
           "mixup": "#2ca02c"}
ERROR_FLOOR = 1e-14  # real rows score ~1e-13 (float32 storage); a log axis needs a floor


def _figure(width: float, height: float):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("the report's plots need matplotlib: pip install matplotlib") from None
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def plot_marginals(real: np.ndarray, synthetic: np.ndarray, layout: TransitionLayout, out_dir: Path,
                   *, columns_per_figure: int = 48, ncols: int = 8) -> list[Path]:
    """Small-multiple histograms of every column, real vs synthetic; one PNG per 48 columns."""
    paths = []
    for page, start in enumerate(range(0, layout.width, columns_per_figure)):
        cols = list(range(start, min(start + columns_per_figure, layout.width)))
        nrows = -(-len(cols) // ncols)
        fig = _figure(2.0 * ncols, 1.6 * nrows)
        axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
        for ax, c in zip(axes, cols):
            r, s = real[:, c], synthetic[:, c]
            # shared bins over both bulk ranges, so one far outlier cannot flatten the histogram
            lo = min(np.quantile(r, 0.005), np.quantile(s, 0.005))
            hi = max(np.quantile(r, 0.995), np.quantile(s, 0.995))
            bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 41)
            ax.hist(r, bins=bins, density=True, histtype="stepfilled", alpha=0.35, color=COLOURS["real"],
                    label="real")
            ax.hist(s, bins=bins, density=True, histtype="step", color=COLOURS["synthetic"], label="synthetic")
            ax.set_title(layout.column_name(c), fontsize=8)
            ax.tick_params(labelsize=6)
            ax.set_yticks([])
        for ax in axes[len(cols):]:
            ax.set_axis_off()
        axes[0].legend(fontsize=6)
        path = out_dir / ("marginals.png" if page == 0 else f"marginals_{page + 1}.png")
        fig.savefig(path)
        paths.append(path)
    return paths


def plot_novelty(distances: Mapping[str, np.ndarray], path: Path) -> Path:
    """Histograms of nearest-real-row distances, one per row set."""
    fig = _figure(6, 3.5)
    ax = fig.subplots()
    finite = [d for d in distances.values() if len(d)]
    top = max(float(np.quantile(d, 0.99)) for d in finite) if finite else 1.0
    bins = np.linspace(0, top if top > 0 else 1.0, 60)
    for label, d in distances.items():
        ax.hist(np.clip(d, 0, bins[-1]), bins=bins, density=True, histtype="step", label=label,
                color=COLOURS.get(label))
    ax.set_xlabel("distance to nearest real row (standardised)")
    ax.set_ylabel("density")
    ax.legend()
    fig.savefig(path)
    return path


def plot_dynamics_vs_novelty(series: Mapping[str, tuple[np.ndarray, np.ndarray]], path: Path,
                             bins: int = 12) -> Path:
    """Per-row dynamics MSE against novelty: a faint scatter per set and its binned medians."""
    fig = _figure(6.5, 4)
    ax = fig.subplots()
    every = np.concatenate([n for n, _ in series.values() if len(n)] or [np.zeros(1)])
    edges = np.quantile(every, np.linspace(0, 1, bins + 1))
    for label, (nov, err) in series.items():
        if not len(nov):
            continue
        err = np.maximum(err, ERROR_FLOOR)
        colour = COLOURS.get(label)
        ax.scatter(nov, err, s=3, alpha=0.15, color=colour, linewidths=0)
        which = np.clip(np.searchsorted(edges, nov, side="right") - 1, 0, bins - 1)
        centres, medians = [], []
        for b in range(bins):
            inside = which == b
            if inside.sum() >= 5:  # a median of a handful of points is noise
                centres.append(float(np.median(nov[inside])))
                medians.append(float(np.median(err[inside])))
        ax.plot(centres, medians, marker="o", ms=3, color=colour, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("novelty: distance to nearest real row (standardised)")
    ax.set_ylabel("dynamics MSE of next observation")
    ax.legend()
    fig.savefig(path)
    return path


def plot_learning_curves(curves: Mapping[str, Sequence[tuple[float, float]]], path: Path, *,
                         xlabel: str = "update step", title: str | None = None) -> Path:
    """Evaluation return against training (or environment) step, one line per arm or run."""
    fig = _figure(6, 3.5)
    ax = fig.subplots()
    for arm, points in curves.items():
        if len(points):
            steps, returns = zip(*points)
            ax.plot(steps, returns, marker="o", ms=3, label=arm)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("evaluation return")
    if title:
        ax.set_title(title)
    ax.legend()
    fig.savefig(path)
    return path


def plot_grouped_bars(groups: Mapping[str, Mapping[str, tuple[float, float]]], path: Path, *,
                      ylabel: str, title: str | None = None) -> Path:
    """One cluster of bars per group (a task), one bar per series (an algorithm), with +-std
    error bars: ``groups[task][series] = (mean, std)``."""
    series = list(dict.fromkeys(s for bars in groups.values() for s in bars))
    fig = _figure(max(4.0, 1.2 + 0.5 * len(groups) * max(len(series), 1)), 3.5)
    ax = fig.subplots()
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    for k, name in enumerate(series):
        values = [groups[g].get(name, (np.nan, np.nan)) for g in groups]
        means, stds = zip(*values) if values else ((), ())
        ax.bar(x + (k - (len(series) - 1) / 2) * width, means, width, yerr=stds, capsize=3, label=name)
    ax.set_xticks(x, list(groups))
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if series:
        ax.legend(fontsize="small")
    fig.savefig(path)
    return path
