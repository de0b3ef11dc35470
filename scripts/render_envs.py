#!/usr/bin/env python
"""Render the mirabilis environments: one frame each (PNG) and random-policy videos.

    python scripts/render_envs.py                       # frames -> docs/envs/, videos -> results/runs/env_videos/
    python scripts/render_envs.py --episodes 2 --out /tmp/videos --format gif
    python scripts/render_envs.py --env mirabilis/TMaze-v0 --env-kwargs length=30

The frames in ``docs/envs/`` are the ones the README shows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from agents.errors import UsageError  # noqa: E402
from agents.video import headless  # noqa: E402

headless()

FRAME_STEPS = {"mirabilis/NoisyTVRoom-v0": 40, "mirabilis/TMaze-v0": 4, "mirabilis/POMaze-v0": 12,
               "mirabilis/FoveaSearch-v0": 2, "mirabilis/StartGoalNav-v0": 25}
#: Kwargs that make the README frame show what the env is about (the TV's noise on screen).
FRAME_KWARGS = {"mirabilis/NoisyTVRoom-v0": {"tv_mode": "passive", "display": True}}


class RandomPolicy:
    """``predict`` like an SB3 model, with random actions."""

    def __init__(self, action_space, seed: int):
        self.action_space = action_space
        self.action_space.seed(seed)

    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        import numpy as np

        return np.array([self.action_space.sample()]), None


def main(argv: list[str] | None = None) -> int:
    import envs
    from agents.config import parse_assignment
    from agents.runner import make_env
    from agents.video import env_fps, run_episodes, write_video

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", action="append", help="env id (repeatable; default: all mirabilis envs)")
    parser.add_argument("--env-kwargs", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--episodes", type=int, default=1)
    parser.add_argument("--out", default=str(HERE.parent / "results" / "runs" / "env_videos"))
    parser.add_argument("--frames", default=str(HERE.parent / "docs" / "envs"), help="folder for the PNG frames")
    parser.add_argument("--format", choices=("mp4", "gif"), default="mp4")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        kwargs = dict(parse_assignment(item, "--env-kwargs") for item in args.env_kwargs)
        import imageio.v2 as imageio

        for env_id in args.env or list(envs.ENVIRONMENTS):
            name = env_id.split("/")[-1].split("-v")[0]
            env = make_env(env_id, {**FRAME_KWARGS.get(env_id, {}), **kwargs}, render_mode="rgb_array")
            env.reset(seed=args.seed)
            env.action_space.seed(args.seed)
            for _ in range(FRAME_STEPS.get(env_id, 10)):
                if any(env.step(env.action_space.sample())[2:4]):
                    env.reset()
            Path(args.frames).mkdir(parents=True, exist_ok=True)
            imageio.imwrite(Path(args.frames) / f"{name}.png", env.render())
            env.close()
            env = make_env(env_id, kwargs, render_mode="rgb_array")
            frames = []
            run_episodes(RandomPolicy(env.action_space, args.seed), env, args.episodes, seed=args.seed,
                         on_frame=frames.append)
            path = write_video(frames, Path(args.out) / f"{name}_random.{args.format}", fps=env_fps(env))
            env.close()
            print(f"{env_id}: frame {Path(args.frames) / (name + '.png')}, video {path} ({len(frames)} frames)")
    except UsageError as exc:
        print(f"render_envs.py: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
