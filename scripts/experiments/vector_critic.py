"""``vector_critic``: a critic per reward channel vs one scalar critic, on StartGoalNav-v0 (issue 5, exp. 2).

`StartGoalNav-v0` (layout `wall`, goals commanded per episode, hindsight relabelling) emits three
channels: `reached` (+1 on arrival, which ends the episode), `step_cost` (−1 per step) and
`collision` (−1 when a move is stopped by the wall or the plane's edge: pain). Runs:

* **vector critic** — `dpg` learning one value per channel, weights W0;
* **scalar critic** — `dpg` with one critic on the weighted sum W0 · r (`vector_critic=False`);
* **from scratch on W1** — the vector critic trained with the new weights W1 from the start.

After training, each critic's predictions `Q(s, μ(s))` along deterministic evaluation episodes are
compared with the discounted Monte-Carlo returns measured on those episodes (per channel for the
vector critic; of the weighted sum for both). Then the weights of every vector-critic run change to
W1 and only the actor is re-optimised against the critics it already has (`DPG.retarget`, no env
steps); a short fine-tuning phase with new env steps (critics and actor, W1) follows.
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
    plot_learning_curves,
)
from experiments.pendulum_dpg import LearningCurve, build_config, run_dir

DESCRIPTION = "vector vs scalar critic on StartGoalNav-v0; values vs Monte-Carlo returns; retarget pain x10"
NAME = "vector_critic"
ENV = "mirabilis/StartGoalNav-v0"
CHANNELS = ("reached", "step_cost", "collision")
W0 = [1.0, 1.0, 1.0]  # reach the goal soon; a collision hurts like a wasted step
W1 = [1.0, 1.0, 10.0]  # pain x10
SEEDS = range(4)
LABELS = {"vector": "vector critic", "scalar": "scalar critic", "scratch": "vector critic, W1 from scratch"}
HP = {"net_arch": [128, 128], "action_noise_std": 0.2}


def plan(quick: bool) -> list[RunSpec]:
    steps, seeds = (400, [0]) if quick else (30_000, SEEDS)
    options = {"eval_every": 200 if quick else 5000, "curve_episodes": 2 if quick else 20,
               "eval_episodes": 3 if quick else 100, "retarget_steps": 50 if quick else 1000,
               "finetune_steps": 200 if quick else 3000}
    hp = {**HP, "learning_starts": 150} if quick else HP
    specs = []
    for seed in seeds:
        specs += [
            RunSpec(LABELS["vector"], "dpg", ENV, seed, steps, {"weights": W0}, dict(hp), dict(options, retarget=True)),
            RunSpec(LABELS["scalar"], "dpg", ENV, seed, steps, {"weights": W0}, {**hp, "vector_critic": False}, options),
            RunSpec(LABELS["scratch"], "dpg", ENV, seed, steps, {"weights": W1}, dict(hp), options),
        ]
    return specs


# --------------------------------------------------------------------------- measuring an agent


def evaluate(model, weights, n_episodes: int, seed: int = 20_000, keep_values: bool = False) -> dict:
    """Deterministic episodes on the env with ``weights``: behaviour, and critic vs Monte-Carlo returns.

    Value errors use the episodes that ended at the goal (their returns are complete); the critic's
    estimate is the twin whose weighted value is lower (what its TD targets use).
    """
    import gymnasium as gym
    import torch

    env = gym.make(ENV, weights=list(map(float, weights)))
    w = np.asarray(weights, np.float32)
    gammas = model.channels.gammas.astype(np.float64)
    vector = model.vector_critic
    successes, collisions, ratios, returns, predicted, measured = [], [], [], [], [], []
    for episode in range(n_episodes):
        obs, info = env.reset(seed=seed + episode)
        done, hits, rewards, values = False, 0, [], []
        while not done:
            batch = {k: v[None] for k, v in obs.items()}
            with torch.no_grad():
                x = model.policy.features(model.policy.obs_to_tensor(batch)[0])
                a = model.policy.actor(x)
                q = model.policy.critic(torch.cat([x, a], dim=1))[:, 0, :]  # [E, C]
                q = q[(q @ model._critic_w).argmin()].numpy()
            values.append(q)
            action = model.policy.unscale_action(a.numpy())[0]
            obs, _, terminated, truncated, info = env.step(action)
            rewards.append(info["vector_reward"])
            hits += int(info["collision"])
            done = terminated or truncated
        rewards = np.asarray(rewards, np.float64)
        successes.append(bool(info["is_success"]))
        collisions.append(hits)
        returns.append(float(rewards.sum(0) @ w))
        if info["is_success"]:
            ratios.append(info["path_length"] / max(info["shortest_path"], 1e-9))
            g, mc = np.zeros(len(w)), np.zeros_like(rewards)
            for t in range(len(rewards) - 1, -1, -1):
                g = rewards[t] + gammas * g
                mc[t] = g
            predicted.append(np.asarray(values))
            measured.append(mc)
    env.close()
    out = {"success_rate": float(np.mean(successes)), "collisions": float(np.mean(collisions)),
           "path_ratio": float(np.mean(ratios)) if ratios else None, "return": float(np.mean(returns)),
           "value_states": int(sum(len(m) for m in measured))}
    if measured:
        pred, meas = np.concatenate(predicted), np.concatenate(measured)
        pred_w = pred @ w if vector else pred[:, 0]
        out["value_error_weighted"] = float(np.mean(np.abs(pred_w - meas @ w)))
        out["mc_return_weighted"] = float(np.mean(meas @ w))
        if vector:
            for c, name in enumerate(CHANNELS):
                out[f"value_error_{name}"] = float(np.mean(np.abs(pred[:, c] - meas[:, c])))
                out[f"mc_return_{name}"] = float(np.mean(meas[:, c]))
        if keep_values:
            pick = np.random.default_rng(0).permutation(len(meas))[:400]
            out["_pairs"] = {"predicted": pred[pick].tolist(), "measured": meas[pick].tolist()}
    return out


# --------------------------------------------------------------------------- one run


def run(spec: RunSpec, out_dir: Path) -> dict:
    from agents import runner

    opts = spec.options
    config = build_config(spec)
    weights = spec.env_kwargs["weights"]
    curve = _SuccessCurve(weights, opts["eval_every"], opts["curve_episodes"])
    result = runner.train(config, run_dir(spec, out_dir, NAME), overwrite=True, progress_bar=False,
                          extra_callbacks=[curve], command=f"reproduce.py {NAME}")
    model = result.model
    metrics = evaluate(model, weights, opts["eval_episodes"], keep_values=True)
    pairs = metrics.pop("_pairs", None)
    if pairs is not None:
        folder = Path(out_dir) / "values"
        folder.mkdir(parents=True, exist_ok=True)
        tag = spec.label.replace(" ", "_").replace(",", "")
        (folder / f"{tag}_seed{spec.seed}.json").write_text(json.dumps(pairs))
    metrics.update(curve_steps=curve.steps, curve_success=curve.returns,
                   steps_per_s=result.steps / max(result.seconds - curve.seconds, 1e-9))
    if opts.get("retarget"):
        metrics["return_w1"] = evaluate(model, W1, opts["eval_episodes"])["return"]
        model.retarget(W1, gradient_steps=opts["retarget_steps"])
        metrics.update({f"retarget_{k}": v for k, v in evaluate(model, W1, opts["eval_episodes"]).items()
                        if not k.startswith(("value", "mc_"))})
        from stable_baselines3.common.logger import configure

        model.set_logger(configure(str(run_dir(spec, out_dir, NAME) / "finetune"), ["tensorboard"]))
        model.set_env(_vec_env(W1, spec.seed + 100))
        model.learn(opts["finetune_steps"], reset_num_timesteps=False)
        metrics["finetune_env_steps"] = opts["finetune_steps"]
        metrics.update({f"finetune_{k}": v for k, v in evaluate(model, W1, opts["eval_episodes"]).items()
                        if not k.startswith(("value", "mc_"))})
        model.save(run_dir(spec, out_dir, NAME) / "checkpoints" / "retargeted_finetuned.safetensors")
    return metrics


def _vec_env(weights, seed: int):
    from stable_baselines3.common.env_util import make_vec_env

    return make_vec_env(ENV, n_envs=1, seed=seed, env_kwargs={"weights": list(weights)})


class _SuccessCurve(LearningCurve):
    """Success rate of deterministic episodes every ``every`` steps (stored as ``returns``)."""

    def __init__(self, weights, every: int, episodes: int):
        super().__init__(None, every, episodes)
        self.weights = weights

    def _on_step(self) -> bool:
        if self.num_timesteps % self.every == 0:
            import time

            start = time.perf_counter()
            self.steps.append(int(self.num_timesteps))
            self.returns.append(evaluate(self.model, self.weights, self.episodes, seed=30_000)["success_rate"])
            self.seconds += time.perf_counter() - start
        return True


# --------------------------------------------------------------------------- report


def report(result: ExperimentResult, out_dir: Path) -> None:
    out_dir = Path(out_dir)
    vec, sca, scr = LABELS["vector"], LABELS["scalar"], LABELS["scratch"]

    def cell(label, metric, digits=2):
        return fmt(*mean_std(result.values(label, metric)), digits)

    lines = header_lines(result, "Vector-valued critics on StartGoalNav-v0")
    lines += [__doc__.split("\n\n", 1)[1].strip(), "",
              (f"W0 = {W0}, W1 = {W1} (weights of `reached`, `step_cost`, `collision`). `dpg` with its "
              f"`agents/hyperparams/dpg.yml` StartGoalNav settings plus {HP}; "
              f"{result.runs[0]['total_steps'] if result.runs else 0} env steps per run; "
              f"{len({r['seed'] for r in result.runs})} seeds; mean ± sd over seeds."), ""]
    lines += _findings(result)
    rows = [[label, cell(label, "success_rate"), cell(label, "collisions"), cell(label, "path_ratio"),
             cell(label, "return", 1), cell(label, "value_error_weighted"), cell(label, "mc_return_weighted")]
            for label in (vec, sca)]
    lines += ["## Vector vs scalar critic (weights W0)", "",
              markdown_table(["critic", "success rate", "collisions / episode", "path ÷ shortest (successes)",
                              "return (W0)", "value error: mean abs(w·Q − w·G)", "w·G (mean)"], rows), "",
              ("Evaluation: 100 fixed start/goal pairs, deterministic actions. G = discounted Monte-Carlo return "
              "measured from each state of the episodes that reached their goal."), ""]
    rows = [[f"`{name}`", cell(vec, f"mc_return_{name}"), cell(vec, f"value_error_{name}")] for name in CHANNELS]
    lines += ["## Each channel's value against its measured return (vector critic)", "",
              markdown_table(["channel", "measured return G (mean over states)", "mean abs(Q − G) over states"], rows),
              ""]
    if _plot_values(out_dir):
        lines += ["![values vs returns](values_vs_returns.png)", ""]
    rows = [
        ["vector critic trained on W0 (before)", cell(vec, "success_rate"), cell(vec, "collisions"),
         cell(vec, "path_ratio"), cell(vec, "return_w1", 1), "0"],
        ["→ actor re-optimised for W1 against the learned critics", cell(vec, "retarget_success_rate"),
         cell(vec, "retarget_collisions"), cell(vec, "retarget_path_ratio"), cell(vec, "retarget_return", 1), "0"],
        ["→ then fine-tuned with new env steps", cell(vec, "finetune_success_rate"), cell(vec, "finetune_collisions"),
         cell(vec, "finetune_path_ratio"), cell(vec, "finetune_return", 1),
         f"{mean_std(result.values(vec, 'finetune_env_steps'))[0]:.0f}"],
        ["trained from scratch on W1", cell(scr, "success_rate"), cell(scr, "collisions"), cell(scr, "path_ratio"),
         cell(scr, "return", 1), str(result.runs[0]["total_steps"] if result.runs else "")],
    ]
    lines += ["## Changing the weights after training: pain ×10", "",
              markdown_table(["policy", "success rate", "collisions / episode", "path ÷ shortest",
                              "return (W1)", "new env steps"], rows), ""]
    if plot_learning_curves(result, out_dir / "learning_curves.png", "curve_success", "success rate", ylim=(-0.02, 1.02)):
        lines += ["## Learning curves", "", ("Success rate of deterministic evaluation episodes during training "
                  "(mean ± sd over seeds)."), "", "![learning curves](learning_curves.png)", ""]
    gif = _episode_gif(result, out_dir)
    if gif:
        lines += ["## A trained episode", "", f"Vector critic, seed {gif[1]}, weights W0, deterministic:", "",
                  f"![StartGoalNav episode]({gif[0]})", ""]
    per_seed = [[r["label"], r["seed"], _num(r, "success_rate"), _num(r, "collisions"), _num(r, "value_error_weighted"),
                 _num(r, "steps_per_s", 0), "failed" if r["error"] else ""] for r in result.runs]
    lines += ["## Every run", "", markdown_table(["run", "seed", "success", "collisions", "abs(w·Q − w·G)", "steps/s", ""],
                                                 per_seed), ""]
    (out_dir / "README.md").write_text("\n".join(lines))


def _findings(result: ExperimentResult) -> list[str]:
    """What the tables below show, in words computed from them (nothing here is typed in by hand)."""
    vec, sca, scr = LABELS["vector"], LABELS["scalar"], LABELS["scratch"]
    if not result.values(vec, "success_rate") or not result.values(sca, "success_rate"):
        return []

    def ms(label, metric):
        return mean_std(result.values(label, metric))

    def compare(a, b, higher="better"):
        (ma, sa), (mb, sb) = a, b
        if abs(ma - mb) <= max(sa, sb):
            return "within one standard deviation of"
        return ("above" if ma > mb else "below") if higher == "better" else ("below" if ma < mb else "above")

    v, s = ms(vec, "success_rate"), ms(sca, "success_rate")
    out = ["## What this shows", "",
           f"* **Vector vs scalar critic.** Success {v[0]:.2f} ± {v[1]:.2f} with the vector critic, "
           f"{s[0]:.2f} ± {s[1]:.2f} with the scalar one: {compare(v, s)} it"
           + (" (on this task, with W0, learning the channels separately buys no better policy)."
              if compare(v, s) != "above" else ".")]
    scale = []
    for name in CHANNELS:
        err, ret = ms(vec, f"value_error_{name}")[0], ms(vec, f"mc_return_{name}")[0]
        scale.append(f"`{name}` {err:.2f} against a mean return of {ret:.2f}")
    out.append("* **Channels against their returns.** Mean abs(Q − G): " + "; ".join(scale) + ".")
    before, after = ms(vec, "collisions"), ms(vec, "retarget_collisions")
    tuned, scratch = ms(vec, "finetune_collisions"), ms(scr, "collisions")
    verdict = ("reduced" if after[0] < before[0] - before[1] else "did not clearly reduce")
    out.append(f"* **Retargeting to pain ×10 without env steps** {verdict} collisions ({before[0]:.2f} → "
               f"{after[0]:.2f} per episode; success {ms(vec, 'success_rate')[0]:.2f} → "
               f"{ms(vec, 'retarget_success_rate')[0]:.2f}): the critics only value the old policy's behaviour, so one "
               f"re-optimisation of the actor against them has little to go on. A short fine-tuning with new env steps "
               f"({mean_std(result.values(vec, 'finetune_env_steps'))[0]:.0f} instead of "
               f"{result.runs[0]['total_steps']}) brought collisions to {tuned[0]:.2f} ± {tuned[1]:.2f}, "
               f"{compare(tuned, scratch)} training from scratch on W1 ({scratch[0]:.2f} ± {scratch[1]:.2f}).")
    return out + [""]


def _num(run, metric, digits=2):
    value = run["metrics"].get(metric)
    return "—" if value is None else f"{value:.{digits}f}"


def _plot_values(out_dir: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = sorted((out_dir / "values").glob("vector_critic_seed*.json"))
    if not files:
        return False
    pairs = [json.loads(f.read_text()) for f in files]
    fig, axes = plt.subplots(1, len(CHANNELS), figsize=(12, 3.8))
    for c, (ax, name) in enumerate(zip(axes, CHANNELS)):
        pred = np.concatenate([np.asarray(p["predicted"])[:, c] for p in pairs if p["predicted"]])
        meas = np.concatenate([np.asarray(p["measured"])[:, c] for p in pairs if p["measured"]])
        ax.scatter(meas, pred, s=4, alpha=0.35)
        lo, hi = min(meas.min(), pred.min()), max(meas.max(), pred.max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set_title(f"{name}")
        ax.set_xlabel("measured discounted return G")
        ax.set_ylabel("critic Q(s, μ(s))")
    fig.suptitle("Vector critic: each channel's value vs its Monte-Carlo return (all seeds)")
    fig.tight_layout()
    fig.savefig(out_dir / "values_vs_returns.png", dpi=100)
    plt.close(fig)
    return True


def _episode_gif(result: ExperimentResult, out_dir: Path):
    import gymnasium as gym

    from agents.persistence import load_agent
    from agents.video import headless, run_episodes, write_video

    runs = [r for r in result.runs if r["label"] == LABELS["vector"] and r["metrics"].get("success_rate") is not None]
    if not runs:
        return None
    best = max(runs, key=lambda r: (r["metrics"]["success_rate"], -r["metrics"]["collisions"]))
    spec = RunSpec(best["label"], best["agent"], best["env"], best["seed"], best["total_steps"])
    ckpt = run_dir(spec, out_dir, NAME) / "checkpoints" / "final.safetensors"
    if not ckpt.is_file():
        return None
    headless()
    model = load_agent(ckpt)
    env = gym.make(ENV, render_mode="rgb_array", weights=W0)
    frames: list[np.ndarray] = []
    run_episodes(model, env, 2, deterministic=True, seed=20_000, on_frame=lambda f: frames.append(f[::2, ::2]))
    env.close()
    name = "start_goal_nav.gif"
    write_video(frames, out_dir / name, fps=10)
    return name, best["seed"]
