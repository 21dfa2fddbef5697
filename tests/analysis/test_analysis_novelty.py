"""Novelty: exact nearest-real-row distances in standardised space, chunked on both sides."""

from __future__ import annotations

import numpy as np
import pytest

from synther_fast.analysis import (
    nearest_neighbour,
    nearest_neighbour_reference,
    novelty,
)


def test_identical_rows_are_at_distance_zero() -> None:
    ref = np.random.default_rng(0).standard_normal((500, 12)).astype(np.float32) * 30 + 100
    d, idx = nearest_neighbour(ref, ref, query_chunk=64, reference_chunk=100)
    # exactly 0: the matrix-product search only picks the neighbour, the distance is recomputed
    assert d.max() == 0.0
    np.testing.assert_array_equal(idx, np.arange(500))
    out = novelty(ref, ref)
    assert out["mean"] == 0.0 and out["exact_copies"] == 500


def test_a_known_shift_gives_the_expected_distance() -> None:
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((300, 5)).astype(np.float32)
    ref[:, 0] *= 1000.0  # far apart along column 0, so each shifted row keeps its own neighbour
    shift = np.zeros(5, dtype=np.float32)
    shift[1] = 0.01
    d, idx = nearest_neighbour(ref + shift, ref, query_chunk=32, reference_chunk=50)
    np.testing.assert_array_equal(idx, np.arange(300))
    np.testing.assert_allclose(d, 0.01, rtol=1e-3)
    # novelty measures in units of the real std: the same shift is 0.01 / std(column 1)
    out = novelty(ref, ref + shift)
    std1 = ref[:, 1].astype(np.float64).std()
    np.testing.assert_allclose(out["distances"], 0.01 / std1, rtol=1e-3)
    # rescaling a column in both sets changes nothing after standardisation
    scaled_ref, scaled_q = ref.copy(), ref + shift
    scaled_ref[:, 2] *= 50
    scaled_q[:, 2] *= 50
    np.testing.assert_allclose(novelty(scaled_ref, scaled_q)["distances"], out["distances"], rtol=1e-4)


@pytest.mark.parametrize("chunks", [(7, 13), (1000, 1000), (1, 1)])
def test_chunked_search_equals_the_plain_reference(chunks) -> None:
    rng = np.random.default_rng(2)
    ref = rng.standard_normal((257, 9)).astype(np.float32)
    query = rng.standard_normal((61, 9)).astype(np.float32)
    d, idx = nearest_neighbour(query, ref, query_chunk=chunks[0], reference_chunk=chunks[1])
    d_ref, idx_ref = nearest_neighbour_reference(query, ref)
    np.testing.assert_array_equal(idx, idx_ref)
    np.testing.assert_allclose(d, d_ref, rtol=1e-5)
    assert d.min() > 0


def test_held_out_yardstick_and_subsampling() -> None:
    rng = np.random.default_rng(3)
    real = rng.standard_normal((1200, 6)).astype(np.float32)
    train, held = real[:1000], real[1000:]
    copies = train[:150] + 1e-6  # a memorising generator
    out = novelty(train, copies, held_out_rows=held, max_rows=100)
    assert out["rows"] == 100 and len(out["distances"]) == 100
    assert out["held_out"]["rows"] == 100
    assert out["exact_copies"] == 100 and out["held_out"]["exact_copies"] == 0
    assert out["mean"] < 1e-3 < out["held_out"]["mean"]
    # rows_index points back into the rows given
    np.testing.assert_array_equal(out["index"], out["rows_index"])


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="width"):
        nearest_neighbour(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="empty"):
        nearest_neighbour(np.zeros((3, 4)), np.zeros((0, 4)))


def test_memorisation_tells_a_copying_model_from_one_that_samples_the_law() -> None:
    from synther_fast.analysis.novelty import memorisation

    rng = np.random.default_rng(0)
    train, held, fresh = (rng.normal(size=(n, 6)).astype(np.float32) for n in (2000, 500, 1000))
    sampled = memorisation(train, held, fresh)
    assert abs(sampled["memorised_share"] - 0.05) < 0.03  # as near as fresh data: ~ the percentile
    copies = train[rng.integers(0, len(train), 1000)] + 1e-4 * rng.normal(size=(1000, 6)).astype(np.float32)
    copied = memorisation(train, held, copies)
    assert copied["memorised_share"] > 0.95 and copied["threshold"] == sampled["threshold"]
    half = np.concatenate([copies[:500], fresh[:500]])
    assert 0.45 < memorisation(train, held, half)["memorised_share"] < 0.6
    with pytest.raises(ValueError, match="held-out real rows"):
        memorisation(train, held[:1], fresh)
    with pytest.raises(ValueError, match="percentile"):
        memorisation(train, held, fresh, percentile=0)
