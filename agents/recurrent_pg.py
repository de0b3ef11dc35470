"""Recurrent policy gradient with a vector critic: the shared learner of ``lstm-rl`` and ``curious-c-m``.

Seed Sec. 4 and 13 (LSTM controllers trained by RL — Bakker 2002, Wierstra et al. 2007's
recurrent policy gradients — with one critic value per reward channel). The algorithm, top to
bottom:

1. **Collect** ``n_steps`` steps from each of the ``n_envs`` envs with the LSTM controller C,
   storing observations, actions, log-probabilities, C's recurrent state before each step and
   the per-channel values ``V_c(h_t)``. The reward is a *vector* (``info["vector_reward"]``,
   else the scalar as one channel); subclasses may append channels (curiosity) after collection.
2. **Advantages per channel** by GAE, each channel with its own discount ``gamma_c``. Episodic
   channels stop at episode ends (bootstrapping truncated episodes from ``V_c`` of the terminal
   observation); non-episodic ones (curiosity) flow on across resets. C's advantage is the
   weighted sum ``sum_c w_c A_c`` — so weights can change without relearning the critics.
3. **Update** with PPO's clipped surrogate (Schulman et al. 2017), value loss summed over
   channels (each scaled by its returns' variance with ``normalize_value_loss``), entropy bonus,
   for ``n_epochs`` over minibatches of *sequences*: the rollout is cut at episode starts and
   every ``seq_len`` steps (truncated BPTT from the stored recurrent state), and all segments run
   through one padded ``nn.LSTM`` call (:mod:`agents.sequences`).

Logged: SB3's ``rollout/*``, ``train/*`` and ``time/*`` keys, ``values/<channel>`` and
``rollout/reward_<channel>`` per reward channel, and ``memory/*`` (:meth:`RecurrentVectorPG.memory_stats`:
forget-gate activity, the median memory horizon in steps, the share of long-memory units).

The controller's inputs are the observation (flattened; Discrete one-hot) — and, with
``reward_inputs=True``, its previous action and reward vector, added by the env wrapper
:class:`agents.wrappers.PreviousActionReward` so that ``predict(obs, state, episode_start)``
stays all an evaluator needs.

Options that decide whether anything, and memory over long gaps, is learned at all (see
``agents/hyperparams/lstm-rl.yml`` and ``results/tmaze/``):

* ``critic_lstm`` (on by default, as in sb3-contrib's RecurrentPPO) — the critic gets its own
  encoder and LSTM. With one LSTM shared, the critic's regression of returns that depend on the
  episode's random outcome floods the LSTM with noise, and the policy gradient that should teach
  it to keep a cue never gets through; on CartPole-v1 a shared LSTM (gradient norm clipped at 0.5,
  the value loss dominating it) stayed at the random policy's ~22 for 40k steps, a separate one
  reached ~160. ``critic_lstm=False`` shares one LSTM (half the recurrent cost).
* ``forget_bias`` — the forget gates' initial bias: ``sigmoid(b)`` per step, so at b = 3 a cue
  still has ~1/3 of its strength after 20 steps rather than ~1e-6 at PyTorch's default.
* ``input_bias`` — the actor LSTM's input gates' initial bias. Nearly shut (-5), the cell does not
  fill up with a long corridor's constant input and saturate before learning decides what to
  write; with ``forget_bias`` 6 this is the long-memory initialisation that ``results/tmaze_memory``
  measured. Only the actor's: the critic must see where it is now to give the junction's choice a
  centred baseline, and with its input gates shut it could not (the choice then collapsed onto
  one arm before the memory formed).
* ``policy_gain`` — the orthogonal gain of the policy head's initial weights (0.01 as SB3 does:
  a near-uniform first policy). At 1 the junction's gradient reaches the LSTM at full strength.
* ``value_skip`` — the value head reads the current input's encoding beside the critic's LSTM state. A
  critic LSTM that has walked a long constant corridor hardly tells the junction from the corridor: its
  value at the junction fell far below the return that follows, so both arms looked good (an uncentred
  advantage) and the choice drifted onto one arm before the memory formed. With the skip the junction's
  value is read off its input.
* ``separate_grad_clip`` — ``max_grad_norm`` bounds the critic's gradient and the rest's (the actor's)
  each on its own instead of together (SB3's way). Together, the critic's gradient (in the T-maze far
  larger than the actor's) sets the clip factor, so the actor's gradient shrinks and swells with the
  critic's error; when a solved maze makes the returns predictable the factor jumps, and Adam's step on
  the actor with it (``results/tmaze``: solved mazes unlearned). Logged: ``train/grad_norm``, or
  ``train/grad_norm_actor`` and ``train/grad_norm_critic`` (the norms before clipping).
* ``normalize_value_loss`` — each channel's squared value error is divided by the variance of that channel's
  returns in the rollout, so every channel weighs the same in the critic's loss whatever its scale. Summed
  raw, the largest-scale channel owns the critic: in the T-maze the env's ``step_cost`` channel (weight 0,
  returns of -60 and below) against ``goal``'s 0..1. Every channel is still learned, so weights can change
  later without relearning the critics. ``train/value_loss`` is then the scaled loss.
* ``target_kl`` (SB3's and CleanRL's early stop) — an update ends once a minibatch's approximate KL between
  the policy being trained and the one that acted exceeds ``1.5 * target_kl`` (``train/epochs``: the epochs
  completed). A near-deterministic policy that has solved its task can otherwise be thrown far in one update
  of many epochs at a high learning rate. Off for the T-maze: at 0.02 it kept two collapsing runs solved but
  unlearned others (``agents/hyperparams/lstm-rl.yml``).
* ``persistence`` (Discrete actions, ``reward_inputs``) — a learnable skip connection from the
  previous action to the logits, initialised to ``persistence * I``: the untrained policy repeats
  its last action with probability ``e^p / (e^p + n - 1)``, so its exploration is a persistent
  walk (it reaches the end of a 200-cell corridor) rather than a dither (which does not).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.utils import explained_variance, safe_mean
from torch import nn

from agents.base import MirabilisAlgorithm
from agents.reward_channels import (
    RewardChannels,
    env_reward_channels,
    resolve_weights,
    vector_rewards,
)
from agents.sequences import minibatches, split_segments
from agents.wrappers import PreviousActionReward


def flatten_obs_tensor(space: spaces.Space, obs) -> torch.Tensor:
    """A batch of observations as a float ``[B, D]`` tensor (Discrete one-hot)."""
    if isinstance(space, spaces.Discrete):
        index = torch.as_tensor(np.asarray(obs), dtype=torch.long).reshape(-1) - int(space.start)
        return F.one_hot(index, int(space.n)).float()
    tensor = torch.as_tensor(np.asarray(obs), dtype=torch.float32)
    return tensor.reshape(tensor.shape[0], -1)


def _init_gates(lstm: nn.LSTM, forget_bias: float | None, input_bias: float | None = None) -> None:
    """Forget- and input-gate biases (gate order i, f, g, o); ``None``: PyTorch's default init. A
    forget bias of b keeps a memory for about ``1 / (1 - sigmoid(b))`` steps at the start of learning
    (b = 3: ~20; b = 6: ~400); a negative input bias keeps the cell from filling up with a long
    constant input (and saturating) before learning has decided what is worth writing."""
    H = lstm.hidden_size
    with torch.no_grad():
        for index, bias in ((1, forget_bias), (0, input_bias)):
            if bias is not None:
                lstm.bias_ih_l0[index * H:(index + 1) * H].fill_(bias)
                lstm.bias_hh_l0[index * H:(index + 1) * H].zero_()


def _lstm_step(encoder: nn.Module, lstm: nn.LSTM, obs: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
    """One cell step with the LSTM's own weights: the maths of ``nn.LSTM``, less overhead."""
    return torch.lstm_cell(encoder(obs), (h, c), lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0,
                           lstm.bias_hh_l0)


