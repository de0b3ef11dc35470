"""``planner-c-m``: a controller C trained by back-propagation through a recurrent world model M.

Seed Sec. 9, 11, 12, 14 (Schmidhuber 1990, "Making the world differentiable"; 1990-91,
"Reinforcement learning in Markovian and non-Markovian environments"; Schmidhuber & Huber 1990,
"Learning to generate focus trajectories for attentive vision"). C plans by "mental experiments":
M, a recurrent net trained to predict the next input, the reward *vector* and termination, is
frozen, C is rolled out inside it, and C's weights follow the gradient of M's predicted
cumulative reward, propagated back through M's predictions into C's outputs. Where the
imagined horizon ends, a vector critic (Sec. 13, 14; one TD-learned value per reward channel)
stands in for the rest of the return. The 1990 fovea controller learned its saccades exactly
this way, the target it should look for named by a constant goal input (Sec. 9, 12).

The algorithm, top to bottom (one *iteration* = ``n_steps`` steps of each of the ``n_envs`` envs):

1. **Collect** real experience with C and exploration (Box: Gaussian noise ``action_noise_std`` on
   C's pre-squash output; Discrete: sampling C's softmax; both: a share ``exploration_eps`` of
   uniformly random actions, which keeps M's data broad), random actions for the first
   ``learning_starts`` steps. Each transition goes into a
   sequence replay (:class:`SequenceReplay`), together with C's and M's recurrent states before
   the step, so that windows of ``seq_len`` steps can be replayed from any point (stored-state
   truncated BPTT, as in R2D2).
2. **Train M** (:class:`world_models.recurrent.RecurrentWorldModel`, GRU or LSTM) on
   ``model_updates`` batches of replayed windows: next observation, reward vector, termination
   (once, when learning starts, ``pretrain_updates`` batches of the random steps first, for M
   and the critic: C must not plan in an untrained M).
3. **Train the vector critic** ``V_c(o_t, h_t)`` on real windows: its input is the observation
   and M's hidden state ``h_t`` (M's summary of the history, the same features M has in
   imagination); its targets are per-channel TD(``td_lambda``) returns with each channel's own
   discount, bootstrapped from a Polyak-averaged target critic (``tau``), cut at terminations.
4. **Train C through the frozen M.** From every step of ``actor_batch_size`` replayed windows
   (C's state carried along the real window *with* gradient, so C learns what to remember;
   M's state without), C is rolled out ``horizon`` steps inside M
   (:meth:`~world_models.recurrent.RecurrentWorldModel.imagine`); M and the critic are frozen
   with ``requires_grad_(False)`` (never ``torch.no_grad``: the gradient must pass *through*
   them). C maximises

       J = sum_{k<H} alive_k * sum_c w_c gamma_c^k r^_{k,c}
           + alive_H * sum_c w_c gamma_c^H V_c(o^_H, h_H)

   (``alive_k``: M's probability that the episode has not terminated before step k; ``w`` the
   reward weights) plus ``ent_coef`` times the entropy of its action distribution.

   *Box actions* take the reparameterised path: ``a = tanh(mu + action_noise_std * eps)`` scaled to
   the bounds (no squashing where a bound is infinite), so dJ/da flows into ``mu`` and on into
   C's weights. *Discrete actions* use a straight-through estimator (Bengio et al. 2013): M is fed
   the exact one-hot of a sampled action, ``a = onehot(i) + p - stopgrad(p)`` with ``p`` C's
   softmax, so the forward pass is an ordinary discrete action while the backward pass treats
   ``da/dp`` as the identity: C's probabilities move along M's gradient ``dJ/da``, the linearised
   advantage of each action over the sampled one. That linearisation asks M about inputs between
   one-hots it never saw; ``discrete_gradient="expected-first"`` removes it for the first
   imagined step, where it matters most: every first action is imagined (one rollout copy per
   action) and C ascends the exact expectation ``sum_j p_j J_j``; later steps stay straight-through.

Because imagined rollouts start from every step of real trajectories, ``horizon=1`` is the
SVG(1)-style value gradient along real trajectories (Heess et al. 2015); SVG(inf), which re-infers
the noise behind each real action and back-propagates along the whole real trajectory, is not
implemented.

C is recurrent (a GRU over its inputs) or, with ``controller="feedforward"``, an MLP of the
current observation (the control that cannot remember).

**Spatial read-out** (``spatial_readout=True``, for retina envs such as ``mirabilis/FoveaSearch-v0``
with continuous saccades; :mod:`world_models.retina`): M's reward and termination predictions come
from a read-out of where the saccade lands — per-pixel scores of the glimpse (colour and goal
input) weighted by a Gaussian of their distance to the landing point — and C's saccade gets a term
that points at the soft-argmax of its own per-pixel scores. Both are the geometry of the retina,
given to M and C the way a convolution gives a net the geometry of an image; an MLP M did not learn
*where* a find happens from sparse finds (``results/fovea/`` at commit 9b64aec). C's soft-argmax is also a
distribution over candidate saccades, one to each glimpse pixel: C's objective adds the
expectation, under that softmax, of M's predicted reward of every candidate, all imagined at once
(:meth:`~world_models.recurrent.RecurrentWorldModel.readout_grid_predictions`: the candidates lie on a
grid, so the read-out's kernels are computed per coordinate, not per candidate) — the exact expectation
over the first action, as ``expected-first`` is for Discrete actions. (Ascending M's reward at the
soft-argmax point alone learned the target's place from some initialisations of C and not from
others.) With ``saccade_from_core=True`` (the default) C's core output is added to the saccade head's,
pre-squash, so every saccade lands off its candidate by an amount the candidate objective does not see;
with ``False`` the saccade is the saccade head's alone, exactly the candidates that objective ranks, and
C's core (its memory) takes no part in the saccade. The expectation's pull on C's softmax shrinks with the spread
of M's ratings: where no single saccade is a likely find (a far target seen only coarsely), M's best-rated candidate
may still lead towards it while C's softmax stays flat. ``candidate_imitation > 0`` adds that weight times the
cross-entropy of C's softmax to M's best-rated candidate (the distillation of M's greedy choice into C), which
pulls as hard however close the ratings are. C's softmax is a categorical policy over the
candidates; acting deterministically, C saccades to its mean (``deterministic_saccade="soft-argmax"``) or its
mode, the most probable pixel (``"argmax"``: the mean of a softmax split between two pixels lands between them).
With ``model_reward_loss="bernoulli"`` M predicts the channels that the env's ``reward_space`` bounds (such as a
0/1 *found*) as probabilities, trained by cross-entropy.

Goal inputs (e.g. FoveaSearch's one-hot target kind) are simply part of the observation, constant
through an episode, and M learns to carry them forward.

Works on any Gymnasium env with Box or Discrete observation and action spaces; reward vectors
follow :mod:`agents.reward_channels` (``info["vector_reward"]``, else the scalar as one channel).

Logged: ``world_model/*`` (M's losses), ``planner/imagined_return`` (J without the entropy
term), ``planner/model_error_on_imagined_states`` (how far imagination drifts: M rolled out
open-loop on replayed real actions for ``horizon`` steps, mean squared error of its predicted
observations in M's scaled units, averaged over the horizon), ``planner/model_error_one_step``
(the same at the first step), ``planner/imagined_alive`` (M's survival probability at the
horizon), ``train/actor_loss``, ``train/critic_loss``, ``train/entropy``, ``values/<channel>``,
and SB3's ``rollout/*`` and ``time/*``.
"""

