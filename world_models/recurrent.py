"""The recurrent world model M (seed Sec. 5, 6, 11: "Making the world differentiable", 1990).

M reads the history of observations and actions and predicts what the environment does next:
the next observation, the reward *vector* (one entry per channel, seed Sec. 13) and whether the
episode terminates. Everything is differentiable, so that

* curiosity (Sec. 5, 6) can pay the controller C for M's errors or for M's improvement
  (:mod:`world_models.curiosity`, :mod:`world_models.progress`), and
* a planner (Sec. 11, 14) can run "mental experiments": roll C out inside M
  (:meth:`RecurrentWorldModel.imagine`) and back-propagate M's predicted rewards into C.

Data layout (SB3 ``VecEnv`` style): rollouts are ``[T, B, ...]`` — T steps of B parallel envs.
``episode_starts[t, b]`` is true when ``obs[t, b]`` is the first observation of an episode; M's
hidden state is reset to zero there *before* consuming ``obs[t, b]``. Transition ``t`` is
``(obs[t], actions[t]) -> next_obs[t]``; where an episode ended at ``t`` the true next
observation is the terminal one (``info["terminal_observation"]``), see
:func:`transition_targets`.

Spaces: ``Box`` (flattened, float), ``Discrete`` (one-hot) and, for observations, a ``Dict``
of those (flattened in the order of ``space.spaces``, as ``gymnasium.spaces.flatten`` does).
Box values with finite bounds (half-range at most 1e3) are scaled to [-1, 1] inside M; errors
of Box/Dict observations are mean squared errors in these scaled units. Any other space raises
``ValueError`` naming it.

Freezing M for a planner: call ``model.requires_grad_(False)`` (M's parameters get no
gradient, but gradients still flow *through* M into the policy's actions). Do **not** wrap
:meth:`~RecurrentWorldModel.imagine` in ``torch.no_grad()``: that cuts the gradient to C too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Union

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

State = Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]
"""M's recurrent state: ``h`` ``[B, hidden]`` for a GRU, ``(h, c)`` for an LSTM."""

Policy = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``policy(obs_flat [B, obs_dim], hidden [B, hidden_size]) -> action``, used by ``imagine``."""

MAX_SCALED_HALF_RANGE = 1e3
"""Box bounds with a larger half-range (or infinite ones) are left unscaled."""


# ----------------------------------------------------------------------------- spaces


def check_space(space: gym.Space, what: str = "observation", allow_dict: bool = True) -> None:
    """Raise ``ValueError`` naming ``space`` unless M supports it (Box, Discrete, Dict of those)."""
    if isinstance(space, (spaces.Box, spaces.Discrete)):
        return
    if allow_dict and isinstance(space, spaces.Dict):
        for sub in space.spaces.values():
            check_space(sub, what, allow_dict=True)
        return
    supported = "Box, Discrete" + (" or a Dict of those" if allow_dict else "")
    raise ValueError(f"unsupported {what} space {space!r}: the world model supports {supported}")


def flat_dim(space: gym.Space) -> int:
    """Length of the flat float vector that :func:`flatten_tensor` makes of ``space``'s values."""
    return int(spaces.flatdim(space))


def flatten_tensor(space: gym.Space, x: Any) -> torch.Tensor:
    """Flatten a batch of values of ``space`` to float ``[..., flat_dim(space)]``.

    Leading (batch) dimensions are kept. Box values keep their units; Discrete indices
    (integer ``[...]``, or float ``[..., 1]`` as in SB3's rollout buffers) become one-hot
    vectors, while a float ``[..., n]`` tensor is taken as given (probabilities, e.g. M's
    predicted next observation or a relaxed action).
    Dict values (a mapping of arrays) are flattened key by key and concatenated. Values that
    are already flat (``[..., flat_dim]``) pass through.
    """
    if isinstance(space, spaces.Dict):
        if isinstance(x, Mapping):
            return torch.cat([flatten_tensor(sub, x[key]) for key, sub in space.spaces.items()], -1)
        x = torch.as_tensor(x)
        if x.shape[-1] != flat_dim(space):
            raise ValueError(f"expected a dict or a flat [..., {flat_dim(space)}] tensor, got {tuple(x.shape)}")
        return x.float()
    x = torch.as_tensor(x)
    if isinstance(space, spaces.Discrete):
        if torch.is_floating_point(x) and x.shape[-1] == space.n and space.n != 1:
            return x
        return F.one_hot(discrete_index(space, x), int(space.n)).float()
    if isinstance(space, spaces.Box):
        k = len(space.shape)
        if k == 0:
            return x.float().unsqueeze(-1)
        if tuple(x.shape[x.ndim - k :]) == space.shape:
            return x.reshape(*x.shape[: x.ndim - k], -1).float()
        if x.shape[-1] == flat_dim(space):
            return x.float()
        raise ValueError(f"values of {space} must be [..., *{space.shape}] or flat, got {tuple(x.shape)}")
    check_space(space)
    raise AssertionError("unreachable")


