#!/usr/bin/env python
"""Speed benchmarks (not timed tests): each prints a figure and, where there is one, its target.

    python scripts/bench.py                # all benchmarks
    python scripts/bench.py framework      # SB3 PPO directly vs through scripts/train.py's code path
    python scripts/bench.py envs           # random-action steps/s of every mirabilis env
    python scripts/bench.py dpg            # dpg vs SB3 TD3 training steps/s on Pendulum-v1
    python scripts/bench.py lstm-rl        # lstm-rl vs sb3-contrib RecurrentPPO env steps/s on TMaze (N = 50)
    python scripts/bench.py subgoal-c-m    # subgoal-c-m vs SB3 SAC + HerReplayBuffer env steps/s on StartGoalNav
    python scripts/bench.py planner-c-m    # planner-c-m vs SB3 PPO training env steps/s on FoveaSearch (no target)

Comparisons run both sides in one process, alternating, several rounds, and report the ratio of
the medians, so that machine load affects both alike. Single torch thread, like the baselines'
published figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # scripts/, for the experiments package


def alternate(a: Callable[[], float], b: Callable[[], float], rounds: int) -> tuple[list[float], list[float]]:
    """Run ``a`` and ``b`` (each returns steps/s) alternately ``rounds`` times."""
    xs, ys = [], []
    for i in range(rounds):
        for fn, out in ((a, xs), (b, ys)) if i % 2 == 0 else ((b, ys), (a, xs)):
            out.append(fn())
    return xs, ys


def report(name: str, ours: list[float], base: list[float], target: float | None, base_name: str) -> dict:
    ratio = statistics.median(ours) / statistics.median(base)
    if target is None:
        verdict = "no target set"
    else:
        verdict = f"target >= {target}; {'meets' if ratio >= target else 'MISSES'}"
    print(f"{name}: {statistics.median(ours):,.0f} vs {base_name} {statistics.median(base):,.0f} steps/s "
          f"-> ratio {ratio:.3f} ({verdict})", flush=True)
    return {"name": name, "ours": ours, "baseline": base, "ratio": ratio, "target": target}


def bench_framework(steps: int = 20_000, rounds: int = 3) -> dict:
    """SB3 PPO on CartPole-v1: plain SB3 vs the train.py code path (registry, logger, checkpoints)."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from agents import runner

    config = runner.build_config(agent="ppo", env="CartPole-v1", total_steps=steps, seed=0)
    hp = {k: v for k, v in config.hyperparams.items() if v is not None and k != "policy"}

    def direct() -> float:
        env = make_vec_env("CartPole-v1", n_envs=config.n_envs, seed=0)
        model = PPO("MlpPolicy", env, seed=0, device="cpu", **hp)
        start = time.perf_counter()
        model.learn(steps)
        return model.num_timesteps / (time.perf_counter() - start)

    def framework() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            result = runner.train(config, Path(tmp) / "run", progress_bar=False)
        return result.steps / result.seconds

    ours, base = alternate(framework, direct, rounds)
    return report("framework (train.py path / plain SB3), PPO CartPole-v1 20k", ours, base, 0.95, "SB3")


ENV_TARGETS = {
    "mirabilis/FoveaSearch-v0": 20_000,
    "mirabilis/NoisyTVRoom-v0": 50_000,
    "mirabilis/TMaze-v0": 50_000,
    "mirabilis/POMaze-v0": 50_000,
    "mirabilis/StartGoalNav-v0": 20_000,
}


def bench_envs(steps: int = 100_000) -> dict:
    """Random-action steps/s through ``gymnasium.make`` (default kwargs and wrappers), one env."""
    import gymnasium as gym

    import envs

    out = {}
    for env_id in envs.ENVIRONMENTS:
        try:
            env = gym.make(env_id)
        except (gym.error.Error, ModuleNotFoundError) as exc:
            print(f"{env_id}: not available ({exc})")
            continue
        env.reset(seed=0)
        env.action_space.seed(0)
        actions = [env.action_space.sample() for _ in range(1000)]
        start = time.perf_counter()
        for i in range(steps):
            _, _, terminated, truncated, _ = env.step(actions[i % 1000])
            if terminated or truncated:
                env.reset()
        rate = steps / (time.perf_counter() - start)
        target = ENV_TARGETS[env_id]
        print(f"{env_id:<28} {rate:>10,.0f} steps/s (target >= {target:,}; {'meets' if rate >= target else 'MISSES'})",
              flush=True)
        out[env_id] = rate
    return out


