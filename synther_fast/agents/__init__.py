"""The agents, one algorithm per module, all behind one protocol (agents/base.py): TD3+BC and IQL
(offline), SAC and REDQ (online, agents/sac.py)."""

from synther_fast.agents.base import Agent

__all__ = ["Agent"]
