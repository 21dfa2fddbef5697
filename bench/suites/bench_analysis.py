"""Novelty search: the chunked torch.cdist nearest neighbour (GPU when present) against a plain
NumPy loop, in the same run, at small sizes (HalfCheetah-width rows, 42 columns).
Run:  pytest bench/suites/bench_analysis.py --benchmark-json=bench.json   (or --benchmark-disable as a test)
"""

from __future__ import annotations

import numpy as np
import pytest

from synther_fast.analysis.novelty import nearest_neighbour, nearest_neighbour_reference

QUERY_ROWS, REFERENCE_ROWS, WIDTH = 1_000, 10_000, 42
IMPLS = {"reference": nearest_neighbour_reference, "fast": nearest_neighbour}


def sets() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    reference = rng.standard_normal((REFERENCE_ROWS, WIDTH), dtype=np.float32)
    query = rng.standard_normal((QUERY_ROWS, WIDTH), dtype=np.float32)
    query[:10] = reference[:10]  # exact copies must come out at distance 0
    return query, reference


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_nearest_neighbour(benchmark, impl) -> None:
    query, reference = sets()
    benchmark.group = f"novelty: {QUERY_ROWS:,} x {REFERENCE_ROWS:,} rows, width {WIDTH}"
    benchmark.extra_info["pairs_per_call"] = QUERY_ROWS * REFERENCE_ROWS
    distances, index = benchmark.pedantic(IMPLS[impl], args=(query, reference), rounds=3, iterations=1,
                                          warmup_rounds=1 if impl == "fast" else 0)
    assert distances.shape == (QUERY_ROWS,) and (distances[:10] == 0).all()
    np.testing.assert_array_equal(index[:10], np.arange(10))
    # both implementations find the same neighbours (checked on a slice, the reference is slow)
    d_ref, i_ref = nearest_neighbour_reference(query[:200], reference)
    np.testing.assert_array_equal(index[:200], i_ref)
    np.testing.assert_allclose(distances[:200], d_ref, rtol=1e-5)