def bench_dpg(steps: int = 2000, learning_starts: int = 1000, rounds: int = 5) -> dict:
    """dpg vs SB3 TD3 on Pendulum-v1: both with their agents/hyperparams/*.yml Pendulum settings
    ([400, 300] nets, batch 256, 1 gradient step per env step, policy delay 2, gamma 0.98, noise 0.1);
    ``learning_starts`` scaled with ``steps`` so that half the steps are warm-up, as in the 20k-step runs."""
    from stable_baselines3.common.env_util import make_vec_env

    from agents import runner
    from agents.registry import get_agent

    def make(agent: str) -> Callable[[], float]:
        config = runner.build_config(agent=agent, env="Pendulum-v1", total_steps=steps, seed=0,
                                     set_args=[f"learning_starts={learning_starts}"])

        def run() -> float:
            env = make_vec_env("Pendulum-v1", n_envs=1, seed=0)
            model = get_agent(agent).build(env, 0, None, config.hyperparams)
            start = time.perf_counter()
            model.learn(steps)
            return model.num_timesteps / (time.perf_counter() - start)

        return run

    ours, base = alternate(make("dpg"), make("td3"), rounds)
    return report(f"dpg / SB3 TD3, Pendulum-v1 {steps} steps ({learning_starts} warm-up)", ours, base, 1.0, "TD3")


def bench_curious(steps: int = 16_384, rounds: int = 3) -> dict:
    """curious-c-m (progress curiosity, M trained every rollout) vs RecurrentPPO on NoisyTVRoom.

    Same number of envs (8), rollout length (128), LSTM size (64), epochs and minibatch count.
    """
    from sb3_contrib import RecurrentPPO

    from agents.curious_cm import CuriousCM
    from agents.runner import make_vec_env

    n_envs, n_steps, lstm, epochs, minibatches = 8, 128, 64, 4, 4

    def ours() -> float:
        env = make_vec_env("mirabilis/NoisyTVRoom-v0", {}, n_envs, 0)
        model = CuriousCM(env, seed=0, curiosity="progress", n_steps=n_steps, lstm_size=lstm, n_epochs=epochs,
                          n_minibatches=minibatches)
        start = time.perf_counter()
        model.learn(steps)
        return model.num_timesteps / (time.perf_counter() - start)

    def baseline() -> float:
        env = make_vec_env("mirabilis/NoisyTVRoom-v0", {}, n_envs, 0)
        model = RecurrentPPO("MlpLstmPolicy", env, seed=0, device="cpu", n_steps=n_steps, n_epochs=epochs,
                             batch_size=n_steps * n_envs // minibatches,
                             policy_kwargs={"lstm_hidden_size": lstm, "net_arch": [64]})
        start = time.perf_counter()
        model.learn(steps)
        return model.num_timesteps / (time.perf_counter() - start)

    ours_rates, base_rates = alternate(ours, baseline, rounds)
    return report("curious-c-m (progress) / RecurrentPPO, NoisyTVRoom", ours_rates, base_rates, 0.7, "RecurrentPPO")


def bench_lstm_rl(steps: int = 16_384, rounds: int = 3, length: int = 50) -> dict:
    """lstm-rl vs sb3-contrib RecurrentPPO on TMaze (N = 50): lstm-rl with its TMaze defaults
    (agents/hyperparams/lstm-rl.yml), RecurrentPPO (its default policy) with the same number of
    envs, rollout length, epochs, minibatch size, learning rate and LSTM size."""
    from sb3_contrib import RecurrentPPO

    from agents import runner
    from agents.registry import get_agent

    config = runner.build_config(agent="lstm-rl", env="mirabilis/TMaze-v0", total_steps=steps, seed=0,
                                 env_kwargs_args=[f"length={length}"])
    hp, n_envs, spec = config.hyperparams, config.n_envs, get_agent("lstm-rl")

    def ours() -> float:
        env = runner.make_vec_env(config.env, config.env_kwargs, n_envs, 0, wrapper=spec.env_wrapper(hp))
        model = spec.build(env, 0, None, hp)
        start = time.perf_counter()
        model.learn(steps)
        return model.num_timesteps / (time.perf_counter() - start)

    def baseline() -> float:
        env = runner.make_vec_env(config.env, config.env_kwargs, n_envs, 0)
        model = RecurrentPPO("MlpLstmPolicy", env, seed=0, device="cpu", n_steps=hp["n_steps"], n_epochs=hp["n_epochs"],
                             batch_size=hp["n_steps"] * n_envs // hp["n_minibatches"],
                             learning_rate=hp["learning_rate"], policy_kwargs={"lstm_hidden_size": hp["lstm_size"]})
        start = time.perf_counter()
        model.learn(steps)
        return model.num_timesteps / (time.perf_counter() - start)

    ours_rates, base_rates = alternate(ours, baseline, rounds)
    return report(f"lstm-rl / RecurrentPPO, TMaze N={length}, {n_envs} envs, LSTM {hp['lstm_size']}", ours_rates,
                  base_rates, 1.5, "RecurrentPPO")


