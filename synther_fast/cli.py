"""The ``synther-fast`` command line."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Sequence


def _info(_: argparse.Namespace) -> int:
    import numpy as np

    import synther_fast
    from synther_fast import _replay
    from synther_fast.kernels import interpreter_enabled, triton_available

    print(f"synther_fast {synther_fast.__version__} at {synther_fast.__file__}")
    print(f"  C++ extension synther_fast._replay: {_replay.__file__}")
    print(f"  numpy {np.__version__}")
    if importlib.util.find_spec("torch") is not None:
        import torch

        cuda = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
        print(f"  torch {torch.__version__} ({cuda})")
    else:
        print("  torch: not installed")
    print(f"  triton: {'available' if triton_available() else 'not installed'}"
          f"{' (interpreter on)' if interpreter_enabled() else ''}")
    if importlib.util.find_spec("torch") is not None:
        from synther_fast.config import DenoiserConfig
        from synther_fast.diffusion.denoiser import picks_fused_layers

        default = DenoiserConfig()
        fused = picks_fused_layers(default, torch.cuda.is_available())
        print(f"  denoiser (backend {default.backend!r}): "
              + (f"fused Triton layers at {default.precision} on CUDA" if fused
                 else "PyTorch reference (fp32); the fused layers need CUDA and triton"))
    return 0


def _replay_demo(args: argparse.Namespace) -> int:
    from synther_fast.demo import replay_demo

    return replay_demo(seconds=args.seconds, batch_size=args.batch_size)


def _parse_override(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise SystemExit(f"--set takes KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def _offline(args: argparse.Namespace) -> int:
    from synther_fast.api import train
    from synther_fast.offline import format_summary

    overrides = dict(_parse_override(t) for t in args.set)
    for name in ("env", "dataset", "algo", "seed", "device"):
        if getattr(args, name, None) is not None:
            overrides[name] = getattr(args, name)
    if args.arms:
        overrides["arms"] = tuple(args.arms)
    if args.reference:
        overrides["fast"] = False
    result = train(preset=args.preset, run_dir=args.run_dir, resume=args.resume,
                   seeds=args.seeds, **overrides)
    if args.seeds:
        print(f"\nmean ± std over seeds {args.seeds}:")
        for arm, info in result["arms"].items():
            norm = "" if info["normalized_mean"] is None else \
                f", normalised {info['normalized_mean']:.1f} ± {info['normalized_std']:.1f}"
            print(f"  {arm:<10} return {info['return_mean']:.1f} ± {info['return_std']:.1f}{norm}")
    else:
        print("\n" + format_summary(result.summary))
        print(f"\nrun directory: {result.run_dir}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from synther_fast.api import train
    from synther_fast.offline import format_summary

    # Re-running the demo continues (or simply re-reports) the run already in its directory.
    result = train(preset="quick", run_dir=args.run_dir, resume=True)
    text = format_summary(result.summary)
    table = result.run_dir / "demo_table.txt"
    table.write_text(text + "\n")
    print("\n" + text)
    real = result.scores.get("real", {}).get("return_mean")
    synthetic = result.scores.get("synthetic", {}).get("return_mean")
    if real is not None and synthetic is not None:
        verdict = "matches or beats" if synthetic >= real - 0.1 * abs(real) else "falls short of"
        print(f"\nAt this small scale TD3+BC trained on synthetic data only {verdict} TD3+BC on the "
              f"real data ({synthetic:.0f} vs {real:.0f}); the paper's claim is parity at 5M rows.")
    print(f"table saved to {table}")
    return 0


def _fit(args: argparse.Namespace) -> int:
    from synther_fast.config import PRESETS
    from synther_fast.data import load_dataset
    from synther_fast.diffusion import SynthER

    dataset = load_dataset(args.dataset)
    config = PRESETS[args.preset]().replace(**dict(_parse_override(t) for t in args.set))
    layout = dataset.layout(has_terminal=not args.no_terminal)
    model = SynthER(layout, config, args.device)
    ckpt = args.out + ".ckpt"
    import os as _os

    model.fit(dataset.to_rows(layout), checkpoint=ckpt, resume=ckpt if args.resume and _os.path.exists(ckpt) else None)
    model.save(args.out)
    print(f"fitted {model.trained_steps} steps (final loss {model.history[-1]['loss']:.4f}); model written to {args.out}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from synther_fast.data import Dataset, save_dataset
    from synther_fast.diffusion import SynthER

    model = SynthER.load(args.model, map_location=args.device)
    rows = model.generate(args.rows, seed=args.seed)
    save_dataset(Dataset.from_rows(rows, model.layout), args.out)
    print(f"wrote {len(rows):,} synthetic transitions to {args.out}")
    return 0


def _collect(args: argparse.Namespace) -> int:
    import torch

    from synther_fast.data import save_dataset
    from synther_fast.data.collect import load_policy, rollouts, sac_replay, save_policy

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.method == "random":
        data = rollouts(args.env, None, args.steps, args.seed, progress=True)
    elif args.method == "policy":
        if not args.policy:
            raise SystemExit("--method policy needs --policy PATH (a saved policy checkpoint)")
        policy, _ = load_policy(args.policy)
        data = rollouts(args.env, policy, args.steps, args.seed, tuple(args.noise), progress=True)
    else:
        data, checkpoint = sac_replay(args.env, args.steps, args.seed, progress=True)
        if args.policy_out:
            save_policy(checkpoint, args.policy_out)
            print(f"final SAC actor written to {args.policy_out}")
    for out in args.out:
        save_dataset(data, out)
        print(f"wrote {len(data):,} transitions to {out}")
    returns = data.episode_returns()
    if len(returns):
        print(f"episode returns: mean {returns.mean():.1f}, min {returns.min():.1f}, max {returns.max():.1f} "
              f"({len(returns)} episodes)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="synther-fast",
        description="Fast Synthetic Experience Replay (SynthER) for offline and online RL.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="versions, extension and device information")
    info.set_defaults(func=_info)
    demo = sub.add_parser(
        "demo", help="the main job: the quick offline pipeline on HalfCheetah-v5 (minutes on 2 cores)")
    demo.add_argument("--run-dir", default="runs/demo", help="where everything is written")
    demo.set_defaults(func=_demo)

    replay = sub.add_parser(
        "replay-demo", help="replay throughput: mixed sampling from the C++ buffer vs a NumPy ring")
    replay.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    replay.add_argument("--batch-size", type=int, default=256, help="rows per sampled batch")
    replay.set_defaults(func=_replay_demo)

    offline = sub.add_parser("offline", help="offline SynthER: dataset -> diffusion -> agent(s) -> evaluation")
    offline.add_argument("--preset", choices=["quick", "paper"], default="quick")
    offline.add_argument("--env", help="task for evaluation (and collection without --dataset)")
    offline.add_argument("--dataset", help=".npz, D4RL .hdf5 or Minari folder; default: collect one")
    offline.add_argument("--algo", choices=["td3_bc", "iql"])
    offline.add_argument("--arms", nargs="+", choices=["real", "synthetic", "mixed"])
    offline.add_argument("--seed", type=int)
    offline.add_argument("--seeds", type=int, nargs="+", help="several seeds: mean ± std")
    offline.add_argument("--device")
    offline.add_argument("--reference", action="store_true", help="plain reference agent updates")
    offline.add_argument("--run-dir", help="default: runs/offline-ENV-ALGO-PRESET")
    offline.add_argument("--resume", action="store_true", help="continue an interrupted run")
    offline.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                         help="other OfflineConfig fields, e.g. agent_steps=50000 synther.trainer.steps=2000")
    offline.set_defaults(func=_offline)

    fit = sub.add_parser("fit", help="dataset -> a saved SynthER model")
    fit.add_argument("--dataset", required=True)
    fit.add_argument("--out", required=True, help="model file to write (checkpoints beside it)")
    fit.add_argument("--preset", choices=["quick", "paper_offline", "paper_online"], default="quick")
    fit.add_argument("--no-terminal", action="store_true", help="do not model terminals (DMC)")
    fit.add_argument("--device")
    fit.add_argument("--resume", action="store_true")
    fit.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                     help="config fields, e.g. trainer.steps=2000 denoiser.width=512")
    fit.set_defaults(func=_fit)

    gen = sub.add_parser("generate", help="saved SynthER model -> N synthetic rows (.npz or .hdf5)")
    gen.add_argument("--model", required=True)
    gen.add_argument("--rows", type=int, required=True)
    gen.add_argument("--out", required=True)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--device")
    gen.set_defaults(func=_generate)

    collect = sub.add_parser("collect", help="make an offline dataset locally (nothing downloads)")
    collect.add_argument("--env", required=True, help="e.g. HalfCheetah-v5 or dmc:cheetah-run")
    collect.add_argument("--method", choices=["random", "policy", "sac"], default="random",
                         help="random policy; a saved policy checkpoint (medium-like); or the whole "
                              "replay of a SAC run (replay-like)")
    collect.add_argument("--steps", type=int, default=100_000, help="environment steps")
    collect.add_argument("--policy", help="policy checkpoint for --method policy")
    collect.add_argument("--noise", type=float, nargs="+", default=[0.0],
                         help="per-episode Gaussian action-noise levels, cycled (mixed quality)")
    collect.add_argument("--policy-out", help="with --method sac: write the final actor here")
    collect.add_argument("--out", nargs="+", required=True,
                         help="output file(s): .npz (package format) and/or .hdf5 (D4RL layout)")
    collect.add_argument("--seed", type=int, default=0)
    collect.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    collect.set_defaults(func=_collect)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
