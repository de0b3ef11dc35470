"""``curious-c-m``: a controller C paid for its world model M's errors or improvement (seed Sec. 5, 6, 11).

1990 ("Making the world differentiable"): C, a recurrent controller, and M, a recurrent model
of the world, learn side by side; C gets an intrinsic reward for M's prediction errors — an
adversarial game in which C seeks what M cannot yet predict. 1991 ("Curious model-building
control systems"): pay C instead for M's *improvement*, its learning progress, so that both
what M has mastered and what is fundamentally unpredictable (a TV of white noise) become boring.

Per rollout (``n_steps`` × ``n_envs``):

1. C (LSTM, :class:`agents.recurrent_pg.RecurrentVectorPG`) collects experience.
2. The curiosity signal (``--set curiosity=adversarial|progress|rnd|none``,
   :mod:`world_models.curiosity`) scores every transition *before* M trains on it.
3. The score is normalised by a running estimate of the spread of its discounted return (as
   RND does) and becomes one more reward channel, ``curiosity``: non-episodic (its value flows
   across episode ends), with its own discount and weight, predicted by its own head of the
   vector critic next to the env's channels.
4. C is updated (recurrent PPO on ``sum_c w_c A_c``); then M is trained on the rollout
   (by truncated BPTT, :class:`world_models.recurrent.RecurrentWorldModel`).

Logged: ``curiosity/*``, ``world_model/*``, ``values/<channel>``, and where the env reports
``info["cell"]`` / ``info["tv_on"]`` (NoisyTVRoom): ``explore/coverage`` (share of reachable
cells visited so far), ``explore/tv_fraction`` (share of steps with noise on screen in the
rollout) and a visit heat-map image every ``heatmap_every`` rollouts.
"""

from __future__ import annotations

import numpy as np
import torch
from stable_baselines3.common.logger import Image
from stable_baselines3.common.running_mean_std import RunningMeanStd

from agents.recurrent_pg import Rollout, RecurrentVectorPG
from agents.reward_channels import RewardChannels
from world_models import CURIOSITY_SIGNALS, RecurrentWorldModel, SequenceBatch, make_curiosity