def discrete_index(space: spaces.Discrete, x: torch.Tensor) -> torch.Tensor:
    """Zero-based int64 indices from Discrete values: integer ``[...]``, or float ``[..., 1]``
    as SB3's rollout buffers store them."""
    if torch.is_floating_point(x):
        if x.shape[-1:] != (1,):
            raise ValueError(f"float values of {space} must be [..., {space.n}] probabilities or [..., 1] indices")
        x = x.squeeze(-1).round()
    return x.long() - int(space.start)


def scaling_from_bounds(space: gym.Space) -> tuple[np.ndarray, np.ndarray]:
    """``(offset, scale)`` so that ``(flat - offset) / scale`` lies in [-1, 1] where bounds allow.

    Dimensions with infinite bounds, or a half-range above :data:`MAX_SCALED_HALF_RANGE`, get
    offset 0 and scale 1. Discrete spaces (one-hot) are left as they are.
    """
    dim = flat_dim(space)
    if isinstance(space, spaces.Discrete):
        return np.zeros(dim, np.float32), np.ones(dim, np.float32)
    box = spaces.flatten_space(space)
    low, high = box.low.astype(np.float64), box.high.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        half = (high - low) / 2.0
        ok = np.isfinite(low) & np.isfinite(high) & (half > 0) & (half <= MAX_SCALED_HALF_RANGE)
        offset = np.where(ok, (high + low) / 2.0, 0.0)
        scale = np.where(ok, half, 1.0)
    return offset.astype(np.float32), scale.astype(np.float32)


# ----------------------------------------------------------------------------- data


class Prediction(NamedTuple):
    """What M predicts for a transition (leading dims ``[B]`` from ``step``, ``[T, B]`` from
    ``forward_sequence``).

    * ``next_obs``: Box/Dict observations: mean of the flat next observation in env units;
      Discrete: logits over the ``n`` observations; ``target="embedding"``: the predicted
      embedding of the next observation.
    * ``reward``: ``[..., C]`` predicted reward vector.
    * ``termination_logit``: ``[...]``; ``sigmoid`` gives the termination probability.
    * ``hidden``: ``[..., hidden_size]`` M's hidden state after consuming ``(obs, action)``
      (``h`` of an LSTM): features for other modules.
    * ``reward_logit``: with ``reward_loss="bernoulli"``, the raw reward output before the
      sigmoid of the bounded channels (their logits); else None.
    """

    next_obs: torch.Tensor
    reward: torch.Tensor
    termination_logit: torch.Tensor
    hidden: torch.Tensor
    reward_logit: torch.Tensor | None = None


Obs = Union[torch.Tensor, dict[str, torch.Tensor]]


