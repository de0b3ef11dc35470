"""Reward vectors as the agents see them (seed Sec. 13: many reward and pain signals, not one).

An env that follows the mirabilis/MO-Gymnasium convention reports ``info["vector_reward"]``
and names its channels in ``env.unwrapped.reward_names`` with weights ``env.unwrapped.weights``.
Any other env gives a 1-channel vector: its scalar reward, channel ``"reward"``, weight 1.
Agents may append channels of their own (curiosity), each with its own weight and discount.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RewardChannels:
    """Names, scalarisation weights, discounts and episodic flags of a reward vector."""

    names: list[str]
    weights: np.ndarray
    gammas: np.ndarray
    episodic: np.ndarray = field(default=None)  # bool per channel; non-episodic ones bootstrap across resets

    def __post_init__(self):
        n = len(self.names)
        self.weights = np.asarray(self.weights, dtype=np.float32).reshape(n)
        self.gammas = np.asarray(self.gammas, dtype=np.float32).reshape(n)
        self.episodic = np.ones(n, dtype=bool) if self.episodic is None else np.asarray(self.episodic, bool).reshape(n)

    def __len__(self) -> int:
        return len(self.names)

    def with_channel(self, name: str, weight: float, gamma: float, episodic: bool) -> RewardChannels:
        return RewardChannels(self.names + [name], np.append(self.weights, weight), np.append(self.gammas, gamma),
                              np.append(self.episodic, episodic))

    def to_dict(self) -> dict:
        return {"names": list(self.names), "weights": self.weights.tolist(), "gammas": self.gammas.tolist(),
                "episodic": self.episodic.tolist()}


def env_reward_channels(vec_env) -> tuple[list[str], np.ndarray]:
    """(channel names, the env's own weights) of a VecEnv's reward vector; 1 channel if none."""
    try:
        names = vec_env.get_attr("reward_names", indices=[0])[0]
        weights = vec_env.get_attr("weights", indices=[0])[0]
    except AttributeError:
        return ["reward"], np.ones(1, dtype=np.float32)
    if names is None:
        return ["reward"], np.ones(1, dtype=np.float32)
    return list(names), np.asarray(weights, dtype=np.float32).reshape(len(names))


def vector_rewards(infos: list[dict], rewards: np.ndarray, n_channels: int) -> np.ndarray:
    """``[n_envs, n_channels]`` float32 reward vectors of one VecEnv step."""
    if n_channels == 1 and not (infos and "vector_reward" in infos[0]):
        return np.asarray(rewards, dtype=np.float32).reshape(-1, 1)
    return np.stack([np.asarray(info["vector_reward"], dtype=np.float32) for info in infos])


def resolve_weights(names: list[str], env_weights: np.ndarray, override: list[float] | dict | None) -> np.ndarray:
    """The env's weights, or a hyperparameter override given as a list or ``{channel: weight}``."""
    if override is None:
        return np.asarray(env_weights, dtype=np.float32)
    if isinstance(override, dict):
        out = np.asarray(env_weights, dtype=np.float32).copy()
        for key, value in override.items():
            if key not in names:
                raise ValueError(f"reward_weights: unknown channel {key!r}; channels are {names}")
            out[names.index(key)] = float(value)
        return out
    arr = np.asarray(override, dtype=np.float32).reshape(-1)
    if arr.shape != (len(names),):
        raise ValueError(f"reward_weights needs {len(names)} values (channels {names}), got {list(override)}")
    return arr

