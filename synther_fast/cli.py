"""The ``synther-fast`` command line."""

from __future__ import annotations

import argparse
import importlib.util
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
    return 0


def _demo(args: argparse.Namespace) -> int:
    from synther_fast.demo import replay_demo

    return replay_demo(seconds=args.seconds, batch_size=args.batch_size)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="synther-fast",
        description="Fast Synthetic Experience Replay (SynthER) for offline and online RL.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="versions, extension and device information")
    info.set_defaults(func=_info)
    demo = sub.add_parser(
        "demo", help="replay demonstration: mixed sampling from the C++ buffer vs a NumPy ring"
    )
    demo.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    demo.add_argument("--batch-size", type=int, default=256, help="rows per sampled batch")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
