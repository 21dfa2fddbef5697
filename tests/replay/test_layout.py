from __future__ import annotations

import json

import numpy as np
import pytest

from synther_fast import TransitionLayout


@pytest.mark.parametrize("has_terminal", [True, False])
def test_slices_cover_the_row_in_order(has_terminal: bool) -> None:
    layout = TransitionLayout(obs_dim=4, act_dim=3, has_terminal=has_terminal)
    row = np.arange(layout.width)
    assert row[layout.obs].tolist() == [0, 1, 2, 3]
    assert row[layout.action].tolist() == [4, 5, 6]
    assert row[layout.reward].tolist() == [7]
    assert row[layout.next_obs].tolist() == [8, 9, 10, 11]
    if has_terminal:
        assert row[layout.terminal].tolist() == [12]
        assert layout.width == 13
    else:
        assert layout.terminal is None
        assert layout.width == 12
    covered = sorted(i for sl in layout.field_slices().values() for i in range(sl.start, sl.stop))
    assert covered == list(range(layout.width))


def test_column_names() -> None:
    layout = TransitionLayout(2, 1)
    assert [layout.column_name(c) for c in range(layout.width)] == [
        "obs[0]", "obs[1]", "action", "reward", "next_obs[0]", "next_obs[1]", "terminal",
    ]
    with pytest.raises(IndexError):
        layout.column_name(layout.width)


def test_dict_round_trip_through_json() -> None:
    layout = TransitionLayout(17, 6, False)
    again = TransitionLayout.from_dict(json.loads(json.dumps(layout.to_dict())))
    assert again == layout and again.width == layout.width


@pytest.mark.parametrize("bad", [{}, {"format": "x"}, {"format": "TransitionLayout", "version": 99}])
def test_from_dict_rejects_other_formats(bad: dict) -> None:
    with pytest.raises(ValueError):
        TransitionLayout.from_dict(bad)


@pytest.mark.parametrize("obs_dim, act_dim", [(0, 1), (1, 0), (-3, 2), (2.5, 1), (True, 1)])
def test_rejects_bad_dims(obs_dim, act_dim) -> None:
    with pytest.raises(ValueError, match="positive int"):
        TransitionLayout(obs_dim, act_dim)
