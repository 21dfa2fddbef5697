"""D4RL-normalised scores: the reference returns of the locomotion tasks."""

from __future__ import annotations

# D4RL's reference returns (random and expert policies) for the locomotion tasks; gymnasium v5
# tasks have the same bodies and rewards up to small simulator differences.
D4RL_REFERENCE = {
    "HalfCheetah": (-280.178953, 12135.0),
    "Hopper": (-20.272305, 3234.3),
    "Walker2d": (1.629008, 4592.3),
    "Ant": (-325.6, 3879.7),
}


def normalized_score(env_name: str, episode_return: float) -> float | None:
    """100 (R - R_random) / (R_expert - R_random), or None where D4RL has no reference."""
    key = env_name.split("-")[0]
    if key not in D4RL_REFERENCE:
        return None
    low, high = D4RL_REFERENCE[key]
    return 100.0 * (episode_return - low) / (high - low)
