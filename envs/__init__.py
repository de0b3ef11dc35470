"""The mirabilis Gymnasium environments; importing this package registers them.

====================================  ============================================================
id                                    what it tests
====================================  ============================================================
``mirabilis/FoveaSearch-v0``          learned saccades to a target named by a goal input (Sec. 9, 12)
``mirabilis/NoisyTVRoom-v0``          adversarial vs learning-progress curiosity (Sec. 5, 6)
``mirabilis/TMaze-v0``                memory over a corridor of length N (Sec. 4)
``mirabilis/POMaze-v0``               recurrent C and M in partially observable mazes (Sec. 11)
``mirabilis/StartGoalNav-v0``         start-goal commands and subgoals (Sec. 10, 12)
====================================  ============================================================
"""

from gymnasium.envs.registration import register, registry

from envs.core import MOWrapper, ScalarizeWrapper

#: id -> (entry point, one-line description); the CLI's ``--help`` lists these.
ENVIRONMENTS: dict[str, tuple[str, str]] = {
    "mirabilis/FoveaSearch-v0": (
        "envs.fovea_search:FoveaSearchEnv",
        "find the object named by a goal input with saccades of a multi-resolution fovea",
    ),
    "mirabilis/NoisyTVRoom-v0": (
        "envs.noisy_tv_room:NoisyTVRoomEnv",
        "rooms to explore, one with a TV of fresh random noise (curiosity trap)",
    ),
    "mirabilis/TMaze-v0": (
        "envs.tmaze:TMazeEnv",
        "Bakker's T-maze: remember the start signal over a corridor of length N",
    ),
    "mirabilis/POMaze-v0": (
        "envs.pomaze:POMazeEnv",
        "random mazes through a small egocentric window; goal or flag-fetch task",
    ),
    "mirabilis/StartGoalNav-v0": (
        "envs.start_goal_nav:StartGoalNavEnv",
        "continuous 2-D navigation with obstacles, goal-conditioned Dict observations (HER-ready)",
    ),
}

for _env_id, (_entry_point, _) in ENVIRONMENTS.items():
    if _env_id not in registry:
        register(id=_env_id, entry_point=_entry_point)

__all__ = ["ENVIRONMENTS", "MOWrapper", "ScalarizeWrapper"]
