"""The TorchRL adapter: SynthERTorchRLBuffer and SynthERTrainerHook (extra [torchrl])."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("torchrl", reason="the [torchrl] extra is not installed (the README's test command installs it)")

from tensordict import TensorDict  # noqa: E402
from torchrl.data import LazyTensorStorage, ReplayBuffer  # noqa: E402

from synther_fast.config import tiny  # noqa: E402
from synther_fast.integrations.torchrl import SynthERTorchRLBuffer, SynthERTrainerHook  # noqa: E402

FAST = tiny().with_overrides(**{"generation.terminals": "threshold"})


def collected(n: int, seed: int = 0, envs: int = 2) -> TensorDict:
    """A collector's batch: [envs, n] with policy and collector keys beside the TED ones."""
    g = torch.Generator().manual_seed(seed)
    shape = (envs, n)
    terminated = torch.rand(*shape, 1, generator=g) < 0.1
    truncated = (torch.rand(*shape, 1, generator=g) < 0.1) & ~terminated
    return TensorDict({
        "observation": torch.randn(*shape, 3, generator=g), "action": torch.rand(*shape, 2, generator=g) * 2 - 1,
        "loc": torch.zeros(*shape, 2), "sample_log_prob": torch.zeros(*shape),
        "collector": TensorDict({"traj_ids": torch.zeros(*shape, dtype=torch.long)}, shape),
        "next": TensorDict({"observation": torch.randn(*shape, 3, generator=g), "reward": torch.randn(*shape, 1, generator=g),
                            "done": terminated | truncated, "terminated": terminated, "truncated": truncated,
                            "episode_reward": torch.zeros(*shape, 1)}, shape),
    }, shape)


def test_collector_only_keys_are_dropped_and_the_batch_is_flat_ted():
    rb = SynthERTorchRLBuffer(1000, batch_size=16)
    rb.extend(collected(20))
    assert len(rb) == 40
    sample = rb.sample()
    assert sample.batch_size == (16,)
    assert set(sample.keys(True, True)) == {"observation", "action", ("next", "observation"), ("next", "reward"),
                                            ("next", "done"), ("next", "terminated"), ("next", "truncated")}


def test_at_ratio_0_batches_equal_torchrls_own_buffer_under_the_same_seed():
    ours = SynthERTorchRLBuffer(1000, synthetic_fraction=0.0)
    theirs = ReplayBuffer(storage=LazyTensorStorage(1000))
    data = collected(30)
    ours.extend(data)
    theirs.extend(data.reshape(-1).select(*ours.keys))
    ours.mix.install(np.full((5, 10), 7.0, np.float32))
    torch.manual_seed(3)
    a = ours.sample(64)
    torch.manual_seed(3)
    b = theirs.sample(64)
    assert (a == b).all()


@pytest.mark.parametrize(("fraction", "n_synthetic"), [(0.5, 32), (1.0, 64)])
def test_after_a_refill_the_split_is_exact_and_terminals_are_terminated_not_truncated(fraction, n_synthetic):
    rb = SynthERTorchRLBuffer(1000, synthetic_fraction=fraction)
    data = collected(40)
    rb.extend(data)
    rows = rb.real_rows()
    flat = data.reshape(-1)
    np.testing.assert_array_equal(rows[:, -1], flat["next", "terminated"].float().numpy().ravel())
    assert flat["next", "truncated"].any()  # truncated steps exist, and their rows are not terminal
    assert (rows[flat["next", "truncated"].numpy().ravel(), -1] == 0).all()
    numbers = rb.refit(200, FAST, step=80)
    assert numbers["rows"] == 200 and rb.mix.refills == 1 and 0 < numbers["mean_ks"] < 1
    rb.mix.rows[:, :3] = 100.0
    sample = rb.sample(64)
    synthetic = (sample["observation"] == 100).all(-1)
    assert int(synthetic.sum()) == n_synthetic and bool(synthetic[64 - n_synthetic:].all())
    assert sample["next", "done"].dtype == torch.bool and not sample["next", "truncated"][synthetic].any()