def _lstm_sequence(encoder: nn.Module, lstm: nn.LSTM, obs: torch.Tensor, h0: torch.Tensor,
                   c0: torch.Tensor) -> torch.Tensor:
    """The LSTM over padded segments ``obs [L, N, D]`` from ``(h0, c0) [N, H]``: one fused call.

    Not packed: an LSTM is causal, so the padding after a segment's end cannot change its real
    steps' outputs, and the losses mask the padding out (no gradient flows from it). On CPU, torch's
    ``PackedSequence`` path is far slower, backward especially: with it ``python scripts/bench.py lstm-rl``
    gave lstm-rl 1.4x RecurrentPPO's env steps/s, with the padded call 5.4x."""
    out, _ = lstm(encoder(obs), (h0.unsqueeze(0).contiguous(), c0.unsqueeze(0).contiguous()))
    return out


class RecurrentActorCritic(nn.Module):
    """Encoder -> LSTM -> (policy head, vector value head with one output per reward channel).

    With ``critic_lstm=True`` the critic has an encoder and LSTM of its own (as RecurrentPPO's
    default): features and recurrent state are then ``[actor | critic]``, ``2 * lstm_size`` wide, and
    the critic's regression of noisy returns no longer drowns the gradient that builds the actor's memory.
    """

    def __init__(self, obs_dim: int, action_space: spaces.Space, n_channels: int, encoder_size: int,
                 lstm_size: int, forget_bias: float | None = None, previous_action: slice | None = None,
                 persistence: float = 0.0, critic_lstm: bool = False, input_bias: float | None = None,
                 policy_gain: float = 0.01, value_skip: bool = False):
        super().__init__()
        self.action_space = action_space
        self.lstm_size = lstm_size
        self.state_size = 2 * lstm_size if critic_lstm else lstm_size
        self.encoder = nn.Sequential(nn.Linear(obs_dim, encoder_size), nn.Tanh())
        self.lstm = nn.LSTM(encoder_size, lstm_size)
        if isinstance(action_space, spaces.Discrete):
            self.policy_head = nn.Linear(lstm_size, int(action_space.n))
            self.log_std = None
        else:
            dim = int(np.prod(action_space.shape))
            self.policy_head = nn.Linear(lstm_size, dim)
            self.log_std = nn.Parameter(torch.zeros(dim))
        # value_skip: the value head also reads the current input's encoding, past the LSTM
        self.value_skip = value_skip
        self.value_head = nn.Linear(lstm_size + (encoder_size if value_skip else 0), n_channels)
        for layer in (self.encoder[0], self.value_head):
            nn.init.orthogonal_(layer.weight, np.sqrt(2) if layer is self.encoder[0] else 1.0)
            nn.init.zeros_(layer.bias)
        nn.init.orthogonal_(self.policy_head.weight, policy_gain)
        nn.init.zeros_(self.policy_head.bias)
        # Persistence prior: a learnable skip connection from the previous action (an input, Sec. 13) to
        # the logits, initialised to ``persistence * identity`` -- the initial policy tends to repeat its
        # last action, so its random exploration is a persistent walk rather than a dither.
        self.previous_action = previous_action
        self.persistence = None
        if persistence:
            n = int(action_space.n)
            self.persistence = nn.Linear(n, n, bias=False)
            with torch.no_grad():
                self.persistence.weight.copy_(persistence * torch.eye(n))
        _init_gates(self.lstm, forget_bias, input_bias)
        self.critic_encoder = self.critic_rnn = None
        if critic_lstm:  # made after the actor's modules: those start the same as without it
            self.critic_encoder = nn.Sequential(nn.Linear(obs_dim, encoder_size), nn.Tanh())
            self.critic_rnn = nn.LSTM(encoder_size, lstm_size)
            nn.init.orthogonal_(self.critic_encoder[0].weight, np.sqrt(2))
            nn.init.zeros_(self.critic_encoder[0].bias)
            _init_gates(self.critic_rnn, forget_bias)

    def critic_parameters(self) -> list[nn.Parameter]:
        """The parameters only the critic uses (its encoder and LSTM, if it has them, and the value head)."""
        modules = [m for m in (self.critic_encoder, self.critic_rnn, self.value_head) if m is not None]
        return [p for m in modules for p in m.parameters()]

    def actor_features(self, features: torch.Tensor) -> torch.Tensor:
        return features[..., : self.lstm_size] if self.critic_rnn is not None else features

    def value(self, features: torch.Tensor, obs: torch.Tensor | None = None) -> torch.Tensor:
        """Per-channel values ``[..., C]`` (from the critic's half of the features, if it has one);
        ``obs`` are the inputs of the same steps (needed with ``value_skip``)."""
        critic = features[..., self.lstm_size:] if self.critic_rnn is not None else features
        if self.value_skip:
            if obs is None:
                raise ValueError("value_skip needs the inputs (obs) of the steps")
            encoder = self.critic_encoder if self.critic_rnn is not None else self.encoder
            critic = torch.cat([critic, encoder(obs)], -1)
        return self.value_head(critic)

    def logits(self, features: torch.Tensor, obs: torch.Tensor | None = None) -> torch.Tensor:
        """The policy head's output (Discrete: logits; Box: means); ``obs`` are the inputs of the same steps."""
        out = self.policy_head(self.actor_features(features))
        if self.persistence is not None:
            if obs is None:
                raise ValueError("the persistence prior needs the inputs (obs) of the steps")
            out = out + self.persistence(obs[..., self.previous_action])
        return out

    def distribution(self, features: torch.Tensor, obs: torch.Tensor | None = None) -> torch.distributions.Distribution:
        out = self.logits(features, obs)
        if self.log_std is None:
            return torch.distributions.Categorical(logits=out)
        return torch.distributions.Normal(out, self.log_std.exp().expand_as(out))

    def log_prob(self, dist, actions: torch.Tensor) -> torch.Tensor:
        logp = dist.log_prob(actions)
        return logp if self.log_std is None else logp.sum(-1)

    def entropy(self, dist) -> torch.Tensor:
        ent = dist.entropy()
        return ent if self.log_std is None else ent.sum(-1)

    def step(self, obs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        """One step for a batch: ``obs [B, D]``, ``state (h, c) [B, state_size]`` -> (features, new state)."""
        h, c = state
        if self.critic_rnn is None:
            h, c = _lstm_step(self.encoder, self.lstm, obs, h, c)
            return h, (h, c)
        H = self.lstm_size
        ha, ca = _lstm_step(self.encoder, self.lstm, obs, h[:, :H], c[:, :H])
        hv, cv = _lstm_step(self.critic_encoder, self.critic_rnn, obs, h[:, H:], c[:, H:])
        h, c = torch.cat([ha, hv], -1), torch.cat([ca, cv], -1)
        return h, (h, c)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        """Sample one step for a batch: (actions, their log-probabilities, all values, new state)."""
        features, state = self.step(obs, state)
        out = self.logits(features, obs)
        if self.log_std is None:  # what Categorical(logits=out).sample() / .log_prob() do, minus the checks
            action = torch.multinomial(F.softmax(out, -1), 1, True)
            logp = torch.log_softmax(out, -1).gather(-1, action)[:, 0]
            action = action[:, 0]
        else:
            dist = self.distribution(features, obs)
            action = dist.sample()
            logp = self.log_prob(dist, action)
        return action, logp, self.value(features, obs), state

    def sequence(self, obs: torch.Tensor, state0: tuple[torch.Tensor, torch.Tensor]):
        """Padded segments ``obs [L, N, D]`` from ``state0 [N, state_size]`` -> features ``[L, N, state_size]``
        (past each segment's end: padding, for the caller to mask out)."""
        h0, c0 = state0
        if self.critic_rnn is None:
            return _lstm_sequence(self.encoder, self.lstm, obs, h0, c0)
        H = self.lstm_size
        actor = _lstm_sequence(self.encoder, self.lstm, obs, h0[:, :H], c0[:, :H])
        critic = _lstm_sequence(self.critic_encoder, self.critic_rnn, obs, h0[:, H:], c0[:, H:])
        return torch.cat([actor, critic], -1)


@dataclass
class Rollout:
    """``n_steps`` × ``n_envs`` of experience; tensors are ``[T, B, ...]``."""

    obs: torch.Tensor  # [T, B, D] flattened controller inputs
    raw_obs: list  # the env's observations, for models that read them (e.g. M)
    next_obs: list  # true next observation of each transition (terminal ones at episode ends)
    actions: torch.Tensor  # [T, B] (Discrete) or [T, B, A]
    log_probs: torch.Tensor  # [T, B]
    values: np.ndarray  # [T, B, C_env]
    rewards: np.ndarray  # [T, B, C_env]
    episode_starts: np.ndarray  # [T, B] bool: obs[t] is the first of an episode
    dones: np.ndarray  # [T, B] bool: the episode ended at step t
    terminated: np.ndarray  # [T, B] bool: ended by termination (not truncation)
    states: tuple[torch.Tensor, torch.Tensor]  # [T, B, H] C's state before step t (after reset)
    last_values: np.ndarray  # [B, C_env]
    infos: list  # [T] lists of infos


class RecurrentVectorPG(MirabilisAlgorithm):
    """LSTM actor with a vector critic, trained by sequence-batched recurrent PPO (see module doc)."""

    agent_id = "recurrent-vector-pg"

    def __init__(
        self,
        env,
        learning_rate: float = 3e-4,
        n_steps: int = 128,
        n_epochs: int = 4,
        n_minibatches: int = 4,
        seq_len: int = 32,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        clip_range: float = 0.2,
        ent_coef: float = 0.01,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        separate_grad_clip: bool = False,
        normalize_advantage: bool = True,
        normalize_value_loss: bool = False,
        target_kl: float | None = None,
        encoder_size: int = 64,
        lstm_size: int = 64,
        forget_bias: float | None = None,
        input_bias: float | None = None,
        policy_gain: float = 0.01,
        persistence: float = 0.0,
        critic_lstm: bool = True,
        value_skip: bool = False,
        reward_weights: Any = None,
        channel_gammas: dict | None = None,
        reward_inputs: bool = False,
        log_interval: int = 1,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        seed: int | None = None,
        verbose: int = 0,
        device: str = "cpu",
        _init_setup_model: bool = True,
    ):
        self._record_hyperparams(locals())
        for name, value, low in (("n_steps", n_steps, 1), ("n_epochs", n_epochs, 1), ("seq_len", seq_len, 1),
                                 ("n_minibatches", n_minibatches, 1), ("encoder_size", encoder_size, 1),
                                 ("lstm_size", lstm_size, 1)):
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
        for name, value in (("gamma", gamma), ("gae_lambda", gae_lambda)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
        if policy_gain <= 0:
            raise ValueError(f"policy_gain must be > 0, got {policy_gain}")
        super().__init__(
            policy=RecurrentActorCritic, env=env, learning_rate=learning_rate, tensorboard_log=tensorboard_log,
            verbose=verbose, device=device, seed=seed, stats_window_size=stats_window_size,
            support_multi_env=True, supported_action_spaces=(spaces.Box, spaces.Discrete),
        )
        self.check_spaces(self.observation_space, self.action_space)
        if reward_inputs and not self._env_has_reward_inputs():
            raise ValueError(
                "reward_inputs=True needs the env wrapped in agents.wrappers.PreviousActionReward "
                "(scripts/train.py does this; in code: make_vec_env(..., wrapper_class=PreviousActionReward))"
            )
        self.n_steps, self.n_epochs, self.n_minibatches, self.seq_len = n_steps, n_epochs, n_minibatches, seq_len
        self.gamma, self.gae_lambda, self.clip_range = gamma, gae_lambda, clip_range
        self.ent_coef, self.vf_coef, self.max_grad_norm = ent_coef, vf_coef, max_grad_norm
        self.separate_grad_clip = separate_grad_clip
        self.normalize_advantage, self.normalize_value_loss = normalize_advantage, normalize_value_loss
        if target_kl is not None and target_kl <= 0:
            raise ValueError(f"target_kl must be > 0 (or None: no early stop), got {target_kl}")
        self.target_kl = target_kl
        self.encoder_size, self.lstm_size, self.forget_bias = encoder_size, lstm_size, forget_bias
        self.input_bias, self.policy_gain = input_bias, policy_gain
        self.critic_lstm, self.value_skip = critic_lstm, value_skip
        if persistence and not (reward_inputs and isinstance(self.action_space, spaces.Discrete)):
            raise ValueError("persistence (a prior to repeat the previous action) needs reward_inputs=True and a "
                             f"Discrete action space, got reward_inputs={reward_inputs} and {self.action_space}")
        self.persistence = persistence
        self.reward_weights, self.channel_gammas, self.reward_inputs = reward_weights, channel_gammas, reward_inputs
        self.log_interval = log_interval
        if _init_setup_model:
            self._setup_model()

    # ------------------------------------------------------------------ set-up

    @classmethod
    def env_wrapper(cls, hyperparams: dict[str, Any]):
        """The gymnasium wrapper the runner puts around each env for these hyperparameters."""
        return PreviousActionReward if hyperparams.get("reward_inputs") else None

    def _env_has_reward_inputs(self) -> bool:
        try:
            return bool(self.env.env_is_wrapped(PreviousActionReward)[0])
        except (AttributeError, IndexError):
            return False

    def _reward_channels(self) -> RewardChannels:
        """The env's channels with their weights and discounts; subclasses append their own."""
        names, env_weights = env_reward_channels(self.env)
        weights = resolve_weights(names, env_weights, self.reward_weights)
        gammas = np.full(len(names), self.gamma, dtype=np.float32)
        for key, value in (self.channel_gammas or {}).items():
            if key not in names:
                raise ValueError(f"channel_gammas: unknown channel {key!r}; channels are {names}")
            gammas[names.index(key)] = float(value)
        return RewardChannels(names, weights, gammas)

    def _setup_model(self) -> None:
        self.set_random_seed(self.seed)
        self._rng = np.random.default_rng(self.seed)
        self.n_env_channels = len(env_reward_channels(self.env)[0])
        self.channels = self._reward_channels()
        obs_dim = spaces.flatdim(self.observation_space)
        previous_action = None
        if self.reward_inputs:  # PreviousActionReward's layout: [obs, previous action, previous reward vector]
            end = obs_dim - self.n_env_channels
            previous_action = slice(end - spaces.flatdim(self.action_space), end)
        self.policy = RecurrentActorCritic(obs_dim, self.action_space, len(self.channels), self.encoder_size,
                                           self.lstm_size, self.forget_bias, previous_action,
                                           self.persistence, self.critic_lstm, self.input_bias,
                                           self.policy_gain, self.value_skip).to(self.device)
        self.policy.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.learning_rate, eps=1e-5)
        self._lstm_state = None

    def _get_torch_save_params(self):
        return ["policy", "policy.optimizer"], []

    def _initial_state(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = torch.zeros(n, self.policy.state_size, device=self.device)
        return zeros, zeros.clone()

    # ------------------------------------------------------------------ acting

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = False):
        """SB3's recurrent ``predict``: returns ``(actions, (h, c))`` with numpy states ``[B, H]``."""
        obs_space = self.observation_space
        single = (np.asarray(observation).shape == obs_space.shape) if isinstance(obs_space, spaces.Box) \
            else np.ndim(observation) == 0
        obs = np.asarray(observation)[None] if single else np.asarray(observation)
        if isinstance(obs_space, spaces.Box) and obs.shape[1:] != obs_space.shape:
            raise ValueError(f"observation shape {obs.shape[1:]} does not match {obs_space.shape}"
                             + (" (was the env wrapped in PreviousActionReward?)" if self.reward_inputs else ""))
        n = obs.shape[0]
        with torch.no_grad():
            if state is None:
                h, c = self._initial_state(n)
            else:
                h, c = (torch.as_tensor(s, dtype=torch.float32, device=self.device) for s in state)
            if episode_start is not None:
                keep = 1.0 - torch.as_tensor(np.asarray(episode_start, dtype=np.float32), device=self.device)
                h, c = h * keep[:, None], c * keep[:, None]
            x = flatten_obs_tensor(obs_space, obs).to(self.device)
            features, (h, c) = self.policy.step(x, (h, c))
            dist = self.policy.distribution(features, x)
            if deterministic:
                action = dist.probs.argmax(-1) if self.policy.log_std is None else dist.mean
            else:
                action = dist.sample()
        actions = self._env_actions(action)
        return (actions[0] if single else actions), (h.cpu().numpy(), c.cpu().numpy())

    def _env_actions(self, action: torch.Tensor) -> np.ndarray:
        actions = action.cpu().numpy()
        if isinstance(self.action_space, spaces.Box):
            actions = np.clip(actions.reshape(-1, *self.action_space.shape), self.action_space.low,
                              self.action_space.high)
        return actions

    # ------------------------------------------------------------------ 1. collect

    def collect_rollout(self, callback) -> Rollout | None:
        env, T, B = self.env, self.n_steps, self.env.num_envs
        if self._lstm_state is None:
            self._lstm_state = self._initial_state(B)
        C = self.n_env_channels
        obs_buf, actions, log_probs, raw_obs, next_obs, infos_all = [], [], [], [], [], []
        values = np.zeros((T, B, C), np.float32)
        rewards = np.zeros((T, B, C), np.float32)
        starts = np.zeros((T, B), bool)
        dones = np.zeros((T, B), bool)
        terminated = np.zeros((T, B), bool)
        states_h = torch.zeros(T, B, self.policy.state_size)
        states_c = torch.zeros(T, B, self.policy.state_size)
        gammas = torch.as_tensor(self.channels.gammas[:C])
        callback.on_rollout_start()
        h, c = self._lstm_state
        for t in range(T):
            start = np.asarray(self._last_episode_starts, dtype=bool)
            if start.any():
                keep = torch.as_tensor(~start, dtype=torch.float32)[:, None]
                h, c = h * keep, c * keep
            obs_t = flatten_obs_tensor(self.observation_space, self._last_obs)
            action, logp, value, (h_next, c_next) = self.policy.act(obs_t, (h, c))
            value = value[:, :C]
            new_obs, reward, done, infos = env.step(self._env_actions(action))
            self.num_timesteps += B
            callback.update_locals(locals())
            if not callback.on_step():
                self._lstm_state = (h_next, c_next)
                return None
            self._update_info_buffer(infos, done)
            vec = vector_rewards(infos, reward, C)
            ended = np.flatnonzero(done)
            nxt = new_obs.copy() if isinstance(new_obs, np.ndarray) else new_obs
            for i in ended:
                info = infos[i]
                if "terminal_observation" in info:
                    nxt[i] = info["terminal_observation"]
                    terminated[t, i] = not info.get("TimeLimit.truncated", False)
                    if info.get("TimeLimit.truncated", False):  # bootstrap episodic channels
                        with torch.no_grad():
                            term = flatten_obs_tensor(self.observation_space, info["terminal_observation"][None])
                            f_term, _ = self.policy.step(term, (h_next[i:i + 1], c_next[i:i + 1]))
                            v_term = self.policy.value(f_term, term)[0, :C]
                        vec[i] += (gammas * v_term).numpy() * self.channels.episodic[:C]
                else:
                    terminated[t, i] = True
            obs_buf.append(obs_t)
            raw_obs.append(self._last_obs)
            next_obs.append(nxt)
            actions.append(action)
            log_probs.append(logp)
            values[t], rewards[t], starts[t], dones[t] = value.numpy(), vec, start, done
            states_h[t], states_c[t] = h, c
            infos_all.append(infos)
            self._last_obs, self._last_episode_starts = new_obs, done
            h, c = h_next, c_next
        self._lstm_state = (h, c)
        with torch.no_grad():  # values of the observations after the rollout
            keep = torch.as_tensor(1.0 - np.asarray(self._last_episode_starts, np.float32))[:, None]
            x_last = flatten_obs_tensor(self.observation_space, self._last_obs)
            f_last, _ = self.policy.step(x_last, (h * keep, c * keep))
            last_values = self.policy.value(f_last, x_last)[:, :C].numpy()
        callback.update_locals(locals())
        callback.on_rollout_end()
        return Rollout(torch.stack(obs_buf), raw_obs, next_obs, torch.stack(actions), torch.stack(log_probs),
                       values, rewards, starts, dones, terminated, (states_h, states_c), last_values, infos_all)

    def _extra_rewards(self, rollout: Rollout) -> np.ndarray | None:
        """Rewards ``[T, B, K]`` of the channels a subclass appends (e.g. curiosity); none here."""
        return None

    def _extra_values(self, rollout: Rollout) -> tuple[np.ndarray, np.ndarray]:
        """``V`` of the appended channels along the rollout and after it, from C's value head."""
        K = len(self.channels) - self.n_env_channels
        if K == 0:
            T, B = rollout.dones.shape
            return np.zeros((T, B, 0), np.float32), np.zeros((B, 0), np.float32)
        with torch.no_grad():
            seg = split_segments(rollout.episode_starts, self.n_steps)
            values = self._sequence_outputs(rollout, seg)[1][..., self.n_env_channels:]
            T, B = rollout.dones.shape
            out = np.zeros((T, B, K), np.float32)
            out[seg.t_index[seg.mask], seg.b_index[seg.mask]] = values[torch.as_tensor(seg.mask)].numpy()
            h, c = self._lstm_state
            keep = torch.as_tensor(1.0 - np.asarray(self._last_episode_starts, np.float32))[:, None]
            x_last = flatten_obs_tensor(self.observation_space, self._last_obs)
            f_last, _ = self.policy.step(x_last, (h * keep, c * keep))
            last = self.policy.value(f_last, x_last)[:, self.n_env_channels:].numpy()
        return out, last

    # ------------------------------------------------------------------ 2. advantages

    def compute_advantages(self, rewards, values, last_values, dones, terminated) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel GAE. Episodic channels cut at episode ends; the others bootstrap across."""
        T = rewards.shape[0]
        gammas, episodic = self.channels.gammas, self.channels.episodic
        advantages = np.zeros_like(rewards)
        last_gae = np.zeros_like(last_values)
        for t in reversed(range(T)):
            next_values = last_values if t == T - 1 else values[t + 1]
            not_done = 1.0 - dones[t].astype(np.float32)[:, None]
            nonterminal = np.where(episodic[None, :], not_done, 1.0)
            delta = rewards[t] + gammas * next_values * nonterminal - values[t]
            last_gae = delta + gammas * self.gae_lambda * nonterminal * last_gae
            advantages[t] = last_gae
        return advantages, advantages + values

    # ------------------------------------------------------------------ 3. update

    def _sequence_outputs(self, rollout: Rollout, seg):
        """Distribution parameters and values for padded segments ``seg`` of the rollout."""
        t_idx, b_idx = torch.as_tensor(seg.t_index), torch.as_tensor(seg.b_index)
        obs = rollout.obs[t_idx, b_idx]
        starts = torch.as_tensor(seg.starts), torch.as_tensor(seg.b_index[0])
        state0 = (rollout.states[0][starts[0], starts[1]], rollout.states[1][starts[0], starts[1]])
        features = self.policy.sequence(obs, state0)
        return features, self.policy.value(features, obs)

    def train_on_rollout(self, rollout: Rollout, values: np.ndarray, advantages: np.ndarray,
                         returns: np.ndarray) -> dict[str, float]:
        """PPO epochs over minibatches of sequences; ``values`` ``[T, B, C]`` as collected."""
        weights = torch.as_tensor(self.channels.weights)
        adv_all = torch.as_tensor(advantages)
        ret_all = torch.as_tensor(returns)
        segments = split_segments(rollout.episode_starts, self.seq_len)
        stats = {"policy_loss": [], "value_loss": [], "entropy": [], "approx_kl": [], "clip_fraction": []}
        grad_norms, critic_grad_norms = [], []
        channel_scale = torch.as_tensor(self.value_loss_scale(returns))
        epochs_done, stop = 0, False
        for _ in range(self.n_epochs):
            for mb in minibatches(segments, self.n_minibatches, self._rng):
                mask = torch.as_tensor(mb.mask)
                t_idx, b_idx = torch.as_tensor(mb.t_index), torch.as_tensor(mb.b_index)
                features, predicted = self._sequence_outputs(rollout, mb)
                features, predicted = features[mask], predicted[mask]
                dist = self.policy.distribution(features, rollout.obs[t_idx, b_idx][mask])
                actions = rollout.actions[t_idx, b_idx][mask]
                logp = self.policy.log_prob(dist, actions)
                old_logp = rollout.log_probs[t_idx, b_idx][mask]
                adv = (adv_all[t_idx, b_idx][mask] * weights).sum(-1)
                if self.normalize_advantage and adv.numel() > 1:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                ratio = torch.exp(logp - old_logp)
                policy_loss = -torch.min(adv * ratio, adv * ratio.clamp(1 - self.clip_range, 1 + self.clip_range)).mean()
                value_loss = (F.mse_loss(predicted, ret_all[t_idx, b_idx][mask], reduction="none")
                              * channel_scale).sum(-1).mean()
                entropy = self.policy.entropy(dist).mean()
                loss = policy_loss + self.vf_coef * value_loss - self.ent_coef * entropy
                with torch.no_grad():
                    log_ratio = logp - old_logp
                    approx_kl = ((ratio - 1) - log_ratio).mean().item()
                if self.target_kl is not None and approx_kl > 1.5 * self.target_kl:
                    stop = True  # SB3's early stop: the policy has moved far enough from the one that acted
                    break
                self.policy.optimizer.zero_grad()
                loss.backward()
                for norm, norms in zip(self._clip_gradients(), (grad_norms, critic_grad_norms)):
                    norms.append(norm)
                self.policy.optimizer.step()
                with torch.no_grad():
                    stats["approx_kl"].append(approx_kl)
                    stats["clip_fraction"].append(((ratio - 1).abs() > self.clip_range).float().mean().item())
                stats["policy_loss"].append(policy_loss.item())
                stats["value_loss"].append(value_loss.item())
                stats["entropy"].append(entropy.item())
            if stop:
                break
            epochs_done += 1
            self._n_updates += 1
        out = {f"train/{k}": float(np.mean(v)) if v else float("nan") for k, v in stats.items()}
        out["train/epochs"] = float(epochs_done)
        if self.separate_grad_clip:
            out["train/grad_norm_actor"] = float(np.mean(grad_norms))
            out["train/grad_norm_critic"] = float(np.mean(critic_grad_norms))
        else:
            out["train/grad_norm"] = float(np.mean(grad_norms))
        weighted_values = values @ self.channels.weights
        out["train/explained_variance"] = float(explained_variance(weighted_values.ravel(),
                                                                    (returns @ self.channels.weights).ravel()))
        for i, name in enumerate(self.channels.names):
            out[f"values/{name}"] = float(values[..., i].mean())
        return out

    def value_loss_scale(self, returns: np.ndarray) -> np.ndarray:
        """Per-channel factors ``[C]`` of the squared value errors: 1, or with ``normalize_value_loss`` one over the
        variance of each channel's returns ``[..., C]`` in the rollout (its standard deviation floored at 0.01)."""
        if not self.normalize_value_loss:
            return np.ones(returns.shape[-1], np.float32)
        std = returns.reshape(-1, returns.shape[-1]).std(0)
        return (1.0 / np.maximum(std, 0.01) ** 2).astype(np.float32)

    def _clip_gradients(self) -> list[float]:
        """Clip the gradient norm at ``max_grad_norm``: of all parameters together (SB3's way), or with
        ``separate_grad_clip`` of the critic's parameters and of all the others each on its own; returns the
        norms before clipping (one, or [actor's, critic's])."""
        groups = [list(self.policy.parameters())]
        if self.separate_grad_clip:
            critic = self.policy.critic_parameters()
            ids = {id(p) for p in critic}
            groups = [[p for p in groups[0] if id(p) not in ids], [p for p in groups[0] if id(p) in ids]]
        return [float(nn.utils.clip_grad_norm_(group, self.max_grad_norm)) for group in groups]

    # ------------------------------------------------------------------ the loop

    def learn(self, total_timesteps: int, callback=None, log_interval: int | None = None, tb_log_name: str = "",
              reset_num_timesteps: bool = True, progress_bar: bool = False):
        total_timesteps, callback = self._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name,
                                                      progress_bar)
        if reset_num_timesteps or self._lstm_state is None:
            self._lstm_state = None
        log_interval = log_interval or self.log_interval
        callback.on_training_start(locals(), globals())
        iteration = 0
        while self.num_timesteps < total_timesteps:
            rollout = self.collect_rollout(callback)
            if rollout is None:
                break
            iteration += 1
            self._update_current_progress_remaining(self.num_timesteps, total_timesteps)
            extra_rewards = self._extra_rewards(rollout)
            extra_values, extra_last = self._extra_values(rollout)
            rewards = rollout.rewards if extra_rewards is None else np.concatenate([rollout.rewards, extra_rewards], -1)
            values = np.concatenate([rollout.values, extra_values], -1)
            last_values = np.concatenate([rollout.last_values, extra_last], -1)
            advantages, returns = self.compute_advantages(rewards, values, last_values, rollout.dones,
                                                          rollout.terminated)
            logs = self.train_on_rollout(rollout, values, advantages, returns)
            logs.update(self.memory_stats(rollout))
            logs.update(self._after_update(rollout))
            for i, name in enumerate(self.channels.names):
                logs[f"rollout/reward_{name}"] = float(rewards[..., i].mean())
            for key, value in logs.items():
                self.logger.record(key, value)
            if iteration % log_interval == 0:
                self._dump_logs()
        callback.on_training_end()
        return self

    @torch.no_grad()
    def memory_stats(self, rollout: Rollout) -> dict[str, float]:
        """``memory/*``: how long C's LSTM keeps what it stores, measured on the rollout's own steps.

        The forget gate ``f`` of every unit at every step (recomputed from the stored states) says
        how much of the cell survives one step; ``1 / (1 - f)`` is that unit's memory horizon in
        steps. Logged: the mean forget gate, the median horizon, and the share of units that keep
        more than half their content for 10 steps (``f ** 10 > 0.5``)."""
        lstm, H = self.policy.lstm, self.policy.lstm_size
        x = self.policy.encoder(rollout.obs)
        h = rollout.states[0][..., :H]
        gates = x @ lstm.weight_ih_l0.T + lstm.bias_ih_l0 + h @ lstm.weight_hh_l0.T + lstm.bias_hh_l0
        forget = torch.sigmoid(gates[..., H:2 * H])
        horizon = 1.0 / (1.0 - forget).clamp_min(1e-6)
        return {"memory/forget_gate_mean": float(forget.mean()),
                "memory/horizon_median": float(horizon.median()),
                "memory/long_units": float((forget ** 10 > 0.5).float().mean())}

    def _after_update(self, rollout: Rollout) -> dict[str, float]:
        """Hook after C's update (train M, curiosity statistics...); returns log scalars."""
        return {}

    def _dump_logs(self) -> None:
        elapsed = max(time.time_ns() - self.start_time, 1) / 1e9
        fps = int((self.num_timesteps - self._num_timesteps_at_start) / elapsed)
        if self.ep_info_buffer:
            self.logger.record("rollout/ep_rew_mean", safe_mean([ep["r"] for ep in self.ep_info_buffer]))
            self.logger.record("rollout/ep_len_mean", safe_mean([ep["l"] for ep in self.ep_info_buffer]))
        if self.ep_success_buffer:
            self.logger.record("rollout/success_rate", safe_mean(self.ep_success_buffer))
        self.logger.record("time/fps", fps)
        self.logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.dump(step=self.num_timesteps)

