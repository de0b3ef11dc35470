#!/usr/bin/env python
"""Watch a trained agent: load a run's final (or latest) checkpoint and render episodes.

    python scripts/enjoy.py --run results/runs/CartPole-v1/ppo/seed0 --episodes 3 --out cartpole.mp4
    python scripts/enjoy.py --run RUN_DIR --human          # a pygame window instead of a file

Writes ``RUN_DIR/videos/enjoy.mp4`` unless ``--out`` (``.mp4`` or ``.gif``) says otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.errors import UsageError  # noqa: E402


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="enjoy.py", description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, metavar="RUN_DIR", help="a run directory written by train.py")
    parser.add_argument("--episodes", type=int, default=1, help="episodes to play (default 1)")
    parser.add_argument("--out", metavar="FILE.mp4|FILE.gif", help="video file (default RUN_DIR/videos/enjoy.mp4)")
    parser.add_argument("--deterministic", action="store_true", help="greedy actions instead of sampled ones")
    parser.add_argument("--human", action="store_true", help="show a pygame window instead of writing a file")
    parser.add_argument("--checkpoint", default=None, help="checkpoint file (default: final, else latest)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the first episode (default: run seed + 10000)")
    args = parser.parse_args(argv)

    from agents import runner
    from agents.persistence import load_agent
    from agents.video import env_fps, headless, run_episodes, write_video

    if not args.human:
        headless()

    try:
        if args.episodes < 1:
            raise UsageError("--episodes must be >= 1")
        if args.out and Path(args.out).suffix.lower() not in (".mp4", ".gif"):
            raise UsageError(f"--out must end in .mp4 or .gif, got {args.out!r}")
        run_dir = Path(args.run)
        config = runner.load_run_config(run_dir)
        if args.checkpoint:
            ckpt = Path(args.checkpoint)
        elif (run_dir / "checkpoints" / "final.safetensors").exists():
            ckpt = run_dir / "checkpoints" / "final.safetensors"
        else:
            ckpt = runner.latest_checkpoint(run_dir)
        model = load_agent(ckpt, expected_agent=config.agent)
        from agents.registry import get_agent

        wrapper = get_agent(config.agent).env_wrapper(config.hyperparams)
        env = runner.make_env(config.env, config.env_kwargs, render_mode="human" if args.human else "rgb_array",
                              wrapper=wrapper)
        frames = []
        seed = args.seed if args.seed is not None else config.seed + 10_000
        episodes = run_episodes(model, env, args.episodes, deterministic=args.deterministic, seed=seed,
                                on_frame=None if args.human else frames.append)
        env.close()
        for i, ep in enumerate(episodes):
            success = "" if ep["is_success"] is None else f", success {bool(ep['is_success'])}"
            print(f"episode {i}: return {ep['return']:.2f}, length {ep['length']}{success}")
        if not args.human:
            out = Path(args.out) if args.out else run_dir / "videos" / "enjoy.mp4"
            write_video(frames, out, fps=env_fps(env))
            print(f"wrote {len(frames)} frames to {out}")
    except UsageError as exc:
        print(f"enjoy.py: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
