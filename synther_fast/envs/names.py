"""The task names the environment factory knows (importable without any simulator)."""

GYM_TASKS = ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5")
DMC_TASKS = (
    "dmc:cheetah-run", "dmc:walker-walk", "dmc:walker-run", "dmc:quadruped-walk",
    "dmc:quadruped-run", "dmc:reacher-hard", "dmc:finger-turn-hard", "dmc:hopper-hop",
)
ENV_NAMES = GYM_TASKS + DMC_TASKS
