"""Evaluation seeds: independent across runs, evaluations and episodes, derived in one place for both
pipelines; and the one evaluation record they log."""

from __future__ import annotations

import numpy as np

from synther_fast.common.rng import Stream
from synther_fast.pipelines import evaluation
from synther_fast.pipelines.evaluation import episode_seeds, evaluation_record


def test_episode_seeds_are_derived_from_run_evaluation_and_episode() -> None:
    by_hand = [int(np.random.SeedSequence([4, Stream.EVALUATION, 2, k]).generate_state(1, dtype=np.uint64)[0] >> 1) % 2**32
               for k in range(3)]
    assert episode_seeds(4, 2, 3) == by_hand
    runs = [set(episode_seeds(s, 0, 10)) for s in range(5)]
    assert all(len(r) == 10 for r in runs)
    assert all(not (runs[a] & runs[b]) for a in range(5) for b in range(a + 1, 5))  # no shared start states
    assert not set(episode_seeds(0, 0, 10)) & set(episode_seeds(0, 1, 10))  # each evaluation its own
    # the old scheme (10,000 + seed + k) made seed 1 replay 9 of seed 0's 10 episodes
    old = [set(range(10_000 + s, 10_010 + s)) for s in (0, 1)]
    assert len(old[0] & old[1]) == 9


def test_evaluation_record_uses_the_derived_seeds(monkeypatch) -> None:
    seen = []

    def fake_evaluate(policy, env_name, episodes=10, seed=10_000, seeds=None):
        seen.append(list(seeds))
        return np.array([100.0, 300.0])

    monkeypatch.setattr(evaluation, "evaluate", fake_evaluate)
    record = evaluation_record(lambda o: o, "Hopper-v5", 2, run_seed=3, evaluation=5)
    assert seen == [episode_seeds(3, 5, 2)]
    assert record["return_mean"] == 200.0 and record["return_std"] == 100.0
    assert abs(record["normalized_score"] - 100 * (200 + 20.272305) / (3234.3 + 20.272305)) < 1e-9
    assert "normalized_score" not in evaluation_record(lambda o: o, "dmc:cheetah-run", 2, 3, 5)
