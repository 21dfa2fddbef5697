"""One seed for the whole run: every part draws from the run seed through its own stream of the
one table (synther_fast.common.rng.Stream), the diffusion fit included, and no two parts share one."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import tiny
import torch

import synther_fast
from synther_fast.common.rng import Stream, derived_seed, fit_seed, stream_seed
from synther_fast.config import OfflineConfig, SynthERConfig, config_from_dict, offline_quick
from synther_fast.data import save_dataset
from synther_fast.pipelines.collect import rollouts
from synther_fast.pipelines.offline import run_offline
from synther_fast.runs import RunError

PACKAGE = Path(synther_fast.__file__).resolve().parent


def test_the_stream_table_has_unique_ids_and_every_id_is_drawn_somewhere() -> None:
    values = [int(s) for s in Stream]
    assert len(values) == len(set(values))
    source = "\n".join(p.read_text() for p in PACKAGE.rglob("*.py"))  # the definitions read NAME = id
    unused = [s.name for s in Stream if f"Stream.{s.name}" not in source]
    assert unused == []


def test_no_part_derives_a_seed_outside_the_table() -> None:
    """``derived_seed`` is called in rng.py alone; everywhere else ``stream_seed(seed, Stream.X)``,
    which refuses a bare number (the old literals 0, 1, 2, 7, 11, 12 collided)."""
    callers = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "rng.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "derived_seed":
                callers.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert callers == []
    with pytest.raises(TypeError, match="Stream"):
        stream_seed(0, 3)  # type: ignore[arg-type]
    # the collision the table removed: generation chunk 0 of a run drew the agents' init stream
    assert derived_seed(5, 0) != stream_seed(stream_seed(5, Stream.GENERATION), Stream.CHUNK, 0)
    assert stream_seed(5, Stream.AGENT_INIT) != stream_seed(5, Stream.CHUNK, 0)


def test_fit_seed_is_the_given_one_or_derived_from_the_run_seed() -> None:
    assert fit_seed(3, 17) == 17
    assert fit_seed(3, None) == stream_seed(3, Stream.FIT) != fit_seed(4, None)
    model = synther_fast.SynthER(synther_fast.TransitionLayout(2, 1, False), synther_fast.quick())
    assert model.config.seed == fit_seed(0, None)  # a model outside any run: run seed 0


def test_config_files_that_hold_an_integer_seed_still_load() -> None:
    data = SynthERConfig().to_dict()
    assert data["seed"] is None
    data["seed"] = 0  # as every file written before the change
    assert config_from_dict(SynthERConfig, data).seed == 0
    offline = offline_quick().to_dict()
    offline["synther"]["seed"] = 4
    assert config_from_dict(OfflineConfig, offline).synther.seed == 4
    with pytest.raises(ValueError, match="seed"):
        SynthERConfig(seed=-1).check()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("data") / "hopper.npz"
    save_dataset(rollouts("Hopper-v5", None, 600, seed=0), path)
    return str(path)


def _fit(dataset: str, folder: Path, seed: int, **extra) -> dict[str, torch.Tensor]:
    config = offline_quick().with_overrides(**(tiny.OFFLINE | {"env": "Hopper-v5", "dataset": dataset, "seed": seed,
                                                              "arms": ("synthetic",), "agent_steps": 20,
                                                              "eval_every": 20, "synthetic_rows": 300} | extra))
    result = run_offline(config, folder, progress=False)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["synther_seed"] == result.summary.synther_seed == fit_seed(seed, config.synther.seed)
    return torch.load(folder / "synther.pt", weights_only=True)["ema"]


@pytest.mark.slow
def test_each_run_seed_fits_its_own_model_and_a_seed_twice_fits_the_same(dataset, tmp_path) -> None:
    zero, one, again = (_fit(dataset, tmp_path / name, seed) for name, seed in (("a", 0), ("b", 1), ("c", 0)))
    assert zero.keys() == one.keys()
    assert any(not torch.equal(zero[k], one[k]) for k in zero)  # seeds 0 and 1: different weights
    assert all(torch.equal(zero[k], again[k]) for k in zero)  # seed 0 twice: bitwise the same
    # synther.seed set: the same model under any run seed (what the sweeps did by accident before)
    fixed = [_fit(dataset, tmp_path / f"f{s}", s, **{"synther.seed": 7}) for s in (0, 1)]
    assert all(torch.equal(fixed[0][k], fixed[1][k]) for k in zero)
    rows = [np.load(tmp_path / f"f{s}" / "synthetic.npz")["observations"] for s in (0, 1)]
    assert not np.array_equal(*rows)  # generation still follows the run seed


def test_a_run_started_before_the_change_is_refused_naming_synther_seed(dataset, tmp_path) -> None:
    config = offline_quick().with_overrides(**(tiny.OFFLINE | {"env": "Hopper-v5", "dataset": dataset,
                                                              "arms": ("real",), "agent_steps": 20, "eval_every": 20}))
    before = config.with_overrides(**{"synther.seed": 0})  # what every run directory of 0.1.0 recorded
    run_offline(before, tmp_path / "old", progress=False)
    (tmp_path / "old" / "summary.json").unlink()
    with pytest.raises(RunError, match=r"synther\.seed: 0 != None.*pass --synther\.seed"):
        run_offline(config, tmp_path / "old", resume=True, progress=False)
    assert run_offline(before, tmp_path / "old", resume=True, progress=False).arms["real"]["updates"] == 20
