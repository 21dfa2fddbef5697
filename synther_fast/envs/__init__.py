"""Environment factory: gymnasium MuJoCo v5 and dm_control suite tasks behind one name space."""

from synther_fast.envs.factory import ENV_NAMES, EnvSpec, env_spec, make_env

__all__ = ["ENV_NAMES", "EnvSpec", "env_spec", "make_env"]
