"""The agents' settings (TD3+BC, IQL, EDAC, CQL, SAC and REDQ), with their papers' defaults."""

from __future__ import annotations

from dataclasses import dataclass

from synther_fast.config.base import Checked, _non_negative, _positive


@dataclass(frozen=True)
class TD3BCConfig:
    """TD3+BC (Fujimoto & Gu 2021) with CORL's defaults (the same for every D4RL locomotion task)."""

    actor_lr: float = 3e-4
    """Adam learning rate of the actor"""
    critic_lr: float = 3e-4
    """Adam learning rate of the critics"""
    discount: float = 0.99
    """gamma"""
    tau: float = 0.005
    """target-network soft-update rate"""
    policy_noise: float = 0.2
    """std of the target-policy smoothing noise"""
    noise_clip: float = 0.5
    """clip of the target-policy smoothing noise"""
    policy_freq: int = 2
    """actor (and target) update every policy_freq critic updates"""
    alpha: float = 2.5
    """weight of the Q term against behaviour cloning: lambda = alpha / mean|Q|"""
    hidden: tuple[int, ...] = (256, 256)
    """hidden widths of actor and critics"""
    cuda_graph: bool = True
    """on CUDA, capture each update as a graph (the fast agent only; SYNTHER_FAST_CUDA_GRAPHS=0 turns every capture off)"""


@dataclass(frozen=True)
class IQLConfig:
    """IQL (Kostrikov et al. 2022) with CORL's defaults for D4RL locomotion."""

    lr: float = 3e-4
    """Adam learning rate of V, Q and the actor"""
    discount: float = 0.99
    """gamma"""
    tau: float = 0.005
    """target-network soft-update rate"""
    beta: float = 3.0
    """inverse temperature of the advantage-weighted actor loss"""
    expectile: float = 0.7
    """expectile of the value loss"""
    hidden: tuple[int, ...] = (256, 256)
    """hidden widths of every network"""
    max_steps: int | None = None
    """length of the actor's cosine learning-rate schedule; None: the run's number of updates"""
    cuda_graph: bool = True
    """on CUDA, capture each update as a graph (the fast agent only; SYNTHER_FAST_CUDA_GRAPHS=0 turns every capture off)"""


@dataclass(frozen=True)
class EDACConfig(Checked):
    """EDAC (An et al. 2021) with CORL's defaults for D4RL locomotion: SAC over an ensemble of
    critics whose action-gradients are pushed apart (the diversity term, weight eta)."""

    num_critics: int = 10
    """critics in the ensemble (CORL: 10; 50 for hopper-* datasets)"""
    eta: float = 1.0
    """weight of the gradient-diversity term (CORL: 1; 5 for halfcheetah/walker2d medium-expert)"""
    hidden: tuple[int, ...] = (256, 256, 256)
    """hidden widths of the actor and of every critic"""
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    """Adam learning rate of log alpha (auto-tuned, target entropy -|A|, log alpha starts at 0)"""
    discount: float = 0.99
    tau: float = 5e-3
    """target-critic soft-update rate"""
    cuda_graph: bool = True
    """on CUDA, capture each update as a graph (the fast agent only; SYNTHER_FAST_CUDA_GRAPHS=0 turns every capture off)"""

    def check(self) -> None:
        """This part's own fields (nested parts check theirs; :func:`validate` runs them all)."""
        _positive(self, "actor_lr", "critic_lr", "alpha_lr", "tau")
        _non_negative(self, "eta")
        if isinstance(self.num_critics, bool) or self.num_critics < 2:
            raise ValueError(f"EDACConfig.num_critics must be >= 2 (the diversity term compares critics), "
                             f"got {self.num_critics}")


