"""Replay buffers that keep the reward *vector* of every transition (seed Sec. 13).

Stable-baselines3's buffers, extended by one array ``reward_vectors`` ``[size, n_envs, C]``
next to SB3's scalar ``rewards``, and samples that carry it:

* :class:`VectorReplayBuffer` — SB3's ``ReplayBuffer`` (Box / Discrete observations);
* :class:`VectorDictReplayBuffer` — SB3's ``DictReplayBuffer`` (Dict observations);
* :class:`VectorHerReplayBuffer` — SB3's ``HerReplayBuffer`` (goal-conditioned Dict observations):
  a relabelled transition gets a new reward vector. Goal-dependent channels are recomputed with
  the env's ``compute_vector_reward(achieved_goal, desired_goal, info)``: the stored vector plus
  ``f(achieved, new goal) − f(achieved, old goal)`` (both with ``info=None``), so channels that do
  not depend on the goal — step cost, collision pain read from ``info`` — keep their stored values
  without copying info dicts. A 1-channel env needs only ``compute_reward``.

  Whether a relabelled transition is *terminal* matters for the per-channel values: an env that
  ends its episode when the goal is reached should end relabelled ones there too, or a channel such
  as "reached" is learned as if the agent could collect it again and again. The buffer uses the
  env's ``compute_terminated(achieved_goal, desired_goal, info)`` (Gymnasium-Robotics' GoalEnv
  API) when it has one, else ``terminal_channel`` (a channel whose nonzero value means the
  episode ended) when given, else SB3's behaviour (the stored termination flag).

Samples are :class:`VectorReplaySamples`: SB3's fields plus ``reward_vectors`` ``[B, C]``.
``dones`` already excludes time-outs (SB3's ``handle_timeout_termination``).
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import HerReplayBuffer
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer

from agents.reward_channels import vector_rewards


class VectorReplaySamples(NamedTuple):
    observations: torch.Tensor | dict[str, torch.Tensor]
    actions: torch.Tensor
    next_observations: torch.Tensor | dict[str, torch.Tensor]
    dones: torch.Tensor  # [B, 1] float, terminations only
    rewards: torch.Tensor  # [B, 1] the env's scalar reward
    reward_vectors: torch.Tensor  # [B, C]


class _RewardVectorStore:
    """Mixin: the ``reward_vectors`` array and an ``add`` that fills it."""

    reward_vectors: np.ndarray

    def _init_vectors(self, n_channels: int) -> None:
        if n_channels < 1:
            raise ValueError(f"n_channels must be >= 1, got {n_channels}")
        self.n_channels = int(n_channels)
        self.reward_vectors = np.zeros((self.buffer_size, self.n_envs, self.n_channels), dtype=np.float32)

    def add(self, obs, next_obs, action, reward, done, infos: list[dict[str, Any]],
            reward_vector: np.ndarray | None = None) -> None:
        """SB3's ``add``; the reward vector comes from ``reward_vector`` or ``info["vector_reward"]``."""
        if reward_vector is None:
            reward_vector = vector_rewards(infos, reward, self.n_channels)
        self.reward_vectors[self.pos] = np.asarray(reward_vector, dtype=np.float32).reshape(self.n_envs, self.n_channels)
        super().add(obs, next_obs, action, reward, done, infos)


class VectorReplayBuffer(_RewardVectorStore, ReplayBuffer):
    """SB3's ``ReplayBuffer`` with reward vectors."""

    def __init__(self, buffer_size: int, observation_space: spaces.Space, action_space: spaces.Space,
                 n_channels: int, device: torch.device | str = "cpu", n_envs: int = 1,
                 handle_timeout_termination: bool = True):
        super().__init__(buffer_size, observation_space, action_space, device=device, n_envs=n_envs,
                         optimize_memory_usage=False, handle_timeout_termination=handle_timeout_termination)
        self._init_vectors(n_channels)

    def _get_samples(self, batch_inds: np.ndarray, env=None) -> VectorReplaySamples:
        env_inds = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        to = self.to_torch
        return VectorReplaySamples(
            to(self._normalize_obs(self.observations[batch_inds, env_inds, :], env)),
            to(self.actions[batch_inds, env_inds, :]),
            to(self._normalize_obs(self.next_observations[batch_inds, env_inds, :], env)),
            to(self.dones[batch_inds, env_inds] * (1 - self.timeouts[batch_inds, env_inds])).reshape(-1, 1),
            to(self._normalize_reward(self.rewards[batch_inds, env_inds].reshape(-1, 1), env)),
            to(self.reward_vectors[batch_inds, env_inds]),
        )


