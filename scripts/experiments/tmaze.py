"""tmaze: LSTM-RL vs RecurrentPPO vs (feed-forward) PPO in Bakker's T-maze, corridors of 10 to 200.

Seed Sec. 4 and 13: an LSTM controller trained by reinforcement learning must carry the start
signal of ``mirabilis/TMaze-v0`` along a corridor of length N and turn the way it said. Labels
``lstm-rl`` (this repo; its ``agents/hyperparams/lstm-rl.yml`` TMaze defaults), sb3-contrib
``recurrent-ppo`` and SB3 ``ppo`` (memory-less: chance, 50%, is its ceiling), 5 seeds each, the
same env-step budget per N for every label, 8 envs. The baselines get lstm-rl's PPO-level
settings (rollout length, epochs, minibatch size, discount, GAE lambda, entropy coefficient),
RecurrentPPO its LSTM size, both the learning rate ``BASELINE_LEARNING_RATE``; everything else is
their library default. Rollout length, BPTT window and discount scale with the corridor, for every
label alike (:func:`horizon`).

Metrics per run (evaluation with actions sampled from the policy, as it acts in training; the
greedy policy of a stochastic agent can bump into a wall for ever where two actions are close):

* ``success_rate`` — share of 200 evaluation episodes (fresh seeds, the env's own time limit)
  that end in the arm the start signal named; ``success_rate_greedy`` the same with greedy actions;
* ``steps_to_solve`` — env steps until a periodic check first reaches a success rate of 0.95, or
  null. The check (an ``EvalCallback``-style callback, :class:`PeriodicCheck`) plays 50 episodes
  every ``budget / 25`` env steps and counts an episode as solved only if it enters the correct arm
  within twice the shortest path, ``2 (N + 1)`` steps;
* ``check_curve`` — (env steps, check success rate) of every check (the learning curves);
* ``mean_episode_length`` of the 200 evaluation episodes (the shortest path is N + 1);
* ``probe_accuracy`` (recurrent labels) — a memory diagnostic: how well a logistic read-out,
  5-fold cross-validated, decodes the start signal from the recurrent state (h, c) at the
  junction in those evaluation episodes (0.5: nothing remembered);
* ``steps_per_s`` — training env steps per second (one torch thread; checks excluded).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

from experiments.common import (
    ExperimentResult,
    RunSpec,
    fmt,
    header_lines,
    markdown_table,
    mean_std,
)

DESCRIPTION = "LSTM-RL vs RecurrentPPO vs PPO in Bakker's T-maze, corridors 10..200 (Sec. 4, 13)"
ENV = "mirabilis/TMaze-v0"
LABELS = ("lstm-rl", "recurrent-ppo", "ppo")
N_ENVS = 8
#: env steps per run, the same for every label at a corridor length
#: (N = 100 with 100k steps, commit 254e2f3: 2 of 5 runs reached 0.95; with 200k, results/tmaze: 9 of 10, at 32k-144k)
BUDGET = {10: 50_000, 20: 80_000, 50: 80_000, 100: 200_000, 200: 200_000}
#: lstm-rl's seeds per corridor length: 10 at N = 100, the length of the target (every seed solves it), so that
#: the table shows how often a run fails there, not only whether one of five did
SEEDS = {10: 5, 20: 5, 50: 5, 100: 10, 200: 5}
#: the baselines' seeds: 5, and 3 at N = 100 and 200 to keep the whole experiment within 45 minutes on 2 cores
#: (RecurrentPPO costs ~2x lstm-rl's CPU time per env step)
BASELINE_SEEDS = {10: 5, 20: 5, 50: 5, 100: 3, 200: 3}
QUICK_BUDGET = {10: 1024}
QUICK_OPTIONS = {"n_checks": 2, "check_episodes": 10, "eval_episodes": 20}
EVAL_EPISODES = 200
CHECK_EPISODES = 50
N_CHECKS = 25
#: the baselines' learning rate: lstm-rl's 0.01 belongs to its long-memory initialisation; with it a first
#: run of this experiment (commit 3b7b93f) saw RecurrentPPO stop reaching either arm (success 0) on some seeds
BASELINE_LEARNING_RATE = 0.003
SHARED = ("n_steps", "n_epochs", "gamma", "gae_lambda", "ent_coef", "clip_range", "vf_coef",
          "max_grad_norm")


def resolved(agent: str, overrides: dict | None = None, env: str = ENV) -> dict:
    """Every hyperparameter of ``agent`` on ``env``: its YAML defaults, then ``overrides``."""
    from agents import config as cfg
    from agents.registry import get_agent

    return cfg.resolve(get_agent(agent).schema(), agent, env, overrides or {})


def baseline_hyperparams(agent: str, ours: dict, env: str = ENV, learning_rate: float | None = None) -> dict:
    """lstm-rl's PPO-level settings in SB3's terms (minibatch size from lstm-rl's minibatch count), at
    lstm-rl's learning rate unless ``learning_rate`` is given (the T-maze passes ``BASELINE_LEARNING_RATE``)."""
    hp = {k: ours[k] for k in SHARED}
    hp["learning_rate"] = ours["learning_rate"] if learning_rate is None else learning_rate
    hp["batch_size"] = ours["n_steps"] * N_ENVS // ours["n_minibatches"]
    if agent == "recurrent-ppo":
        hp["policy_kwargs"] = {"lstm_hidden_size": ours["lstm_size"]}
    return resolved(agent, hp, env)


def horizon(length: int) -> dict:
    """Settings that scale with the corridor (for every label alike): a rollout and BPTT window that
    holds whole episodes (at least twice the shortest one), and a discount whose horizon is the
    corridor, ``gamma = 1 - 1 / (N + 1)`` (the arm's reward seen from the start at ~1/e; at least the
    YAML default 0.95, which is this for N = 20)."""
    window = max(128, 1 << (2 * (length + 1) - 1).bit_length())
    return {"n_steps": window, "seq_len": window, "gamma": max(0.95, round(1.0 - 1.0 / (length + 1), 4))}


def plan(quick: bool) -> list[RunSpec]:
    budget = QUICK_BUDGET if quick else BUDGET
    specs = []
    for length, steps in budget.items():
        ours = resolved("lstm-rl", horizon(length))
        hps = {"lstm-rl": ours, **{label: baseline_hyperparams(label, ours, ENV, BASELINE_LEARNING_RATE)
                                   for label in ("recurrent-ppo", "ppo")}}
        for label in LABELS:
            seeds = SEEDS[length] if label == "lstm-rl" else BASELINE_SEEDS[length]
            for seed in range(1 if quick else seeds):
                # one entry per (label, seed) (metrics.json's contract): the label names the corridor
                specs.append(RunSpec(f"{label} N={length}", label, ENV, seed, steps, {"length": length}, hps[label],
                                     dict(QUICK_OPTIONS if quick else {})))
    cost = {"recurrent-ppo": 2.0, "lstm-rl": 1.0, "ppo": 0.2}  # CPU time per env step, roughly
    return sorted(specs, key=lambda s: -s.total_steps * cost[s.agent])  # the longest first: the pool ends sooner


# --------------------------------------------------------------------------- evaluation


def make_envs(env_id: str, env_kwargs: dict, wrapper, n: int) -> list:
    from agents.runner import make_env

    return [make_env(env_id, env_kwargs, wrapper=wrapper) for _ in range(n)]


def _state_row(state, i: int, n: int) -> np.ndarray | None:
    """Env ``i``'s part of a batched recurrent state: ours ``(h, c)`` of ``[n, H]``, SB3's of ``[layers, n, H]``."""
    if state is None:
        return None
    parts = []
    for s in state:
        s = np.asarray(s)
        parts.append(s.reshape(-1, n, s.shape[-1])[:, i].ravel())
    return np.concatenate(parts)


def evaluate(model, envs: list, seed: int, deterministic: bool = True, cap: int | None = None,
             probe_at: Callable | None = None) -> dict:
    """One episode per env (``reset(seed=seed + i)``), all in lock-step.

    ``cap``: stop after this many steps, counting unfinished episodes as failures (``None``: the
    env's own time limit). ``probe_at(env) -> label or None``: where it returns a label for the
    first time in an episode, the recurrent state after that step's ``predict`` is kept with it.
    Returns success flags, episode lengths, the envs' final ``info`` dicts and (states, labels).
    """
    n = len(envs)
    first = [env.reset(seed=seed + i) for i, env in enumerate(envs)]
    obs = np.stack([o for o, _ in first])
    infos: list[dict] = [info for _, info in first]
    state, starts = None, np.ones(n, dtype=bool)
    running = np.ones(n, dtype=bool)
    success = np.zeros(n, dtype=bool)
    lengths = np.zeros(n, dtype=np.int64)
    probed, states, labels = np.zeros(n, dtype=bool), [], []
    t = 0
    while running.any() and (cap is None or t < cap):
        looking = []
        if probe_at is not None:
            for i in np.flatnonzero(running & ~probed):
                label = probe_at(envs[i])
                if label is not None:
                    looking.append((i, label))
        actions, state = model.predict(obs, state=state, episode_start=starts, deterministic=deterministic)
        starts[:] = False
        for i, label in looking:
            row = _state_row(state, i, n)
            if row is not None:
                states.append(row)
                labels.append(label)
            probed[i] = True
        for i in np.flatnonzero(running):
            o, _, terminated, truncated, info = envs[i].step(actions[i])
            obs[i] = o
            lengths[i] += 1
            if terminated or truncated:
                running[i] = False
                success[i] = bool(info.get("is_success", False))
                infos[i] = info
        t += 1
    return {"success": success, "lengths": lengths, "finished": ~running, "infos": infos,
            "states": np.array(states), "labels": np.array(labels)}


class PeriodicCheck(BaseCallback):
    """Every ``every`` env steps: ``evaluate`` on ``envs`` and record ``(steps, success rate)``.

    A check draws its sampled actions from a fork of torch's global random stream, so training goes
    exactly the same way whether and how often it is checked."""

    def __init__(self, envs: list, every: int, seed: int, cap: int | None, threshold: float = 0.95,
                 deterministic: bool = False):
        super().__init__()
        self.envs, self.every, self.seed, self.cap, self.threshold = envs, every, seed, cap, threshold
        self.deterministic = deterministic
        self.curve: list[tuple[int, float]] = []
        self.solved_at: int | None = None
        self.seconds = 0.0  # spent in checks
        self._next = every

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next += self.every
            self.check()
        return True

    def check(self) -> float:
        start = time.perf_counter()
        with torch.random.fork_rng():
            result = evaluate(self.model, self.envs, self.seed + 1000 * len(self.curve), cap=self.cap,
                              deterministic=self.deterministic)
        self.seconds += time.perf_counter() - start
        rate = float(result["success"].mean())
        self.curve.append((int(self.num_timesteps), round(rate, 3)))
        if self.solved_at is None and rate >= self.threshold:
            self.solved_at = int(self.num_timesteps)
        return rate


def probe_accuracy(states: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0) -> float | None:
    """Cross-validated accuracy of an L2-regularised logistic read-out of ``labels`` (0/1) from ``states``."""
    if len(labels) < 2 * folds or len(np.unique(labels)) < 2:
        return None
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    x, y = states[order].astype(np.float64), labels[order].astype(np.float64)
    correct = 0
    for k in range(folds):
        test = np.arange(len(y)) % folds == k
        mean, std = x[~test].mean(0), x[~test].std() + 1e-6  # one scale for all units
        xt, xs = (x[~test] - mean) / std, (x[test] - mean) / std
        w, b = np.zeros(x.shape[1]), 0.0
        for _ in range(300):  # gradient descent on the mean log-loss + 1e-3 |w|^2
            p = 1.0 / (1.0 + np.exp(-(xt @ w + b)))
            g = p - y[~test]
            w -= 0.5 * (xt.T @ g / len(g) + 1e-3 * w)
            b -= 0.5 * g.mean()
        correct += int(((xs @ w + b > 0) == (y[test] > 0.5)).sum())
    return correct / len(y)


# --------------------------------------------------------------------------- one run


def junction_signal(env) -> int | None:
    """The start signal while the agent stands on the junction (where it must be remembered)."""
    maze = env.unwrapped
    return maze.signal if maze.position == maze.length and maze.arm is None else None


def train(spec: RunSpec, cap: int | None):
    """Build the agent with its env wrapper, train it with periodic checks; returns (model, checker, seconds)."""
    from agents.registry import get_agent
    from agents.runner import make_vec_env

    agent = get_agent(spec.agent)
    wrapper = agent.env_wrapper(spec.hyperparams)
    env = make_vec_env(spec.env, spec.env_kwargs, spec.options.get("n_envs", N_ENVS), spec.seed, wrapper=wrapper)
    model = agent.build(env, spec.seed, None, spec.hyperparams)
    every = max(spec.total_steps // spec.options.get("n_checks", N_CHECKS), 1)
    check_envs = make_envs(spec.env, spec.env_kwargs, wrapper, spec.options.get("check_episodes", CHECK_EPISODES))
    checker = PeriodicCheck(check_envs, every, seed=10_000 + 100 * spec.seed, cap=cap)
    start = time.perf_counter()
    model.learn(spec.total_steps, callback=checker)
    seconds = time.perf_counter() - start - checker.seconds
    env.close()
    return model, checker, seconds, wrapper


def run(spec: RunSpec, out_dir: Path) -> dict:
    length = spec.env_kwargs["length"]
    model, checker, seconds, wrapper = train(spec, cap=2 * (length + 1))
    n = spec.options.get("eval_episodes", EVAL_EPISODES)
    eval_envs = make_envs(spec.env, spec.env_kwargs, wrapper, n)
    sampled = evaluate(model, eval_envs, seed=1_000_000 + 1000 * spec.seed, deterministic=False,
                       probe_at=junction_signal if spec.agent != "ppo" else None)
    greedy = evaluate(model, eval_envs, seed=1_000_000 + 1000 * spec.seed)
    probe = probe_accuracy(sampled["states"], sampled["labels"]) if spec.agent != "ppo" else None
    if spec.agent == "lstm-rl" and spec.seed == 0:  # kept for the GIF of a solved long corridor
        (out_dir / "artifacts").mkdir(parents=True, exist_ok=True)
        model.save(out_dir / "artifacts" / f"lstm-rl_N{length}_seed0.safetensors")
    return {
        "success_rate": round(float(sampled["success"].mean()), 4),
        "steps_to_solve": checker.solved_at,
        "success_rate_greedy": round(float(greedy["success"].mean()), 4),
        "mean_episode_length": round(float(sampled["lengths"].mean()), 2),
        "probe_accuracy": None if probe is None else round(probe, 4),
        "check_curve": checker.curve,
        "steps_per_s": round(spec.total_steps / max(seconds, 1e-9), 1),
    }


def render_gif(model_path: Path, length: int, gif: Path, tries: int = 10) -> dict:
    """An episode of a saved lstm-rl agent at corridor ``length`` (actions sampled, the first of
    ``tries`` seeded episodes that succeeds, else the last), as a GIF at half size."""
    import torch

    from agents.lstm_rl import LSTMRL
    from agents.runner import make_env
    from agents.video import headless, run_episodes, write_video
    from agents.wrappers import PreviousActionReward

    headless()
    model = LSTMRL.load(model_path, env=None)
    env = PreviousActionReward(make_env(ENV, {"length": length}, render_mode="rgb_array"))
    for seed in range(tries):
        torch.manual_seed(seed)
        frames: list[np.ndarray] = []
        episode = run_episodes(model, env, 1, deterministic=False, seed=seed, on_frame=frames.append)[0]
        if episode["is_success"]:
            break
    env.close()
    write_video([f[::2, ::2] for f in frames], gif, fps=20)
    return {**episode, "seed": seed}


# --------------------------------------------------------------------------- report


def _lengths(result: ExperimentResult) -> list[int]:
    return sorted({r["env_kwargs"]["length"] for r in result.runs})


def _runs(result: ExperimentResult, agent: str, length: int) -> list[dict]:
    return [r for r in result.runs if r["agent"] == agent and r["env_kwargs"]["length"] == length]


def _agents(result: ExperimentResult) -> list[str]:
    return [a for a in LABELS if any(r["agent"] == a for r in result.runs)]


def failure_mode(metrics: dict, length: int) -> str:
    """How a run that ends below 0.95 failed, in words, from its metrics (for the targets' list)."""
    final = metrics["success_rate"]
    probe = metrics.get("probe_accuracy")
    if final < 0.1 and metrics["mean_episode_length"] >= 0.9 * 10 * (length + 1):
        return (f"never entered an arm (success {final:.2f}; its evaluation episodes ran to the time limit of "
                "10 (N + 1) steps; see `agents/hyperparams/lstm-rl.yml` on this trap)")
    if metrics.get("steps_to_solve") is not None:
        return f"reached 0.95 in a check at {metrics['steps_to_solve']:,} steps, then unlearned it (final {final:.2f})"
    if probe is not None and probe < 0.75:
        return f"did not learn the memory (success {final:.2f}, memory probe {probe:.2f})"
    return f"ended at {final:.2f} (memory probe {'—' if probe is None else f'{probe:.2f}'})"


def _solve_cell(runs: list[dict]) -> str:
    solved = [r["metrics"]["steps_to_solve"] for r in runs if r["metrics"].get("steps_to_solve") is not None]
    if not solved:
        return f"— (0/{len(runs)})"
    m, s = mean_std([float(v) for v in solved])
    return f"{m / 1000:,.0f}k ± {s / 1000:,.0f}k ({len(solved)}/{len(runs)})"


def report(result: ExperimentResult, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lengths = _lengths(result)
    lines = header_lines(result, "T-maze: LSTM-RL vs RecurrentPPO vs PPO (corridors of 10 to 200)")
    ours = next((r["hyperparams"] for r in result.runs if r["agent"] == "lstm-rl"), {})
    shown = {k: ours[k] for k in ("n_steps", "seq_len", "n_epochs", "n_minibatches", "learning_rate", "gamma",
                                   "gae_lambda", "ent_coef", "lstm_size", "encoder_size", "critic_lstm",
                                   "forget_bias", "input_bias", "policy_gain", "value_skip", "separate_grad_clip",
                                   "normalize_value_loss", "target_kl", "persistence") if k in ours}
    lines += [
        f"`{ENV}` (Bakker 2002): a signal at the start of a corridor of length N says which arm of the T at "
        "its end pays (+4; the other arm -0.1, bumping into a wall -0.1). The shortest episode takes N + 1 "
        f"steps; a memory-less policy succeeds in half the episodes at best. {N_ENVS} envs per run; the same "
        "env-step budget per N for every label (see the table). `lstm-rl`: the defaults of "
        f"`agents/hyperparams/lstm-rl.yml`, i.e. `{json.dumps(shown)}`. `recurrent-ppo` (sb3-contrib) and "
        "`ppo` (SB3) get the same rollout length, epochs, minibatch size, discount, GAE "
        "lambda and entropy coefficient, RecurrentPPO the same LSTM size, both the learning rate "
        f"{BASELINE_LEARNING_RATE} (lstm-rl's 0.01 goes with its long-memory initialisation; at 0.01 -- "
        "this command at commit 3b7b93f -- RecurrentPPO ended some runs unable to reach either arm); the rest "
        "is their library default.",
        "",
        "Rollout length = BPTT window = the smallest power of two ≥ max(128, 2 (N + 1)), and discount "
        "max(0.95, 1 - 1/(N + 1)), for every label alike (`horizon()` in `scripts/experiments/tmaze.py`).",
        "",
        "- **success_rate**: 200 evaluation episodes after training, actions sampled from the policy (as in "
        "training), the env's own time limit; **greedy**: the same episodes with greedy actions.",
        "- **steps_to_solve**: env steps until a periodic check first reached 95% success (mean ± sd over the "
        "seeds that got there; in brackets how many did). A check (an `EvalCallback`-style callback) plays 50 "
        "episodes (sampled actions) every budget/25 env steps and counts an episode only if it enters the "
        "correct arm within 2 (N + 1) steps.",
        "- **probe**: memory diagnostic: accuracy of a logistic read-out (5-fold cross-validated) of the start "
        "signal from the recurrent state (h, c) at the junction in the evaluation episodes; 0.5 = nothing "
        "remembered.",
        "",
    ]
    header = ["N", "budget (env steps)", "label", "seeds", "success_rate", "greedy", "steps_to_solve", "probe",
              "episode length", "steps/s"]
    rows = []
    for length in lengths:
        for label in _agents(result):
            runs = _runs(result, label, length)
            if not runs:
                continue
            ok = [r for r in runs if r["metrics"]]

            def cell(metric, digits):
                return fmt(*mean_std([r["metrics"].get(metric) for r in ok]), digits)

            rows.append([length, f"{runs[0]['total_steps']:,}", f"`{label}`", len(runs), cell("success_rate", 2),
                         cell("success_rate_greedy", 2), _solve_cell(ok), cell("probe_accuracy", 2), cell("mean_episode_length", 0),
                         cell("steps_per_s", 0)])
    lines += ["## Results (mean ± standard deviation over seeds)", "", markdown_table(header, rows), ""]
    if not result.quick:
        lines += [f"**Seeds** (the `seeds` column): `lstm-rl` {SEEDS[100]} at N = 100, the target's length, to show how "
                  "often a run fails there, 5 elsewhere; the baselines 3 at N = 100 and 200, 5 elsewhere, to keep the "
                  "whole experiment within 45 minutes on 2 cores.", ""]
    lines += verdicts(result, lengths)
    plot_curves(result, lengths, out_dir, plt)
    lines += ["## Learning curves (periodic checks: share of 50 episodes solved within 2 (N + 1) steps; mean ± sd "
              "over seeds)",
              "", "![learning curves](curves.png)", ""]
    gif_lines = make_gif(result, lengths, out_dir)
    lines += gif_lines
    lines += ["## Per-run numbers", "", "See `metrics.json` (one entry per label — agent and corridor length — and seed; "
              "`check_curve` holds every periodic check)."]
    (out_dir / "README.md").write_text("\n".join(lines) + "\n")


def verdicts(result: ExperimentResult, lengths: list[int]) -> list[str]:
    out = ["## Targets", ""]
    solved_all = []
    for length in lengths:
        runs = [r for r in _runs(result, "lstm-rl", length) if r["metrics"]]
        if runs and all(r["metrics"]["success_rate"] >= 0.95 for r in runs):
            solved_all.append(length)
    if 100 in lengths:
        runs = [r for r in _runs(result, "lstm-rl", 100) if r["metrics"]]
        ok = bool(runs) and all(r["metrics"]["success_rate"] >= 0.95 for r in runs)
        worst = min((r["metrics"]["success_rate"] for r in runs), default=float("nan"))
        out.append(f"- `lstm-rl` solves N = 100 (success ≥ 0.95) on every seed — **{'met' if ok else 'MISSED'}** "
                   f"(worst seed {worst:.2f}).")
        failed = [r for r in runs if r["metrics"]["success_rate"] < 0.95]
        if failed:
            out.append(f"  {len(runs) - len(failed)} of {len(runs)} seeds end ≥ 0.95. The others: "
                       + "; ".join(f"seed {r['seed']} {failure_mode(r['metrics'], 100)}" for r in failed) + ".")
        if any(failure_mode(r["metrics"], 100).startswith("did not learn") for r in failed):
            out.append("  Why the memory: `results/tmaze_memory/` (`python scripts/reproduce.py tmaze_memory`) takes RL out and "
                       "measures how many episodes this LSTM needs to learn the cue at all — supervised, and by "
                       "REINFORCE on the junction choice alone — with lstm-rl's T-maze initialisation (`long-memory`) "
                       "and two weaker ones; compare its episode counts with the budgets here (a run of N = 100 holds "
                       f"at most {runs[0]['total_steps'] // 101:,} episodes).")
    out.append(f"- Corridor lengths `lstm-rl` solved on every seed: {', '.join(map(str, solved_all)) or 'none'} "
               f"(of {', '.join(map(str, lengths))}).")
    for length in lengths:  # runs whose checks reached 0.95 but whose final evaluation did not
        runs = [r["metrics"] for r in _runs(result, "lstm-rl", length) if r["metrics"]]
        lost = [m for m in runs if m.get("steps_to_solve") and m["success_rate"] < 0.95]
        if lost:
            finals = ", ".join(f"{m['success_rate']:.2f}" for m in lost)
            probes = ", ".join("—" if m.get("probe_accuracy") is None else f"{m['probe_accuracy']:.2f}" for m in lost)
            out.append(f"- N = {length}: {len(lost)} of {len(runs)} `lstm-rl` runs reached 0.95 in a check and ended "
                       f"below it (final success {finals}; memory probe {probes}): solved, then unlearned.")
    for length in lengths:
        ours = [r["metrics"].get("steps_to_solve") for r in _runs(result, "lstm-rl", length) if r["metrics"]]
        base = [r["metrics"].get("steps_to_solve") for r in _runs(result, "recurrent-ppo", length) if r["metrics"]]
        if not ours or not base:
            continue
        budget = _runs(result, "lstm-rl", length)[0]["total_steps"]
        # unsolved runs count as the whole budget (a lower bound on their steps to solve)
        m_ours = float(np.median([budget if v is None else v for v in ours]))
        m_base = float(np.median([budget if v is None else v for v in base]))
        better = m_ours < m_base
        out.append(f"- N = {length}: median steps_to_solve `lstm-rl` {m_ours / 1000:,.0f}k vs `recurrent-ppo` "
                   f"{m_base / 1000:,.0f}k (unsolved runs counted as the budget) — "
                   f"**{'lstm-rl faster' if better else 'lstm-rl NOT faster'}**.")
    ppo = [r["metrics"]["success_rate"] for r in result.runs if r["agent"] == "ppo" and r["metrics"]]
    if ppo:
        out.append(f"- Feed-forward `ppo` stays near chance: mean success {np.mean(ppo):.2f}, best run {max(ppo):.2f}.")
    return out + [""]


def plot_curves(result: ExperimentResult, lengths: list[int], out_dir: Path, plt) -> None:
    fig, axes = plt.subplots(1, len(lengths), figsize=(3.6 * len(lengths), 3.2), squeeze=False)
    for ax, length in zip(axes[0], lengths):
        for label in _agents(result):
            curves = [r["metrics"]["check_curve"] for r in _runs(result, label, length)
                      if r["metrics"].get("check_curve")]
            if not curves:
                continue
            n = min(len(c) for c in curves)
            x = np.array([c[0] for c in curves[0][:n]])
            y = np.array([[p[1] for p in c[:n]] for c in curves])
            ax.plot(x, y.mean(0), label=label)
            ax.fill_between(x, y.mean(0) - y.std(0), y.mean(0) + y.std(0), alpha=0.15)
        ax.axhline(0.95, color="grey", lw=0.6, ls="--")
        ax.set(title=f"N = {length}", xlabel="env steps", ylim=(-0.02, 1.02))
    axes[0][0].set_ylabel("success (≤ 2(N+1) steps)")
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(out_dir / "curves.png", dpi=110)
    plt.close(fig)


def make_gif(result: ExperimentResult, lengths: list[int], out_dir: Path) -> list[str]:
    """An episode of the seed-0 lstm-rl agent at the longest corridor it solved."""
    candidates = []
    for length in lengths:
        run = next((r for r in _runs(result, "lstm-rl", length) if r["seed"] == 0 and r["metrics"]), None)
        path = out_dir / "artifacts" / f"lstm-rl_N{length}_seed0.safetensors"
        if run is not None and path.exists():
            candidates.append((run["metrics"]["success_rate"] >= 0.95, length, path))
    if not candidates:
        return []
    solved = [c for c in candidates if c[0]]
    ok, length, path = max(solved) if solved else max(candidates, key=lambda c: c[1])
    gif = out_dir / "episode.gif"
    episode = render_gif(path, length, gif)
    outcome = "correct arm" if episode["is_success"] else "NOT the correct arm"
    what = "the longest corridor it solved on seed 0" if ok else "no corridor solved on seed 0; the longest shown"
    return [f"## One episode (seed-0 `lstm-rl` agent, N = {length}: {what})", "",
            f"Sampled actions (episode seed {episode['seed']}), {episode['length']} steps (shortest {length + 1}), "
            f"{outcome}. The start's colour is the signal; long corridors scroll with the agent.", "",
            "![episode](episode.gif)", ""]