def bench_subgoal(steps: int = 8000, rounds: int = 3, layout: str = "u") -> dict:
    """subgoal-c-m vs SB3 SAC with ``HerReplayBuffer`` on StartGoalNav (``layout``), env steps/s of training.

    Both as ``scripts/experiments/subgoals.py`` trains them ([128, 128] nets, batch 256, 1 gradient step per
    env step, HER with 4 ``future`` goals, gamma 0.98, learning from step 1000), subgoal-c-m with its
    StartGoalNav defaults and subgoals from step 2000 (of 80k: 5000), so that E's and the generator's
    training and the planning at every step count in most of the measured steps."""
    from agents import runner
    from agents.registry import get_agent
    from experiments.subgoals import ENV, SAC_HP, WEIGHTS

    env_kwargs = [f"layout={json.dumps(layout)}", f"weights={json.dumps(WEIGHTS)}"]

    def make(agent: str, sets: list[str]) -> Callable[[], float]:
        config = runner.build_config(agent=agent, env=ENV, total_steps=steps, seed=0, set_args=sets,
                                     env_kwargs_args=env_kwargs)
        spec = get_agent(agent)

        def run() -> float:
            env = runner.make_vec_env(config.env, config.env_kwargs, config.n_envs, 0)
            model = spec.build(env, 0, None, config.hyperparams)
            start = time.perf_counter()
            model.learn(steps)
            return model.num_timesteps / (time.perf_counter() - start)

        return run

    ours, base = alternate(make("subgoal-c-m", ["subgoal_starts=2000"]),
                           make("sac", [f"{k}={json.dumps(v)}" for k, v in SAC_HP.items()]), rounds)
    return report(f"subgoal-c-m / SB3 SAC+HER, StartGoalNav {layout}, {steps} steps", ours, base, 1.0, "SAC+HER")


def bench_planner(steps: int = 3000, learning_starts: int = 1000, rounds: int = 3) -> dict:
    """planner-c-m vs SB3 PPO on FoveaSearch, env steps/s of training, both as ``scripts/experiments/fovea.py``
    trains them (8 envs; PPO with that experiment's overrides), planner-c-m learning from step ``learning_starts``
    (of 30k: 8000) after 100 pretraining updates of M (1500), so that its per-step training — M, the critic and
    C's backpropagation through M — counts in most of the measured steps.

    No target: the two spend their compute differently (planner-c-m solved the task in 30k env steps, PPO
    reached 0.15 of it in 500k; results/fovea), so this ratio is a cost per env step, not a verdict."""
    from agents import runner
    from agents.registry import get_agent
    from experiments.fovea import ENV, N_ENVS, OVERRIDES, hyperparams

    def make(agent: str, overrides: dict) -> Callable[[], float]:
        hp = hyperparams(agent, overrides)
        spec = get_agent(agent)

        def run() -> float:
            env = runner.make_vec_env(ENV, {}, N_ENVS, 0, wrapper=spec.env_wrapper(hp))
            model = spec.build(env, 0, None, hp)
            start = time.perf_counter()
            model.learn(steps)
            return model.num_timesteps / (time.perf_counter() - start)

        return run

    ours, base = alternate(make("planner-c-m", {"learning_starts": learning_starts, "pretrain_updates": 100}),
                           make("ppo", OVERRIDES["ppo"]), rounds)
    return report(f"planner-c-m / SB3 PPO, FoveaSearch {steps} steps ({learning_starts} warm-up)", ours, base, None,
                  "PPO")


BENCHMARKS: dict[str, Callable[[], object]] = {"curious": bench_curious, "lstm-rl": bench_lstm_rl, "framework": bench_framework, "envs": bench_envs, "dpg": bench_dpg,
                                              "subgoal-c-m": bench_subgoal, "planner-c-m": bench_planner}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all): {', '.join(BENCHMARKS)}")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        print(f"bench.py: error: unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(1)
    for name in args.names or BENCHMARKS:
        BENCHMARKS[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