class VectorDictReplayBuffer(_RewardVectorStore, DictReplayBuffer):
    """SB3's ``DictReplayBuffer`` with reward vectors."""

    def __init__(self, buffer_size: int, observation_space: spaces.Dict, action_space: spaces.Space,
                 n_channels: int, device: torch.device | str = "cpu", n_envs: int = 1,
                 handle_timeout_termination: bool = True):
        super().__init__(buffer_size, observation_space, action_space, device=device, n_envs=n_envs,
                         optimize_memory_usage=False, handle_timeout_termination=handle_timeout_termination)
        self._init_vectors(n_channels)

    def _get_samples(self, batch_inds: np.ndarray, env=None) -> VectorReplaySamples:
        env_inds = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        to = self.to_torch
        obs = self._normalize_obs({k: o[batch_inds, env_inds, :] for k, o in self.observations.items()}, env)
        nxt = self._normalize_obs({k: o[batch_inds, env_inds, :] for k, o in self.next_observations.items()}, env)
        return VectorReplaySamples(
            {k: to(v) for k, v in obs.items()},
            to(self.actions[batch_inds, env_inds]),
            {k: to(v) for k, v in nxt.items()},
            to(self.dones[batch_inds, env_inds] * (1 - self.timeouts[batch_inds, env_inds])).reshape(-1, 1),
            to(self._normalize_reward(self.rewards[batch_inds, env_inds].reshape(-1, 1), env)),
            to(self.reward_vectors[batch_inds, env_inds]),
        )


