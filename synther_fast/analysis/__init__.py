"""Data-quality measures of synthetic transitions (SynthER's data-quality analysis, Lu et al. 2023):
marginal fidelity, terminal rates, dynamics error, novelty, augmentation baselines, and a report."""

from synther_fast.analysis.augment import gaussian_noise, match_strength, mixup
from synther_fast.analysis.dynamics import DynamicsError, dynamics_error
from synther_fast.analysis.fidelity import (
    correlation_error,
    fidelity_with_yardstick,
    ks_statistic,
    marginal_fidelity,
    split_held_out,
    terminal_rates,
    wasserstein1,
)
from synther_fast.analysis.novelty import (
    nearest_neighbour,
    nearest_neighbour_reference,
    novelty,
)
from synther_fast.analysis.quality import data_quality, write_report
from synther_fast.analysis.tasks import (
    STATE_TASKS,
    reconstructable,
    unhealthy,
    unsupported_reason,
)

__all__ = [
    "STATE_TASKS",
    "DynamicsError",
    "correlation_error",
    "data_quality",
    "dynamics_error",
    "fidelity_with_yardstick",
    "gaussian_noise",
    "ks_statistic",
    "marginal_fidelity",
    "match_strength",
    "mixup",
    "nearest_neighbour",
    "nearest_neighbour_reference",
    "novelty",
    "reconstructable",
    "split_held_out",
    "terminal_rates",
    "unhealthy",
    "unsupported_reason",
    "wasserstein1",
    "write_report",
]
