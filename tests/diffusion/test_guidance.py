"""Relevance-guided generation: the conditional denoiser, condition dropout, classifier-free
guidance in the reference and the fused sampler (Triton interpreter on CPU), and a toy where
the condition decides the mode.

Kernel inputs are fresh random tensors (never zeros) with sizes that are not multiples of the
1024-element block; noise is an input, so the references see the same noise.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synther_fast import SynthER, quick
from synther_fast.config import DenoiserConfig, EDMConfig
from synther_fast.diffusion import ResidualMLPDenoiser, heun_sample, reference_sample, sampler_schedule
from synther_fast.diffusion.edm import denoise, guided_denoisers
from synther_fast.diffusion.trainer import keep_mask
from synther_fast.replay import TransitionLayout

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def rand(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(DEVICE)


def networks(null: str = "zero"):
    """An unconditional denoiser and a conditional one built from the same seed."""
    cfg = DenoiserConfig(width=32, depth=2, dim_t=16, backend="reference", precision="ieee")
    torch.manual_seed(0)
    plain = ResidualMLPDenoiser(cfg, d_in=7).to(DEVICE).eval()
    torch.manual_seed(0)
    cond = ResidualMLPDenoiser(cfg, d_in=7, conditional=True, null=null).to(DEVICE).eval()
    if null == "learned":
        with torch.no_grad():
            cond.null_embedding.copy_(rand(16, seed=77))
    return plain, cond


# -- the conditional denoiser --------------------------------------------------------------------
def test_the_unconditional_model_is_unchanged_and_the_null_branch_is_it() -> None:
    plain, cond = networks()
    extra = set(cond.state_dict()) - set(plain.state_dict())
    assert {k.split(".")[0] for k in extra} == {"cond_mlp", "null_embedding"}
    for name, value in plain.state_dict().items():  # same seed, same initial values
        assert torch.equal(value, cond.state_dict()[name]), name
    x, c = rand(11, 7, seed=1), rand(11, seed=2)
    with torch.no_grad():
        torch.testing.assert_close(cond(x, c), plain(x, c), rtol=0, atol=0)  # no condition: the null branch
        off = cond(x, c, rand(11, seed=3), keep=torch.zeros(11, dtype=torch.bool, device=DEVICE))
        torch.testing.assert_close(off, plain(x, c), rtol=0, atol=0)
        on = cond(x, c, rand(11, seed=3))
    assert (on - plain(x, c)).abs().max() > 1e-3  # the condition changes the output
    with pytest.raises(ValueError, match="unconditional"):
        plain(x, c, rand(11, seed=3))


def test_keep_mask_rate_and_independence() -> None:
    index = torch.arange(200_000)
    masks = [keep_mask(index, torch.tensor(step), 3, 0.25).float() for step in range(3)]
    for m in masks:
        assert abs(float(m.mean()) - 0.75) < 0.005
    assert abs(float(torch.corrcoef(torch.stack(masks[:2]))[0, 1])) < 0.01  # steps differ
    assert abs(float(torch.corrcoef(torch.stack([masks[0][:-1], masks[0][1:]]))[0, 1])) < 0.01  # rows differ
    assert not keep_mask(index, torch.tensor(5), 0, 1.0).any() and keep_mask(index, torch.tensor(5), 0, 0.0).all()
    assert not torch.equal(keep_mask(index, torch.tensor(0), 1, 0.5), keep_mask(index, torch.tensor(0), 2, 0.5))


# -- classifier-free guidance: kernels and samplers ------------------------------------------------
triton = pytest.importorskip("triton", reason="the fused kernels need triton")
from synther_fast.kernels import edm_step  # noqa: E402

from synther_fast.diffusion.fused_sampler import FusedSampler  # noqa: E402


@pytest.mark.parametrize("shape", [(37, 29), (1, 1500)])
@pytest.mark.parametrize("clamp", [False, True])
def test_guided_step_kernels_match_their_references(shape, clamp) -> None:
    rows = shape[0]
    x_hat, eps = rand(*shape, seed=1), rand(*shape, seed=3)
    f2 = rand(2 * rows, shape[1], seed=2)  # conditional rows, then unconditional ones
    for w in (2.0, 0.0, 1.0):
        for duplicate in (True, False):
            got = edm_step.euler_step(x_hat, f2, 0.3, 0.9, 1.7, 1.1, 0.6, clamp, guidance=w, duplicate=duplicate)
            want = edm_step.euler_step_reference(x_hat, f2, 0.3, 0.9, 1.7, 1.1, 0.6, clamp, guidance=w,
                                                 duplicate=duplicate)
            for g, r in zip(got, want):
                torch.testing.assert_close(g, r, rtol=1e-6, atol=1e-6)
            x_next, d_cur = want[0], want[1]
            got = edm_step.heun_churn_step(x_hat, x_next, d_cur, f2, eps, 0.4, 0.8, 1.7, 1.1, 0.25, 0.7, clamp,
                                           guidance=w, duplicate=duplicate)
            want = edm_step.heun_churn_step_reference(x_hat, x_next, d_cur, f2, eps, 0.4, 0.8, 1.7, 1.1, 0.25, 0.7,
                                                      clamp, guidance=w, duplicate=duplicate)
            for g, r in zip(got, want):
                torch.testing.assert_close(g, r, rtol=1e-6, atol=1e-6)
    # w = 0 reads the unconditional half only; w = 1 the conditional half only
    plain = edm_step.euler_step_reference(x_hat, f2[rows:], 0.3, 0.9, 1.7, 1.1, 0.6, clamp)[0]
    torch.testing.assert_close(edm_step.euler_step(x_hat, f2, 0.3, 0.9, 1.7, 1.1, 0.6, clamp, guidance=0.0)[0], plain)
    cond = edm_step.euler_step_reference(x_hat, f2[:rows], 0.3, 0.9, 1.7, 1.1, 0.6, clamp)[0]
    torch.testing.assert_close(edm_step.euler_step(x_hat, f2, 0.3, 0.9, 1.7, 1.1, 0.6, clamp, guidance=1.0)[0], cond,
                               rtol=1e-6, atol=1e-6)
    x_hat2, net_in = edm_step.churn(x_hat, eps, 0.5, 0.3, duplicate=True)
    torch.testing.assert_close(net_in[:rows], net_in[rows:], rtol=0, atol=0)
    torch.testing.assert_close(net_in[:rows], 0.3 * x_hat2)
    with pytest.raises(ValueError, match="2B rows"):
        edm_step.euler_step(x_hat, f2[:rows], 0.3, 0.9, 1.7, 1.1, 0.6, clamp, guidance=2.0)


@pytest.mark.parametrize("both", [True, False])
@pytest.mark.parametrize("clamp", [False, True])
def test_fused_guided_sampler_equals_the_reference(both, clamp) -> None:
    edm = EDMConfig(num_steps=6)
    schedule = sampler_schedule(edm)
    _, net = networks(null="learned")
    with torch.no_grad():  # a trained-looking condition MLP: not the tiny initial outputs
        for p in net.cond_mlp.parameters():
            p.mul_(3.0)
    rows, width, w = 21, 7, 2.0
    noise = [rand(rows, width, seed=100 + k) for k in range(schedule.num_steps + 1)]
    cond = rand(rows, seed=55)
    first, second = guided_denoisers(net, cond, w, 1.0, both_evaluations=both, clamp=clamp)
    with torch.inference_mode():
        want = heun_sample(first, (rows, width), schedule, noise=noise, device=DEVICE, second_denoiser=second)
        if clamp:
            want = want.clamp(-1, 1)
        unguided = heun_sample(lambda x, s: denoise(net, x, s, 1.0), (rows, width), schedule, noise=noise,
                               device=DEVICE)
    sampler = FusedSampler(net, schedule, 1.0, rows, width, DEVICE, clamp=clamp, noise="input", graph=False,
                               guidance=w, both_evaluations=both)
    sampler.noise.copy_(torch.stack(noise))
    sampler.cond.copy_(cond)
    got = sampler.sample()
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert (want - unguided).abs().max() > 1e-2  # guidance moved the rows
    other = guided_denoisers(net, cond, w, 1.0, both_evaluations=not both, clamp=clamp)
    with torch.inference_mode():
        alternative = heun_sample(other[0], (rows, width), schedule, noise=noise, device=DEVICE,
                                  second_denoiser=other[1])
    assert (alternative - want).abs().max() > 1e-4  # the two placements of guidance differ


@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m", "dpmpp_2m_sde"])
@pytest.mark.parametrize("clamp", [False, True])
def test_fused_guided_one_evaluation_samplers_equal_the_reference(sampler, clamp) -> None:
    """Euler and DPM-Solver++(2M) guide their one evaluation per step."""
    schedule = sampler_schedule(EDMConfig(num_steps=6, sampler=sampler))
    _, net = networks(null="learned")
    with torch.no_grad():
        for p in net.cond_mlp.parameters():
            p.mul_(3.0)
    rows, width, w = 21, 7, 2.0
    noise = [rand(rows, width, seed=200 + k) for k in range(schedule.num_steps + 1)]
    cond = rand(rows, seed=56)
    first, _ = guided_denoisers(net, cond, w, 1.0, clamp=clamp)
    with torch.inference_mode():
        want = reference_sample(first, (rows, width), schedule, noise=noise, device=DEVICE)
        want = want.clamp(-1, 1) if clamp else want
        unguided = reference_sample(lambda x, s: denoise(net, x, s, 1.0), (rows, width), schedule, noise=noise,
                                    device=DEVICE)
    fused = FusedSampler(net, schedule, 1.0, rows, width, DEVICE, clamp=clamp, noise="input", graph=False, guidance=w)
    fused.noise.copy_(torch.stack(noise))
    fused.cond.copy_(cond)
    torch.testing.assert_close(fused.sample(), want, rtol=1e-4, atol=1e-4)
    assert (want - unguided).abs().max() > 1e-2  # guidance moved the rows


def test_guided_sampler_refuses_an_unconditional_network() -> None:
    plain, _ = networks()
    with pytest.raises(ValueError, match="conditional network"):
        FusedSampler(plain, sampler_schedule(EDMConfig(num_steps=3)), 1.0, 4, 7, DEVICE, graph=False, guidance=2.0)


# -- the whole model ---------------------------------------------------------------------------
LAYOUT = TransitionLayout(obs_dim=2, act_dim=1, has_terminal=False)
TOY = quick().replace(**{"trainer.steps": 1200, "trainer.log_every": 100, "denoiser.width": 64,
                         "denoiser.depth": 2, "denoiser.dim_t": 32, "edm.num_steps": 12,
                         "generation.chunk_size": 500})


def two_modes(n: int, seed: int = 0):
    """Rows of a 2-mode mixture: column 0 is near +2 where the label c is 1, near -2 where it is 0."""
    rng = np.random.default_rng(seed)
    c = rng.integers(0, 2, n).astype(np.float32)
    rows = (0.3 * rng.normal(size=(n, LAYOUT.width))).astype(np.float32)
    rows[:, 0] += np.where(c == 1, 2.0, -2.0)
    return rows, c


@pytest.fixture(scope="module")
def toy_model():
    rows, c = two_modes(4000)
    return SynthER(LAYOUT, TOY.replace(guidance="return"), "cpu").fit(rows, conditions=c, progress=False)


@pytest.mark.slow
def test_guided_samples_land_in_the_requested_mode(toy_model) -> None:
    """Measured (2-core CPU, 1200 fit steps): guided toward either label, 100% of the rows land in
    that mode; unguided, 47% in the upper one (the data's half)."""
    upper = {target: float((toy_model.generate(1000, seed=1, conditions=[target])[:, 0] > 0).mean())
             for target in (0.0, 1.0)}
    unguided = float((toy_model.generate(1000, seed=1)[:, 0] > 0).mean())
    assert upper[1.0] > 0.95 and upper[0.0] < 0.05, upper
    assert 0.3 < unguided < 0.7, unguided
    weak = float((toy_model.generate(1000, seed=1, conditions=[1.0], scale=1.0)[:, 0] > 0).mean())
    assert weak > 0.8, weak  # the conditional branch alone already prefers the mode


@pytest.mark.slow
def test_scale_zero_is_the_unconditional_branch_and_the_model_round_trips(toy_model, tmp_path) -> None:
    plain = toy_model.generate(300, seed=4)
    assert np.array_equal(toy_model.generate(300, seed=4, conditions=[1.0], scale=0.0), plain)
    toy_model.save(tmp_path / "m.pt")
    loaded = SynthER.load(tmp_path / "m.pt", map_location="cpu")
    assert loaded.condition_stats == toy_model.condition_stats
    np.testing.assert_array_equal(loaded.generate(300, seed=4, conditions=[0.0, 1.0]),
                                  toy_model.generate(300, seed=4, conditions=[0.0, 1.0]))


def test_dropout_one_fits_exactly_the_unconditional_model() -> None:
    rows, c = two_modes(600)
    cfg = TOY.replace(**{"trainer.steps": 30, "trainer.log_every": 10})
    plain = SynthER(LAYOUT, cfg, "cpu").fit(rows, progress=False)
    dropped = SynthER(LAYOUT, cfg.replace(guidance="return", **{"guided.cond_dropout": 1.0}), "cpu")
    dropped.fit(rows, conditions=c, progress=False)
    for name, value in plain.ema.state_dict().items():
        assert torch.equal(value, dropped.ema.state_dict()[name]), name
    assert [h["loss"] for h in plain.history] == [h["loss"] for h in dropped.history]
    # and with conditions kept the fit differs (so the comparison above can fail)
    kept = SynthER(LAYOUT, cfg.replace(guidance="return", **{"guided.cond_dropout": 0.0}), "cpu")
    kept.fit(rows, conditions=c, progress=False)
    assert not torch.equal(kept.ema.output_layer.weight, plain.ema.output_layer.weight)


def test_conditional_fit_resumes_exactly(tmp_path) -> None:
    rows, c = two_modes(500)
    cfg = TOY.replace(guidance="return", **{"trainer.steps": 24, "trainer.checkpoint_every": 8,
                                            "trainer.log_every": 8})
    full = SynthER(LAYOUT, cfg, "cpu").fit(rows, conditions=c, progress=False)
    SynthER(LAYOUT, cfg, "cpu").fit(rows, conditions=c, progress=False, checkpoint=tmp_path / "ck", stop_after=16)
    resumed = SynthER(LAYOUT, cfg, "cpu").fit(rows, conditions=c, progress=False, resume=tmp_path / "ck")
    for name, value in full.ema.state_dict().items():
        assert torch.equal(value, resumed.ema.state_dict()[name]), name
    with pytest.raises(ValueError, match="different data"):
        SynthER(LAYOUT, cfg, "cpu").fit(rows, conditions=c[::-1].copy(), progress=False, resume=tmp_path / "ck")


def test_bad_conditions_are_refused() -> None:
    rows, c = two_modes(100)
    cond_cfg = TOY.replace(guidance="return", **{"trainer.steps": 2})
    with pytest.raises(ValueError, match="needs each row's condition"):
        SynthER(LAYOUT, cond_cfg, "cpu").fit(rows, progress=False)
    with pytest.raises(ValueError, match="one value per row"):
        SynthER(LAYOUT, cond_cfg, "cpu").fit(rows, conditions=c[:50], progress=False)
    bad = c.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        SynthER(LAYOUT, cond_cfg, "cpu").fit(rows, conditions=bad, progress=False)
    plain = SynthER(LAYOUT, TOY.replace(**{"trainer.steps": 2}), "cpu").fit(rows, progress=False)
    with pytest.raises(ValueError, match="unconditional"):
        plain.generate(10, seed=0, conditions=[1.0])
    with pytest.raises(ValueError, match="unconditional"):
        SynthER(LAYOUT, TOY.replace(**{"trainer.steps": 2}), "cpu").fit(rows, conditions=c, progress=False)


@pytest.mark.gpu
@pytest.mark.parametrize("both", [True, False])
def test_captured_guided_sampler_equals_eager_and_the_reference(both) -> None:
    schedule = sampler_schedule(EDMConfig())  # the paper's 128 steps
    torch.manual_seed(0)
    cfg = DenoiserConfig(width=256, depth=6, dim_t=64, backend="fused", precision="ieee")
    net = ResidualMLPDenoiser(cfg, 42, conditional=True, null="learned").cuda().eval()
    rows = 512
    noise = torch.randn(schedule.num_steps + 1, rows, 42, device="cuda")
    cond = torch.randn(rows, device="cuda")
    samplers = [FusedSampler(net, schedule, 1.0, rows, 42, "cuda", noise="input", graph=graph, guidance=2.0,
                                 both_evaluations=both) for graph in (True, False)]
    for sampler in samplers:
        sampler.noise.copy_(noise)
        sampler.cond.copy_(cond)
    first = samplers[0].sample().clone()
    again = samplers[0].sample().clone()  # a replay, not the capture
    want = samplers[1].sample()
    torch.testing.assert_close(first, want, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(again, want, rtol=1e-4, atol=1e-4)
    d1, d2 = guided_denoisers(net, cond, 2.0, 1.0, both_evaluations=both)
    with torch.inference_mode():
        ref = heun_sample(d1, (rows, 42), schedule, noise=list(noise), second_denoiser=d2)
    torch.testing.assert_close(first, ref, rtol=1e-3, atol=1e-3)
