"""Relevance scores of transitions, the conditions of guided generation (SynthERConfig.guidance).

- :mod:`.curiosity`: an ICM-style forward-model error in a learned feature space (online; PGR);
- :mod:`.td`: the TD error of the learner's current critics (online);
- :mod:`.returns`: the discounted return-to-go of each row of a dataset (offline; GTA);
- :mod:`.guidance`: what an online refit conditions on (scores and the pool of conditions).

Each maps rows (n, layout.width) to one score per row; a guided refit fits the conditional model
on (rows, scores) and generates toward the high ones.
"""

from synther_fast.relevance.curiosity import Curiosity
from synther_fast.relevance.guidance import RefitGuidance
from synther_fast.relevance.returns import return_target, returns_to_go
from synther_fast.relevance.selection import top_fraction
from synther_fast.relevance.td import td_errors

__all__ = ["Curiosity", "RefitGuidance", "return_target", "returns_to_go", "td_errors", "top_fraction"]
