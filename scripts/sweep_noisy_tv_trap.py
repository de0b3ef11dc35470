#!/usr/bin/env python
"""The sweep that chose curious-c-m's noisy-TV settings (screen size, curiosity discount).

    PYTHONPATH=. python scripts/sweep_noisy_tv_trap.py 150000     # 16 configs in parallel (needs 16 cores)

Each config trains curious-c-m for the given number of env steps (1 seed) on NoisyTVRoom-v0 and prints one JSON
line: final coverage, TV share over the last 20% of rollouts, and both curves. The output of the run cited in
results/noisy_tv is results/noisy_tv/sweep_trap.jsonl (16-core machine, 150k steps).
"""
import os, sys, time, json, multiprocessing as mp
os.environ["SDL_VIDEODRIVER"] = "dummy"
import numpy as np

BASE = dict(model_epochs=4, model_lr=2e-3, n_epochs=8, n_minibatches=8, learning_rate=1e-3)
CONFIGS = [
    ("A adv", "adversarial", {}, {}),
    ("A prog", "progress", {}, {}),
    ("B adv scr256", "adversarial", {"screen_pixels": 256}, {}),
    ("B prog scr256", "progress", {"screen_pixels": 256}, {}),
    ("C adv ent.001", "adversarial", {}, {"ent_coef": 0.001}),
    ("C prog ent.001", "progress", {}, {"ent_coef": 0.001}),
    ("D adv cg.9", "adversarial", {}, {"curiosity_gamma": 0.9}),
    ("D prog cg.9", "progress", {}, {"curiosity_gamma": 0.9}),
    ("E adv scr256 cg.9 ent.001", "adversarial", {"screen_pixels": 256}, {"curiosity_gamma": 0.9, "ent_coef": 0.001}),
    ("E prog scr256 cg.9 ent.001", "progress", {"screen_pixels": 256}, {"curiosity_gamma": 0.9, "ent_coef": 0.001}),
    ("F adv 4x4 200", "adversarial", {"n_rooms_x": 4, "n_rooms_y": 4, "max_steps": 200}, {}),
    ("F prog 4x4 200", "progress", {"n_rooms_x": 4, "n_rooms_y": 4, "max_steps": 200}, {}),
    ("F none 4x4 200", "none", {"n_rooms_x": 4, "n_rooms_y": 4, "max_steps": 200}, {}),
    ("F rnd 4x4 200", "rnd", {"n_rooms_x": 4, "n_rooms_y": 4, "max_steps": 200}, {}),
    ("G adv seed1", "adversarial", {}, {}),
    ("G prog seed1", "progress", {}, {}),
]

def one(cfg):
    import torch
    torch.set_num_threads(1)
    name, cur, env_kw, hp = cfg
    from agents.runner import make_vec_env
    from agents.curious_cm import CuriousCM
    from stable_baselines3.common.logger import configure
    kw = {"screen_pixels": 64, **env_kw}
    seed = 1 if "seed1" in name else 0
    env = make_vec_env("mirabilis/NoisyTVRoom-v0", kw, 8, seed)
    m = CuriousCM(env, seed=seed, curiosity=cur, **{**BASE, **hp})
    m.set_logger(configure(None, []))
    t = time.time(); m.learn(int(sys.argv[1])); dt = time.time() - t
    h = m.explore_history; n = len(h)
    return dict(name=name, fps=round(int(sys.argv[1]) / dt), coverage=h[-1]["coverage"],
                tv_last20=float(np.mean([x["tv_fraction"] for x in h[int(n * .8):]])),
                cov_curve=[round(h[int(i * (n - 1) / 9)]["coverage"], 2) for i in range(10)],
                tv_curve=[round(float(np.mean([x["tv_fraction"] for x in h[int(i*n/10):int((i+1)*n/10)]])), 3) for i in range(10)])

if __name__ == "__main__":
    with mp.get_context("spawn").Pool(16) as pool:
        for r in pool.imap_unordered(one, CONFIGS):
            print(json.dumps(r), flush=True)