@dataclasses.dataclass
class SequenceBatch:
    """A ``[T, B]`` batch of transitions ``(obs[t], actions[t]) -> next_obs[t]``.

    ``obs``/``next_obs``: ``[T, B, *obs_shape]`` (Discrete: integer ``[T, B]`` or SB3's float
    ``[T, B, 1]``; Dict: a dict of such tensors); ``actions``: ``[T, B, *action_shape]``
    (Discrete: likewise);
    ``rewards``: ``[T, B, C]``; ``terminations`` (true terminations, not time-limit
    truncations) and ``episode_starts``: float 0/1 ``[T, B]``; ``mask``: optional float
    ``[T, B]`` weights of each transition in losses (1 everywhere when ``None``).
    """

    obs: Obs
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: Obs
    terminations: torch.Tensor
    episode_starts: torch.Tensor
    mask: torch.Tensor | None = None

    @property
    def T(self) -> int:  # noqa: N802
        return int(self.episode_starts.shape[0])

    @property
    def B(self) -> int:  # noqa: N802
        return int(self.episode_starts.shape[1])

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> SequenceBatch:
        def apply(v):
            if v is None:
                return None
            if isinstance(v, Mapping):
                return {k: fn(x) for k, x in v.items()}
            return fn(v)

        return SequenceBatch(**{f.name: apply(getattr(self, f.name)) for f in dataclasses.fields(self)})

    def to(self, device: torch.device | str) -> SequenceBatch:
        return self._map(lambda x: x.to(device))

    def slice(self, start: int, stop: int) -> SequenceBatch:
        """The sub-batch of steps ``start:stop`` (all envs)."""
        return self._map(lambda x: x[start:stop])

    @classmethod
    def from_numpy(
        cls,
        obs: Any,
        actions: Any,
        rewards: Any,
        next_obs: Any,
        terminations: Any | None = None,
        episode_starts: Any | None = None,
        mask: Any | None = None,
        device: torch.device | str = "cpu",
    ) -> SequenceBatch:
        """Build a batch from ``[T, B, ...]`` arrays (numpy or torch; dicts for Dict obs).

        Integer arrays (Discrete indices, uint8 images) become int64 tensors, others float32.
        ``rewards`` of shape ``[T, B]`` become one channel ``[T, B, 1]``; missing
        ``terminations``/``episode_starts`` default to zeros.
        """

        def tensor(x):
            if isinstance(x, Mapping):
                return {k: tensor(v) for k, v in x.items()}
            t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
            t = t.float() if torch.is_floating_point(t) or t.dtype == torch.bool else t.long()
            return t.to(device)

        rewards_t = tensor(rewards).float()
        if rewards_t.ndim == 2:
            rewards_t = rewards_t.unsqueeze(-1)
        T, B = rewards_t.shape[:2]
        zeros = torch.zeros(T, B, device=device)
        return cls(
            obs=tensor(obs),
            actions=tensor(actions),
            rewards=rewards_t,
            next_obs=tensor(next_obs),
            terminations=zeros if terminations is None else tensor(terminations).float(),
            episode_starts=zeros.clone() if episode_starts is None else tensor(episode_starts).float(),
            mask=None if mask is None else tensor(mask).float(),
        )


def transition_targets(new_obs: Any, dones: np.ndarray, infos: list[dict]) -> tuple[Any, np.ndarray]:
    """From one SB3 ``VecEnv.step`` result: ``(next_obs, terminations)`` of the transitions.

    ``next_obs`` is ``new_obs`` with the terminal observation (``info["terminal_observation"]``)
    put back where an episode ended (SB3 auto-resets, so ``new_obs`` holds the reset obs there);
    ``terminations`` is ``dones`` minus time-limit truncations (``info["TimeLimit.truncated"]``).
    Works for array and dict observations.
    """
    dones = np.asarray(dones, dtype=bool)
    if isinstance(new_obs, Mapping):
        next_obs = {k: np.array(v, copy=True) for k, v in new_obs.items()}
    else:
        next_obs = np.array(new_obs, copy=True)
    terminations = dones.copy()
    for i in np.flatnonzero(dones):
        terminal = infos[i].get("terminal_observation")
        if terminal is not None:
            if isinstance(next_obs, dict):
                for k in next_obs:
                    next_obs[k][i] = terminal[k]
            else:
                next_obs[i] = terminal
        terminations[i] = not infos[i].get("TimeLimit.truncated", False)
    return next_obs, terminations.astype(np.float32)


# ----------------------------------------------------------------------------- the model


