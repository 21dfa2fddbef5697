"""SynthER for learners outside this package (issue 32).

- :func:`upsample` (``synther_fast.upsample``): a D4RL-style dataset in, n synthetic transitions out;
- :mod:`.sb3`: ``SynthERReplayBuffer`` + ``SynthERCallback`` for Stable-Baselines3 (extra ``[sb3]``);
- :mod:`.torchrl`: ``SynthERTorchRLBuffer`` + ``SynthERTrainerHook`` for TorchRL (extra ``[torchrl]``);
- :mod:`.cleanrl`: ``SynthERBuffer``, a drop-in for a CleanRL-style script's buffer (no dependency);
- :mod:`.core`: what they share (raw rows, refits, the mixing core).

The adapters import their library; nothing else in the package imports them.
"""

from synther_fast.integrations.upsampling import upsample

__all__ = ["upsample"]
