"""Checks every mirabilis environment must pass (the contract in shared DESIGN.md).

Used by each env's test module: ``assert_env_contract("mirabilis/TMaze-v0", length=5)``.
"""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs  # noqa: F401  (registers the ids)


def run_checkers(env_id: str, **kwargs) -> None:
    """Gymnasium's and SB3's env checkers pass without a single warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make(env_id, **kwargs)
        gym_check_env(env.unwrapped, skip_render_check=True)
        env.close()
        env = gym.make(env_id, **kwargs)
        sb3_check_env(env.unwrapped, warn=True)
        env.close()


def rollout(env_id: str, seed: int, steps: int, action_seed: int = 0, **kwargs):
    """Random-action trajectory (resetting on episode end) checking per-step invariants."""
    env = gym.make(env_id, **kwargs)
    un = env.unwrapped
    env.action_space.seed(action_seed)
    obs, info = env.reset(seed=seed)
    trace = [(_freeze(obs), _freeze(info))]
    for _ in range(steps):
        assert env.observation_space.contains(obs), f"observation outside space: {obs}"
        action = env.action_space.sample()
        obs, reward, terminated, truncated, info = env.step(action)
        vec = info["vector_reward"]
        assert isinstance(vec, np.ndarray) and vec.dtype == np.float32
        assert vec.shape == un.reward_space.shape == (len(un.reward_names),)
        assert np.isclose(reward, float(np.dot(un.weights, vec)), atol=1e-5)
        assert isinstance(reward, float)
        trace.append((_freeze(obs), float(reward), terminated, truncated, _freeze(info)))
        if terminated or truncated:
            assert "is_success" in info
            obs, info = env.reset()
            trace.append((_freeze(obs), _freeze(info)))
    assert env.observation_space.contains(obs)
    env.close()
    return trace


def assert_env_contract(env_id: str, steps: int = 300, **kwargs) -> None:
    run_checkers(env_id, **kwargs)
    a = rollout(env_id, seed=123, steps=steps, **kwargs)
    b = rollout(env_id, seed=123, steps=steps, **kwargs)
    assert a == b, "same seed and actions must give an identical trajectory"
    c = rollout(env_id, seed=124, steps=steps, **kwargs)
    assert a != c, "different seeds should give different trajectories"
    frame = render_frame(env_id, **kwargs)
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
    assert frame.std() > 0, "a rendered frame should not be blank"


def render_frame(env_id: str, **kwargs) -> np.ndarray:
    env = gym.make(env_id, render_mode="rgb_array", **kwargs)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    frame = env.render()
    env.close()
    return frame


def assert_human_render(env_id: str, **kwargs) -> None:
    env = gym.make(env_id, render_mode="human", **kwargs)
    assert env.metadata.get("render_fps"), "metadata['render_fps'] must be set"
    env.reset(seed=0)
    for _ in range(3):
        env.step(env.action_space.sample())
        assert env.render() is None
    env.close()


def _freeze(x):
    """Hashable/comparable snapshot of observations and infos (numpy arrays -> bytes)."""
    if isinstance(x, np.ndarray):
        return (x.dtype.str, x.shape, x.tobytes())
    if isinstance(x, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in x.items()))
    if isinstance(x, (list, tuple)):
        return tuple(_freeze(v) for v in x)
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    return x
