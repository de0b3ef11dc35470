#!/usr/bin/env python
"""Train an agent on an environment and write a run directory.

    python scripts/train.py --agent ppo --env CartPole-v1 --total-steps 5000
    python scripts/train.py --agent td3 --env Pendulum-v1 --set learning_rate=3e-4 --video
    python scripts/train.py --resume results/runs/CartPole-v1/ppo/seed0 --total-steps 20000

Every mistake (unknown id, bad hyperparameter, malformed YAML, existing run directory, corrupt
checkpoint) is reported in one line with exit status 2. Ctrl-C or SIGTERM saves a checkpoint
and exits; ``--resume RUN_DIR`` continues the same TensorBoard curve.
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
    def error(self, message):  # one line, exit 2 (argparse's own status), no usage dump
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _epilog() -> str:
    from agents.registry import AGENTS
    from agents.runner import DEFAULT_AGENT, DEFAULT_ENV, list_envs

    lines = ["agents:"]
    lines += [f"  {spec.id:<16} {spec.description}" for spec in AGENTS.values()]
    lines += ["", "environments (also any `module:EnvId` of an installed package):"]
    lines += [f"  {env_id:<30} {description}" for env_id, description in list_envs()]
    lines += ["", f"with no arguments: --agent {DEFAULT_AGENT} --env {DEFAULT_ENV}"]
    return "\n".join(lines)


def build_parser(with_epilog: bool = False) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="train.py",
        description="Train a mirabilis agent or a stable-baselines3 baseline; writes a run directory "
                    "(config.yaml, command.txt, TensorBoard events, checkpoints/, videos/).",
        epilog=_epilog() if with_epilog else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--agent", help="agent id (listed below)")
    parser.add_argument("--env", help="environment id, or module:EnvId")
    parser.add_argument("--env-kwargs", action="append", default=[], metavar="KEY=VALUE",
                        help="env constructor kwarg (repeatable), e.g. --env-kwargs length=50")
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument("--total-steps", type=int, help="env steps to train for")
    parser.add_argument("--n-envs", type=int, help="parallel envs (SB3 DummyVecEnv)")
    parser.add_argument("--config", metavar="FILE.yaml", help="settings file, e.g. another run's config.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a hyperparameter (repeatable), typed by its declared type")
    parser.add_argument("--run-dir", help="where to write (default results/runs/<env>/<agent>/seed<N>)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its latest checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    parser.add_argument("--video", action="store_true", help="record evaluation episodes at the end")
    parser.add_argument("--video-episodes", type=int, default=1, help="episodes to record with --video")
    parser.add_argument("--checkpoint-freq", type=int, help="env steps between periodic checkpoints")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "-h" in argv or "--help" in argv:
        build_parser(with_epilog=True).print_help()
        return 0
    args = build_parser().parse_args(argv)

    from agents import runner

    try:
        if args.resume:
            run_dir = Path(args.resume)
            config = runner.load_run_config(run_dir)
            if args.total_steps is not None:
                config.total_steps = args.total_steps
            if any([args.agent, args.env, args.config, args.set, args.env_kwargs, args.run_dir]):
                raise UsageError("--resume takes its settings from the run's config.yaml; only --total-steps may change")
        else:
            config = runner.build_config(
                agent=args.agent, env=args.env, seed=args.seed, total_steps=args.total_steps, n_envs=args.n_envs,
                checkpoint_freq=args.checkpoint_freq, config_file=args.config, set_args=args.set,
                env_kwargs_args=args.env_kwargs,
            )
            run_dir = Path(args.run_dir) if args.run_dir else runner.default_run_dir(config)
            if run_dir.exists() and any(run_dir.iterdir()) and not args.overwrite:
                raise UsageError(
                    f"run directory {run_dir} already exists; use --resume {run_dir} to continue it, "
                    "--overwrite to replace it, or --run-dir to choose another"
                )
        announce = (f"{'resuming' if args.resume else 'training'} {config.agent} on {config.env} "
                    f"(seed {config.seed}, {config.total_steps} steps) -> {run_dir}")
        result = runner.train(
            config, run_dir, resume=bool(args.resume), overwrite=args.overwrite,
            progress_bar=not args.no_progress, video=args.video, video_episodes=args.video_episodes,
            command=runner.command_line(), on_start=lambda: print(announce, flush=True),
        )
    except UsageError as exc:
        print(f"train.py: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("train.py: aborted by a second interrupt; the last periodic checkpoint is kept", file=sys.stderr)
        return 130
    if result.interrupted:
        print(f"stopped by {result.interrupted} at step {result.model.num_timesteps}; checkpoint saved. "
              f"Continue with: python scripts/train.py --resume {run_dir}", flush=True)
        return 130 if result.interrupted == "SIGINT" else 143
    fps = result.steps / max(result.seconds, 1e-9)
    print(f"done: {result.model.num_timesteps} steps ({fps:.0f} steps/s). "
          f"TensorBoard: tensorboard --logdir {run_dir}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