class RecurrentWorldModel(nn.Module):
    """M: a recurrent network predicting next observation, reward vector and termination.

    Per step: ``z_t = ELU(W [obs_t, a_t])``, ``h_{t+1} = RNN(z_t, h_t)`` (zeroed first where
    ``episode_start``), ``f = ELU(W' [h_{t+1}, z_t])`` and linear heads on ``f``. Box/Dict
    next observations are predicted as a change of the (scaled) current one.

    :param observation_space: Box, Discrete or Dict of those.
    :param action_space: Box or Discrete.
    :param n_reward_channels: length C of the reward vector.
    :param hidden_size: size of the recurrent state.
    :param rnn: ``"gru"`` or ``"lstm"``.
    :param embed_size: size of the per-step input embedding ``z_t``.
    :param lr: Adam learning rate of :meth:`train_on_sequences`.
    :param bptt: truncation length of back-propagation through time.
    :param max_grad_norm: gradient clipping (global norm).
    :param target: ``"raw"`` predicts the next observation; ``"embedding"`` predicts a fixed
        random embedding (a frozen random 2-layer net) of it, for large observations.
    :param target_embed_size: size of that embedding.
    :param reward_coef: weight of the reward loss in the total loss.
    :param termination_coef: weight of the termination loss in the total loss.
    :param reward_loss: ``"mse"`` (squared error) or ``"bernoulli"``: channels with finite
        ``reward_bounds`` are predicted as ``low + (high - low) * sigmoid(logit)`` and trained with
        the cross-entropy of ``(r - low) / (high - low)`` (sparse 0/1 events such as finding a
        target are learned far faster than by regression; unbounded channels stay squared error).
    :param reward_bounds: ``(low, high)`` of the reward vector (e.g. an env's ``reward_space``);
        needed by ``"bernoulli"``.
    :param readout: an optional module ``(obs_flat, action_flat) -> [..., C + 1]`` (env units)
        that predicts the reward (first C) and the termination logit (last) instead of the heads
        on M's state (only their biases are added), e.g. :class:`world_models.retina.RetinaReadout`
        for saccades, whose effect on reward is where they land.
    :param device: torch device.
    """

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        n_reward_channels: int = 1,
        hidden_size: int = 128,
        rnn: str = "gru",
        embed_size: int = 128,
        lr: float = 1e-3,
        bptt: int = 32,
        max_grad_norm: float = 10.0,
        target: str = "raw",
        target_embed_size: int = 64,
        reward_coef: float = 1.0,
        termination_coef: float = 1.0,
        reward_loss: str = "mse",
        reward_bounds: tuple[Any, Any] | None = None,
        readout: nn.Module | None = None,
        device: torch.device | str = "cpu",
    ):
        super().__init__()
        check_space(observation_space, "observation", allow_dict=True)
        check_space(action_space, "action", allow_dict=False)
        if rnn not in ("gru", "lstm"):
            raise ValueError(f"rnn must be 'gru' or 'lstm', got {rnn!r}")
        if target not in ("raw", "embedding"):
            raise ValueError(f"target must be 'raw' or 'embedding', got {target!r}")
        if reward_loss not in ("mse", "bernoulli"):
            raise ValueError(f"reward_loss must be 'mse' or 'bernoulli', got {reward_loss!r}")
        if reward_loss == "bernoulli" and reward_bounds is None:
            raise ValueError("reward_loss='bernoulli' needs reward_bounds (low, high) of the reward vector")
        if int(n_reward_channels) < 1 or int(bptt) < 1:
            raise ValueError("n_reward_channels and bptt must be >= 1")
        self.observation_space = observation_space
        self.action_space = action_space
        self.n_reward_channels = int(n_reward_channels)
        self.hidden_size = int(hidden_size)
        self.rnn = rnn
        self.target = target
        self.bptt = int(bptt)
        self.max_grad_norm = float(max_grad_norm)
        self.reward_coef = float(reward_coef)
        self.termination_coef = float(termination_coef)
        self.discrete_obs = isinstance(observation_space, spaces.Discrete)
        self.obs_dim = flat_dim(observation_space)
        self.action_dim = flat_dim(action_space)

        for name, space in (("obs", observation_space), ("act", action_space)):
            offset, scale = scaling_from_bounds(space)
            self.register_buffer(f"{name}_offset", torch.as_tensor(offset))
            self.register_buffer(f"{name}_scale", torch.as_tensor(scale))

        if target == "embedding":
            self.target_dim = int(target_embed_size)
            w1 = nn.init.orthogonal_(torch.empty(self.obs_dim, 2 * self.target_dim), gain=np.sqrt(2))
            w2 = nn.init.orthogonal_(torch.empty(2 * self.target_dim, self.target_dim))
            self.register_buffer("target_w1", w1)  # buffers: never trained, never unfrozen
            self.register_buffer("target_w2", w2)
        else:
            self.target_dim = self.obs_dim

        self.encoder = nn.Sequential(nn.Linear(self.obs_dim + self.action_dim, embed_size), nn.ELU())
        cell = nn.GRUCell if rnn == "gru" else nn.LSTMCell
        self.cell = cell(embed_size, hidden_size)
        self.trunk = nn.Sequential(nn.Linear(hidden_size + embed_size, hidden_size), nn.ELU())
        self.obs_head = nn.Linear(hidden_size, self.target_dim)
        self.reward_head = nn.Linear(hidden_size, self.n_reward_channels)
        self.termination_head = nn.Linear(hidden_size, 1)
        self.readout = readout
        self.reward_loss = reward_loss
        low, high = (np.full(self.n_reward_channels, -np.inf), np.full(self.n_reward_channels, np.inf)) \
            if reward_bounds is None else (np.broadcast_to(np.asarray(b, np.float64), (self.n_reward_channels,))
                                           for b in reward_bounds)
        bernoulli = (np.isfinite(low) & np.isfinite(high) & (high > low)) if reward_loss == "bernoulli" \
            else np.zeros(self.n_reward_channels, bool)
        self.register_buffer("reward_bernoulli", torch.as_tensor(bernoulli))
        self.register_buffer("reward_low", torch.as_tensor(np.where(bernoulli, low, 0.0), dtype=torch.float32))
        self.register_buffer("reward_range", torch.as_tensor(np.where(bernoulli, high - low, 1.0), dtype=torch.float32))

        self.device = torch.device(device)
        self.to(self.device)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=lr)

    # ---------------------------------------------------------------- state

    def initial_state(self, batch_size: int) -> State:
        """Zero recurrent state for ``batch_size`` envs."""
        h = torch.zeros(batch_size, self.hidden_size, device=self.device)
        return h if self.rnn == "gru" else (h, h.clone())

    @staticmethod
    def hidden_of(state: State) -> torch.Tensor:
        """The features part of a state: ``h`` (``[B, hidden_size]``)."""
        return state[0] if isinstance(state, tuple) else state

    @staticmethod
    def _reset(state: State, episode_start: torch.Tensor | None) -> State:
        if episode_start is None:
            return state
        keep = 1.0 - torch.as_tensor(episode_start, device=RecurrentWorldModel.hidden_of(state).device).float()
        keep = keep.unsqueeze(-1)
        if isinstance(state, tuple):
            return tuple(s * keep for s in state)
        return state * keep

    # ---------------------------------------------------------------- encoding

    def flatten_obs(self, obs: Any) -> torch.Tensor:
        """Observations (env format or flat) -> flat float ``[..., obs_dim]`` in env units."""
        if isinstance(obs, Mapping):
            obs = {k: torch.as_tensor(v, device=self.device) for k, v in obs.items()}
        else:
            obs = torch.as_tensor(obs, device=self.device)
        return flatten_tensor(self.observation_space, obs)

    def flatten_action(self, action: Any) -> torch.Tensor:
        """Actions (Discrete: integer indices or float ``[..., n]`` probabilities) -> flat float."""
        return flatten_tensor(self.action_space, torch.as_tensor(action, device=self.device))

    def embed_target(self, next_obs_flat: torch.Tensor) -> torch.Tensor:
        """The fixed random embedding of (flat, env-unit) observations (``target="embedding"``)."""
        x = (next_obs_flat - self.obs_offset) / self.obs_scale
        return F.leaky_relu(x @ self.target_w1) @ self.target_w2

    # ---------------------------------------------------------------- forward

    def _recur(self, obs: Obs, actions: Any, episode_starts: torch.Tensor | None, state0: State | None):
        obs_flat = self.flatten_obs(obs)
        act_flat = self.flatten_action(actions)
        T, B = obs_flat.shape[:2]
        obs_n = (obs_flat - self.obs_offset) / self.obs_scale
        act_n = (act_flat - self.act_offset) / self.act_scale
        z = self.encoder(torch.cat([obs_n, act_n], -1))  # [T, B, E]

        state = self.initial_state(B) if state0 is None else state0
        hiddens = []
        for t in range(T):
            if episode_starts is not None:
                state = self._reset(state, episode_starts[t])
            state = self.cell(z[t], state)
            hiddens.append(self.hidden_of(state))
        return obs_flat, act_flat, obs_n, z, torch.stack(hiddens), state  # h: [T, B, H]

    def hidden_sequence(
        self, obs: Obs, actions: Any, episode_starts: torch.Tensor | None = None, state0: State | None = None
    ) -> tuple[torch.Tensor, State]:
        """Only M's recurrent states along a ``[T, B]`` sequence: (``h`` after each step ``[T, B, H]``,
        final state), as in :meth:`forward_sequence` but without the prediction heads."""
        *_, h, state = self._recur(obs, actions, episode_starts, state0)
        return h, state

    def forward_sequence(
        self,
        obs: Obs,
        actions: torch.Tensor,
        episode_starts: torch.Tensor | None = None,
        state0: State | None = None,
    ) -> tuple[Prediction, State]:
        """Predict every transition of a ``[T, B]`` sequence (differentiable).

        The hidden state is reset to zero wherever ``episode_starts[t]`` is true, before
        ``obs[t]`` is consumed. Returns predictions with leading ``[T, B]`` and the final state.
        """
        obs_flat, act_flat, obs_n, z, h, state = self._recur(obs, actions, episode_starts, state0)
        f = self.trunk(torch.cat([h, z], -1))
        out = self.obs_head(f)
        if self.target == "raw" and not self.discrete_obs:
            out = (obs_n + out) * self.obs_scale + self.obs_offset  # predicted change, in env units
        if self.readout is None:
            raw_reward, termination_logit = self.reward_head(f), self.termination_head(f).squeeze(-1)
        else:  # the read-out alone (plus the heads' biases): how the action matters is the read-out's business
            raw_reward, termination_logit = self._readout_heads(self.readout(obs_flat, act_flat))
        prediction = Prediction(
            next_obs=out,
            reward=self._reward_from_raw(raw_reward),
            termination_logit=termination_logit,
            hidden=h,
            reward_logit=raw_reward if self.reward_loss == "bernoulli" else None,
        )
        return prediction, state

    def _reward_from_raw(self, raw_reward: torch.Tensor) -> torch.Tensor:
        if self.reward_loss != "bernoulli":
            return raw_reward
        return torch.where(self.reward_bernoulli, self.reward_low + self.reward_range * torch.sigmoid(raw_reward),
                           raw_reward)

    def readout_predictions(self, obs: Any, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """With a ``readout``: the predicted reward vectors ``[B, K, C]`` and termination logits ``[B, K]`` of ``K``
        actions ``[B, K, ...]`` per observation ``[B, ...]`` at once (with a read-out they do not depend on M's
        state), as :meth:`forward_sequence` would predict them one by one."""
        if self.readout is None:
            raise ValueError("readout_predictions needs a model with a readout")
        raw_reward, termination_logit = self._readout_heads(
            self.readout.at_actions(self.flatten_obs(obs), self.flatten_action(actions)))
        return self._reward_from_raw(raw_reward), termination_logit

    def readout_grid_predictions(self, obs: Any, actions_x: torch.Tensor,
                                 actions_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """With a ``readout``: :meth:`readout_predictions` of the ``J x I`` saccades ``(actions_x[i], actions_y[j])``
        (``[I]``, ``[J]``, env units) per observation ``[B, ...]``: rewards ``[B, J, I, C]`` and termination logits
        ``[B, J, I]`` (:meth:`RetinaReadout.on_action_grid`, far cheaper than listing the saccades)."""
        if self.readout is None:
            raise ValueError("readout_grid_predictions needs a model with a readout")
        raw_reward, termination_logit = self._readout_heads(
            self.readout.on_action_grid(self.flatten_obs(obs), actions_x, actions_y))
        return self._reward_from_raw(raw_reward), termination_logit

    def _readout_heads(self, spatial: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The read-out's outputs ``[..., C + 1]`` -> (raw rewards ``[..., C]``, termination logits ``[...]``): the
        read-out alone plus the reward and termination heads' biases."""
        return spatial[..., :-1] + self.reward_head.bias, spatial[..., -1] + self.termination_head.bias[0]

    def forward(self, *args: Any, **kwargs: Any) -> tuple[Prediction, State]:
        """``model(...)`` is :meth:`forward_sequence`."""
        return self.forward_sequence(*args, **kwargs)

    def step(
        self, obs: Any, action: Any, state: State, episode_start: Any | None = None
    ) -> tuple[Prediction, State]:
        """One step for a batch of B envs: ``obs`` ``[B, ...]``, ``action`` ``[B, ...]``.

        Where ``episode_start`` (``[B]``) is true the state is zeroed before consuming ``obs``.
        """
        if isinstance(obs, Mapping):
            obs = {k: torch.as_tensor(v, device=self.device).unsqueeze(0) for k, v in obs.items()}
        else:
            obs = torch.as_tensor(obs, device=self.device).unsqueeze(0)
        action = torch.as_tensor(action, device=self.device).unsqueeze(0)
        starts = None if episode_start is None else torch.as_tensor(episode_start, device=self.device).unsqueeze(0)
        prediction, state = self.forward_sequence(obs, action, starts, state)
        return Prediction(*(None if x is None else x.squeeze(0) for x in prediction)), state

    # ---------------------------------------------------------------- errors and training

    def _losses(self, prediction: Prediction, batch: SequenceBatch) -> dict[str, torch.Tensor]:
        """Per-transition ``[T, B]`` losses: ``obs``, ``reward``, ``termination``."""
        if self.target == "embedding":
            target = self.embed_target(self.flatten_obs(batch.next_obs))
            obs_loss = (prediction.next_obs - target).pow(2).mean(-1)
        elif self.discrete_obs:
            target = torch.as_tensor(batch.next_obs, device=self.device)
            if not (torch.is_floating_point(target) and target.shape[-1] == self.obs_dim > 1):
                target = discrete_index(self.observation_space, target)  # else: probabilities
            logits = prediction.next_obs
            obs_loss = F.cross_entropy(logits.flatten(0, 1), target.flatten(0, 1), reduction="none")
            obs_loss = obs_loss.view(logits.shape[:2])
        else:
            target = self.flatten_obs(batch.next_obs)
            obs_loss = ((prediction.next_obs - target) / self.obs_scale).pow(2).mean(-1)
        reward_loss = (prediction.reward - batch.rewards).pow(2)
        if prediction.reward_logit is not None:
            target = ((batch.rewards - self.reward_low) / self.reward_range).clamp(0.0, 1.0)
            bce = F.binary_cross_entropy_with_logits(prediction.reward_logit, target, reduction="none")
            reward_loss = torch.where(self.reward_bernoulli, bce, reward_loss)
        reward_loss = reward_loss.mean(-1)
        termination_loss = F.binary_cross_entropy_with_logits(
            prediction.termination_logit, batch.terminations, reduction="none"
        )
        return {"obs": obs_loss, "reward": reward_loss, "termination": termination_loss}

    @torch.no_grad()
    def errors(
        self,
        batch: SequenceBatch,
        state0: State | None = None,
        reward_coef: float = 0.0,
        termination_coef: float = 0.0,
        return_state: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, State]:
        """M's prediction error on each transition, ``[T, B]`` (no gradient).

        The error is the next-observation loss: mean squared error over the (scaled) flat
        next-observation dims, cross-entropy for Discrete observations, squared error of the
        embedding for ``target="embedding"``; plus ``reward_coef`` x reward loss (mean over
        channels: squared error, cross-entropy for Bernoulli channels) and ``termination_coef`` x termination BCE. Call it on a fresh batch
        *before* M trains on it. With ``return_state`` also returns the final state.
        """
        batch = batch.to(self.device)
        prediction, state = self.forward_sequence(batch.obs, batch.actions, batch.episode_starts, state0)
        losses = self._losses(prediction, batch)
        err = losses["obs"] + reward_coef * losses["reward"] + termination_coef * losses["termination"]
        return (err, state) if return_state else err

    def train_on_sequences(
        self, batch: SequenceBatch, state0: State | None = None, epochs: int = 1, bptt: int | None = None
    ) -> dict[str, float]:
        """Truncated BPTT over chunks of ``bptt`` steps (detached state carried across chunks).

        One Adam step per chunk, gradients clipped to ``max_grad_norm``; ``epochs`` passes over
        the batch, each starting from ``state0``. Returns mean losses (before each step) under
        ``world_model/loss``, ``world_model/obs_loss``, ``world_model/reward_loss``,
        ``world_model/termination_loss`` and ``world_model/grad_norm``.
        """
        batch = batch.to(self.device)
        bptt = self.bptt if bptt is None else int(bptt)
        sums = {k: 0.0 for k in ("loss", "obs_loss", "reward_loss", "termination_loss", "grad_norm")}
        n_chunks = 0
        self.train()
        for _ in range(epochs):
            state = state0
            for start in range(0, batch.T, bptt):
                chunk = batch.slice(start, min(start + bptt, batch.T))
                if state is not None:
                    state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
                prediction, state = self.forward_sequence(chunk.obs, chunk.actions, chunk.episode_starts, state)
                per_step = self._losses(prediction, chunk)
                mask = torch.ones_like(chunk.episode_starts) if chunk.mask is None else chunk.mask
                denom = mask.sum().clamp_min(1.0)
                losses = {k: (v * mask).sum() / denom for k, v in per_step.items()}
                loss = losses["obs"] + self.reward_coef * losses["reward"] + self.termination_coef * losses["termination"]
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = nn.utils.clip_grad_norm_(self.parameters(), self.max_grad_norm)
                self.optimizer.step()
                sums["loss"] += loss.item()
                sums["obs_loss"] += losses["obs"].item()
                sums["reward_loss"] += losses["reward"].item()
                sums["termination_loss"] += losses["termination"].item()
                sums["grad_norm"] += float(grad_norm)
                n_chunks += 1
        self.optimizer.zero_grad(set_to_none=True)  # leave no stale gradients on M
        return {f"world_model/{k}": v / max(n_chunks, 1) for k, v in sums.items()}

    # ---------------------------------------------------------------- imagination

    def imagine(
        self,
        state: State,
        obs: Any,
        policy: Policy,
        horizon: int,
        episode_start: Any | None = None,
    ) -> dict[str, Any]:
        """Differentiable rollout of ``policy`` inside M ("mental experiments", Sec. 11).

        Starting from M's ``state`` and the current real observation ``obs`` (``[B, ...]``, not
        yet consumed), for ``horizon`` steps: ``a_t = policy(obs_t, h_t)`` where ``obs_t`` is
        the flat float observation ``[B, obs_dim]`` (env units; Discrete: one-hot, later M's
        predicted probabilities) and ``h_t`` M's hidden state ``[B, hidden_size]``; then M
        predicts ``obs_{t+1}``, which the policy sees next. Box actions are in env units;
        Discrete actions may be integer indices (no gradient) or float ``[B, n]``
        probabilities / straight-through one-hots (gradient flows).

        Returns a dict of tensors with leading ``[H, B]``: ``obs`` (what the policy saw),
        ``hidden``, ``actions``, ``next_obs`` (predicted; probabilities for Discrete obs),
        ``rewards`` ``[H, B, C]``, ``termination_probs``, ``alive`` (probability that the
        episode has not terminated before step t: the weight of reward t), plus
        ``final_state``. Terminations do not reset M's state inside the imagined rollout.

        For training C through a frozen M use ``model.requires_grad_(False)``, never
        ``torch.no_grad()``.
        """
        if self.target != "raw":
            raise ValueError("imagine needs target='raw': M must predict observations to feed back to itself")
        obs_t = self.flatten_obs(obs)
        out: dict[str, list[torch.Tensor]] = {
            k: [] for k in ("obs", "hidden", "actions", "next_obs", "rewards", "termination_probs", "alive")
        }
        alive = torch.ones(obs_t.shape[0], device=self.device)
        for t in range(horizon):
            if t == 0 and episode_start is not None:
                state = self._reset(state, torch.as_tensor(episode_start, device=self.device))
            hidden = self.hidden_of(state)
            action = policy(obs_t, hidden)
            prediction, state = self.step(obs_t, action, state)
            next_obs = prediction.next_obs.softmax(-1) if self.discrete_obs else prediction.next_obs
            p_term = torch.sigmoid(prediction.termination_logit)
            for key, value in (
                ("obs", obs_t), ("hidden", hidden), ("actions", action), ("next_obs", next_obs),
                ("rewards", prediction.reward), ("termination_probs", p_term), ("alive", alive),
            ):
                out[key].append(value)
            alive = alive * (1.0 - p_term)
            obs_t = next_obs
        result: dict[str, Any] = {k: torch.stack(v) for k, v in out.items()}
        result["final_state"] = state
        return result
