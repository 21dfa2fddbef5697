"""Data-quality measures of synthetic transitions (the paper's section 4)."""

from synther_fast.analysis.fidelity import marginal_fidelity

__all__ = ["marginal_fidelity"]
