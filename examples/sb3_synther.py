"""Stable-Baselines3 SAC, TD3 or DDPG with SynthER: three changed lines (marked ``# SynthER``).

    python examples/sb3_synther.py --algo sac --env Hopper-v5 --steps 20000

Without the three marked lines this is a plain SB3 script at UTD 20 (``gradient_steps=20``).
"""

from __future__ import annotations

import argparse

from stable_baselines3 import DDPG, SAC, TD3
from stable_baselines3.common.evaluation import evaluate_policy

from synther_fast.integrations.sb3 import SynthERCallback, SynthERReplayBuffer, make_vec_env  # SynthER

ALGOS = {"sac": SAC, "td3": TD3, "ddpg": DDPG}


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", choices=list(ALGOS), default="sac")
    parser.add_argument("--env", default="Hopper-v5", help="a gymnasium id, or dmc:DOMAIN-TASK")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--n-envs", type=int, default=1)
    parser.add_argument("--refit-every", type=int, default=5000)
    parser.add_argument("--num-samples", type=int, default=100_000)
    parser.add_argument("--preset", default="quick", help="the diffusion model's fit preset")
    parser.add_argument("--learning-starts", type=int, default=1000)
    parser.add_argument("--net", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--gradient-steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    env = make_vec_env(args.env, n_envs=args.n_envs, seed=args.seed)
    model = ALGOS[args.algo](
        "MlpPolicy", env, learning_starts=args.learning_starts, train_freq=1, gradient_steps=args.gradient_steps,
        batch_size=args.batch_size, policy_kwargs={"net_arch": args.net}, seed=args.seed, device="cpu",
        replay_buffer_class=SynthERReplayBuffer, replay_buffer_kwargs={"synthetic_ratio": 0.5},  # SynthER
    )
    model.learn(args.steps, callback=SynthERCallback(args.refit_every, args.num_samples, args.preset,  # SynthER
                                                     task=args.env))
    mean, std = evaluate_policy(model, make_vec_env(args.env, seed=10_000 + args.seed), n_eval_episodes=5)
    print(f"{args.algo} on {args.env}: return {mean:.1f} +- {std:.1f} after {args.steps} steps "
          f"({model.replay_buffer.mix.refills} refits)")
    return mean


if __name__ == "__main__":
    main()
