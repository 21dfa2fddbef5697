"""The ``synther-fast`` command line, generated from the config dataclasses with tyro.

Every option of a run is a field of its config tree (synther_fast.config), so ``--help`` shows the
same defaults and the same documentation as the Python API, and nested settings are reached with
dotted options (``--synther.trainer.steps 20000``, ``--sac.utd 20``). ``--preset`` picks the
defaults of every other option. Expected errors (a missing file, a bad value, a run directory
that holds another run) print one line and exit with status 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, Union

import numpy as np
import torch
import tyro

import synther_fast
from synther_fast import _replay
from synther_fast.api import train
from synther_fast.common.devices import torch_threads
from synther_fast.common.distributed import barrier, is_main_process, process_group, rank_and_world
from synther_fast.common.io import atomic_write, writable_path
from synther_fast.config import (
    PRESETS,
    DenoiserConfig,
    OfflineConfig,
    OnlineConfig,
    SynthERConfig,
    deferred_checks,
    for_task,
    resolve,
    validate,
)
from synther_fast.data import load_dataset
from synther_fast.data.dataset import check_output_path, save_dataset
from synther_fast.data.minari_out import save_minari
from synther_fast.diffusion import SynthER
from synther_fast.diffusion.denoiser import picks_fused_layers
from synther_fast.diffusion.sharded import generate_sharded
from synther_fast.envs import env_spec
from synther_fast.envs.names import NAMES_HELP
from synther_fast.kernels import interpreter_enabled, triton_available
from synther_fast.pipelines.collect import collect, save_policy
from synther_fast.pipelines.offline import format_summary
from synther_fast.pipelines.replay_demo import replay_demo
from synther_fast.pipelines.report import report_for_run
from synther_fast.pipelines.sweeps import RayMissingError, sweep
from synther_fast.runs import RunFiles
from synther_fast.runs.summaries import seeds_table

ENVS_HELP = f"tasks: {NAMES_HELP}"
Flat = tyro.conf.arg(name="")  # a config's fields become top-level options (--env, --synther....)


@dataclass
class Demo:
    """The main job: quick offline SynthER on HalfCheetah-v5 (5-10 minutes on 2 CPU cores).

    Collects 30k mixed-quality transitions with a small policy shipped in the package, fits a
    diffusion model, generates 100k synthetic rows, trains TD3+BC on the real and on the synthetic
    rows, and prints both agents' returns side by side. Running it again continues an interrupted
    demo or re-prints the finished one."""

    preset: Literal["quick", "tiny", "paper"] = "quick"
    """the offline preset: 'quick' (5-10 minutes on 2 cores), 'tiny' (seconds: every phase, nothing
    learnt), 'paper' (the published settings: a GPU's hours)"""
    run_dir: str | None = None
    """where everything is written (default: runs/demo, or runs/demo-PRESET for another preset)"""

    def run(self) -> int:
        config = resolve("offline", self.preset)
        run_dir = self.run_dir or ("runs/demo" if self.preset == "quick" else f"runs/demo-{self.preset}")
        k = lambda n: f"{n / 1000:g}k"  # the plan is the preset's, not numbers written twice
        plan = [f"collect {k(config.collect_steps)} transitions",
                f"fit the diffusion model ({k(config.synther.trainer.steps)} steps)",
                f"generate {k(config.synthetic_rows)} rows",
                f"TD3+BC on real data ({k(config.agent_steps)} updates)",
                f"TD3+BC on synthetic data ({k(config.agent_steps)} updates)",
                "data-quality report (report/report.md)"]
        duration = {"quick": "5-10 minutes", "tiny": "seconds"}.get(self.preset, "hours")
        print(f"synther-fast demo: {self.preset} offline SynthER on {config.env}, {duration} on 2 cores")
        for i, step in enumerate(plan, 1):
            print(f"  phase {i}/{len(plan)}: {step}")
        result = train(config, run_dir=run_dir, resume=True)
        text = format_summary(result.summary)
        table = RunFiles(result.run_dir)["demo_table"]
        with atomic_write(table) as handle:
            handle.write((text + "\n").encode())
        print("\n" + text)
        real = result.arms.get("real", {}).get("return_mean")
        synthetic = result.arms.get("synthetic", {}).get("return_mean")
        if real is not None and synthetic is not None:
            verdict = "matches or beats" if synthetic >= real - 0.1 * abs(real) else "falls short of"
            print(f"\nAt this small scale TD3+BC trained on synthetic data only {verdict} TD3+BC on the "
                  f"real data ({synthetic:.0f} vs {real:.0f}); the paper's claim is parity at 5M rows.")
        print(f"table saved to {table}")
        return 0


@dataclass
class Offline:
    """Offline SynthER: dataset -> diffusion model -> synthetic rows -> TD3+BC, IQL, EDAC or CQL on real,
    synthetic and/or mixed data -> evaluation. Without --dataset a dataset is collected first."""

    config: Annotated[OfflineConfig, Flat]
    run_dir: str | None = None
    """default: runs/offline-ENV-ALGO-PRESET"""
    resume: bool = False
    """continue the interrupted run in --run-dir (same settings required)"""
    seeds: tuple[int, ...] = ()
    """several seeds, one run each under RUN_DIR/seed_N, and mean ± std over them"""
    wandb: bool = False
    """also log to Weights & Biases (offline mode unless WANDB_MODE says otherwise)"""

    def run(self) -> int:
        result = train(self.config, run_dir=self.run_dir, resume=self.resume, seeds=list(self.seeds) or None,
                       wandb=self.wandb)
        if self.seeds:
            print(f"\nmean ± std over seeds {list(self.seeds)} (final policies):\n")
            print(seeds_table(result["arms"]))
        else:
            print("\n" + format_summary(result.summary))
            print(f"\nrun directory: {result.run_dir}")
        return 0


@dataclass
class Online:
    """Online RL: SAC + SynthER (UTD 20 on 50/50 real/synthetic batches, a fresh diffusion model
    every --retrain-every steps), REDQ, or plain SAC, with evaluations, checkpoints and resume."""

    config: Annotated[OnlineConfig, Flat]
    run_dir: str | None = None
    """default: runs/online-ENV-ALGO-PRESET"""
    resume: bool = False
    """continue the interrupted run in --run-dir (same settings required)"""
    wandb: bool = False
    """also log to Weights & Biases (offline mode unless WANDB_MODE says otherwise)"""

    def run(self) -> int:
        result = train(self.config, run_dir=self.run_dir, resume=self.resume, wandb=self.wandb)
        s = result.summary
        print(f"\n{s['algo']} on {s['env']}: {s['env_steps']:,} env steps, final return "
              f"{s['final_return_mean']:.1f} ± {s['final_return_std']:.1f} (over the final evaluation's episodes)")
        print("time: " + ", ".join(f"{k} {v:.0f}s" for k, v in s["seconds"].items()))
        print(f"run directory: {result.run_dir} (learning_curve.png, metrics.csv, summary.json)")
        return 0


@dataclass
class Collect:
    """Make an offline dataset locally (nothing downloads): a random policy, a saved policy
    checkpoint with per-episode action noise (medium-like / mixed), or the whole replay of a SAC
    run (replay-like; the online loop with SynthER off)."""

    env: str
    """task, e.g. HalfCheetah-v5 or dmc:cheetah-run"""
    out: tuple[str, ...]
    """output file(s): .npz (package format) and/or .hdf5 (D4RL layout)"""
    method: Literal["random", "policy", "sac"] = "random"
    steps: int = 100_000
    """environment steps"""
    policy: str | None = None
    """policy checkpoint for --method policy; default: the one shipped for --env, if any"""
    noise: tuple[float, ...] = (0.0,)
    """per-episode Gaussian action-noise levels, cycled (a spread gives mixed quality)"""
    policy_out: str | None = None
    """with --method sac: write the final actor here (a policy checkpoint)"""
    seed: int = 0
    threads: int = 0
    """torch CPU threads (0: chosen for small networks)"""

    def run(self) -> int:
        env_spec(self.env)
        for out in self.out:
            check_output_path(out)
        if self.policy_out is not None:
            writable_path(self.policy_out)
        with torch_threads(self.threads, small_networks=True):
            data, checkpoint = collect(self.env, self.method, self.steps, self.seed, policy=self.policy,
                                       noise=tuple(self.noise), progress=True)
        if checkpoint is not None and self.policy_out:
            save_policy(checkpoint, self.policy_out)
            print(f"final SAC actor written to {self.policy_out}")
        for out in self.out:
            save_dataset(data, out)
            print(f"wrote {len(data):,} transitions to {out}")
        returns = data.episode_returns()
        if len(returns):
            print(f"episode returns: mean {returns.mean():.1f}, min {returns.min():.1f}, max {returns.max():.1f} "
                  f"({len(returns)} episodes)")
        return 0


@dataclass
class Fit:
    """Fit a SynthER diffusion model to a dataset and save it (checkpoints beside it: OUT.ckpt).

    Under torchrun (``torchrun --nproc-per-node N -m synther_fast fit ...``) the fit is
    data-parallel over N processes (one GPU each, or gloo on CPUs) with the same global batch."""

    dataset: str
    """.npz, D4RL .hdf5 or Minari folder"""
    out: str
    """model file to write"""
    synther: SynthERConfig = field(default_factory=PRESETS["fit"]["quick"])
    preset: Literal["tiny", "quick", "paper_offline", "paper_online"] = "quick"
    """the diffusion preset every --synther option starts from"""
    no_terminal: bool = False
    """do not model terminals (DMC tasks never terminate)"""
    device: str | None = None
    resume: bool = False
    """continue the fit checkpointed in OUT.ckpt; without it an existing OUT or OUT.ckpt is refused"""

    def run(self) -> int:
        out, ckpt = Path(self.out), Path(self.out + ".ckpt")
        writable_path(out)
        if not self.resume and (out.exists() or ckpt.exists()):
            raise FileExistsError(f"{out if out.exists() else ckpt} exists; pass --resume to continue that fit, "
                                  f"or choose another --out (nothing was changed)")
        dataset = load_dataset(self.dataset)
        layout = dataset.layout(has_terminal=not self.no_terminal)
        with process_group(self.device) as device:
            resume = ckpt if self.resume and ckpt.exists() else None
            barrier()  # every rank has checked the files before rank 0 writes any
            model = SynthER(layout, for_task(self.synther, dataset.env_name), device)
            model.fit(dataset.to_rows(layout), checkpoint=ckpt, resume=resume)
            if is_main_process():
                model.save(out)
                world = rank_and_world()[1]
                print(f"fitted {model.trained_steps} steps (final loss {model.history[-1]['loss']:.4f})"
                      + (f" on {world} processes" if world > 1 else "") + f"; model written to {out}")
            barrier()
        return 0


@dataclass
class Generate:
    """Sample N synthetic transitions from a saved SynthER model into a dataset file.

    Under torchrun each process draws its own block of chunks (chunk k from the stream
    (seed, CHUNK, k)); rank 0 gathers them into OUT: the same rows, in the same order, as one process."""

    model: str
    """a model file written by fit (or a run's synther.pt)"""
    rows: int
    out: str
    """.npz (package format), .hdf5 (D4RL layout), or with --format minari a new folder"""
    format: Literal["file", "minari"] = "file"
    """'file': the dataset file OUT names by its suffix; 'minari': a Minari dataset folder (one
    one-step episode per row; needs pip install "synther_fast[minari]")"""
    seed: int = 0
    device: str | None = None
    conditions: tuple[float, ...] = ()
    """a conditional model (fitted with synther.guidance): the target scores to guide toward, each
    row's drawn from them uniformly; none samples its unconditional branch (said on the console)"""
    scale: float | None = None
    """guidance scale w for --conditions (default: the model's synther.guided.scale)"""
    sampler: Literal["heun", "euler", "dpmpp_2m", "dpmpp_2m_sde"] | None = None
    """sampler to draw with (default: the model's synther.edm.sampler; the file records it and its NFE)"""
    num_steps: int | None = None
    """sampler steps (default: the model's synther.edm.num_steps)"""

    def run(self) -> int:
        if self.rows <= 0:
            raise ValueError(f"--rows must be positive, got {self.rows}")
        if self.format == "minari":
            if Path(self.out).exists():
                raise FileExistsError(f"{self.out} exists; choose another --out (nothing was changed)")
            writable_path(self.out)
        else:
            check_output_path(self.out)
        with process_group(self.device) as device:
            model = SynthER.load(self.model, map_location=device).with_sampler(self.sampler, self.num_steps)
            if self.conditions and not model.conditional:
                raise ValueError(f"{self.model} is an unconditional model (synther.guidance 'none'): it takes no "
                                 f"--conditions")
            if model.conditional and not self.conditions and is_main_process():
                print(f"{self.model} is conditional (guidance {model.config.guidance!r}) and no --conditions were "
                      f"given: sampling its unconditional branch")
            target = self.out if self.format == "file" else str(Path(self.out).with_name(f".{Path(self.out).name}.rows.npz"))
            written = generate_sharded(model, self.rows, self.seed, target, conditions=self.conditions or None,
                                       scale=self.scale)
            if self.format == "minari" and is_main_process():
                rows = load_dataset(target)
                rows.env_name = model.config.generation.task
                save_minari(rows, self.out)
                Path(target).unlink()
            if is_main_process():
                world = rank_and_world()[1]
                record = model.sampler_record
                print(f"wrote {written:,} synthetic transitions to {self.out} ({record['sampler']}, "
                      f"{record['num_steps']} steps, {record['nfe']} network evaluations per row)"
                      + (f" (drawn by {world} processes)" if world > 1 else ""))
        return 0


@dataclass
class Sweep:
    """Run a grid of offline or online runs (tasks x algorithms x seeds x overrides) as Ray tasks
    and write one table (mean ± std over seeds, D4RL-normalised where defined) as markdown, CSV and
    PNG. Finished cells are read, interrupted ones resume, failed ones are reported. Needs Ray:
    pip install "synther_fast[distributed]". The spec file (TOML or YAML) holds mode, preset,
    tasks, algos, seeds, [overrides], [grid], root, cpus_per_cell, gpus_per_cell (see README)."""

    spec: Annotated[str, tyro.conf.Positional]
    """the sweep spec file (.toml, .yaml)"""
    address: str | None = None
    """an existing Ray cluster ('auto' or HOST:PORT); default: start Ray on this machine"""
    root: str | None = None
    """where run directories and tables go (default: the spec's root)"""
    cpus_per_cell: float | None = None
    gpus_per_cell: float | None = None

    def run(self) -> int:
        changes = {k: v for k, v in (("root", self.root), ("cpus_per_cell", self.cpus_per_cell),
                                     ("gpus_per_cell", self.gpus_per_cell)) if v is not None}
        result = sweep(self.spec, address=self.address, **changes)
        print("\n" + result.markdown())
        print("written: " + ", ".join(str(p) for p in result.files.values()))
        return 1 if result.failed else 0


@dataclass
class Report:
    """Data-quality report of a run directory: marginal fidelity, dynamics error, novelty against
    augmentation baselines, and plots (report.md with PNGs, written into the run directory)."""

    run_dir: Annotated[str, tyro.conf.Positional]

    def run(self) -> int:
        path = report_for_run(self.run_dir)
        print(f"report written to {path}")
        return 0


@dataclass
class Info:
    """Versions, the C++ extension, the device and which denoiser path the defaults pick here."""

    def run(self) -> int:
        print(f"synther_fast {synther_fast.__version__} at {synther_fast.__file__}")
        print(f"  C++ extension synther_fast._replay: {_replay.__file__}")
        print(f"  numpy {np.__version__}")

        cuda = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
        print(f"  torch {torch.__version__} ({cuda})")
        print(f"  triton: {'available' if triton_available() else 'not installed'}"
              f"{' (interpreter on)' if interpreter_enabled() else ''}")

        default = DenoiserConfig()
        fused = picks_fused_layers(default, torch.cuda.is_available())
        print(f"  denoiser (backend {default.backend!r}): "
              + (f"fused Triton layers at {default.precision} on CUDA" if fused
                 else "PyTorch reference (fp32); the fused layers need CUDA and triton"))
        print(f"  {ENVS_HELP}")
        return 0


@dataclass
class ReplayDemo:
    """Replay throughput: mixed sampling from the C++ buffer against a NumPy ring, with writers."""

    seconds: float = 2.0
    """time per measurement"""
    batch_size: int = 256

    def run(self) -> int:
        if not self.seconds > 0 or self.batch_size <= 0:
            raise ValueError(f"--seconds and --batch-size must be positive, got {self.seconds} and {self.batch_size}")
        return replay_demo(seconds=self.seconds, batch_size=self.batch_size)


def _option_value(argv: list[str], name: str) -> str | None:
    """The value given to ``--name`` (as ``--name V`` or ``--name=V``), if any; the last one where
    it is given twice, as tyro reads it (``... --preset quick --preset tiny`` runs tiny)."""
    value = None
    for i, arg in enumerate(argv):
        if arg == f"--{name}" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
    return value


def _commands(argv: list[str]) -> object:
    """The subcommand union, with the defaults of the preset (and online algorithm) asked for.

    tyro needs every default before it parses, so ``--preset`` and ``--algo`` are read first and
    handed to :func:`synther_fast.config.resolve`, the same function the Python API and the sweeps
    use; tyro then parses every option (these two included) against those defaults."""
    command = argv[0] if argv else None
    preset = _option_value(argv, "preset")
    algo = _option_value(argv, "algo")

    def defaults(mode: str, with_algo: str | None = None):
        asked = preset if command == mode else None
        return resolve(mode, asked or "quick", with_algo)  # an unknown preset or algorithm is refused here

    online_default = defaults("online", algo if command == "online" else None)
    offline_default = defaults("offline")
    fit_default = defaults("fit")
    fit_preset = preset if command == "fit" and preset is not None else "quick"
    sub = tyro.conf.subcommand
    return Union[  # noqa: UP007 (tyro reads the Union)
        Annotated[Demo, sub("demo", default=Demo())],
        Annotated[Offline, sub("offline", default=Offline(offline_default))],
        Annotated[Online, sub("online", default=Online(online_default))],
        Annotated[Collect, sub("collect")],
        Annotated[Fit, sub("fit", default=Fit(dataset=tyro.MISSING, out=tyro.MISSING,  # type: ignore[arg-type]
                                              synther=fit_default, preset=fit_preset))],  # type: ignore[arg-type]
        Annotated[Generate, sub("generate")],
        Annotated[Report, sub("report")],
        Annotated[Sweep, sub("sweep")],
        Annotated[Info, sub("info", default=Info())],
        Annotated[ReplayDemo, sub("replay-demo", default=ReplayDemo())],
    ]


def _validated(command):
    """Every config inside a parsed command, checked (tyro builds them unchecked, so that an
    error reads as one plain line rather than in tyro's box)."""
    for f in dataclasses.fields(command):
        if dataclasses.is_dataclass(getattr(command, f.name)):
            validate(getattr(command, f.name))
    return command


USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, FileExistsError, IsADirectoryError,
                                                 NotADirectoryError, PermissionError, RayMissingError)


def parse(args: list[str]):
    """The command ``args`` (without the program name) asks for, parsed and checked, not run."""
    with deferred_checks():  # checked by _validated below, so that an error reads as one plain line
        command = tyro.cli(_commands(args), args=args, prog="synther-fast",  # type: ignore[call-overload]
                           description="Fast Synthetic Experience Replay (SynthER) for offline and online "
                                       f"RL. --version prints the version; --debug shows tracebacks. {ENVS_HELP}.")
    return _validated(command)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    if args[:1] in (["--version"], ["-V"]):
        print(f"synther-fast {synther_fast.__version__}")
        return 0
    try:
        return int(parse(args).run())
    except USER_ERRORS as exc:
        if debug:
            raise
        print(f"synther-fast: error: {exc}", file=sys.stderr)
        print("  (run with --help for the options, or --debug for the traceback)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("synther-fast: interrupted; rerun with --resume to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