@pytest.mark.filterwarnings("ignore:No target network updater")
def test_sac_loss_accepts_a_mixed_batch():
    from tensordict.nn import NormalParamExtractor, TensorDictModule
    from torchrl.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator
    from torchrl.objectives import SACLoss

    rb = SynthERTorchRLBuffer(1000, synthetic_fraction=0.5)
    rb.extend(collected(40))
    rb.refit(100, FAST)
    net = torch.nn.Sequential(MLP(in_features=3, out_features=4, num_cells=[16]), NormalParamExtractor())
    actor = ProbabilisticActor(TensorDictModule(net, in_keys=["observation"], out_keys=["loc", "scale"]),
                               in_keys=["loc", "scale"], distribution_class=TanhNormal, return_log_prob=True)
    qvalue = ValueOperator(MLP(in_features=5, out_features=1, num_cells=[16]), in_keys=["observation", "action"])
    loss = SACLoss(actor, qvalue, target_entropy=-2.0)
    out = loss(rb.sample(32))
    total = out["loss_actor"] + out["loss_qvalue"] + out["loss_alpha"]
    assert torch.isfinite(total)
    total.backward()


def test_state_dict_round_trip_keeps_real_and_synthetic_rows():
    rb = SynthERTorchRLBuffer(1000, synthetic_fraction=0.5, seed=2)
    rb.extend(collected(30))
    rb.refit(50, FAST)
    state = rb.state_dict()
    again = SynthERTorchRLBuffer(1000, synthetic_fraction=0.5)
    again.load_state_dict(state)
    assert len(again) == 60 and again.mix.refills == 1 and again.layout == rb.layout
    torch.manual_seed(0)
    a = rb.sample(20)
    torch.manual_seed(0)
    b = again.sample(20)
    assert (a == b).all()


def test_images_and_discrete_actions_get_clear_errors():
    rb = SynthERTorchRLBuffer(100)
    bad = collected(4)
    bad["action"] = torch.zeros(2, 4, dtype=torch.long)
    with pytest.raises(TypeError, match="discrete actions"):
        rb.extend(bad)
    with pytest.raises(KeyError, match="no .*'observation'"):
        rb.extend(collected(4).exclude("observation"))
    with pytest.raises(ValueError, match="extend first"):
        SynthERTorchRLBuffer(10).sample(4)
    with pytest.raises(ValueError, match="extend first"):
        SynthERTorchRLBuffer(10).refit(10, FAST)


class FakeTrainer:
    """The slice of torchrl.trainers.Trainer a hook registers with."""

    def __init__(self) -> None:
        self.ops: dict[str, list] = {}
        self.modules: dict[str, object] = {}

    def register_op(self, where: str, op) -> None:
        self.ops.setdefault(where, []).append(op)

    def register_module(self, name: str, module) -> None:
        self.modules[name] = module


def test_the_trainer_hook_stores_serves_and_refits_every_n_frames():
    rb = SynthERTorchRLBuffer(1000, synthetic_fraction=0.5)
    hook = SynthERTrainerHook(rb, refit_every=50, num_samples=60, config=FAST, batch_size=8)
    trainer = FakeTrainer()
    hook.register(trainer)
    assert set(trainer.ops) == {"pre_epoch", "process_optim_batch", "post_steps"} and trainer.modules
    refills = []
    for epoch in range(4):  # 40 frames a batch: refits after 80 and 160 frames (crossing 50, 100, 150)
        trainer.ops["pre_epoch"][0](collected(20, seed=epoch))
        assert trainer.ops["process_optim_batch"][0](None).batch_size == (8,)
        trainer.ops["post_steps"][0]()
        refills.append(rb.mix.refills)
    assert refills == [0, 1, 2, 3]
    assert hook.state_dict()["frames"] == 160
