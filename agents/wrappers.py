"""Env wrappers the mirabilis agents put around the environments they are given."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class PreviousActionReward(gym.Wrapper):
    """Observation = [obs, previous action, previous reward vector] (seed Sec. 13).

    In 1990 the controller's inputs included the reward and pain signals and its own previous
    output. Putting them in the observation (rather than feeding them separately) keeps
    ``predict(obs, state, episode_start)`` sufficient, so SB3's ``evaluate_policy`` and
    ``VecVideoRecorder`` drive such an agent like any other.

    ============  ==================================================================
    slice         content
    ============  ==================================================================
    ``obs``       the env's observation, flattened (Discrete one-hot)
    ``action``    the previous action: one-hot (Discrete) or the value (Box); 0 at reset
    ``reward``    the previous reward vector (``info["vector_reward"]`` or the scalar); 0 at reset
    ============  ==================================================================
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        for name, space in (("observation", env.observation_space), ("action", env.action_space)):
            if not isinstance(space, (spaces.Box, spaces.Discrete)):
                raise ValueError(f"PreviousActionReward supports Box and Discrete {name} spaces, not {space}")
        names = getattr(env.unwrapped, "reward_names", None)
        self.n_rewards = len(names) if names else 1
        self.obs_dim = spaces.flatdim(env.observation_space)
        self.action_dim = spaces.flatdim(env.action_space)
        size = self.obs_dim + self.action_dim + self.n_rewards
        low = np.full(size, -np.inf, dtype=np.float32)
        high = np.full(size, np.inf, dtype=np.float32)
        obs_space = env.observation_space
        if isinstance(obs_space, spaces.Box):
            low[: self.obs_dim] = obs_space.low.reshape(-1)
            high[: self.obs_dim] = obs_space.high.reshape(-1)
        else:
            low[: self.obs_dim], high[: self.obs_dim] = 0.0, 1.0
        a = slice(self.obs_dim, self.obs_dim + self.action_dim)
        if isinstance(env.action_space, spaces.Box):
            low[a] = np.minimum(env.action_space.low.reshape(-1), 0.0)
            high[a] = np.maximum(env.action_space.high.reshape(-1), 0.0)
        else:
            low[a], high[a] = 0.0, 1.0
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self._buffer = np.zeros(size, dtype=np.float32)

    def _observe(self, obs, action, reward_vector) -> np.ndarray:
        out = np.zeros_like(self._buffer)
        out[: self.obs_dim] = spaces.flatten(self.env.observation_space, obs)
        if action is not None:
            out[self.obs_dim: self.obs_dim + self.action_dim] = spaces.flatten(self.env.action_space, action)
            out[self.obs_dim + self.action_dim:] = reward_vector
        return out

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return self._observe(obs, None, None), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        vector = info.get("vector_reward", reward)
        if isinstance(self.env.action_space, spaces.Box):
            action = np.clip(action, self.env.action_space.low, self.env.action_space.high)
        return self._observe(obs, action, vector), reward, terminated, truncated, info
