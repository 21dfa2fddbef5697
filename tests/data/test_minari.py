"""Synthetic rows out as a Minari dataset that Minari itself reads back (issue 22)."""

from __future__ import annotations

import numpy as np
import pytest
from cli_runner import run_cli

from synther_fast import SynthER, TransitionLayout, quick
from synther_fast.data import Dataset
from synther_fast.data.minari_out import minari_dataset_id, save_minari

minari = pytest.importorskip("minari", reason='needs Minari: pip install ".[minari]" (CI installs it)')


def rows_of(episodes) -> np.ndarray:
    """One row per one-step episode: obs | action | reward | next_obs | terminal."""
    return np.stack([np.concatenate([e.observations[0], e.actions[0], [e.rewards[0]], e.observations[1],
                                     [float(e.terminations[0])]]) for e in episodes]).astype(np.float32)


@pytest.mark.slow
def test_rows_round_trip_through_minari(tmp_path) -> None:
    rng = np.random.default_rng(5)
    n, layout = 120, TransitionLayout(3, 2, True)
    data = Dataset(rng.normal(size=(n, 3)), rng.uniform(-1, 1, (n, 2)), rng.normal(size=n),
                   rng.normal(size=(n, 3)), (rng.random(n) < 0.2).astype(float), np.zeros(n), "Hopper-v5")
    out = save_minari(data, tmp_path / "hopper-synthetic")
    read = minari.MinariDataset(out / "data")  # Minari's own reader
    assert read.total_episodes == n and read.total_steps == n
    episodes = list(read.iterate_episodes())
    np.testing.assert_array_equal(rows_of(episodes), data.to_rows(layout))
    assert all(bool(e.truncations[0]) != bool(e.terminations[0]) for e in episodes)  # each ends after one step
    meta = read.storage.metadata
    assert meta["dataset_id"] == "synther/hopper-synthetic-v0" and meta["ref_min_score"] == pytest.approx(-20.272305)
    assert read.spec.env_spec is not None and read.spec.env_spec.id == "Hopper-v5"
    with pytest.raises(FileExistsError):  # never overwritten
        save_minari(data, out)


def test_dataset_ids_come_from_the_folder_name() -> None:
    assert minari_dataset_id("a/b/cheetah-v3") == "synther/cheetah-v3"
    assert minari_dataset_id("rows of mine") == "synther/rows_of_mine-v0"


@pytest.mark.slow
def test_cli_generate_writes_a_minari_folder(tmp_path) -> None:
    layout = TransitionLayout(3, 1, True)
    rng = np.random.default_rng(0)
    real = np.concatenate([rng.normal(size=(300, 3)), rng.uniform(-1, 1, (300, 1)), rng.normal(size=(300, 1)),
                           rng.normal(size=(300, 3)), (rng.random((300, 1)) < 0.1)], axis=1).astype(np.float32)
    config = quick().replace(**{"denoiser.width": 32, "denoiser.depth": 1, "denoiser.dim_t": 8, "trainer.steps": 5,
                                "edm.num_steps": 4, "generation.chunk_size": 64})
    model = SynthER(layout, config, device="cpu").fit(real, progress=False)
    model.save(tmp_path / "m.pt")
    out = run_cli("generate", "--model", str(tmp_path / "m.pt"), "--rows", "50", "--format", "minari",
                  "--out", str(tmp_path / "gen"))
    assert out.returncode == 0, out.stderr[-2000:]
    episodes = list(minari.MinariDataset(tmp_path / "gen" / "data").iterate_episodes())
    np.testing.assert_allclose(rows_of(episodes), model.generate(50, seed=0), rtol=0, atol=0)
    assert not list(tmp_path.glob(".gen*"))  # the staging files are gone
    again = run_cli("generate", "--model", str(tmp_path / "m.pt"), "--rows", "5", "--format", "minari",
                    "--out", str(tmp_path / "gen"))
    assert again.returncode == 2 and "exists" in again.stderr
