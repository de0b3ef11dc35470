"""pomaze: LSTM-RL vs RecurrentPPO vs PPO in random mazes seen through a 3x3 window.

Seed Sec. 4 and 11: ``mirabilis/POMaze-v0`` with ``task="goal"``, a new random 4x4-cell maze
(9x9 grid) every episode, a 3x3 egocentric window; reward vector (goal, bump, step cost).
Labels ``lstm-rl`` (this repo, its ``agents/hyperparams/lstm-rl.yml`` POMaze defaults),
sb3-contrib ``recurrent-ppo`` and SB3 ``ppo``, 5 seeds each, the same env-step budget, 8 envs;
the baselines get lstm-rl's PPO-level settings and RecurrentPPO its LSTM size (as in ``tmaze``).

Metrics per run, from 200 evaluation episodes after training (fresh seeds, so fresh mazes):

* ``success_rate`` / ``mean_episode_length`` — actions sampled from the policy (as in training;
  memory-less policies need the randomness to get out of loops); a failed episode counts with the
  env's time limit (324 steps);
* ``success_rate_greedy`` / ``mean_episode_length_greedy`` — the same mazes, greedy actions;
* ``mean_shortest_path`` — the env's BFS shortest path (``info["shortest_path"]``) of the same
  mazes, and ``length_ratio`` / ``length_ratio_greedy`` — mean of episode length / shortest path
  over the *successful* episodes (1.0 = optimal);
* ``check_curve`` — (env steps, success rate of 50 episodes, sampled actions) every ``budget / 20`` steps;
* ``steps_per_s`` — training env steps per second (one torch thread; checks excluded).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from experiments.common import (
    ExperimentResult,
    RunSpec,
    fmt,
    header_lines,
    markdown_table,
    mean_std,
)
from experiments.tmaze import baseline_hyperparams, evaluate, make_envs, resolved, train

DESCRIPTION = "LSTM-RL vs RecurrentPPO vs PPO in random mazes seen through a 3x3 window (Sec. 4, 11)"
ENV = "mirabilis/POMaze-v0"
#: no bump penalty (the env's default weights are (1, 0.05, 0.01)): with it -- this command at commit 7f0abee,
#: ``git show 7f0abee:results/pomaze/metrics.json`` -- both recurrent learners' periodic checks fell from the
#: random walk's ~0.5 to ~0.15 over training: they learned to stop bumping into walls (and exploring) long
#: before they learned to find the goal. The same weights for every label.
ENV_KWARGS = {"task": "goal", "size": 9, "view_size": 3, "weights": [1.0, 0.0, 0.01]}
LABELS = ("lstm-rl", "recurrent-ppo", "ppo")
N_ENVS = 8
BUDGET = 200_000
SEEDS = 5
EVAL_EPISODES = 200
OPTIONS = {"n_envs": N_ENVS, "n_checks": 20, "check_episodes": 50}
QUICK_BUDGET = 1024
QUICK_OPTIONS = {"n_envs": N_ENVS, "n_checks": 2, "check_episodes": 10, "eval_episodes": 20}


def plan(quick: bool) -> list[RunSpec]:
    ours = resolved("lstm-rl", env=ENV)
    hps = {"lstm-rl": ours, "recurrent-ppo": baseline_hyperparams("recurrent-ppo", ours, env=ENV),
           "ppo": baseline_hyperparams("ppo", ours, env=ENV)}
    specs = []
    for label in ("recurrent-ppo", "lstm-rl", "ppo"):  # the slowest first: the pool ends sooner
        for seed in range(1 if quick else SEEDS):
            specs.append(RunSpec(label, label, ENV, seed, QUICK_BUDGET if quick else BUDGET, dict(ENV_KWARGS),
                                 hps[label], dict(QUICK_OPTIONS if quick else OPTIONS)))
    return specs


def _summary(result: dict, suffix: str) -> dict:
    success, lengths = result["success"], result["lengths"]
    shortest = np.array([info.get("shortest_path", np.nan) for info in result["infos"]], dtype=float)
    ratio = (lengths[success] / shortest[success]) if success.any() else np.array([])
    return {
        f"success_rate{suffix}": round(float(success.mean()), 4),
        f"mean_episode_length{suffix}": round(float(lengths.mean()), 2),
        f"length_ratio{suffix}": round(float(ratio.mean()), 3) if ratio.size else None,
        "mean_shortest_path": round(float(np.nanmean(shortest)), 2),
    }


def run(spec: RunSpec, out_dir: Path) -> dict:
    model, checker, seconds, wrapper = train(spec, cap=None)
    envs = make_envs(spec.env, spec.env_kwargs, wrapper, spec.options.get("eval_episodes", EVAL_EPISODES))
    seed = 1_000_000 + 1000 * spec.seed  # the same mazes for both evaluations and for every label
    sampled = evaluate(model, envs, seed=seed, deterministic=False)
    greedy = evaluate(model, envs, seed=seed)
    if spec.agent == "lstm-rl" and spec.seed == 0:
        (out_dir / "artifacts").mkdir(parents=True, exist_ok=True)
        model.save(out_dir / "artifacts" / "lstm-rl_seed0.safetensors")
    return {**_summary(sampled, ""), **_summary(greedy, "_greedy"), "check_curve": checker.curve,
            "steps_per_s": round(spec.total_steps / max(seconds, 1e-9), 1)}


def render_gif(model_path: Path, gif: Path, seed: int = 3) -> dict:
    """One episode (sampled actions) of a saved lstm-rl agent in a fresh maze, as a GIF."""
    from agents.lstm_rl import LSTMRL
    from agents.runner import make_env
    from agents.video import headless, run_episodes, write_video
    from agents.wrappers import PreviousActionReward

    headless()
    model = LSTMRL.load(model_path, env=None)
    env = PreviousActionReward(make_env(ENV, dict(ENV_KWARGS), render_mode="rgb_array"))
    import torch

    torch.manual_seed(seed)
    frames: list[np.ndarray] = []
    episode = run_episodes(model, env, 1, deterministic=False, seed=seed, on_frame=frames.append)[0]
    episode["shortest_path"] = env.unwrapped.shortest_path
    env.close()
    write_video([f[::2, ::2] for f in frames], gif, fps=10)
    return episode


# --------------------------------------------------------------------------- report


def report(result: ExperimentResult, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = header_lines(result, "POMaze: LSTM-RL vs RecurrentPPO vs PPO in random partially observable mazes")
    budget = result.runs[0]["total_steps"] if result.runs else 0
    ours = next((r["hyperparams"] for r in result.runs if r["label"] == "lstm-rl"), {})
    shown = {k: ours[k] for k in ("n_steps", "seq_len", "n_epochs", "n_minibatches", "learning_rate", "gamma",
                                   "gae_lambda", "ent_coef", "lstm_size", "encoder_size", "critic_lstm",
                                   "forget_bias", "persistence") if k in ours}
    lines += [
        f"`{ENV}` with `{json.dumps(ENV_KWARGS)}`: a new random perfect maze of 4×4 cells every episode, start "
        "and goal on random cells, the agent sees only the 3×3 window around itself (one-hot cell types) and gets "
        "a reward vector (goal, bump, step cost) weighted by `weights`: +1 at the goal, -0.01 per step, and no "
        "bump penalty (with the env's default -0.05 per bump -- this command at commit 7f0abee -- the recurrent "
        "learners' success fell from the random walk's ~0.5 to ~0.15 as they learned to stop bumping into walls, "
        "and exploring, before they learned to find the goal). Episodes end at the goal or after 324 steps. "
        f"{budget:,} env steps per run, {N_ENVS} envs. `lstm-rl`: `{json.dumps(shown)}` (the defaults of "
        "`agents/hyperparams/lstm-rl.yml`); `recurrent-ppo` and `ppo` get the same rollout length, epochs, "
        "minibatch size, learning rate, discount, GAE lambda and entropy coefficient, RecurrentPPO the same "
        "LSTM size.",
        "",
        "Evaluation: 200 fresh mazes (the same 200 for every run and label), actions sampled from the policy "
        "(as in training) and, in the `greedy` columns, greedy actions. "
        "Episode lengths count failures at the 324-step limit; `length / shortest` is the mean ratio of episode "
        "length to the BFS shortest path over the successful episodes (1.00 = optimal).",
        "",
    ]
    header = ["label", "seeds", "success", "episode length", "length / shortest", "success (greedy)",
              "length (greedy)", "length / shortest (greedy)", "shortest path", "steps/s"]
    rows = []
    for label in result.labels():
        n = len([r for r in result.runs if r["label"] == label])

        def cell(metric, digits):
            return fmt(*mean_std(result.values(label, metric)), digits)

        rows.append([f"`{label}`", n, cell("success_rate", 2), cell("mean_episode_length", 1),
                     cell("length_ratio", 2), cell("success_rate_greedy", 2),
                     cell("mean_episode_length_greedy", 1), cell("length_ratio_greedy", 2),
                     cell("mean_shortest_path", 1), cell("steps_per_s", 0)])
    lines += ["## Results (mean ± standard deviation over seeds)", "", markdown_table(header, rows), ""]
    plot_curves(result, out_dir, plt)
    lines += ["## Learning curves (periodic checks: share of 50 fresh mazes solved; mean ± sd over seeds)",
              "", "![learning curves](curves.png)", ""]
    model_path = out_dir / "artifacts" / "lstm-rl_seed0.safetensors"
    if model_path.exists():
        episode = render_gif(model_path, out_dir / "episode.gif")
        outcome = "reached the goal" if episode["is_success"] else "did NOT reach the goal"
        lines += ["## One episode (seed-0 `lstm-rl` agent, a maze it never saw, sampled actions)", "",
                  f"{episode['length']} steps (shortest path {episode['shortest_path']}); it {outcome}. The shaded "
                  "area is what it does not see.", "", "![episode](episode.gif)", ""]
    lines += ["## Per-run numbers", "", "See `metrics.json` (one entry per label and seed)."]
    (out_dir / "README.md").write_text("\n".join(lines) + "\n")


def plot_curves(result: ExperimentResult, out_dir: Path, plt) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for label in result.labels():
        curves = [r["metrics"]["check_curve"] for r in result.runs if r["label"] == label
                  and r["metrics"].get("check_curve")]
        if not curves:
            continue
        n = min(len(c) for c in curves)
        x = np.array([p[0] for p in curves[0][:n]])
        y = np.array([[p[1] for p in c[:n]] for c in curves])
        ax.plot(x, y.mean(0), label=label)
        ax.fill_between(x, y.mean(0) - y.std(0), y.mean(0) + y.std(0), alpha=0.15)
    ax.set(xlabel="env steps", ylabel="success", ylim=(-0.02, 1.02))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "curves.png", dpi=110)
    plt.close(fig)
