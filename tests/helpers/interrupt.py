"""A simulated kill of an online run: the one helper the kill-and-resume tests share."""

from __future__ import annotations

import pytest

from synther_fast.pipelines.online import OnlineRun, run_online


def kill_online_run(config, run_dir, monkeypatch, at_step: int = 260) -> None:
    """Run ``config`` in ``run_dir`` until the learner step at environment step ``at_step``, then
    raise KeyboardInterrupt there (as a kill would); the run's files stay as the kill left them."""
    original = OnlineRun.learn

    def crash(self):
        if self.t == at_step:
            raise KeyboardInterrupt("simulated kill")
        return original(self)

    monkeypatch.setattr(OnlineRun, "learn", crash)
    with pytest.raises(KeyboardInterrupt):
        run_online(config, run_dir, progress=False)
    monkeypatch.setattr(OnlineRun, "learn", original)
