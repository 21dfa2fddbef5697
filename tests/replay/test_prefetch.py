"""Prefetcher: same batches in the same order as direct sampling, resumable, errors surface."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synther_fast import MixedSampler, Prefetcher, ReplayBuffer, TransitionLayout

LAYOUT = TransitionLayout(obs_dim=3, act_dim=2, has_terminal=False)


def make_sampler(seed: int = 5) -> MixedSampler:
    rng = np.random.default_rng(0)
    real, synthetic = ReplayBuffer(500, LAYOUT), ReplayBuffer(500, LAYOUT)
    real.add(rng.normal(size=(500, LAYOUT.width)))
    synthetic.add(rng.normal(size=(500, LAYOUT.width)) + 10)
    return MixedSampler(real, synthetic, ratio=0.5, batch_size=32, seed=seed)


def direct_batches(n: int, seed: int = 5) -> list[np.ndarray]:
    sampler = make_sampler(seed)
    return [sampler.sample().array.copy() for _ in range(n)]


@pytest.mark.parametrize("device", [None, "cpu"])
@pytest.mark.parametrize("depth", [1, 3])
def test_same_batches_in_order(device, depth) -> None:
    expected = direct_batches(10)
    with Prefetcher(make_sampler(), depth=depth, device=device) as prefetcher:
        for want in expected:
            batch = prefetcher.next()
            got = batch.data.numpy() if isinstance(batch.data, torch.Tensor) else batch.data
            np.testing.assert_array_equal(got, want)
            assert batch.n_synthetic == 16
            assert batch.terminal.shape == (32, 1)


def test_static_output_batch() -> None:
    with Prefetcher(make_sampler(), depth=2, device="cpu") as prefetcher:
        first = prefetcher.next()
        pointer = first.data.data_ptr()
        second = prefetcher.next()
        assert second is first and second.data.data_ptr() == pointer


def test_resume_draws_what_an_uninterrupted_run_draws() -> None:
    expected = direct_batches(12)
    prefetcher = Prefetcher(make_sampler(), depth=4)
    for _ in range(5):
        prefetcher.next()
    state = prefetcher.state_dict()  # the worker has drawn ahead; those draws must not count
    prefetcher.close()
    resumed = Prefetcher(make_sampler(seed=1234), depth=2)
    resumed.load_state_dict(state)
    for want in expected[5:]:
        np.testing.assert_array_equal(resumed.next().data, want)
    resumed.close()


def test_worker_error_reaches_the_consumer() -> None:
    synthetic = ReplayBuffer(10, LAYOUT)  # empty: synthetic-only sampling must fail
    sampler = MixedSampler(None, synthetic, ratio=1.0, batch_size=4, seed=0)
    with Prefetcher(sampler, depth=2) as prefetcher:
        with pytest.raises(RuntimeError, match="synthetic-only"):
            prefetcher.next()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="depth"):
        Prefetcher(make_sampler(), depth=0)
    with pytest.raises(ValueError, match="device"):
        Prefetcher(make_sampler(), device="meta")


@pytest.mark.gpu
def test_cuda_prefetch_lands_in_static_device_tensors() -> None:
    expected = direct_batches(6)
    with Prefetcher(make_sampler(), depth=2, device="cuda") as prefetcher:
        pointers = set()
        for want in expected:
            batch = prefetcher.next()
            assert batch.data.is_cuda
            pointers.add(batch.data.data_ptr())
            np.testing.assert_array_equal(batch.data.cpu().numpy(), want)
        assert len(pointers) == 1  # a captured graph can read the same addresses every step
        assert all(slot.data.is_pinned() for slot in prefetcher._slots)


def test_staged_block_waits_for_the_last_copy_before_the_sampler_rewrites_it(monkeypatch) -> None:
    """The host rows are refilled only after the previous asynchronous copy out of them is done
    (checked on the CPU with the copy's event faked; on a GPU the online loop relies on it)."""
    import torch

    from synther_fast.replay.prefetch import StagedBlock

    log: list[str] = []

    class Event:
        def record(self) -> None:
            log.append("record")

        def synchronize(self) -> None:
            log.append("wait")

    monkeypatch.setattr(torch.cuda, "Event", Event)
    block = StagedBlock((2, 3, 4), "cpu")
    assert block.rows is block.host  # on the CPU the learner reads the host rows
    block.asynchronous, block.rows = True, torch.zeros(2, 3, 4)  # as on CUDA: a separate device tensor

    def draw(host) -> None:
        log.append("draw")
        host.uniform_()

    for _ in range(3):
        rows = block.fill(draw)
        torch.testing.assert_close(rows, block.host)
    assert log == ["draw", "record", "wait", "draw", "record", "wait", "draw", "record"]
