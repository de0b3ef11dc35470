"""``dpg``: deterministic policy gradients through a vector-valued critic (seed Sec. 13 and 14).

In 1990 (seed Sec. 13, "Reinforcement learning through neural world models" / "Recurrent
networks adjusted by adaptive critics") a critic trained by temporal differences predicted the
cumulative value of *every* reward and pain signal separately, and the controller C followed the
gradient of those predictions with respect to its own outputs (Sec. 14) — what Silver et al.
(2014) named the deterministic policy gradient and Lillicrap et al. (2015) turned into DDPG.
The reward signals were also among C's inputs. This module is that algorithm, with TD3's
three fixes (Fujimoto et al., 2018) as options that are on by default:

1. **Controller.** A deterministic actor ``μ(s) ∈ [-1, 1]^n`` (tanh, rescaled to the action
   bounds); exploration adds Gaussian noise ``action_noise_std`` to its output.
2. **Reward vector.** Every transition stores the env's reward vector ``r ∈ R^C``
   (``info["vector_reward"]``; the scalar reward as one channel where there is none) in a replay
   buffer from :mod:`agents.vector_replay` — SB3's, extended; hindsight goal relabelling (HER)
   recomputes the goal-dependent channels for goal-conditioned Dict envs.
3. **Vector critic.** ``Q(s, a) ∈ R^C``, one value per channel, each with its own discount
   ``γ_c`` and TD target ``r_c + γ_c (1 − done) Q'_c(s', μ'(s') + ε)`` (target networks μ', Q';
   target-policy smoothing ``ε``). Twin critics (clipped double-Q) are one fused network
   (:class:`agents.vector_critic.VectorQ`); the target takes, per sample, the twin whose weighted
   value ``w · Q'`` is lower. ``vector_critic=False`` learns one scalar critic on ``w · r``.
4. **Actor.** Every ``policy_delay`` critic steps, ``μ`` ascends ``w · Q_1(s, μ(s))``: the
   gradient of the predicted weighted value of all channels with respect to the action, chained
   into the actor's weights (only the actor's gradients are computed). Target networks follow by
   Polyak averaging (``tau``).
5. **Weights are not baked in.** Since every channel's value is learned separately,
   :meth:`DPG.retarget` changes ``w`` after training and re-optimises only the actor against the
   learned critics — no new env steps (the critics still value the old behaviour, so this is
   one step of policy improvement under the new weights).
6. **Reward inputs.** ``reward_inputs=True`` feeds the previous action and reward vector to C
   (and the critic): the env is wrapped in :class:`agents.wrappers.PreviousActionReward`
   (:meth:`DPG.env_wrapper` tells ``scripts/train.py`` to do so). Off by default: on Markov tasks
   they are redundant.

With ``twin_critics=False, policy_delay=1, target_policy_noise=0`` it is DDPG. Logged:
``train/actor_loss``, ``train/critic_loss``, ``critic/value_<channel>`` (mean Q_1 per channel
over the training batches), SB3's ``rollout/*`` and ``time/*``.
"""

from __future__ import annotations

import copy
import sys
import time
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.utils import safe_mean
from torch import nn

from agents.base import MirabilisAlgorithm
from agents.reward_channels import (
    RewardChannels,
    env_reward_channels,
    resolve_weights,
    vector_rewards,
)
from agents.vector_critic import VectorQ, vector_td_target
from agents.vector_replay import (
    VectorDictReplayBuffer,
    VectorHerReplayBuffer,
    VectorReplayBuffer,
    VectorReplaySamples,
)
from agents.wrappers import PreviousActionReward

GOAL_KEYS = ("observation", "achieved_goal", "desired_goal")


# --------------------------------------------------------------------------- C and the critics


