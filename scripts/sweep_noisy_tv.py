#!/usr/bin/env python
"""The sweeps that chose curious-c-m's noisy-TV settings (results/noisy_tv cites their output).

    python scripts/sweep_noisy_tv.py trap 150000 --workers 16 > results/noisy_tv/sweep_trap.jsonl
    python scripts/sweep_noisy_tv.py room 100000 --workers 6  > results/noisy_tv/sweep_room.jsonl

Each config trains ``curious-c-m`` on ``mirabilis/NoisyTVRoom-v0`` (intrinsic reward only, 8 envs, one
seed) for the given number of env steps and prints one JSON line: final coverage, the TV share over the
last 20% of rollouts, and both curves at 10 evenly spaced points. Configs run in parallel worker
processes, one torch thread each; lines come in the order runs finish.

* ``trap`` — made the TV a fair trap in the original 3×3-room, 300-step room: a bigger noise screen
  and a shorter curiosity discount (16 configs, run on a 16-core machine).
* ``room`` — (config names start with their round, ``r1`` … ``r7``, run one after the other with
  ``--only rN``) the harder room the experiment now uses (episodes of 100 steps, where a random policy
  covers about 80% of the cells): which entropy bonus and curiosity discount let ``progress`` explore
  it, and whether ``adversarial`` still falls for the TV with them.

Every config states all the hyperparameters it varies on top of its set's base, so the output does
not depend on later changes of ``agents/hyperparams/curious-c-m.yml``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: what every config of a set shares (the YAML values of the time the set was run)
BASES = {
    "trap": dict(model_epochs=4, model_lr=2e-3, n_epochs=8, n_minibatches=8, learning_rate=1e-3,
                 critic_lstm=False, curiosity_gamma=0.99, ent_coef=0.01),
    "room": dict(model_epochs=4, model_lr=2e-3, n_epochs=8, n_minibatches=8, learning_rate=1e-3,
                 critic_lstm=False, curiosity_gamma=0.9, ent_coef=0.01),
}
ENV_BASES = {"trap": {"screen_pixels": 64}, "room": {"screen_pixels": 64, "max_steps": 100}}
_F = {"n_rooms_x": 4, "n_rooms_y": 4, "max_steps": 200}
#: (name, curiosity signal, env kwargs over the set's, hyperparameters over the set's, seed)
CONFIGS = {
    "trap": [
        ("A adv", "adversarial", {}, {}, 0),
        ("A prog", "progress", {}, {}, 0),
        ("B adv scr256", "adversarial", {"screen_pixels": 256}, {}, 0),
        ("B prog scr256", "progress", {"screen_pixels": 256}, {}, 0),
        ("C adv ent.001", "adversarial", {}, {"ent_coef": 0.001}, 0),
        ("C prog ent.001", "progress", {}, {"ent_coef": 0.001}, 0),
        ("D adv cg.9", "adversarial", {}, {"curiosity_gamma": 0.9}, 0),
        ("D prog cg.9", "progress", {}, {"curiosity_gamma": 0.9}, 0),
        ("E adv scr256 cg.9 ent.001", "adversarial", {"screen_pixels": 256}, {"curiosity_gamma": 0.9, "ent_coef": 0.001}, 0),
        ("E prog scr256 cg.9 ent.001", "progress", {"screen_pixels": 256}, {"curiosity_gamma": 0.9, "ent_coef": 0.001}, 0),
        ("F adv 4x4 200", "adversarial", _F, {}, 0),
        ("F prog 4x4 200", "progress", _F, {}, 0),
        ("F none 4x4 200", "none", _F, {}, 0),
        ("F rnd 4x4 200", "rnd", _F, {}, 0),
        ("G adv seed1", "adversarial", {}, {}, 1),
        ("G prog seed1", "progress", {}, {}, 1),
    ],
    "room": [],  # filled below
}
_R1 = [
    ("prog", "progress", {}, {}, 0),
    ("prog", "progress", {}, {}, 1),
    ("prog critic_lstm", "progress", {}, {"critic_lstm": True}, 0),
    ("prog 4x4/150", "progress", {"n_rooms_x": 4, "n_rooms_y": 4, "max_steps": 150}, {}, 0),
    ("none", "none", {}, {}, 0),
    ("adv", "adversarial", {}, {}, 0),
]
_R2 = [
    ("prog ent.03", "progress", {}, {"ent_coef": 0.03}, 0),
    ("prog no-adv-norm", "progress", {}, {"normalize_advantage": False}, 0),
    ("prog cg.97", "progress", {}, {"curiosity_gamma": 0.97}, 0),
    ("prog tau.01", "progress", {}, {"progress_tau": 0.01}, 0),
    ("prog slow M", "progress", {}, {"model_epochs": 1, "model_lr": 1e-3}, 0),
    ("prog ent.03 cg.97", "progress", {}, {"ent_coef": 0.03, "curiosity_gamma": 0.97}, 0),
]
_E = {"ent_coef": 0.03, "curiosity_gamma": 0.97}
_R3 = [
    ("adv ent.03 cg.97", "adversarial", {}, _E, 0),
    ("prog ent.03 cg.97", "progress", {}, _E, 1),
    ("prog ent.03 cg.97", "progress", {}, _E, 2),
    ("none ent.03", "none", {}, _E, 0),
    ("prog ent.05 cg.97", "progress", {}, {"ent_coef": 0.05, "curiosity_gamma": 0.97}, 0),
    ("prog ent.03 cg.99", "progress", {}, {"ent_coef": 0.03, "curiosity_gamma": 0.99}, 0),
]
_R4 = [
    ("prog tau.3", "progress", {}, {"progress_tau": 0.3}, 0),
    ("prog tau.3", "progress", {}, {"progress_tau": 0.3}, 1),
    ("prog tau1", "progress", {}, {"progress_tau": 1.0}, 0),
    ("prog tau1", "progress", {}, {"progress_tau": 1.0}, 1),
    ("prog tau.3 ent.03", "progress", {}, {"progress_tau": 0.3, "ent_coef": 0.03}, 0),
    ("prog tau1 ent.03", "progress", {}, {"progress_tau": 1.0, "ent_coef": 0.03}, 0),
]
_E5 = {"ent_coef": 0.05, "curiosity_gamma": 0.97}
_R5 = [
    ("prog ent.05 cg.97", "progress", {}, _E5, 1),
    ("prog ent.05 cg.97", "progress", {}, _E5, 2),
    ("prog ent.05 cg.97", "progress", {}, _E5, 3),
    ("adv ent.05 cg.97", "adversarial", {}, _E5, 0),
    ("adv ent.05 cg.97 scr256", "adversarial", {"screen_pixels": 256}, _E5, 0),
    ("prog ent.05 cg.97 scr256", "progress", {"screen_pixels": 256}, _E5, 0),
    ("prog ent.05 cg.9", "progress", {}, {"ent_coef": 0.05}, 0),
]
_S = {"screen_pixels": 256}
_R6 = [
    ("prog ent.05 cg.97 scr256 lr3e-4", "progress", _S, {**_E5, "learning_rate": 3e-4}, 1),
    ("prog ent.05 cg.97 scr256 lr3e-4", "progress", _S, {**_E5, "learning_rate": 3e-4}, 2),
    ("prog ent.05 cg.97 scr256 lr3e-4", "progress", _S, {**_E5, "learning_rate": 3e-4}, 4),
    ("adv ent.05 cg.97 scr256 lr3e-4", "adversarial", _S, {**_E5, "learning_rate": 3e-4}, 1),
    ("prog ent.05 cg.97 scr256 epochs4", "progress", _S, {**_E5, "n_epochs": 4}, 1),
    ("prog ent.05 cg.97 scr256 epochs4", "progress", _S, {**_E5, "n_epochs": 4}, 2),
    ("none ent.05 scr256", "none", _S, _E5, 1),
    ("adv ent.05 cg.97 scr256 epochs4", "adversarial", _S, {**_E5, "n_epochs": 4}, 1),
]
_A = {**_E5, "normalize_advantage": False}
_H = {**_E5, "ent_coef": 0.1}
_R7 = [  # the experiment's two failing progress seeds (1, 4) under two ways of keeping C from collapsing
    ("prog ent.05 cg.97 scr256 no-adv-norm", "progress", _S, _A, 1),
    ("prog ent.05 cg.97 scr256 no-adv-norm", "progress", _S, _A, 4),
    ("adv ent.05 cg.97 scr256 no-adv-norm", "adversarial", _S, _A, 0),
    ("none ent.05 cg.97 scr256 no-adv-norm", "none", _S, _A, 1),
    ("prog ent.1 cg.97 scr256", "progress", _S, _H, 1),
    ("prog ent.1 cg.97 scr256", "progress", _S, _H, 4),
    ("adv ent.1 cg.97 scr256", "adversarial", _S, _H, 0),
    ("none ent.1 cg.97 scr256", "none", _S, _H, 1),
]
CONFIGS["room"] = [(f"r{i} {name}", *rest) for i, rnd in enumerate((_R1, _R2, _R3, _R4, _R5, _R6, _R7), 1)
                   for name, *rest in rnd]


def run_config(job: tuple[str, tuple, int]) -> dict:
    """Train one config; the summary line as a dict."""
    set_name, (name, signal, env_kw, hp, seed), steps = job
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import torch
    from stable_baselines3.common.logger import configure

    from agents.curious_cm import CuriousCM
    from agents.runner import make_vec_env

    torch.set_num_threads(1)
    env = make_vec_env("mirabilis/NoisyTVRoom-v0", {**ENV_BASES[set_name], **env_kw}, 8, seed)
    model = CuriousCM(env, seed=seed, curiosity=signal, **{**BASES[set_name], **hp})
    model.set_logger(configure(None, []))
    start = time.time()
    model.learn(steps)
    seconds = time.time() - start
    h = model.explore_history
    n = len(h)
    return dict(name=name, seed=seed, fps=round(steps / seconds), coverage=round(h[-1]["coverage"], 3),
                tv_last20=round(float(np.mean([x["tv_fraction"] for x in h[int(n * 0.8):]])), 4),
                cov_curve=[round(h[int(i * (n - 1) / 9)]["coverage"], 2) for i in range(10)],
                tv_curve=[round(float(np.mean([x["tv_fraction"] for x in h[int(i * n / 10):int((i + 1) * n / 10)]])), 3)
                          for i in range(10)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("set", choices=sorted(CONFIGS), help="which sweep")
    parser.add_argument("steps", type=int, help="env steps per config")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="parallel processes")
    parser.add_argument("--only", action="append", default=None,
                        help="run only configs whose name contains this text (repeatable: any of them)")
    args = parser.parse_args(argv)
    if args.steps < 1024 or args.workers < 1:
        parser.error("steps must be >= 1024 and workers >= 1")
    jobs = [(args.set, cfg, args.steps) for cfg in CONFIGS[args.set] if args.only is None or any(o in cfg[0] for o in args.only)]
    if not jobs:
        parser.error(f"no config of {args.set!r} matches {args.only!r}")
    with mp.get_context("spawn").Pool(min(args.workers, len(jobs))) as pool:
        for line in pool.imap_unordered(run_config, jobs):
            print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
