"""Data-parallel diffusion fits and sharded generation under torchrun (gloo, 2 CPU processes).

The reference is the same script in one process (tests/helpers/ddp_worker.py): same data, config, seed
and global batch. Tolerance of the fit comparison: the two differ only in how the global batch's
gradient is summed (two half-batch means averaged by DDP vs one mean), a float32 rounding
difference of ~1e-7 relative per step. After 24 steps the measured largest parameter difference
was 1.5e-8 (parameters up to 2.4); the test allows 1e-6, still a hundred times smaller than one
optimiser step moves a parameter (Adam's step ~ lr = 3e-4), so a rank seeing another batch or
a wrong slice fails it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from synther_fast import SynthER
from synther_fast.config import EDMConfig
from synther_fast.data import load_dataset
from synther_fast.diffusion.edm import edm_loss
from synther_fast.diffusion.sharded import chunk_block

HELPERS = Path(__file__).resolve().parents[1] / "helpers"
WORKER = HELPERS / "ddp_worker.py"
ROWS = 500  # 6 chunks of 96 (the last one 20 rows): 3 per rank


def launch(out: Path, processes: int, *args: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HELPERS)}
    if processes == 1:
        cmd = [sys.executable, str(WORKER), "--out", str(out), *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
               str(WORKER), "--out", str(out), *args]
    # Run outside the source checkout: its bare package tree (no compiled extension) would shadow
    # the installed one on sys.path.
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=out)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def weights(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    payload = torch.load(path, map_location="cpu", weights_only=False)
    return {"network": payload["network"], "ema": payload["ema"]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    launch(root / "single", 1)
    launch(root / "ddp", 2, "--generate", str(ROWS))
    return root


@pytest.mark.slow
def test_ddp_fit_matches_the_single_process_fit(runs) -> None:
    single, ddp = weights(runs / "single" / "model.pt"), weights(runs / "ddp" / "model.pt")
    for part in ("network", "ema"):
        for name, value in single[part].items():
            torch.testing.assert_close(ddp[part][name], value, rtol=0, atol=1e-6, msg=f"{part}.{name}")
    # and the fit did move the weights far beyond that tolerance
    trained = SynthER.load(runs / "single" / "model.pt", map_location="cpu")
    fresh = SynthER(trained.layout, trained.config, "cpu")
    fresh._new_model()  # the seeded initial weights
    moved = max(float((single["network"][n] - t).abs().max()) for n, t in fresh.network.state_dict().items())
    assert moved > 1e-3


@pytest.mark.slow
def test_ddp_fit_resumes_exactly(runs, tmp_path) -> None:
    launch(tmp_path, 2, "--stop-after", "12")
    stopped = torch.load(tmp_path / "fit.ckpt", map_location="cpu", weights_only=False)
    assert stopped["trainer"]["step"] == 12  # the interrupted fit's state is on disk
    launch(tmp_path, 2, "--resume")
    resumed, uninterrupted = weights(tmp_path / "model.pt"), weights(runs / "ddp" / "model.pt")
    for part in ("network", "ema"):
        for name, value in uninterrupted[part].items():
            assert torch.equal(resumed[part][name], value), f"{part}.{name}"


def test_sharded_generation_gives_exactly_the_single_process_rows(runs) -> None:
    model = SynthER.load(runs / "ddp" / "model.pt", map_location="cpu")
    expected = model.generate(ROWS, seed=7)
    gathered = load_dataset(runs / "ddp" / "gen.npz").to_rows(model.layout)
    assert gathered.shape == (ROWS, model.layout.width)
    assert len(np.unique(gathered, axis=0)) == ROWS  # no duplicated rows
    np.testing.assert_array_equal(gathered, expected)  # no missing ones, in the same order
    assert not list((runs / "ddp").glob(".gen.npz.rank*"))  # the per-rank blocks were removed


@pytest.mark.slow
def test_cli_generate_under_torchrun_matches_one_process(runs, tmp_path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "cli.npz"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m",
           "synther_fast", "generate", "--model", str(runs / "ddp" / "model.pt"), "--rows", str(ROWS),
           "--out", str(out), "--seed", "7", "--device", "cpu"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "drawn by 2 processes" in result.stdout
    model = SynthER.load(runs / "ddp" / "model.pt", map_location="cpu")
    np.testing.assert_array_equal(load_dataset(out).to_rows(model.layout), model.generate(ROWS, seed=7))


# -- the pieces, in one process -------------------------------------------------------------------------
def test_slices_of_one_draw_average_to_the_whole_batch_loss() -> None:
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.SiLU(), torch.nn.Linear(16, 5))

    class Denoiser(torch.nn.Module):
        def forward(self, x, sigma):
            return network(torch.cat([x, sigma.reshape(-1, 1)], 1))

    x, config = torch.randn(64, 5), EDMConfig()
    whole = edm_loss(Denoiser(), x, config, torch.Generator().manual_seed(3))
    halves = [edm_loss(Denoiser(), x, config, torch.Generator().manual_seed(3), rows=s)
              for s in (slice(0, 32), slice(32, 64))]
    torch.testing.assert_close((halves[0] + halves[1]) / 2, whole)
    assert not torch.allclose(halves[0], halves[1])  # the slices do see different rows


@pytest.mark.parametrize("n_chunks,world", [(6, 2), (7, 3), (2, 4), (0, 2)])
def test_chunk_blocks_cover_every_chunk_once(n_chunks: int, world: int) -> None:
    blocks = [chunk_block(n_chunks, r, world) for r in range(world)]
    assert [k for b in blocks for k in b] == list(range(n_chunks))
    assert max(map(len, blocks)) - min(map(len, blocks)) <= 1


def test_any_block_of_chunks_draws_the_rows_of_a_full_run() -> None:
    from diffusion_fixtures import LAYOUT, transitions

    from synther_fast import quick

    config = quick().with_overrides(**{"denoiser.width": 32, "denoiser.depth": 1, "denoiser.dim_t": 8,
                                       "trainer.steps": 2, "trainer.batch_size": 16,
                                       "generation.chunk_size": 40, "edm.num_steps": 3})
    model = SynthER(LAYOUT, config, "cpu").fit(transitions(64, seed=1), progress=False)
    full = model.generate(130, seed=5)  # chunks of 40, 40, 40, 10
    parts = [np.concatenate(list(model.iter_chunks(130, 5, chunks=chunk_block(4, r, 3)))) for r in range(3)]
    np.testing.assert_array_equal(np.concatenate(parts), full)
    with pytest.raises(ValueError, match="contiguous part"):
        list(model.iter_chunks(130, 5, chunks=range(2, 6)))


@pytest.mark.slow
def test_a_ddp_checkpoint_resumes_in_one_process(runs, tmp_path) -> None:
    launch(tmp_path, 2, "--stop-after", "12")
    launch(tmp_path, 1, "--resume")  # the same fit, finished by one process
    resumed, single = weights(tmp_path / "model.pt"), weights(runs / "single" / "model.pt")
    for part in ("network", "ema"):
        for name, value in single[part].items():
            torch.testing.assert_close(resumed[part][name], value, rtol=0, atol=1e-6, msg=f"{part}.{name}")


def test_optimizer_state_is_loaded_in_this_fits_own_mode() -> None:
    # A captured fit (tensor lr, capturable) and an eager one (float lr) read each other's state.
    from synther_fast.common.cuda_graphs import matching_optimizer_state

    param = torch.nn.Parameter(torch.randn(4))
    eager = torch.optim.AdamW([param], lr=1e-3)
    param.grad = torch.randn(4)
    eager.step()
    captured = torch.optim.AdamW([param], lr=torch.tensor(2e-3), capturable=True)
    state = matching_optimizer_state(eager.state_dict(), captured)
    assert state["param_groups"][0]["capturable"] is True
    assert isinstance(state["param_groups"][0]["lr"], torch.Tensor) and float(state["param_groups"][0]["lr"]) == pytest.approx(1e-3)
    captured.load_state_dict(state)
    assert captured.param_groups[0]["capturable"] is True
    back = matching_optimizer_state(captured.state_dict(), eager)
    assert back["param_groups"][0]["capturable"] is False and back["param_groups"][0]["lr"] == pytest.approx(1e-3)
    eager.load_state_dict(back)
    torch.testing.assert_close(eager.state[param]["exp_avg"], captured.state[param]["exp_avg"])