def mlp(in_dim: int, hidden: list[int], out_dim: int, squash: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    if squash:
        layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class DPGPolicy(BasePolicy):
    """Actor ``μ``, vector critic ``Q`` and their target copies; inputs are the flattened observation.

    Observations are preprocessed as SB3 does (Discrete one-hot, images /255) and flattened;
    Dict observations are concatenated in key order. ``predict`` rescales ``μ``'s ``[-1, 1]``
    output to the action bounds (SB3's ``squash_output``).
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Box, n_channels: int,
                 net_arch: list[int], critic_net_arch: list[int], n_critics: int, relative_goal: bool = False):
        super().__init__(observation_space, action_space, squash_output=True)
        self.plain_box = isinstance(observation_space, spaces.Box) and observation_space.dtype == np.float32
        self.relative_goal = relative_goal
        self.features_dim = spaces.flatdim(observation_space) if not isinstance(observation_space, spaces.Dict) \
            else sum(spaces.flatdim(s) for s in observation_space.spaces.values())
        if relative_goal:
            self.features_dim += spaces.flatdim(observation_space.spaces["desired_goal"])
        action_dim = int(np.prod(action_space.shape))
        self.actor = mlp(self.features_dim, net_arch, action_dim, squash=True)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = VectorQ(self.features_dim + action_dim, critic_net_arch, n_channels, n_critics)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)

    def features(self, obs: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        if self.plain_box:
            return obs.reshape(obs.shape[0], -1)
        x = preprocess_obs(obs, self.observation_space, normalize_images=self.normalize_images)
        if isinstance(x, dict):
            parts = [x[k].float().reshape(x[k].shape[0], -1) for k in self.observation_space.spaces]
            if self.relative_goal:  # where the goal lies from here: the same input wherever the pair is
                parts.append((x["desired_goal"].float() - x["achieved_goal"].float()).reshape(parts[0].shape[0], -1))
            return torch.cat(parts, dim=1)
        return x.float().reshape(x.shape[0], -1)

    def _predict(self, observation, deterministic: bool = False) -> torch.Tensor:
        return self.actor(self.features(observation))

    def forward(self, observation, deterministic: bool = False) -> torch.Tensor:
        return self._predict(observation, deterministic)


# --------------------------------------------------------------------------- the algorithm


class DPG(MirabilisAlgorithm):
    """Deterministic policy gradients with per-channel (vector) critics; see the module docstring.

    Hyperparameters (all keyword, typed, defaulted; ``agents/hyperparams/dpg.yml`` per env):

    ``learning_rate`` (Adam, actor and critic) · ``buffer_size`` · ``learning_starts`` (uniform
    random actions before, updates after) · ``batch_size`` · ``tau`` (Polyak) · ``gamma`` ·
    ``train_freq`` (env steps between updates) · ``gradient_steps`` (per update; -1: as many as env
    steps) · ``action_noise_std`` · ``net_arch`` (actor hidden sizes) · ``critic_net_arch`` (None:
    as ``net_arch``) · ``vector_critic`` · ``twin_critics`` · ``policy_delay`` ·
    ``target_policy_noise`` · ``target_noise_clip`` · ``reward_weights`` (list or ``{channel:
    weight}``; None: the env's) · ``channel_gammas`` (list or ``{channel: γ}``; None: ``gamma``
    for all) · ``reward_inputs`` · ``her`` (relabel goals on goal-conditioned Dict envs) ·
    ``her_n_sampled_goal`` · ``her_goal_selection_strategy`` · ``her_terminal_channel`` (a
    channel whose nonzero value ends the episode, for relabelled transitions of envs without
    ``compute_terminated``) · ``relative_goal`` (goal-conditioned Dict envs: actor and critic also
    see ``desired_goal − achieved_goal``, the same input wherever on the map a start–goal offset lies)
    · ``action_l2`` (weight of the mean squared action ``μ(s)²``, in ``[-1, 1]`` units, added to the
    actor's loss, as in the HER paper's reference implementation; 0: none).
    """

    agent_id = "dpg"
    supported_observation_spaces = (spaces.Box, spaces.Discrete, spaces.Dict)
    supported_action_spaces = (spaces.Box,)

    def __init__(
        self,
        env,
        learning_rate: float = 1e-3,
        buffer_size: int = 1_000_000,
        learning_starts: int = 100,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int = 1,
        gradient_steps: int = 1,
        action_noise_std: float = 0.1,
        net_arch: list = [400, 300],  # noqa: B006 (read, never mutated)
        critic_net_arch: list | None = None,
        vector_critic: bool = True,
        twin_critics: bool = True,
        policy_delay: int = 2,
        target_policy_noise: float = 0.2,
        target_noise_clip: float = 0.5,
        reward_weights: list | dict | None = None,
        channel_gammas: list | dict | None = None,
        reward_inputs: bool = False,
        her: bool = True,
        her_n_sampled_goal: int = 4,
        her_goal_selection_strategy: str = "future",
        her_terminal_channel: str | None = None,
        relative_goal: bool = False,
        action_l2: float = 0.0,
        seed: int | None = None,
        tensorboard_log: str | None = None,
        verbose: int = 0,
        device: str = "cpu",
    ):
        self._record_hyperparams(locals())
        self.check_spaces(env.observation_space, env.action_space)
        _check(learning_rate > 0, "learning_rate", "must be > 0", learning_rate)
        _check(buffer_size >= 1, "buffer_size", "must be >= 1", buffer_size)
        _check(learning_starts >= 0, "learning_starts", "must be >= 0", learning_starts)
        _check(batch_size >= 1, "batch_size", "must be >= 1", batch_size)
        _check(0 < tau <= 1, "tau", "must be in (0, 1]", tau)
        _check(0 <= gamma <= 1, "gamma", "must be in [0, 1]", gamma)
        _check(train_freq >= 1, "train_freq", "must be >= 1", train_freq)
        _check(gradient_steps >= 1 or gradient_steps == -1, "gradient_steps", "must be >= 1 or -1", gradient_steps)
        _check(action_noise_std >= 0, "action_noise_std", "must be >= 0", action_noise_std)
        _check(policy_delay >= 1, "policy_delay", "must be >= 1", policy_delay)
        _check(target_policy_noise >= 0, "target_policy_noise", "must be >= 0", target_policy_noise)
        _check(target_noise_clip >= 0, "target_noise_clip", "must be >= 0", target_noise_clip)
        _check(her_n_sampled_goal >= 0, "her_n_sampled_goal", "must be >= 0", her_n_sampled_goal)
        _check(her_goal_selection_strategy in ("future", "final", "episode"), "her_goal_selection_strategy",
               "must be one of ['future', 'final', 'episode']", her_goal_selection_strategy)
        self.net_arch = _layer_sizes("net_arch", net_arch)
        _check(isinstance(relative_goal, bool), "relative_goal", "must be true or false", relative_goal)
        if relative_goal:
            goal_spaces = getattr(env.observation_space, "spaces", {})
            _check(all(k in goal_spaces for k in ("achieved_goal", "desired_goal")) and
                   goal_spaces["achieved_goal"].shape == goal_spaces["desired_goal"].shape, "relative_goal",
                   "needs a Dict observation with achieved_goal and desired_goal of one shape", relative_goal)
        self.relative_goal = relative_goal
        _check(action_l2 >= 0, "action_l2", "must be >= 0", action_l2)
        self.action_l2 = float(action_l2)
        self.critic_net_arch = self.net_arch if critic_net_arch is None else _layer_sizes("critic_net_arch", critic_net_arch)

        super().__init__(DPGPolicy, env, learning_rate, tensorboard_log=tensorboard_log, verbose=verbose,
                         device=device, support_multi_env=True, seed=seed, supported_action_spaces=(spaces.Box,))
        self.buffer_size, self.learning_starts, self.batch_size = buffer_size, learning_starts, batch_size
        self.tau, self.gamma, self.train_freq, self.gradient_steps = tau, gamma, train_freq, gradient_steps
        self.action_noise_std, self.policy_delay = action_noise_std, policy_delay
        self.target_policy_noise, self.target_noise_clip = target_policy_noise, target_noise_clip
        self.vector_critic, self.twin_critics, self.reward_inputs = vector_critic, twin_critics, reward_inputs
        self.her_n_sampled_goal, self.her_goal_selection_strategy = her_n_sampled_goal, her_goal_selection_strategy

        # The reward channels: names and weights from the env (or reward_weights), a discount each.
        names, self.env_weights = env_reward_channels(self.env)
        weights = resolve_weights(names, self.env_weights, reward_weights)
        self.channels = RewardChannels(names, weights, _channel_gammas(names, gamma, channel_gammas))
        if not vector_critic and channel_gammas is not None:
            raise ValueError("channel_gammas needs vector_critic=True (a scalar critic has one discount: gamma)")
        self.goal_env = (isinstance(self.observation_space, spaces.Dict)
                         and all(k in self.observation_space.spaces for k in GOAL_KEYS)
                         and bool(self.env.has_attr("compute_reward")))
        self.use_her = her and self.goal_env
        self.her_terminal_index = None
        if her_terminal_channel is not None:
            if her_terminal_channel not in names:
                raise ValueError(f"her_terminal_channel: unknown channel {her_terminal_channel!r}; channels are {names}")
            self.her_terminal_index = names.index(her_terminal_channel)
        if reward_inputs and not _is_wrapped(self.env, PreviousActionReward):
            raise ValueError("reward_inputs=True needs the env wrapped in agents.wrappers.PreviousActionReward "
                             "(scripts/train.py does this; in code: make_vec_env(..., wrapper_class=PreviousActionReward))")
        self._n_updates = 0
        self._setup_model()

    @classmethod
    def check_spaces(cls, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        if not isinstance(action_space, spaces.Box):
            raise ValueError(f"dpg needs a continuous (Box) action space, got {action_space}; "  # noqa: TRY004
                             "for discrete actions use dqn or ppo")
        if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
            raise ValueError(f"dpg needs finite action bounds, got {action_space}")
        parts = observation_space.spaces.items() if isinstance(observation_space, spaces.Dict) \
            else [("", observation_space)]
        for key, space in parts:
            if not isinstance(space, (spaces.Box, spaces.Discrete)):
                where = f" (key {key!r})" if key else ""
                raise ValueError(f"dpg supports Box, Discrete and Dict-of-those observation spaces, "  # noqa: TRY004
                                 f"got {space}{where}")

    def _setup_model(self) -> None:
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        C = len(self.channels)
        kwargs = {"device": self.device, "n_envs": self.n_envs, "handle_timeout_termination": True}
        if self.use_her:
            self.replay_buffer = VectorHerReplayBuffer(
                self.buffer_size, self.observation_space, self.action_space, self.env, C, scalar_weights=self.env_weights,
                terminal_channel=self.her_terminal_index, n_sampled_goal=self.her_n_sampled_goal,
                goal_selection_strategy=self.her_goal_selection_strategy, **kwargs)
        elif isinstance(self.observation_space, spaces.Dict):
            self.replay_buffer = VectorDictReplayBuffer(self.buffer_size, self.observation_space, self.action_space, C, **kwargs)
        else:
            self.replay_buffer = VectorReplayBuffer(self.buffer_size, self.observation_space, self.action_space, C, **kwargs)
        critic_channels = C if self.vector_critic else 1
        self.policy = DPGPolicy(self.observation_space, self.action_space, critic_channels, self.net_arch,
                                self.critic_net_arch, 2 if self.twin_critics else 1,
                                relative_goal=self.relative_goal).to(self.device)
        lr = self.lr_schedule(1.0)
        self.actor_optimizer = torch.optim.Adam(self.policy.actor.parameters(), lr=lr, fused=True)
        self.critic_optimizer = torch.optim.Adam(self.policy.critic.parameters(), lr=lr, fused=True)
        self._actor_params = list(self.policy.actor.parameters())
        self._online = self._actor_params + list(self.policy.critic.parameters())
        self._targets = list(self.policy.actor_target.parameters()) + list(self.policy.critic_target.parameters())
        self._set_channel_tensors()
        self._reset_stats()
        low, high = self.action_space.low, self.action_space.high
        self._action_scale, self._action_low = (high - low) / 2.0, low

    def _reset_stats(self) -> None:
        zero = torch.zeros((), device=self.device)
        self._stats = {"critic_loss": zero.clone(), "actor_loss": zero.clone(), "n_critic": zero.clone(),
                       "n_actor": zero.clone(), "values": torch.zeros(self.policy.critic.n_channels, device=self.device)}

    def _set_channel_tensors(self) -> None:
        ch = self.channels
        self._reward_w = torch.as_tensor(ch.weights, device=self.device)
        if self.vector_critic:  # the critic's output channels: all of them, or the weighted sum
            self._critic_w, self._gammas = self._reward_w, torch.as_tensor(ch.gammas, device=self.device)
            self._episodic = torch.as_tensor(ch.episodic, dtype=torch.float32, device=self.device)
        else:
            self._critic_w = torch.ones(1, device=self.device)
            self._gammas = torch.full((1,), float(self.gamma), device=self.device)
            self._episodic = torch.ones(1, device=self.device)

    @property
    def actor(self) -> nn.Module:
        return self.policy.actor

    @property
    def critic(self) -> VectorQ:
        return self.policy.critic

    @property
    def reward_names(self) -> list[str]:
        return list(self.channels.names)

    # ------------------------------------------------------------------ acting

    def _obs_tensor(self, obs) -> torch.Tensor | dict[str, torch.Tensor]:
        if isinstance(obs, dict):
            return {k: torch.as_tensor(v, device=self.device) for k, v in obs.items()}
        return torch.as_tensor(obs, device=self.device)

    def _act(self, obs) -> tuple[np.ndarray, np.ndarray]:
        """(env actions, the [-1, 1] actions the buffer stores): random before learning_starts, then μ + noise."""
        if self.num_timesteps < self.learning_starts:
            env_actions = np.array([self.action_space.sample() for _ in range(self.n_envs)])
            scaled = (env_actions - self._action_low) / self._action_scale - 1.0
            return env_actions, scaled.astype(np.float32)
        with torch.no_grad():
            scaled = self.policy.actor(self.policy.features(self._obs_tensor(obs))).numpy()
        if self.action_noise_std > 0:
            scaled = np.clip(scaled + np.random.normal(0.0, self.action_noise_std, scaled.shape), -1.0, 1.0)
        scaled = scaled.astype(np.float32)
        return self._action_low + (scaled + 1.0) * self._action_scale, scaled

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = False):
        """μ's action (deterministic either way: exploration noise is for training only)."""
        return self.policy.predict(observation, state, episode_start, deterministic)

    # ------------------------------------------------------------------ learning

    def learn(self, total_timesteps: int, callback=None, log_interval: int = 4, tb_log_name: str = "DPG",
              reset_num_timesteps: bool = True, progress_bar: bool = False):
        new_episode = reset_num_timesteps or self._last_obs is None  # the env is about to be reset
        total_timesteps, callback = self._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name,
                                                      progress_bar)
        if new_episode and isinstance(self.replay_buffer, VectorHerReplayBuffer):
            self.replay_buffer.end_open_episodes()  # e.g. after loading a checkpoint with its buffer
        callback.on_training_start(locals(), globals())
        env, buffer, n_envs = self.env, self.replay_buffer, self.env.num_envs
        C = len(self.channels)
        steps_since_update = 0
        while self.num_timesteps < total_timesteps:
            callback.on_rollout_start()
            env_actions, actions = self._act(self._last_obs)
            new_obs, rewards, dones, infos = env.step(env_actions)
            self.num_timesteps += n_envs
            callback.update_locals(locals())
            if not callback.on_step():
                break
            self._update_info_buffer(infos, dones)
            next_obs = new_obs
            if dones.any():  # VecEnvs reset by themselves: store the true last observation
                next_obs = copy.deepcopy(new_obs)
                for i in np.flatnonzero(dones):
                    terminal = infos[i].get("terminal_observation")
                    if terminal is None:
                        continue
                    if isinstance(next_obs, dict):
                        for key in next_obs:
                            next_obs[key][i] = terminal[key]
                    else:
                        next_obs[i] = terminal
            buffer.add(self._last_obs, next_obs, actions, rewards, dones, infos, vector_rewards(infos, rewards, C))
            self._last_obs = new_obs
            self._update_current_progress_remaining(self.num_timesteps, self._total_timesteps)
            for done in dones:
                if done:
                    self._episode_num += 1
                    if log_interval is not None and self._episode_num % log_interval == 0:
                        self._dump_logs()
            callback.on_rollout_end()
            steps_since_update += 1
            if self.num_timesteps > self.learning_starts and steps_since_update >= self.train_freq:
                n = self.gradient_steps if self.gradient_steps > 0 else steps_since_update * n_envs
                self.train(n, self.batch_size)
                steps_since_update = 0
        callback.on_training_end()
        return self

    def _replay_ready(self) -> bool:
        """Whether the replay can be sampled: a HER buffer only once an episode has ended in it (a run
        resumed from a checkpoint saved without its replay starts with an empty one)."""
        if not getattr(self, "_replay_has_data", False):
            buffer = self.replay_buffer
            filled = buffer.buffer_size if buffer.full else buffer.pos
            if isinstance(buffer, VectorHerReplayBuffer):
                self._replay_has_data = bool((buffer.ep_length[:filled] > 0).any())
            else:
                self._replay_has_data = filled > 0
        return self._replay_has_data

    def train(self, gradient_steps: int, batch_size: int = 256) -> None:
        """``gradient_steps`` critic updates; an actor and target update every ``policy_delay``-th
        (none until the replay can be sampled)."""
        if not self._replay_ready():
            return
        if not self.policy.training:  # predict() switched to eval mode (no dropout/batch-norm here, but be exact)
            self.policy.set_training_mode(True)
        for _ in range(gradient_steps):
            self._n_updates += 1
            data = self.replay_buffer.sample(batch_size)
            self._gradient_step(data, update_actor=self._n_updates % self.policy_delay == 0)

    def _gradient_step(self, data: VectorReplaySamples, update_actor: bool) -> None:
        pol = self.policy
        obs, next_obs = pol.features(data.observations), pol.features(data.next_observations)
        rewards = data.reward_vectors if self.vector_critic else (data.reward_vectors @ self._reward_w).unsqueeze(1)

        # 3. the vector critic: per-channel TD targets from the target networks
        with torch.no_grad():
            next_actions = pol.actor_target(next_obs)
            if self.target_policy_noise > 0:
                noise = torch.randn_like(next_actions).mul_(self.target_policy_noise)
                next_actions = (next_actions + noise.clamp_(-self.target_noise_clip, self.target_noise_clip)).clamp_(-1, 1)
            next_q = pol.critic_target(torch.cat([next_obs, next_actions], dim=1))
            target = vector_td_target(rewards, data.dones, next_q, self._gammas, self._episodic, self._critic_w)
        q = pol.critic(torch.cat([obs, data.actions], dim=1))  # [E, B, C]
        critic_loss = (q - target).square().mean(dim=1).sum()
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()
        with torch.no_grad():  # running sums for the logs
            self._stats["critic_loss"] += critic_loss
            self._stats["values"] += q[0].mean(dim=0)
            self._stats["n_critic"] += 1

        # 4. the actor ascends w · Q_1(s, μ(s)); then the targets follow
        if update_actor:
            actor_loss = self._actor_step(obs)
            with torch.no_grad():
                self._stats["actor_loss"] += actor_loss
                self._stats["n_actor"] += 1
                torch._foreach_lerp_(self._targets, self._online, self.tau)

    def _actor_step(self, obs: torch.Tensor, pessimistic: bool = False) -> torch.Tensor:
        action = self.policy.actor(obs)
        x = torch.cat([obs, action], dim=1)
        if pessimistic:  # the lower of the twins' weighted values (against frozen critics: less to exploit)
            value = (self.policy.critic(x) @ self._critic_w).min(dim=0).values
        else:  # TD3: Q_1 only
            value = self.policy.critic.member(x, 0) @ self._critic_w
        actor_loss = -value.mean()
        if self.action_l2 > 0:  # HER's action penalty: no push along axes the value does not care about
            actor_loss = actor_loss + self.action_l2 * action.square().mean()
        grads = torch.autograd.grad(actor_loss, self._actor_params)  # the critic's own gradients are not needed
        for p, g in zip(self._actor_params, grads):
            p.grad = g
        self.actor_optimizer.step()
        return actor_loss.detach()

    # ------------------------------------------------------------------ 5. new weights, same critics

    def set_reward_weights(self, weights: list | dict | np.ndarray) -> np.ndarray:
        """Set ``w`` (a list, array or ``{channel: weight}``); the actor changes only when optimised."""
        w = resolve_weights(self.channels.names, self.channels.weights,
                            weights.tolist() if isinstance(weights, np.ndarray) else weights)
        self.channels = RewardChannels(self.channels.names, w, self.channels.gammas, self.channels.episodic)
        self._set_channel_tensors()
        return w

    def retarget(self, weights: list | dict | np.ndarray, gradient_steps: int = 1000,
                 batch_size: int | None = None, pessimistic: bool = True) -> dict[str, float]:
        """New weights; re-optimise only the actor against the learned per-channel critics (no env steps).

        The actor ascends ``w_new · Q`` on replayed states; with ``pessimistic`` (default) ``Q`` is the
        twin with the lower weighted value, which leaves the frozen critics' errors less to exploit.
        Returns that weighted value (batch mean) at the first and the last step.
        """
        if not self.vector_critic:
            raise ValueError("retarget needs vector_critic=True: a scalar critic learned only the old weighted sum")
        _check(gradient_steps >= 1, "gradient_steps", "must be >= 1", gradient_steps)
        if self.replay_buffer.size() == 0:
            raise ValueError("retarget needs replayed states: train the agent first")
        self.set_reward_weights(weights)
        self.policy.set_training_mode(True)
        batch_size = batch_size or self.batch_size
        before = after = 0.0
        for i in range(gradient_steps):
            obs = self.policy.features(self.replay_buffer.sample(batch_size).observations)
            loss = float(self._actor_step(obs, pessimistic=pessimistic and self.twin_critics))
            before = -loss if i == 0 else before
            after = -loss
        with torch.no_grad():
            for target, online in zip(self.policy.actor_target.parameters(), self.policy.actor.parameters()):
                target.copy_(online)
        return {"weighted_value_before": before, "weighted_value_after": after}

    # ------------------------------------------------------------------ logging, checkpoints, envs

    def _dump_logs(self) -> None:
        elapsed = max((time.time_ns() - self.start_time) / 1e9, sys.float_info.epsilon)
        log = self.logger.record
        log("time/episodes", self._episode_num, exclude="tensorboard")
        if len(self.ep_info_buffer) > 0 and len(self.ep_info_buffer[0]) > 0:
            log("rollout/ep_rew_mean", safe_mean([ep["r"] for ep in self.ep_info_buffer]))
            log("rollout/ep_len_mean", safe_mean([ep["l"] for ep in self.ep_info_buffer]))
        if len(self.ep_success_buffer) > 0:
            log("rollout/success_rate", safe_mean(self.ep_success_buffer))
        log("time/fps", int((self.num_timesteps - self._num_timesteps_at_start) / elapsed))
        log("time/time_elapsed", int(elapsed), exclude="tensorboard")
        log("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        stats = self._stats
        if stats["n_critic"] > 0:
            log("train/critic_loss", float(stats["critic_loss"] / stats["n_critic"]))
            names = self.channels.names if self.vector_critic else ["weighted"]
            for name, value in zip(names, (stats["values"] / stats["n_critic"]).tolist()):
                log(f"critic/value_{name}", value)
        if stats["n_actor"] > 0:
            log("train/actor_loss", float(stats["actor_loss"] / stats["n_actor"]))
        log("train/n_updates", self._n_updates, exclude="tensorboard")
        log("train/learning_rate", self.lr_schedule(self._current_progress_remaining))
        self._reset_stats()
        self.logger.dump(step=self.num_timesteps)

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        return ["policy", "actor_optimizer", "critic_optimizer"], []

    def extra_checkpoint_state(self) -> dict[str, Any]:
        return {"reward_weights": self.channels.weights.tolist()}

    def load_extra_checkpoint_state(self, state: dict[str, Any]) -> None:
        if "reward_weights" in state:
            self.set_reward_weights(list(state["reward_weights"]))

    @classmethod
    def env_wrapper(cls, hyperparams: dict[str, Any]):
        """The gymnasium wrapper the runner puts around each env for these hyperparameters."""
        return PreviousActionReward if hyperparams.get("reward_inputs") else None

    def set_env(self, env, force_reset: bool = True) -> None:
        super().set_env(env, force_reset)
        if isinstance(self.replay_buffer, VectorHerReplayBuffer):
            self.replay_buffer.env = self.env


# --------------------------------------------------------------------------- helpers


def _check(ok: bool, name: str, rule: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"{name} {rule}, got {value!r}")


def _layer_sizes(name: str, value: Any) -> list[int]:
    sizes = list(value) if isinstance(value, (list, tuple)) else None
    if not sizes or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in sizes):
        raise ValueError(f"{name} must be a non-empty list of positive layer sizes, got {value!r}")
    return [int(s) for s in sizes]


def _channel_gammas(names: list[str], gamma: float, override: list | dict | None) -> np.ndarray:
    out = np.full(len(names), gamma, dtype=np.float32)
    if isinstance(override, dict):
        for key, value in override.items():
            if key not in names:
                raise ValueError(f"channel_gammas: unknown channel {key!r}; channels are {names}")
            out[names.index(key)] = value
    elif override is not None:
        values = np.asarray(override, dtype=np.float32).reshape(-1)
        if values.shape != (len(names),):
            raise ValueError(f"channel_gammas needs {len(names)} values (channels {names}), got {list(override)}")
        out = values
    if not np.all((out >= 0) & (out <= 1)):
        raise ValueError(f"channel_gammas must each be in [0, 1], got {out.tolist()}")
    return out


def _is_wrapped(vec_env, wrapper: type) -> bool:
    try:
        return bool(vec_env.env_is_wrapped(wrapper)[0])
    except (AttributeError, IndexError):
        return False
