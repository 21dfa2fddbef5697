"""Hypothesis: random sequences of add / sample / save / load against a plain Python model."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synther_fast import MixedSampler, ReplayBuffer, TransitionLayout
from synther_fast.replay.reference import NumpyReplayBuffer

LAYOUT = TransitionLayout(obs_dim=2, act_dim=1, has_terminal=True)

operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(min_value=1, max_value=40)),
        st.tuples(st.just("sample"), st.integers(min_value=1, max_value=16)),
        st.tuples(st.just("save_load"), st.none()),
        st.tuples(st.just("restore"), st.none()),
    ),
    min_size=1,
    max_size=25,
)


class Model:
    """The buffer as a Python list: every row ever added, newest last."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.rows: list[list[float]] = []

    def held(self) -> list[list[float]]:
        return self.rows[-self.capacity :]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(capacity=st.integers(min_value=1, max_value=30), ops=operations, seed=st.integers(0, 2**32))
def test_buffer_matches_model(capacity: int, ops, seed: int) -> None:
    rng = np.random.default_rng(seed)
    buffer, reference, model = ReplayBuffer(capacity, LAYOUT), NumpyReplayBuffer(capacity, LAYOUT), Model(capacity)
    counter = 0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "b.replay"
        for op, arg in ops:
            if op == "add":
                rows = np.repeat(np.arange(counter, counter + arg, dtype=np.float32)[:, None], LAYOUT.width, 1)
                rows[:, 1] = rng.normal(size=arg)  # vary one column so rows are not trivially equal
                counter += arg
                buffer.add(rows)
                reference.add(rows)
                model.rows.extend(rows.tolist())
            elif op == "sample":
                if not model.rows:
                    continue
                sampler = MixedSampler(buffer, None, 0.0, arg, seed=int(rng.integers(2**32)))
                batch = sampler.sample()
                held = {tuple(r) for r in model.held()}
                assert all(tuple(r) in held for r in batch.array[:, : LAYOUT.width].tolist())
            elif op == "save_load":
                buffer.save(path)
                buffer = ReplayBuffer.load(path)
            elif op == "restore":
                buffer.save(path)
                fresh = ReplayBuffer(capacity, LAYOUT)
                fresh.add(np.ones((3, LAYOUT.width), np.float32))
                fresh.restore(path)
                buffer = fresh
            expected = np.asarray(model.held(), dtype=np.float32).reshape(-1, LAYOUT.width)
            assert len(buffer) == len(reference) == len(expected)
            assert buffer.total_added == reference.total_added == len(model.rows)
            np.testing.assert_array_equal(buffer.to_numpy(), expected)
            np.testing.assert_array_equal(reference.to_numpy(), expected)
