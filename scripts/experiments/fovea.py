"""fovea: learned fovea trajectories with a goal input (seed Sec. 9, 12; Schmidhuber & Huber 1990).

``mirabilis/FoveaSearch-v0`` (continuous saccades, several object kinds, distractors, a one-hot
goal input naming the target kind). Labels:

* ``planner-c-m`` — C trained by back-propagation through the recurrent world model M (5 seeds);
* ``ppo`` — SB3 PPO on the same observation (5 seeds);
* ``dpg`` — deterministic policy gradient through a vector critic (5 seeds);
* ``random-saccades`` — uniformly random saccades (scripted, no learning);
* ``oracle`` — a scripted greedy saccade straight at the target (it knows where the target is):
  the lower bound on saccades.

Metrics per run, over ``EVAL_EPISODES`` evaluation episodes on scenes never used in training
(evaluation envs seeded from ``EVAL_SEED`` on): ``find_rate`` (share of episodes in which the
target is reached within the saccade budget), ``mean_saccades`` (on successful episodes), the
same per target kind (``find_rate_kind<k>``, ``mean_saccades_kind<k>``), ``curve`` (training
success rate at 10 points), ``steps_per_s`` and ``wall_time_s``. Learned agents act
deterministically in evaluation.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np

from experiments.common import (
    ExperimentResult,
    RunSpec,
    fmt,
    header_lines,
    markdown_table,
    mean_std,
    success_curve,
)

DESCRIPTION = "learned fovea trajectories with a goal input: planner-c-m vs ppo, dpg, random and an oracle (Sec. 9, 12)"
ENV = "mirabilis/FoveaSearch-v0"
#: The scene (see README): the env's defaults — 64x64 px, 4 objects of 3 kinds (target +
#: 3 distractors), 3-scale glimpse (8, 32, 128 px), saccades of up to 32 px, 10 saccades.
ENV_KWARGS: dict = {}
N_ENVS = 8
STEPS = {"planner-c-m": 30_000, "ppo": 500_000, "dpg": 20_000}
QUICK_STEPS = 800
SEEDS = 5
EVAL_EPISODES = 200
QUICK_EVAL_EPISODES = 10
EVAL_SEED = 1_000_000
#: Per-label overrides of the YAML hyperparameters (memory: TD3's default 1M-step replay of
#: 581-float observations would need 4.6 GB).
OVERRIDES = {"dpg": {"buffer_size": 100_000, "learning_starts": 1_000},
             # ppo.yml has no FoveaSearch section; SB3's 2048 steps x 8 envs per update would give few updates
             "ppo": {"n_steps": 128, "batch_size": 256, "n_epochs": 4, "ent_coef": 0.01}}
QUICK_OVERRIDES = {"dpg": {"learning_starts": 200, "buffer_size": 5_000}, "ppo": {"n_steps": 32, "n_epochs": 2},
                   "planner-c-m": {"learning_starts": 300, "model_updates": 2, "critic_updates": 2, "actor_updates": 2,
                                   "pretrain_updates": 8, "n_steps": 8}}
LEARNED = ("planner-c-m", "ppo", "dpg")
SCRIPTED = ("random-saccades", "oracle")


def plan(quick: bool) -> list[RunSpec]:
    seeds = [0] if quick else list(range(SEEDS))
    specs = []
    for label in LEARNED:
        steps = QUICK_STEPS if quick else STEPS[label]
        overrides = dict(OVERRIDES.get(label, {}))
        if quick:  # toy budget: updates must still happen
            overrides.update(QUICK_OVERRIDES.get(label, {}))
        for seed in seeds:
            specs.append(RunSpec(label, label, ENV, seed, steps, dict(ENV_KWARGS), hyperparams(label, overrides),
                                 {"quick": quick}))
    for label in SCRIPTED:
        for seed in seeds:
            specs.append(RunSpec(label, "scripted", ENV, seed, 0, dict(ENV_KWARGS), {}, {"quick": quick}))
    return specs


def hyperparams(agent: str, overrides: dict | None = None) -> dict:
    """Every hyperparameter as ``scripts/train.py`` resolves it (agents/hyperparams/<agent>.yml)."""
    from agents import config
    from agents.registry import get_agent

    return config.resolve(get_agent(agent).schema(), agent, ENV, set_overrides=overrides or {})


def slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", label).strip("_")


# --------------------------------------------------------------------------- one run


def scripted_action(label: str, env, rng: np.random.Generator) -> np.ndarray:
    un = env.unwrapped
    if label == "oracle":  # greedy: one saccade straight at the target (clipped to the jump range)
        return np.clip((un.target_pos - un.fovea_pos) / un.max_jump, -1, 1).astype(np.float32)
    return rng.uniform(-1, 1, size=env.action_space.shape).astype(np.float32)


def evaluate(policy, env_kwargs: dict, n_episodes: int, seed0: int, keep_fixations: int = 0) -> tuple[dict, list]:
    """Play ``n_episodes`` on fresh scenes; ``policy(obs, state, start, env) -> (action, state)``."""
    import gymnasium as gym

    import envs  # noqa: F401

    env = gym.make(ENV, **env_kwargs)
    un = env.unwrapped
    found, saccades, kinds, kept = [], [], [], []
    for episode in range(n_episodes):
        obs, _ = env.reset(seed=seed0 + episode)
        state, start, done, info = None, True, False, {}
        while not done:
            action, state = policy(obs, state, start, env)
            start = False
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        found.append(bool(info["is_success"]))
        saccades.append(int(info["saccades"]))
        kinds.append(int(un.target_kind))
        if episode < keep_fixations:
            kept.append({"scene": un.scene.copy(), "fixations": list(un.fixations), "target": un.target_pos.tolist(),
                         "kind": int(un.target_kind), "found": found[-1]})
    env.close()
    found_a, sacc_a, kinds_a = np.array(found), np.array(saccades), np.array(kinds)
    out = {"find_rate": round(float(found_a.mean()), 4),
           "mean_saccades": round(float(sacc_a[found_a].mean()), 3) if found_a.any() else None}
    for k in range(int(un.n_kinds)):
        sel = kinds_a == k
        if sel.any():
            out[f"find_rate_kind{k}"] = round(float(found_a[sel].mean()), 4)
            ok = sel & found_a
            out[f"mean_saccades_kind{k}"] = round(float(sacc_a[ok].mean()), 3) if ok.any() else None
    return out, kept


def run(spec: RunSpec, out_dir: Path) -> dict:
    start = time.perf_counter()
    quick = spec.options.get("quick", False)
    n_eval = QUICK_EVAL_EPISODES if quick else EVAL_EPISODES
    artifacts = out_dir / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    keep = 8 if spec.seed == 0 else 0
    curve = None
    if spec.agent == "scripted":
        rng = np.random.default_rng(spec.seed)

        def policy(obs, state, first, env):
            return scripted_action(spec.label, env, rng), None

        metrics, kept = evaluate(policy, spec.env_kwargs, n_eval, EVAL_SEED + 10_000 * spec.seed, keep)
        train_seconds, model, trained_steps = 0.0, None, 0
    else:
        from agents.registry import get_agent
        from agents.runner import make_vec_env

        agent = get_agent(spec.agent)
        env = make_vec_env(spec.env, spec.env_kwargs, N_ENVS, spec.seed, wrapper=agent.env_wrapper(spec.hyperparams))
        model = agent.build(env, spec.seed, None, spec.hyperparams)
        callback = success_curve(spec.total_steps)
        t0 = time.perf_counter()
        model.learn(spec.total_steps, callback=callback)
        train_seconds = time.perf_counter() - t0
        curve = callback.points
        trained_steps = int(model.num_timesteps)

        def policy(obs, state, first, env):
            action, state = model.predict(obs[None], state=state, episode_start=np.array([first]), deterministic=True)
            return action[0], state

        metrics, kept = evaluate(policy, spec.env_kwargs, n_eval, EVAL_SEED + 10_000 * spec.seed, keep)
        env.close()
    if kept:
        np.savez_compressed(artifacts / f"fixations_{slug(spec.label)}.npz",
                            scenes=np.stack([k["scene"] for k in kept]),
                            meta=json.dumps([{k: v for k, v in e.items() if k != "scene"} for e in kept]))
    if model is not None and spec.seed == 0 and spec.label == "planner-c-m":
        render_gif(model, spec, out_dir / "episode_planner_c_m.gif")
    metrics.update({"curve": curve, "train_seconds": round(train_seconds, 1),
                    "steps_per_s": round(trained_steps / train_seconds, 1) if train_seconds else None,
                    "wall_time_s": round(time.perf_counter() - start, 1)})
    return metrics


def render_gif(model, spec: RunSpec, path: Path, episodes: int = 3) -> None:
    """A few evaluation episodes (the glimpse, the goal and the fovea's path), rendered by the env."""
    from agents.runner import make_env
    from agents.video import headless, run_episodes, write_video

    headless()
    env = make_env(spec.env, spec.env_kwargs, render_mode="rgb_array")
    frames: list[np.ndarray] = []
    run_episodes(model, env, episodes, deterministic=True, seed=EVAL_SEED + 999, on_frame=frames.append)
    env.close()
    frames = [f[::2, ::2] for f in frames]  # half resolution keeps the GIF small
    frames += [frames[-1]] * 2  # linger on the last fixation
    write_video(frames, path, fps=2)


# --------------------------------------------------------------------------- report


def report(result: ExperimentResult, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = result.labels()
    lines = header_lines(result, "Fovea: learning where to look for a named target")
    steps = {r["label"]: r["total_steps"] for r in result.runs if r["total_steps"]}
    lines += [
        f"`{ENV}` with kwargs `{json.dumps(ENV_KWARGS)}` (the env's defaults: a 64×64 px scene with 4 objects of "
        "3 kinds — the target and 3 distractors, whose kinds differ from the target's — on a jittered lattice, "
        "grey clutter; a one-hot goal input names the target kind; C sees only a 3-scale glimpse of 8, 32 and 128 "
        "px around the fovea, each averaged down to 8×8 px, and the fovea position; a saccade moves the fovea by "
        "up to 32 px per axis; the target is found when it lies within the sharp 8 px patch; 10 saccades at most).",
        "",
        "Training budgets (env steps, " + f"{N_ENVS} envs): " + ", ".join(f"`{k}` {v:,}" for k, v in steps.items())
        + ". Hyperparameters: `agents/hyperparams/<agent>.yml` over the constructor defaults, plus "
        f"`{json.dumps(OVERRIDES)}` (ppo.yml has no FoveaSearch section; TD3's 1M-step replay of 581-float "
        "observations would need 4.6 GB); every resolved value is in `metrics.json`. Evaluation: "
        f"{EVAL_EPISODES if not result.quick else QUICK_EVAL_EPISODES} episodes per run on scenes never used in "
        "training, learned agents acting deterministically.",
        "",
    ]
    kinds = sorted({int(k[len("find_rate_kind"):]) for r in result.runs for k in r["metrics"]
                    if k.startswith("find_rate_kind")})
    header = ["label", "seeds", "find_rate", "mean_saccades (found)"] + [f"find_rate kind {k}" for k in kinds] \
        + ["train steps/s", "wall time per seed (s)"]
    rows = []
    for label in labels:
        runs = [r for r in result.runs if r["label"] == label]
        row = [label, len(runs), fmt(*mean_std(result.values(label, "find_rate")), 3),
               fmt(*mean_std(result.values(label, "mean_saccades")), 2)]
        row += [fmt(*mean_std(result.values(label, f"find_rate_kind{k}")), 3) for k in kinds]
        row += [fmt(*mean_std(result.values(label, "steps_per_s")), 0),
                fmt(*mean_std([r["wall_time_s"] for r in runs]), 0)]
        rows.append(row)
    lines += ["## Results (mean ± standard deviation over seeds)", "", markdown_table(header, rows), ""]
    lines += verdicts(result)
    lines += per_seed_table(result)
    plot_curves(result, out_dir, plt)
    plot_fixations(out_dir, plt)
    lines += ["## Learning curves", "", "![training success rate](curves.png)", ""]
    if (out_dir / "fixations.png").exists():
        lines += ["## Fixation sequences (evaluation scenes; numbers are the saccade order, the square marks the target)",
                  "", "![fixation sequences](fixations.png)", ""]
    if (out_dir / "episode_planner_c_m.gif").exists():
        lines += ["## Episodes of `planner-c-m` (seed 0, deterministic; right: the goal and what C sees)", "",
                  "![planner-c-m episodes](episode_planner_c_m.gif)", ""]
    lines += ["## Per-run numbers", "", "See `metrics.json` (one entry per label and seed)."]
    (out_dir / "README.md").write_text("\n".join(lines) + "\n")


def per_seed_table(result: ExperimentResult) -> list[str]:
    rows = []
    for r in result.runs:
        if r["agent"] == "scripted":
            continue
        m = r["metrics"]
        rows.append([r["label"], r["seed"], m.get("find_rate", "—"), m.get("mean_saccades", "—"),
                     r.get("wall_time_s", "—")])
    if not rows:
        return []
    return ["## Per seed", "", markdown_table(["label", "seed", "find_rate", "mean_saccades", "wall time (s)"], rows), ""]


def verdicts(result: ExperimentResult) -> list[str]:
    out = ["## Target", ""]
    oracle = result.values("oracle", "mean_saccades")
    planner = [r for r in result.runs if r["label"] == "planner-c-m" and r["metrics"]]
    if planner and oracle:
        bound = 1.5 * float(np.mean(oracle))
        rates = [r["metrics"]["find_rate"] for r in planner]
        sacc = [r["metrics"]["mean_saccades"] or float("inf") for r in planner]
        ok = all(f >= 0.95 for f in rates) and all(s <= bound for s in sacc)
        out.append(f"- `planner-c-m` finds the named target in ≥ 95% of episodes on every seed with mean saccades "
                   f"≤ 1.5 × the oracle's ({bound:.2f}) — **{'met' if ok else 'MISSED'}** (worst seed: find_rate "
                   f"{min(rates):.3f}, mean saccades {max(sacc):.2f}; oracle {np.mean(oracle):.2f}).")
        if not ok:
            missing, slow = sum(f < 0.95 for f in rates), sum(x > bound for x in sacc)
            if missing:
                out.append(f"  {missing} of {len(rates)} seeds below 95%; the closest seed reached {max(rates):.3f}.")
            if slow:
                out.append(f"  {slow} of {len(rates)} seeds above {bound:.2f} mean saccades; the fewest: "
                           f"{min(sacc):.2f}.")
        out.append(HOW)
    random_rate = result.values("random-saccades", "find_rate")
    if random_rate:
        out.append(f"- random saccades find the target in {np.mean(random_rate):.3f} of episodes (the floor).")
    return out + [""]


#: How planner-c-m got here (the numbers in the verdict above are this run's own).
HOW = (
    "  *How.* C can only be as good as M's gradient: M must predict the *found* reward as a function of glimpse "
    "and saccade — where the goal-coloured blob sits in the coarse patches, compared with where the saccade lands, "
    "to within ±4 px — from sparse hits (random saccades: the `random-saccades` row, over up to 10 saccades an episode). With an MLP over the "
    "flattened glimpse and the action (commit 9b64aec; that commit's `results/fovea/`) M's predicted *found* "
    "reward stayed flat over the saccades of a scene, and C found the target less often than random saccades. "
    "`spatial_readout` (`world_models/retina.py`, on in `agents/hyperparams/planner-c-m.yml`) gives M and C the "
    "retina's geometry: M reads per-pixel scores of colour and goal out at the saccade's landing point through a "
    "Gaussian of the distance, C's saccade is a soft-argmax over the glimpse pixels, and every pixel's saccade is "
    "imagined at once, so C's softmax ascends the exact expectation of M's predicted reward. In evaluation C "
    "saccades to that softmax's most probable pixel (`deterministic_saccade: argmax`): evaluated at the "
    "softmax's mean instead, the controllers of commit ae1b503's `results/fovea/` took 1.77 to 2.37 saccades "
    "per find, the same controllers at its mode 1.27 to 1.34 (commit 0845f57's), since the mean of a softmax "
    "split between two pixels lands between them. With C's learning rate at 0.001 (those two commits) one seed "
    "in five found fewer than half of the targets; a probe suggests C had learned from M's early errors about "
    "targets seen only in the coarsest patch (`agents/hyperparams/planner-c-m.yml`). At 0.0005 (commit 4861aa6's "
    "`results/fovea/`) another seed found 0.755 of them: its saccades were C's recurrent core output plus the "
    "saccade head's, and the core's term, which the candidate objective does not see, moved them by several pixels; "
    "C's saccade is now the saccade head's alone (`saccade_from_core: false`). Then (commit dd24c11's "
    "`results/fovea/`) one seed found 0.84: for far targets, seen only in the coarsest patch, M rated every "
    "candidate low but its best-rated one still led towards the target, while C's softmax, whose pull from the "
    "expectation shrinks with the spread of M's ratings, stayed flat; a cross-entropy to M's best-rated candidate "
    "now pulls C there too (`candidate_imitation`). Mean saccades above 1 "
    "(the oracle's) count the episodes whose first saccade, aimed from the coarse patches, left the target outside the sharp "
    "8 px patch.")
def plot_curves(result: ExperimentResult, out_dir: Path, plt) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for label in result.labels():
        runs = [r for r in result.runs if r["label"] == label and r["metrics"].get("curve")]
        if not runs:
            continue
        curves = np.array([[np.nan if v is None else v for v in r["metrics"]["curve"]] for r in runs], dtype=float)
        x = np.linspace(runs[0]["total_steps"] / curves.shape[1], runs[0]["total_steps"], curves.shape[1])
        mean, std = np.nanmean(curves, 0), np.nanstd(curves, 0)
        ax.plot(x, mean, label=label)
        ax.fill_between(x, mean - std, mean + std, alpha=0.15)
    for label, style in (("oracle", ":"), ("random-saccades", "--")):
        vals = result.values(label, "find_rate")
        if vals:
            ax.axhline(float(np.mean(vals)), linestyle=style, color="grey", label=f"{label} (eval)")
    ax.set(title="training success rate (last 100 episodes)", xlabel="env steps", ylim=(-0.02, 1.02))
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out_dir / "curves.png", dpi=110)
    plt.close(fig)


def plot_fixations(out_dir: Path, plt) -> None:
    sources = [(label, out_dir / "artifacts" / f"fixations_{slug(label)}.npz") for label in ("planner-c-m", "oracle",
                                                                                             "ppo")]
    sources = [(label, p) for label, p in sources if p.exists()]
    if not sources:
        return
    n_scenes = 4
    fig, axes = plt.subplots(len(sources), n_scenes, figsize=(2.6 * n_scenes, 2.8 * len(sources)), squeeze=False)
    from envs.fovea_search import kind_name

    for row, (label, path) in enumerate(sources):
        data = np.load(path)
        meta = json.loads(str(data["meta"]))
        for col in range(n_scenes):
            ax = axes[row, col]
            ax.axis("off")
            if col >= len(meta):
                continue
            scene, m = data["scenes"][col], meta[col]
            ax.imshow(scene, interpolation="nearest")
            xs, ys = zip(*m["fixations"])
            ax.plot(xs, ys, "-o", color="magenta", markersize=3, linewidth=1.2)
            for i, (x, y) in enumerate(m["fixations"]):
                ax.text(x + 1, y - 1, str(i), color="white", fontsize=7)
            tx, ty = m["target"]
            ax.add_patch(plt.Rectangle((tx - 5, ty - 5), 10, 10, fill=False, edgecolor="lime", linewidth=1))
            ax.set_title(f"{label}: {kind_name(m['kind'])}" + ("" if m["found"] else " (missed)"), fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "fixations.png", dpi=110)
    plt.close(fig)