@dataclass(frozen=True)
class CQLConfig(Checked):
    """CQL (Kumar et al. 2020) with CORL's defaults for D4RL locomotion (Lagrange, max-target
    backup and entropy backup off; rewards unscaled: CORL's 5 / -1 is its AntMaze transform)."""

    cql_alpha: float = 10.0
    """weight of the conservative term"""
    n_actions: int = 10
    """actions sampled per state for the log-sum-exp (uniform, from pi(s) and from pi(s'))"""
    temperature: float = 1.0
    """temperature of the log-sum-exp"""
    policy_lr: float = 3e-5
    """Adam learning rate of the policy and of log alpha (target entropy -|A|)"""
    qf_lr: float = 3e-4
    discount: float = 0.99
    tau: float = 5e-3
    """target-critic soft-update rate (every update)"""
    hidden: tuple[int, ...] = (256, 256, 256)
    """hidden widths of the policy and of both critics"""
    cuda_graph: bool = True
    """on CUDA, capture each update as a graph (the fast agent only; SYNTHER_FAST_CUDA_GRAPHS=0 turns every capture off)"""

    def check(self) -> None:
        """This part's own fields (nested parts check theirs; :func:`validate` runs them all)."""
        _positive(self, "n_actions", "temperature", "policy_lr", "qf_lr", "tau")
        _non_negative(self, "cql_alpha")


ENTROPY_RULES = ("auto", "mbpo")


@dataclass(frozen=True)
class SACConfig(Checked):
    """SAC as the REDQ code that SynthER's online experiments run (Chen et al. 2021)."""

    lr: float = 3e-4
    """Adam learning rate of actor, critics and temperature"""
    discount: float = 0.99
    """gamma"""
    polyak: float = 0.995
    """target <- polyak target + (1 - polyak) online, after every critic update"""
    hidden: tuple[int, ...] = (256, 256)
    """hidden widths of actor and critics"""
    batch_size: int = 256
    """rows per critic update"""
    start_steps: int = 5000
    """uniformly random actions (and no updates) for this many environment steps"""
    utd: int = 1
    """critic updates per environment step (the update-to-data ratio)"""
    policy_update_delay: int = 1
    """actor and temperature update once every this many critic updates (and at the last of a step)"""
    num_critics: int = 2
    """critic ensemble size (REDQ: 10)"""
    num_min: int = 2
    """critics drawn at random (without replacement) for the min in the target: REDQ uses 10 and 2"""
    target_entropy: float | None = None
    """the temperature's target entropy; None: set by entropy_rule"""
    entropy_rule: str = "auto"
    """target entropy when target_entropy is None: 'auto' = -|A| on every task (what SynthER's
    published online entry point passes); 'mbpo' = the REDQ code's own default table (Hopper -1,
    HalfCheetah -3, Walker2d -3, Ant -4, Humanoid -2; -|A| elsewhere)"""
    cuda_graph: bool = True
    """on CUDA, capture each environment step's learner block as one graph (the fast agent only; SYNTHER_FAST_CUDA_GRAPHS=0 turns every capture off)"""

    def check(self) -> None:
        """This part's own fields (nested parts check theirs; :func:`validate` runs them all)."""
        _positive(self, "lr", "batch_size", "utd", "policy_update_delay", "num_critics", "num_min")
        if self.start_steps < 0:
            raise ValueError(f"SACConfig.start_steps must be >= 0, got {self.start_steps}")
        if self.num_min > self.num_critics:
            raise ValueError(f"SACConfig.num_min ({self.num_min}) cannot exceed num_critics ({self.num_critics})")
        if not 0.0 <= self.polyak < 1.0:
            raise ValueError(f"SACConfig.polyak must lie in [0, 1), got {self.polyak}")
        if self.entropy_rule not in ENTROPY_RULES:
            raise ValueError(f"SACConfig.entropy_rule must be one of {ENTROPY_RULES}, got {self.entropy_rule!r}")


def sac_utd1() -> SACConfig:
    """Plain SAC: one critic update per environment step."""
    return SACConfig()


def sac_utd20() -> SACConfig:
    """SAC at UTD 20 with the actor and temperature updated once per environment step (SynthER)."""
    return SACConfig(utd=20, policy_update_delay=20)


def redq() -> SACConfig:
    """REDQ (Chen et al. 2021): 10 critics, min over a random pair, UTD 20."""
    return SACConfig(utd=20, policy_update_delay=20, num_critics=10, num_min=2)


