"""Random network distillation (Burda et al. 2018, "Exploration by random network distillation"),
the curiosity baseline users would pick instead of seed Sec. 5/6's signals (``--curiosity rnd``).

A fixed, randomly initialised target network f maps an observation to features; a predictor
network g is trained to match it. r_int = ||g(o') - f(o')||^2 / k on the next observation o'
of each transition: high for observations unlike those seen so far, falling as they become
familiar. Like the 1990 error reward (and unlike learning progress) it keeps paying for a TV of
fresh noise: every noise frame is new.

As in the paper: observations are whitened by a running mean/std (SB3's ``RunningMeanStd``,
initialised from the first batch) and clipped to [-5, 5] before entering both networks; the
predictor is trained on a random ``update_proportion`` of each batch. Normalising r_int by the
running spread of its return is the agent's job. Networks are MLPs on the flat observation
(the paper used conv nets on frames).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.running_mean_std import RunningMeanStd
from torch import nn

from world_models.curiosity import CuriositySignal
from world_models.recurrent import SequenceBatch, check_space, flat_dim, flatten_tensor


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        linear = nn.Linear(a, b)
        nn.init.orthogonal_(linear.weight, gain=np.sqrt(2) if i < len(sizes) - 2 else 1.0)
        nn.init.zeros_(linear.bias)
        layers.append(linear)
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU())
    return nn.Sequential(*layers)


class RNDCuriosity(CuriositySignal):
    """``rnd``: r_int = error of a trained predictor of a fixed random network's features.

    :param observation_space: Box, Discrete or Dict of those.
    :param feature_size: size k of the random features.
    :param hidden_size: width of the hidden layers.
    :param lr: Adam learning rate of the predictor.
    :param epochs: passes over each batch in :meth:`update`.
    :param minibatch_size: transitions per Adam step.
    :param update_proportion: fraction of transitions the predictor trains on (paper: 0.25 with
        many envs; 1.0 here by default).
    :param obs_clip: clip of the whitened observations.
    :param device: torch device.
    """

    name = "rnd"
    trains_world_model = False

    def __init__(
        self,
        observation_space: gym.Space,
        feature_size: int = 64,
        hidden_size: int = 128,
        lr: float = 1e-3,
        epochs: int = 1,
        minibatch_size: int = 256,
        update_proportion: float = 1.0,
        obs_clip: float = 5.0,
        device: torch.device | str = "cpu",
    ):
        check_space(observation_space, "observation", allow_dict=True)
        self.observation_space = observation_space
        self.obs_dim = flat_dim(observation_space)
        self.device = torch.device(device)
        self.target = _mlp([self.obs_dim, hidden_size, feature_size]).to(self.device).requires_grad_(False)
        self.predictor = _mlp([self.obs_dim, hidden_size, hidden_size, feature_size]).to(self.device)
        self.optimizer = torch.optim.Adam(self.predictor.parameters(), lr=lr)
        self.obs_rms = RunningMeanStd(shape=(self.obs_dim,))
        self.epochs = epochs
        self.minibatch_size = minibatch_size
        self.update_proportion = update_proportion
        self.obs_clip = obs_clip
        self._last: dict[str, float] = {}

    def _flat_next_obs(self, batch: SequenceBatch) -> torch.Tensor:
        next_obs = batch.next_obs
        if isinstance(next_obs, dict):
            next_obs = {k: torch.as_tensor(v, device=self.device) for k, v in next_obs.items()}
        else:
            next_obs = torch.as_tensor(next_obs, device=self.device)
        return flatten_tensor(self.observation_space, next_obs)  # [T, B, D]

    def _whiten(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.as_tensor(self.obs_rms.mean, dtype=torch.float32, device=self.device)
        std = torch.as_tensor(np.sqrt(self.obs_rms.var + 1e-8), dtype=torch.float32, device=self.device)
        return ((x - mean) / std).clamp(-self.obs_clip, self.obs_clip)

    def _error(self, x: torch.Tensor) -> torch.Tensor:
        x = self._whiten(x)
        return (self.predictor(x) - self.target(x)).pow(2).mean(-1)

    def rewards(self, batch: SequenceBatch) -> np.ndarray:
        x = self._flat_next_obs(batch)
        if self.obs_rms.count < 1:  # initialise the normalisation from the first batch
            self.obs_rms.update(x.reshape(-1, self.obs_dim).cpu().numpy())
        with torch.no_grad():
            r = self._error(x).cpu().numpy().astype(np.float32)
        self._last = {"curiosity/reward_mean": float(r.mean()), "curiosity/reward_max": float(r.max())}
        return r

    def update(self, batch: SequenceBatch) -> dict[str, float]:
        x = self._flat_next_obs(batch).reshape(-1, self.obs_dim)
        self.obs_rms.update(x.cpu().numpy())
        losses = []
        for _ in range(self.epochs):
            order = torch.randperm(x.shape[0], device=self.device)
            for start in range(0, x.shape[0], self.minibatch_size):
                idx = order[start : start + self.minibatch_size]
                err = self._error(x[idx])
                keep = (torch.rand(len(idx), device=self.device) < self.update_proportion).float()
                loss = (err * keep).sum() / keep.sum().clamp_min(1.0)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                losses.append(loss.item())
        return {"curiosity/rnd_loss": float(np.mean(losses)), **self._last}

    # checkpoints: the agent saves these tensors (safetensors) and the RMS as JSON
    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors to checkpoint (networks and observation statistics)."""
        state = {f"target.{k}": v for k, v in self.target.state_dict().items()}
        state |= {f"predictor.{k}": v for k, v in self.predictor.state_dict().items()}
        state["obs_rms.mean"] = torch.as_tensor(self.obs_rms.mean, dtype=torch.float64)
        state["obs_rms.var"] = torch.as_tensor(self.obs_rms.var, dtype=torch.float64)
        state["obs_rms.count"] = torch.tensor(float(self.obs_rms.count), dtype=torch.float64)
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.target.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("target.")})
        self.predictor.load_state_dict({k[10:]: v for k, v in state.items() if k.startswith("predictor.")})
        self.obs_rms.mean = state["obs_rms.mean"].cpu().numpy()
        self.obs_rms.var = state["obs_rms.var"].cpu().numpy()
        self.obs_rms.count = float(state["obs_rms.count"])