class VectorHerReplayBuffer(_RewardVectorStore, HerReplayBuffer):
    """SB3's ``HerReplayBuffer`` with reward vectors relabelled along with the goals (see module doc).

    ``scalar_weights`` (``[C]``, the env's own weights) give the scalar ``rewards`` of relabelled
    samples as ``weights · vector``; ``terminal_channel`` is a channel index or None.
    """

    def __init__(self, buffer_size: int, observation_space: spaces.Dict, action_space: spaces.Space, env,
                 n_channels: int, scalar_weights: np.ndarray | None = None, terminal_channel: int | None = None,
                 device: torch.device | str = "cpu", n_envs: int = 1, handle_timeout_termination: bool = True,
                 n_sampled_goal: int = 4, goal_selection_strategy: str = "future", copy_info_dict: bool = False):
        super().__init__(buffer_size, observation_space, action_space, env, device=device, n_envs=n_envs,
                         optimize_memory_usage=False, handle_timeout_termination=handle_timeout_termination,
                         n_sampled_goal=n_sampled_goal, goal_selection_strategy=goal_selection_strategy,
                         copy_info_dict=copy_info_dict)
        if not copy_info_dict:
            self.infos = None  # a [size, n_envs] array of dicts nobody reads (and checkpoints cannot store)
        self._init_vectors(n_channels)
        self.scalar_weights = np.ones(self.n_channels, np.float32) if scalar_weights is None else \
            np.asarray(scalar_weights, np.float32).reshape(self.n_channels)
        if terminal_channel is not None and not 0 <= terminal_channel < self.n_channels:
            raise ValueError(f"terminal_channel must be a channel index in [0, {self.n_channels}), got {terminal_channel}")
        self.terminal_channel = terminal_channel
        self._has_vector_reward = bool(env.has_attr("compute_vector_reward")) if env is not None else False
        self._has_terminated = bool(env.has_attr("compute_terminated")) if env is not None else False
        if self.n_channels > 1 and env is not None and not self._has_vector_reward:
            raise ValueError(f"hindsight relabelling of a {self.n_channels}-channel reward needs the env method "
                             "compute_vector_reward(achieved_goal, desired_goal, info)")

    def end_open_episodes(self) -> None:
        """End the episodes still open in the buffer (the env was reset): SB3's ``truncate_last_trajectory``,
        quietly, so that hindsight goals never come from a different episode."""
        if (self._current_ep_start != self.pos).any():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.truncate_last_trajectory()

    def sample(self, batch_size: int, env=None) -> VectorReplaySamples:
        """``1 / (n_sampled_goal + 1)`` real transitions, the rest with hindsight goals."""
        filled = self.buffer_size if self.full else self.pos
        valid = np.flatnonzero(self.ep_length[:filled] > 0)
        if len(valid) == 0:
            raise RuntimeError("cannot sample before the first episode has ended: raise learning_starts "
                               "above the env's episode length")
        chosen = valid[np.random.randint(0, len(valid), size=batch_size)]
        batch_inds, env_inds = np.unravel_index(chosen, (filled, self.n_envs))
        n_virtual = int(self.her_ratio * batch_size)
        real = self._gather(batch_inds[n_virtual:], env_inds[n_virtual:], relabel=False)
        virtual = self._gather(batch_inds[:n_virtual], env_inds[:n_virtual], relabel=True)
        to = self.to_torch
        obs = self._normalize_obs({k: np.concatenate([virtual[0][k], real[0][k]]) for k in real[0]}, env)
        nxt = self._normalize_obs({k: np.concatenate([virtual[1][k], real[1][k]]) for k in real[1]}, env)
        dones, rewards, vectors = (np.concatenate([v, r]) for v, r in zip(virtual[2:], real[2:]))
        return VectorReplaySamples(
            {k: to(v) for k, v in obs.items()},
            to(self.actions[batch_inds, env_inds]),  # virtual first, then real, as above
            {k: to(v) for k, v in nxt.items()},
            to(dones.reshape(-1, 1)),
            to(self._normalize_reward(rewards.reshape(-1, 1), env)),
            to(vectors),
        )

    def _gather(self, b: np.ndarray, e: np.ndarray, relabel: bool):
        obs = {k: o[b, e] for k, o in self.observations.items()}
        nxt = {k: o[b, e] for k, o in self.next_observations.items()}
        dones = (self.dones[b, e] * (1 - self.timeouts[b, e])).astype(np.float32)
        vectors = self.reward_vectors[b, e]
        rewards = self.rewards[b, e]
        if not relabel or len(b) == 0:
            return obs, nxt, dones, rewards, vectors
        new_goals = self._sample_goals(b, e)
        old_goals = obs["desired_goal"]
        obs["desired_goal"] = new_goals
        nxt["desired_goal"] = new_goals
        achieved = nxt["achieved_goal"]
        infos = self.infos[b, e].tolist() if self.copy_info_dict else [{} for _ in range(len(b))]
        if self._has_vector_reward:
            f_new = self._call("compute_vector_reward", achieved, new_goals, None)
            f_old = self._call("compute_vector_reward", achieved, old_goals, None)
            vectors = (vectors + f_new - f_old).astype(np.float32)
            rewards = (vectors @ self.scalar_weights).astype(np.float32)
        else:  # one channel: the env's scalar reward is the vector
            rewards = np.asarray(self._call("compute_reward", achieved, new_goals, infos), np.float32).reshape(-1)
            vectors = rewards.reshape(-1, 1)
        if self._has_terminated:
            dones = np.asarray(self._call("compute_terminated", achieved, new_goals, infos), np.float32).reshape(-1)
        elif self.terminal_channel is not None:
            dones = (vectors[:, self.terminal_channel] != 0).astype(np.float32)
        return obs, nxt, dones, rewards, vectors

    def _call(self, method: str, achieved, desired, infos):
        # the method of the first env, assuming all envs are alike (as SB3's HerReplayBuffer does)
        return self.env.env_method(method, achieved, desired, infos, indices=[0])[0]