class CuriousCM(RecurrentVectorPG):
    """Recurrent C + recurrent M, C rewarded by a curiosity signal computed from M."""

    agent_id = "curious-c-m"

    def __init__(
        self,
        env,
        curiosity: str = "progress",
        curiosity_weight: float = 1.0,
        curiosity_gamma: float = 0.99,
        model_hidden_size: int = 128,
        model_rnn: str = "gru",
        model_lr: float = 1e-3,
        model_epochs: int = 1,
        progress_tau: float = 0.05,
        heatmap_every: int = 20,
        **kwargs,
    ):
        if curiosity not in CURIOSITY_SIGNALS:
            raise ValueError(f"curiosity must be one of {list(CURIOSITY_SIGNALS)}, got {curiosity!r}")
        if model_rnn not in ("gru", "lstm"):
            raise ValueError(f"model_rnn must be 'gru' or 'lstm', got {model_rnn!r}")
        if not 0.0 <= curiosity_gamma < 1.0:
            raise ValueError(f"curiosity_gamma must be in [0, 1), got {curiosity_gamma}")
        self.curiosity, self.curiosity_weight, self.curiosity_gamma = curiosity, curiosity_weight, curiosity_gamma
        self.model_hidden_size, self.model_rnn, self.model_lr = model_hidden_size, model_rnn, model_lr
        self.model_epochs, self.progress_tau, self.heatmap_every = model_epochs, progress_tau, heatmap_every
        own = dict(curiosity=curiosity, curiosity_weight=curiosity_weight, curiosity_gamma=curiosity_gamma,
                   model_hidden_size=model_hidden_size, model_rnn=model_rnn, model_lr=model_lr,
                   model_epochs=model_epochs, progress_tau=progress_tau, heatmap_every=heatmap_every)
        super().__init__(env, **kwargs)
        self.hyperparams.update(own)

    # ------------------------------------------------------------------ set-up

    def _reward_channels(self) -> RewardChannels:
        env_channels = super()._reward_channels()
        return env_channels.with_channel("curiosity", self.curiosity_weight, self.curiosity_gamma, episodic=False)

    def _setup_model(self) -> None:
        super()._setup_model()
        self.world_model = RecurrentWorldModel(
            self.observation_space, self.action_space, n_reward_channels=self.n_env_channels,
            hidden_size=self.model_hidden_size, rnn=self.model_rnn, lr=self.model_lr, bptt=self.seq_len,
            device=self.device,
        )
        kwargs = {"epochs": self.model_epochs} if self.curiosity in ("adversarial", "progress") else {}
        if self.curiosity == "progress":
            kwargs["tau"] = self.progress_tau
        self.signal = make_curiosity(self.curiosity, self.world_model, self.observation_space, self.action_space,
                                     **kwargs)
        self.curiosity_rms = RunningMeanStd(shape=())
        self._curiosity_return = None
        self.visits: np.ndarray | None = None  # per-cell visit counts where the env reports cells
        self.explore_history: list[dict] = []  # (timesteps, coverage, tv_fraction) per rollout
        self._rollouts = 0

    def _get_torch_save_params(self):
        names, tensors = super()._get_torch_save_params()
        return names + ["world_model", "world_model.optimizer"], tensors

    def extra_checkpoint_state(self) -> dict:
        return {
            "signal": self.signal.state_dict(),
            "curiosity_rms": {"mean": float(self.curiosity_rms.mean), "var": float(self.curiosity_rms.var),
                              "count": float(self.curiosity_rms.count)},
            "visits": self.visits,
        }

    def load_extra_checkpoint_state(self, state: dict) -> None:
        self.signal.load_state_dict(state["signal"])
        for key, value in state["curiosity_rms"].items():
            setattr(self.curiosity_rms, key, np.float64(value))
        self.visits = state.get("visits")

    # ------------------------------------------------------------------ 2. curiosity, before M trains

    def _batch(self, rollout: Rollout) -> SequenceBatch:
        return SequenceBatch.from_numpy(
            obs=np.stack(rollout.raw_obs), actions=rollout.actions.numpy(), rewards=rollout.rewards,
            next_obs=np.stack(rollout.next_obs), terminations=rollout.terminated,
            episode_starts=rollout.episode_starts, device=self.device,
        )

    def _extra_rewards(self, rollout: Rollout) -> np.ndarray:
        self._pending_batch = self._batch(rollout)
        raw = self.signal.rewards(self._pending_batch)  # [T, B], before M trains on it
        self._raw_curiosity = raw
        # Normalise by the running spread of the discounted intrinsic return (non-episodic).
        T, B = raw.shape
        if self._curiosity_return is None or len(self._curiosity_return) != B:
            self._curiosity_return = np.zeros(B)
        returns = np.empty_like(raw, dtype=np.float64)
        for t in range(T):
            self._curiosity_return = self._curiosity_return * self.curiosity_gamma + raw[t]
            returns[t] = self._curiosity_return
        self.curiosity_rms.update(returns.reshape(-1))
        scaled = raw / np.sqrt(self.curiosity_rms.var + 1e-8)
        return scaled.astype(np.float32)[..., None]

    # ------------------------------------------------------------------ 4. train M, log

    def _after_update(self, rollout: Rollout) -> dict[str, float]:
        batch = self._pending_batch
        logs = dict(self.signal.update(batch))
        if not self.signal.trains_world_model:  # rnd / none: M still learns (C + M is the agent)
            logs.update(self.world_model.train_on_sequences(batch, self._model_state(batch), epochs=self.model_epochs))
        logs["curiosity/raw_mean"] = float(self._raw_curiosity.mean())
        logs.update(self._explore_logs(rollout))
        self._rollouts += 1
        return logs

    def _model_state(self, batch: SequenceBatch):
        state = getattr(self, "_carried_model_state", None)
        if state is None or self.world_model.hidden_of(state).shape[0] != batch.B:
            state = self.world_model.initial_state(batch.B)
        with torch.no_grad():
            _, final = self.world_model.forward_sequence(batch.obs, batch.actions, batch.episode_starts, state)
        self._carried_model_state = final
        return state

    def _explore_logs(self, rollout: Rollout) -> dict[str, float]:
        first = rollout.infos[0][0]
        if "cell" not in first:
            return {}
        if self.visits is None:
            shape = tuple(self.env.get_attr("grid_shape", indices=[0])[0])
            self.visits = np.zeros(shape, dtype=np.int64)
        if getattr(self, "_reachable", None) is None:
            self._reachable = int(self.env.get_attr("reachable_cells", indices=[0])[0])
        tv_on = 0
        for infos in rollout.infos:
            for info in infos:
                x, y = info["cell"]
                self.visits[y, x] += 1
                tv_on += bool(info.get("tv_on", False))
        n = rollout.dones.size
        coverage = float((self.visits > 0).sum()) / self._reachable
        tv_fraction = tv_on / n
        self.explore_history.append({"timesteps": self.num_timesteps, "coverage": coverage,
                                     "tv_fraction": tv_fraction})
        logs = {"explore/coverage": coverage, "explore/tv_fraction": tv_fraction}
        if self.heatmap_every and self._rollouts % self.heatmap_every == 0:
            self.logger.record("explore/visits", Image(self.heatmap(), "HWC"), exclude=("stdout", "log", "json", "csv"))
        return logs

    def heatmap(self) -> np.ndarray:
        """The visit counts as an RGB image (log scale, unvisited cells black)."""
        import matplotlib

        counts = np.log1p(self.visits.astype(np.float64))
        norm = counts / max(counts.max(), 1e-9)
        rgb = (matplotlib.colormaps["inferno"](norm)[..., :3] * 255).astype(np.uint8)
        rgb[self.visits == 0] = 0
        return np.kron(rgb, np.ones((8, 8, 1), dtype=np.uint8))