from __future__ import annotations

import contextlib
import copy
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.utils import safe_mean
from torch import nn

from agents.base import MirabilisAlgorithm
from agents.reward_channels import (
    RewardChannels,
    env_reward_channels,
    resolve_weights,
    vector_rewards,
)
from agents.vector_critic import VectorQ
from world_models.recurrent import (
    RecurrentWorldModel,
    SequenceBatch,
    flatten_tensor,
    scaling_from_bounds,
    transition_targets,
)
from world_models.retina import RetinaGeometry, RetinaReadout, SaccadeHead, atanh_clipped

CONTROLLERS = ("recurrent", "feedforward")
DISCRETE_GRADIENTS = ("straight-through", "expected-first")
DETERMINISTIC_SACCADES = ("soft-argmax", "argmax")


# --------------------------------------------------------------------------- C


class Controller(nn.Module):
    """C: observation (flat, scaled) -> action-distribution parameters, recurrent or not.

    The state is a ``[B, size]`` tensor (zeros, passed through unchanged, for the feed-forward
    controller), so that ``predict(obs, state, episode_start)`` has one form for both.
    Output: Box actions: the pre-squash mean ``mu`` ``[B, action_dim]``; Discrete: logits ``[B, n]``.
    """

    def __init__(self, obs_dim: int, out_dim: int, size: int, recurrent: bool,
                 saccade_head: SaccadeHead | None = None, obs_offset=None, obs_scale=None,
                 saccade_from_core: bool = True):
        super().__init__()
        self.size, self.recurrent = int(size), bool(recurrent)
        self.encoder = nn.Sequential(nn.Linear(obs_dim, size), nn.ELU())
        if recurrent:
            self.core = nn.GRUCell(size, size)
        else:
            self.core = nn.Sequential(nn.Linear(size, size), nn.ELU())
        self.head = nn.Linear(size, out_dim)
        nn.init.orthogonal_(self.head.weight, 0.01)
        nn.init.zeros_(self.head.bias)
        # spatial_readout: the saccade to a soft-argmax over glimpse pixels (world_models/retina.py), added to
        # the head's output as a pre-squash value (saccade_from_core) or alone; it reads the observation in env units
        self.saccade_head, self.saccade_from_core = saccade_head, bool(saccade_from_core)
        if saccade_head is not None:
            self.register_buffer("obs_offset", torch.as_tensor(obs_offset, dtype=torch.float32))
            self.register_buffer("obs_scale", torch.as_tensor(obs_scale, dtype=torch.float32))

    def initial_state(self, batch_size: int, device=None) -> torch.Tensor:
        return torch.zeros(batch_size, self.size, device=device)

    def recur(self, obs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """The new state alone (what :meth:`step` returns second), without computing the output."""
        return self.core(self.encoder(obs), state) if self.recurrent else state

    def step(self, obs: torch.Tensor, state: torch.Tensor, saccade_logits: torch.Tensor | None = None,
             argmax_saccade: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: ``obs`` ``[B, obs_dim]`` (scaled), ``state`` ``[B, size]`` -> (output, new state);
        ``saccade_logits``: the saccade head's logits of ``obs`` if the caller has them already;
        ``argmax_saccade``: the saccade head's most probable candidate instead of its soft-argmax."""
        z = self.encoder(obs)
        if self.recurrent:
            state = self.core(z, state)
            out = self.head(state)
        else:
            out = self.head(self.core(z))
        if self.saccade_head is not None:  # the saccade: tanh(out + atanh(s)) (saccade_from_core) or tanh(atanh(s))
            if saccade_logits is None:
                saccade_logits = self.saccade_head.logits(obs * self.obs_scale + self.obs_offset)
            head = self.saccade_head
            saccade = atanh_clipped(head.argmax(saccade_logits) if argmax_saccade else head.saccade(saccade_logits))
            out = out + saccade if self.saccade_from_core else saccade
        return out, state


# --------------------------------------------------------------------------- replay of sequences


class SequenceReplay:
    """A ring buffer of ``[capacity, n_envs]`` transitions, sampled as windows of consecutive steps.

    Each step stores the flat observation, flat action (Discrete: one-hot), reward vector, true
    next observation (the terminal one at episode ends), termination (not truncation), done,
    episode start, and C's and M's recurrent states *before* the step (after any reset), so a
    window can be replayed from its first step without running the whole history again.
    """

    FIELDS = ("obs", "actions", "rewards", "next_obs", "terminations", "dones", "starts", "c_state", "m_state")

    def __init__(self, capacity: int, n_envs: int, dims: dict[str, int]):
        self.capacity, self.n_envs = int(capacity), int(n_envs)
        self.buffer_size = self.capacity  # agents.checkpoint stores the filled rows of [buffer_size, ...] arrays
        shapes = {"terminations": (), "dones": (), "starts": ()}
        self.data = {k: np.zeros((self.capacity, self.n_envs, *((dims[k],) if k in dims else shapes[k])), np.float32)
                     for k in self.FIELDS}
        self.pos, self.full = 0, False

    def __len__(self) -> int:
        return self.capacity if self.full else self.pos

    def add(self, **step: np.ndarray) -> None:
        for key in self.FIELDS:
            self.data[key][self.pos] = step[key]
        self.pos = (self.pos + 1) % self.capacity
        self.full = self.full or self.pos == 0

    def sample(self, n: int, length: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """``n`` windows of ``length`` consecutive steps (random env, random start): ``[length, n, ...]``."""
        size = len(self)
        length = min(length, size)
        first = (self.pos if self.full else 0)  # the oldest step, in ring order
        k0 = rng.integers(0, size - length + 1, size=n)
        t_idx = (first + k0[None, :] + np.arange(length)[:, None]) % self.capacity  # [L, n]
        b_idx = np.broadcast_to(rng.integers(0, self.n_envs, size=n)[None, :], t_idx.shape)
        return {k: torch.as_tensor(v[t_idx, b_idx]) for k, v in self.data.items()}


# --------------------------------------------------------------------------- the agent


class PlannerCM(MirabilisAlgorithm):
    """C trained by gradients of M's predicted reward vector and of a vector critic (see module doc)."""

    agent_id = "planner-c-m"

    def __init__(
        self,
        env,
        # 1. collecting
        n_steps: int = 4,
        learning_starts: int = 2000,
        buffer_size: int = 20_000,
        action_noise_std: float = 0.3,
        exploration_eps: float = 0.05,
        # 2. M
        model_hidden_size: int = 128,
        model_rnn: str = "gru",
        model_lr: float = 1e-3,
        model_updates: int = 4,
        model_batch_size: int = 16,
        model_reward_coef: float = 1.0,
        model_reward_loss: str = "mse",
        spatial_readout: bool = False,
        deterministic_saccade: str = "soft-argmax",
        saccade_from_core: bool = True,
        candidate_imitation: float = 0.0,
        pretrain_updates: int = 400,
        seq_len: int = 16,
        # 3. the vector critic
        critic_size: int = 128,
        critic_lr: float = 1e-3,
        critic_updates: int = 4,
        critic_batch_size: int = 16,
        gamma: float = 0.99,
        td_lambda: float = 0.8,
        tau: float = 0.02,
        channel_gammas: dict | None = None,
        reward_weights: Any = None,
        # 4. C through M
        controller: str = "recurrent",
        controller_size: int = 64,
        actor_lr: float = 3e-4,
        actor_updates: int = 4,
        actor_batch_size: int = 8,
        horizon: int = 5,
        discrete_gradient: str = "straight-through",
        ent_coef: float = 0.01,
        max_grad_norm: float = 10.0,
        # logging
        log_interval: int = 10,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        seed: int | None = None,
        verbose: int = 0,
        device: str = "cpu",
        _init_setup_model: bool = True,
    ):
        self._record_hyperparams(locals())
        for name, value in (("n_steps", n_steps), ("buffer_size", buffer_size), ("model_hidden_size", model_hidden_size),
                            ("model_updates", model_updates), ("model_batch_size", model_batch_size),
                            ("seq_len", seq_len), ("critic_size", critic_size), ("critic_updates", critic_updates),
                            ("critic_batch_size", critic_batch_size), ("controller_size", controller_size),
                            ("actor_updates", actor_updates), ("actor_batch_size", actor_batch_size),
                            ("horizon", horizon), ("log_interval", log_interval)):
            _check(isinstance(value, int) and not isinstance(value, bool) and value >= 1, name, "must be an int >= 1",
                   value)
        _check(learning_starts >= 0, "learning_starts", "must be >= 0", learning_starts)
        _check(pretrain_updates >= 0, "pretrain_updates", "must be >= 0", pretrain_updates)
        for name, value in (("model_lr", model_lr), ("critic_lr", critic_lr), ("actor_lr", actor_lr),
                            ("max_grad_norm", max_grad_norm)):
            _check(value > 0, name, "must be > 0", value)
        for name, value in (("action_noise_std", action_noise_std), ("ent_coef", ent_coef),
                            ("model_reward_coef", model_reward_coef)):
            _check(value >= 0, name, "must be >= 0", value)
        for name, value in (("gamma", gamma), ("td_lambda", td_lambda), ("exploration_eps", exploration_eps)):
            _check(0.0 <= value <= 1.0, name, "must be in [0, 1]", value)
        _check(0.0 < tau <= 1.0, "tau", "must be in (0, 1]", tau)
        _check(model_rnn in ("gru", "lstm"), "model_rnn", "must be 'gru' or 'lstm'", model_rnn)
        _check(model_reward_loss in ("mse", "bernoulli"), "model_reward_loss", "must be 'mse' or 'bernoulli'",
               model_reward_loss)
        _check(isinstance(spatial_readout, bool), "spatial_readout", "must be true or false", spatial_readout)
        _check(deterministic_saccade in DETERMINISTIC_SACCADES, "deterministic_saccade",
               f"must be one of {list(DETERMINISTIC_SACCADES)}", deterministic_saccade)
        _check(spatial_readout or deterministic_saccade == "soft-argmax", "deterministic_saccade",
               "needs spatial_readout=True (C has no saccade head without it)", deterministic_saccade)
        _check(isinstance(saccade_from_core, bool), "saccade_from_core", "must be true or false", saccade_from_core)
        _check(spatial_readout or saccade_from_core, "saccade_from_core",
               "false needs spatial_readout=True (C has no saccade head without it)", saccade_from_core)
        _check(isinstance(candidate_imitation, (int, float)) and not isinstance(candidate_imitation, bool)
               and candidate_imitation >= 0, "candidate_imitation", "must be a number >= 0", candidate_imitation)
        _check(spatial_readout or not candidate_imitation, "candidate_imitation",
               "needs spatial_readout=True (there are no candidate saccades without it)", candidate_imitation)
        _check(controller in CONTROLLERS, "controller", f"must be one of {list(CONTROLLERS)}", controller)
        _check(discrete_gradient in DISCRETE_GRADIENTS, "discrete_gradient", f"must be one of {list(DISCRETE_GRADIENTS)}",
               discrete_gradient)
        # Refuse unsupported spaces before SB3 does (with a message that names the space).
        self.check_spaces(env.observation_space, env.action_space)
        super().__init__(
            policy=Controller, env=env, learning_rate=actor_lr, tensorboard_log=tensorboard_log, verbose=verbose,
            device=device, seed=seed, stats_window_size=stats_window_size, support_multi_env=True,
            supported_action_spaces=(spaces.Box, spaces.Discrete),
        )
        self.n_steps, self.learning_starts, self.buffer_size = n_steps, learning_starts, buffer_size
        self.action_noise_std, self.exploration_eps = action_noise_std, exploration_eps
        self.model_hidden_size, self.model_rnn, self.model_lr = model_hidden_size, model_rnn, model_lr
        self.model_updates, self.model_batch_size, self.model_reward_coef = model_updates, model_batch_size, model_reward_coef
        self.model_reward_loss, self.spatial_readout = model_reward_loss, spatial_readout
        self.deterministic_saccade = deterministic_saccade
        self.saccade_from_core, self.candidate_imitation = saccade_from_core, candidate_imitation
        self.seq_len, self.pretrain_updates = seq_len, pretrain_updates
        self.critic_size, self.critic_lr, self.critic_updates = critic_size, critic_lr, critic_updates
        self.critic_batch_size, self.gamma, self.td_lambda, self.tau = critic_batch_size, gamma, td_lambda, tau
        self.channel_gammas, self.reward_weights = channel_gammas, reward_weights
        self.controller_kind, self.controller_size, self.actor_lr = controller, controller_size, actor_lr
        self.actor_updates, self.actor_batch_size, self.horizon = actor_updates, actor_batch_size, horizon
        self.discrete_gradient = discrete_gradient
        self.ent_coef, self.max_grad_norm, self.log_interval = ent_coef, max_grad_norm, log_interval
        if _init_setup_model:
            self._setup_model()

    @classmethod
    def check_spaces(cls, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        for what, space in (("observation", observation_space), ("action", action_space)):
            if not isinstance(space, (spaces.Box, spaces.Discrete)):
                raise ValueError(f"planner-c-m supports Box and Discrete {what} spaces; got the {what} space {space}")

    # ------------------------------------------------------------------ set-up

    def _reward_channels(self) -> RewardChannels:
        names, env_weights = env_reward_channels(self.env)
        weights = resolve_weights(names, env_weights, self.reward_weights)
        gammas = np.full(len(names), self.gamma, dtype=np.float32)
        for key, value in (self.channel_gammas or {}).items():
            if key not in names:
                raise ValueError(f"channel_gammas: unknown channel {key!r}; channels are {names}")
            _check(0.0 <= float(value) <= 1.0, "channel_gammas", "values must be in [0, 1]", value)
            gammas[names.index(key)] = float(value)
        return RewardChannels(names, weights, gammas)

    def _setup_model(self) -> None:
        self.set_random_seed(self.seed)
        self._rng = np.random.default_rng(self.seed)
        self.channels = self._reward_channels()
        C = len(self.channels)
        obs_space, act_space = self.observation_space, self.action_space
        self.discrete = isinstance(act_space, spaces.Discrete)
        self.obs_dim, self.action_dim = spaces.flatdim(obs_space), spaces.flatdim(act_space)
        offset, scale = scaling_from_bounds(obs_space)
        self._obs_offset, self._obs_scale = torch.as_tensor(offset), torch.as_tensor(scale)
        if not self.discrete:
            low, high = act_space.low.reshape(-1).astype(np.float64), act_space.high.reshape(-1).astype(np.float64)
            bounded = np.isfinite(low) & np.isfinite(high)
            self._act_bounded = torch.as_tensor(bounded)
            self._act_offset = torch.as_tensor(np.where(bounded, (high + low) / 2, 0.0), dtype=torch.float32)
            self._act_scale = torch.as_tensor(np.where(bounded, (high - low) / 2, 1.0), dtype=torch.float32)

        # spatial_readout: M's reward and termination get a term of the saccade's landing point, C's saccade a
        # soft-argmax over the glimpse (world_models/retina.py); retina envs with continuous saccades only
        readout = saccade_head = None
        if self.spatial_readout:
            if self.discrete:
                raise ValueError("spatial_readout needs continuous (Box) saccade actions; this env's actions are "
                                 f"{act_space}")
            geometry = RetinaGeometry.from_env(self.env)
            readout, saccade_head = RetinaReadout(geometry, C + 1), SaccadeHead(geometry)
        bounds = None
        if self.model_reward_loss == "bernoulli":
            try:
                space = self.env.get_attr("reward_space", indices=[0])[0]
                bounds = (space.low, space.high)
            except AttributeError:  # a scalar reward: unbounded, so squared error
                bounds = (np.full(C, -np.inf), np.full(C, np.inf))
        # M: the recurrent world model (its own Adam optimiser).
        self.world_model = RecurrentWorldModel(
            obs_space, act_space, n_reward_channels=C, hidden_size=self.model_hidden_size, rnn=self.model_rnn,
            lr=self.model_lr, bptt=self.seq_len, reward_coef=self.model_reward_coef,
            reward_loss=self.model_reward_loss, reward_bounds=bounds, readout=readout, device=self.device,
        )
        # C: recurrent controller (or the feed-forward control).
        self.controller = Controller(self.obs_dim, self.action_dim, self.controller_size,
                                     self.controller_kind == "recurrent", saccade_head, offset, scale,
                                     self.saccade_from_core).to(self.device)
        self.policy = self.controller  # SB3's name for the acting network
        self.actor_optimizer = torch.optim.Adam(self.controller.parameters(), lr=self.actor_lr)
        # The vector critic V_c(o, h_M): one value per reward channel (agents/vector_critic.py).
        self.critic = VectorQ(self.obs_dim + self.model_hidden_size, [self.critic_size, self.critic_size], C,
                              n_members=1).to(self.device)
        with torch.no_grad():  # values start at 0: a random initial bias would linger for ~1/(1-gamma) updates
            self.critic.weights[-1].zero_()
            self.critic.biases[-1].zero_()
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=self.critic_lr)
        self._gammas = torch.as_tensor(self.channels.gammas)
        self._weights = torch.as_tensor(self.channels.weights)

        self.replay_buffer = self._new_replay(self.n_envs)
        self._c_state: torch.Tensor | None = None
        self._m_state = None
        self._stats: dict[str, list[float]] = {}
        self._iterations = 0

    def _new_replay(self, n_envs: int) -> SequenceReplay:
        m_state_dim = self.model_hidden_size * (2 if self.model_rnn == "lstm" else 1)
        return SequenceReplay(max(self.buffer_size // n_envs, self.seq_len + 1), n_envs, {
            "obs": self.obs_dim, "next_obs": self.obs_dim, "actions": self.action_dim, "rewards": len(self.channels),
            "c_state": self.controller_size, "m_state": m_state_dim,
        })

    def _get_torch_save_params(self):
        return ["controller", "actor_optimizer", "critic", "critic_target", "critic_optimizer", "world_model",
                "world_model.optimizer"], []

    def extra_checkpoint_state(self) -> dict[str, Any]:
        # (the replay itself goes into ``latest`` checkpoints through agents.checkpoint's replay_buffer support)
        return {"iterations": self._iterations, "rng": json_rng_state(self._rng),
                "replay_n_envs": self.replay_buffer.n_envs}

    def load_extra_checkpoint_state(self, state: dict[str, Any]) -> None:
        self._iterations = int(state.get("iterations", 0))
        saved_envs = int(state.get("replay_n_envs", self.replay_buffer.n_envs))
        if saved_envs != self.replay_buffer.n_envs:  # let a saved replay load; collect() starts afresh
            self.replay_buffer = self._new_replay(saved_envs)
        if "rng" in state:
            self._rng.bit_generator.state = state["rng"]

    # ------------------------------------------------------------------ shapes and scaling

    def _flat_obs(self, obs) -> torch.Tensor:
        """Env observations ``[B, ...]`` -> flat float ``[B, obs_dim]`` (env units; Discrete one-hot)."""
        x = torch.as_tensor(np.asarray(obs), device=self.device)
        if isinstance(self.observation_space, spaces.Box):
            return x.reshape(x.shape[0], -1).float()
        return flatten_tensor(self.observation_space, x.reshape(-1))

    def _scaled(self, obs_flat: torch.Tensor) -> torch.Tensor:
        """Flat observations in env units -> C's and the critic's inputs (bounded dims in [-1, 1])."""
        return (obs_flat - self._obs_offset) / self._obs_scale

    def _critic_input(self, obs_flat: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        return torch.cat([self._scaled(obs_flat), hidden], -1)

    def _m_pack(self, state) -> torch.Tensor:
        return torch.cat(state, -1) if isinstance(state, tuple) else state

    def _m_unpack(self, packed: torch.Tensor):
        if self.model_rnn == "lstm":
            return tuple(packed.split(self.model_hidden_size, -1))
        return packed

    # ------------------------------------------------------------------ actions

    def _box_action(self, mu: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """Box action in env units: ``tanh(mu + noise)`` scaled to the bounds (unbounded dims: no tanh)."""
        pre = mu if noise is None else mu + noise
        unit = torch.where(self._act_bounded, torch.tanh(pre), pre)
        return self._act_offset + self._act_scale * unit

    def _imagined_action(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable action for M (and the entropy of C's distribution): see the module doc."""
        if not self.discrete:  # reparameterised: a = f(mu + sigma * eps)
            noise = self.action_noise_std * torch.randn_like(out) if self.action_noise_std > 0 else None
            return self._box_action(out, noise), out.new_zeros(out.shape[0])
        probs = F.softmax(out, -1)
        index = torch.multinomial(probs.detach(), 1)[:, 0]
        one_hot = F.one_hot(index, self.action_dim).float()
        action = one_hot + probs - probs.detach()  # straight-through: forward one-hot, backward d/dp
        entropy = -(probs * F.log_softmax(out, -1)).sum(-1)
        return action, entropy

    @torch.no_grad()
    def _acting_action(self, out: torch.Tensor, deterministic: bool, explore: bool) -> tuple[np.ndarray, torch.Tensor]:
        """(env actions, flat actions for M) when acting in the real env."""
        B = out.shape[0]
        if self.discrete:
            if deterministic:
                index = out.argmax(-1)
            else:
                index = torch.multinomial(F.softmax(out, -1), 1)[:, 0]
                if explore and self.exploration_eps > 0:
                    uniform = torch.as_tensor(self._rng.random(B) < self.exploration_eps)
                    random = torch.as_tensor(self._rng.integers(0, self.action_dim, B))
                    index = torch.where(uniform, random, index)
            flat = F.one_hot(index, self.action_dim).float()
            return (index.numpy() + int(self.action_space.start)), flat
        noise = None
        if not deterministic and self.action_noise_std > 0:
            noise = self.action_noise_std * torch.randn_like(out)
        action = self._box_action(out, noise)
        if explore and self.exploration_eps > 0:  # some uniformly random actions keep M's data broad
            uniform = torch.as_tensor(self._rng.random(B) < self.exploration_eps)
            if uniform.any():
                _, random = self._random_actions(B)
                action = torch.where(uniform[:, None], random, action)
        env_action = action.numpy().reshape(B, *self.action_space.shape).astype(self.action_space.dtype)
        return env_action, action

    def _random_actions(self, n: int) -> tuple[np.ndarray, torch.Tensor]:
        if self.discrete:
            index = self._rng.integers(0, self.action_dim, n)
            return index + int(self.action_space.start), F.one_hot(torch.as_tensor(index), self.action_dim).float()
        actions = np.stack([self.action_space.sample() for _ in range(n)])
        return actions, torch.as_tensor(actions.reshape(n, -1), dtype=torch.float32)

    # ------------------------------------------------------------------ acting (predict)

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = False):
        """SB3's recurrent ``predict``: ``(actions, state)`` with C's state as a numpy ``[B, size]`` array."""
        obs_space = self.observation_space
        single = (np.asarray(observation).shape == obs_space.shape) if isinstance(obs_space, spaces.Box) \
            else np.ndim(observation) == 0
        obs = np.asarray(observation)[None] if single else np.asarray(observation)
        if isinstance(obs_space, spaces.Box) and obs.shape[1:] != obs_space.shape:
            raise ValueError(f"observation shape {obs.shape[1:]} does not match {obs_space.shape}")
        n = obs.shape[0]
        with torch.no_grad():
            h = self.controller.initial_state(n) if state is None else torch.as_tensor(
                np.asarray(state), dtype=torch.float32, device=self.device)
            if episode_start is not None:
                keep = 1.0 - torch.as_tensor(np.asarray(episode_start, dtype=np.float32), device=self.device)
                h = h * keep[:, None]
            argmax = deterministic and self.deterministic_saccade == "argmax"
            out, h = self.controller.step(self._scaled(self._flat_obs(obs)), h, argmax_saccade=argmax)
            actions, _ = self._acting_action(out, deterministic, explore=False)
        if not self.discrete:
            actions = np.clip(actions, self.action_space.low, self.action_space.high)
        return (actions[0] if single else actions), h.cpu().numpy()

    # ------------------------------------------------------------------ 1. collect

    def collect(self, callback) -> bool:
        """``n_steps`` steps of every env with C (plus exploration) into the replay; False if stopped."""
        env, B = self.env, self.env.num_envs
        if self.replay_buffer.n_envs != B:  # e.g. a checkpoint's replay from another number of envs
            self.replay_buffer = self._new_replay(B)
        if self._c_state is None or self._c_state.shape[0] != B:
            self._c_state = self.controller.initial_state(B)
            self._m_state = self.world_model.initial_state(B)
        C = len(self.channels)
        callback.on_rollout_start()
        for _ in range(self.n_steps):
            start = np.asarray(self._last_episode_starts, dtype=bool)
            keep = torch.as_tensor(~start, dtype=torch.float32)[:, None]
            c_state = self._c_state * keep
            m_state = RecurrentWorldModel._reset(self._m_state, torch.as_tensor(start, dtype=torch.float32))
            obs_flat = self._flat_obs(self._last_obs)
            with torch.no_grad():
                out, c_next = self.controller.step(self._scaled(obs_flat), c_state)
                if self.num_timesteps < self.learning_starts:
                    env_actions, flat_actions = self._random_actions(B)
                else:
                    env_actions, flat_actions = self._acting_action(out, deterministic=False, explore=True)
                _, m_next = self.world_model.hidden_sequence(obs_flat[None], flat_actions[None], None, m_state)
            new_obs, rewards, dones, infos = env.step(env_actions)
            self.num_timesteps += B
            callback.update_locals(locals())
            if not callback.on_step():
                return False
            self._update_info_buffer(infos, dones)
            next_obs, terminations = transition_targets(new_obs, dones, infos)
            self.replay_buffer.add(obs=obs_flat.numpy(), actions=flat_actions.numpy(),
                            rewards=vector_rewards(infos, rewards, C), next_obs=self._flat_obs(next_obs).numpy(),
                            terminations=terminations, dones=np.asarray(dones, np.float32),
                            starts=start.astype(np.float32), c_state=c_state.numpy(),
                            m_state=self._m_pack(m_state).numpy())
            self._last_obs, self._last_episode_starts = new_obs, dones
            self._c_state, self._m_state = c_next, m_next
        callback.on_rollout_end()
        return True

    # ------------------------------------------------------------------ 2. train M

    def _sequence_batch(self, w: dict[str, torch.Tensor]) -> SequenceBatch:
        return SequenceBatch(obs=w["obs"], actions=w["actions"], rewards=w["rewards"], next_obs=w["next_obs"],
                             terminations=w["terminations"], episode_starts=w["starts"])

    def train_model(self) -> dict[str, float]:
        logs: list[dict[str, float]] = []
        for _ in range(self.model_updates):
            w = self.replay_buffer.sample(self.model_batch_size, self.seq_len, self._rng)
            logs.append(self.world_model.train_on_sequences(self._sequence_batch(w), self._m_unpack(w["m_state"][0])))
        return {k: float(np.mean([d[k] for d in logs])) for k in logs[0]}

    @torch.no_grad()
    def _model_states(self, w: dict[str, torch.Tensor]):
        """M along a real window: (full states before each step ``[L]`` list, hidden before ``[L, N, H]``,
        hidden after ``[L, N, H]``)."""
        model = self.world_model
        state = self._m_unpack(w["m_state"][0])
        if model.rnn == "gru":  # one call; the state before step t is the hidden after t - 1, reset at starts
            h_after = model.hidden_sequence(w["obs"], w["actions"], w["starts"], state)[0]
            keep = (1.0 - w["starts"])[..., None]
            h_before = torch.cat([state[None], h_after[:-1]]) * keep
            return list(h_before), h_before, h_after
        before, h_before, h_after = [], [], []
        for t in range(w["obs"].shape[0]):
            state = model._reset(state, w["starts"][t])
            before.append(state)
            h_before.append(model.hidden_of(state))
            _, state = model.hidden_sequence(w["obs"][t][None], w["actions"][t][None], None, state)
            h_after.append(model.hidden_of(state))
        return before, torch.stack(h_before), torch.stack(h_after)

    # ------------------------------------------------------------------ 3. train the vector critic

    def critic_values(self, obs_flat: torch.Tensor, hidden: torch.Tensor, target: bool = False) -> torch.Tensor:
        """``V_c(o, h)`` ``[..., C]`` for flat observations and M's hidden states."""
        net = self.critic_target if target else self.critic
        x = self._critic_input(obs_flat, hidden)
        return net.member(x.reshape(-1, x.shape[-1]), 0).reshape(*x.shape[:-1], -1)

    def train_critic(self) -> dict[str, float]:
        losses, values = [], []
        for _ in range(self.critic_updates):
            w = self.replay_buffer.sample(self.critic_batch_size, self.seq_len, self._rng)
            _, h_before, h_after = self._model_states(w)
            with torch.no_grad():  # per-channel TD(lambda) returns, bootstrapped from the target critic
                v_next = self.critic_values(w["next_obs"], h_after, target=True)  # [L, N, C]
                L = v_next.shape[0]
                nonterminal = (1.0 - w["terminations"])[..., None]
                lam = self.td_lambda * (1.0 - w["dones"])[..., None]  # no lambda-tail across episode ends
                returns = torch.empty_like(v_next)
                for t in reversed(range(L)):
                    tail = v_next[t] if t == L - 1 else (1 - lam[t]) * v_next[t] + lam[t] * returns[t + 1]
                    returns[t] = w["rewards"][t] + self._gammas * nonterminal[t] * tail
            v = self.critic_values(w["obs"], h_before)
            loss = (v - returns).square().sum(-1).mean()
            self.critic_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.critic.parameters(), self.max_grad_norm)
            self.critic_optimizer.step()
            with torch.no_grad():
                for p, p_t in zip(self.critic.parameters(), self.critic_target.parameters()):
                    p_t.lerp_(p, self.tau)
            losses.append(loss.item())
            values.append(v.detach().reshape(-1, v.shape[-1]).mean(0).numpy())
        out = {"train/critic_loss": float(np.mean(losses))}
        for name, value in zip(self.channels.names, np.mean(values, 0)):
            out[f"values/{name}"] = float(value)
        return out

    # ------------------------------------------------------------------ 4. train C through the frozen M

    def controller_loss(self, w: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """C's loss on replayed windows ``w``: minus the imagined return J (module doc), minus entropy.

        M and the critic must be frozen by the caller (:meth:`frozen`); the loss is differentiable
        with respect to C's parameters only.
        """
        model, H = self.world_model, self.horizon
        m_before, _, _ = self._model_states(w)
        L, N = w["obs"].shape[:2]
        # C along the real window, with gradient (truncated BPTT from the stored state): C's state
        # before each step is where an imagined rollout starts.
        c = w["c_state"][0]
        c_before = []
        for t in range(L):
            c = c * (1.0 - w["starts"][t])[:, None]
            c_before.append(c)
            if t < L - 1:
                c = self.controller.recur(self._scaled(w["obs"][t]), c)
        c0 = torch.cat(c_before)  # [L*N, size]
        obs0 = w["obs"].reshape(L * N, -1)
        if isinstance(m_before[0], tuple):
            m0 = tuple(torch.cat([s[i] for s in m_before]) for i in range(2))
        else:
            m0 = torch.cat(m_before)

        expected_first = self.discrete and self.discrete_gradient == "expected-first"
        if expected_first:  # one copy of every start per first action: [n * B]
            n, B = self.action_dim, L * N
            c0, obs0 = c0.repeat(n, 1), obs0.repeat(n, 1)
            m0 = tuple(s.repeat(n, 1) for s in m0) if isinstance(m0, tuple) else m0.repeat(n, 1)
            first_actions = F.one_hot(torch.arange(n).repeat_interleave(B), n).float()
        carried = {"c": c0, "k": 0}
        entropies: list[torch.Tensor] = []
        # spatial_readout: C's pixel logits on the real observations, for its first imagined saccade and the
        # candidates' softmax below (computed once)
        logits0 = self.controller.saccade_head.logits(obs0) if self.spatial_readout else None

        def policy(obs_flat: torch.Tensor, _m_hidden: torch.Tensor) -> torch.Tensor:
            out, carried["c"] = self.controller.step(self._scaled(obs_flat), carried["c"],
                                                     saccade_logits=logits0 if carried["k"] == 0 else None)
            action, entropy = self._imagined_action(out)
            if expected_first and carried["k"] == 0:
                carried["first_probs"] = F.softmax(out, -1)
                action = first_actions
            carried["k"] += 1
            entropies.append(entropy)
            return action

        imagined = model.imagine(m0, obs0, policy, H)
        alive = imagined["alive"]  # [H, B]
        alive_end = alive[-1] * (1.0 - imagined["termination_probs"][-1])
        k = torch.arange(H, dtype=torch.float32)
        discounts = self._gammas[None, :] ** k[:, None]  # [H, C]
        rewards = (alive[..., None] * discounts[:, None, :] * imagined["rewards"]).sum(0)  # [B, C]
        v_end = self.critic_values(imagined["next_obs"][-1], model.hidden_of(imagined["final_state"]))
        returns = rewards + alive_end[:, None] * self._gammas ** H * v_end
        objective = returns @ self._weights  # [B] (expected-first: [n * B], one value per first action)
        if expected_first:  # J = sum_j p_j Q_j: the exact expectation over the first action
            q = objective.view(n, B)
            probs = carried["first_probs"].view(n, B, n)[0]  # (all n copies computed the same p)
            objective = (probs * q.T).sum(-1)
            alive_end = alive_end.view(n, B).mean(0)
        entropy = torch.stack(entropies).mean()
        loss = -objective.mean() - self.ent_coef * entropy
        stats = {"planner/imagined_return": objective.mean().item(), "train/entropy": entropy.item(),
                 "planner/imagined_alive": alive_end.mean().item()}
        if self.spatial_readout:  # every glimpse pixel's saccade imagined at once; C's softmax over them ascends it
            candidate_values = self.candidate_rewards(obs0) @ self._weights  # [B, K]
            candidate_return = (F.softmax(logits0, -1) * candidate_values).sum(-1)
            loss = loss - candidate_return.mean()
            if self.candidate_imitation:  # C's softmax pulled to M's best candidate, however close the others
                loss = loss + self.candidate_imitation * F.cross_entropy(logits0, candidate_values.argmax(-1))
            stats["planner/candidate_return"] = candidate_return.mean().item()
        return loss, stats

    def candidate_rewards(self, obs: torch.Tensor) -> torch.Tensor:
        """M's predicted rewards ``[B, K, C]`` of the saccades to C's ``K`` candidates from the observations ``obs``
        ``[B, ...]`` (env units): the saccades C makes with ``saccade_from_core=False``; with it, C's core output
        moves every one of them. The candidates lie on a grid, which M predicts axis by axis."""
        head = self.controller.saccade_head
        axis = torch.tanh(atanh_clipped(head.candidate_axis))  # [S*G]: the candidates' coordinates as C squashes them
        return head.from_grid(self.world_model.readout_grid_predictions(obs, axis, axis)[0])

    @contextlib.contextmanager
    def frozen(self):
        """M and the critic frozen (``requires_grad_(False)``) for C's update; gradients still pass through."""
        modules = (self.world_model, self.critic)
        for m in modules:
            m.requires_grad_(False)
        try:
            yield
        finally:
            for m in modules:
                m.requires_grad_(True)

    def train_controller(self) -> dict[str, float]:
        logs: list[dict[str, float]] = []
        with self.frozen():
            for _ in range(self.actor_updates):
                w = self.replay_buffer.sample(self.actor_batch_size, self.seq_len, self._rng)
                loss, stats = self.controller_loss(w)
                self.actor_optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self.controller.parameters(), self.max_grad_norm)
                self.actor_optimizer.step()
                stats["train/actor_loss"] = loss.item()
                logs.append(stats)
        return {k: float(np.mean([d[k] for d in logs])) for k in logs[0]}

    @torch.no_grad()
    def imagination_drift(self, n_windows: int | None = None) -> dict[str, float]:
        """M rolled out open-loop on replayed real actions for ``horizon`` steps from real states:
        mean squared error (M's scaled units) of its predicted observations against the real ones."""
        model, H = self.world_model, self.horizon
        w = self.replay_buffer.sample(n_windows or self.actor_batch_size, self.seq_len, self._rng)
        L = w["obs"].shape[0]
        if L < H:
            return {}
        m_before, _, _ = self._model_states(w)
        # windows [t, t + H) inside one episode: no episode start after t, no end before t + H - 1
        errors, first = [], []
        for t in range(L - H + 1):
            ok = torch.ones(w["obs"].shape[1], dtype=torch.bool)
            for j in range(1, H):
                ok &= w["starts"][t + j] == 0
            if not ok.any():
                continue
            replayed = iter(w["actions"][t:t + H][:, ok])

            def replay_policy(_obs, _hidden, replayed=replayed):
                return next(replayed)

            state = m_before[t]
            state = tuple(s[ok] for s in state) if isinstance(state, tuple) else state[ok]
            imagined = model.imagine(state, w["obs"][t][ok], replay_policy, H)
            err = ((imagined["next_obs"] - w["next_obs"][t:t + H][:, ok]) / model.obs_scale).square().mean(-1)
            errors.append(err.mean().item())
            first.append(err[0].mean().item())
        if not errors:
            return {}
        return {"planner/model_error_on_imagined_states": float(np.mean(errors)),
                "planner/model_error_one_step": float(np.mean(first))}

    # ------------------------------------------------------------------ the loop

    def learn(self, total_timesteps: int, callback=None, log_interval: int | None = None, tb_log_name: str = "",
              reset_num_timesteps: bool = True, progress_bar: bool = False):
        total_timesteps, callback = self._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name,
                                                      progress_bar)
        log_interval = log_interval or self.log_interval
        self._c_state = None  # the envs were reset
        callback.on_training_start(locals(), globals())
        while self.num_timesteps < total_timesteps:
            if not self.collect(callback):  # 1.
                break
            self._update_current_progress_remaining(self.num_timesteps, total_timesteps)
            if self.num_timesteps < self.learning_starts or len(self.replay_buffer) < self.seq_len:
                continue
            if self._iterations == 0:  # M and the critic first learn from the random steps alone
                for _ in range(self.pretrain_updates // self.model_updates):
                    self.train_model()
                for _ in range(self.pretrain_updates // self.critic_updates):
                    self.train_critic()
            logs = self.train_model()  # 2.
            logs.update(self.train_critic())  # 3.
            logs.update(self.train_controller())  # 4.
            self._n_updates += 1
            self._iterations += 1
            for key, value in logs.items():
                self._stats.setdefault(key, []).append(value)
            if self._iterations % log_interval == 0:
                self._dump_logs()
        callback.on_training_end()
        return self

    def _dump_logs(self) -> None:
        for key, values in self._stats.items():
            self.logger.record(key, float(np.mean(values)))
        self._stats = {}
        for key, value in self.imagination_drift().items():
            self.logger.record(key, value)
        elapsed = max(time.time_ns() - self.start_time, 1) / 1e9
        if self.ep_info_buffer:
            self.logger.record("rollout/ep_rew_mean", safe_mean([ep["r"] for ep in self.ep_info_buffer]))
            self.logger.record("rollout/ep_len_mean", safe_mean([ep["l"] for ep in self.ep_info_buffer]))
        if self.ep_success_buffer:
            self.logger.record("rollout/success_rate", safe_mean(self.ep_success_buffer))
        self.logger.record("time/fps", int((self.num_timesteps - self._num_timesteps_at_start) / elapsed))
        self.logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.dump(step=self.num_timesteps)


# --------------------------------------------------------------------------- helpers


def _check(ok: bool, name: str, rule: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"{name} {rule}, got {value!r}")


def json_rng_state(rng: np.random.Generator) -> dict:
    """A numpy Generator's state as plain JSON types (its bit generator's dict)."""
    state = rng.bit_generator.state
    return {k: ({kk: int(vv) for kk, vv in v.items()} if isinstance(v, dict) else v) for k, v in state.items()}
