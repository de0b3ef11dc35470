"""Adapters that run stable-baselines3 / sb3-contrib algorithms, unchanged, behind the registry.

The baselines every mirabilis table is compared against (PPO, RecurrentPPO, TD3, SAC, DDPG,
DQN). The adapter only translates YAML-friendly hyperparameters into SB3 objects:

* ``policy: auto`` picks ``MlpPolicy`` / ``MultiInputPolicy`` (Dict observations) or the LSTM
  variants for RecurrentPPO;
* ``policy_kwargs.activation_fn`` may be a name (``tanh``, ``relu``, ...);
* ``replay_buffer_class: HerReplayBuffer`` (goal-conditioned Dict envs) and friends by name;
* ``action_noise_std`` builds SB3's ``NormalActionNoise`` for the off-policy continuous agents.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch.nn as nn
from gymnasium import spaces

from agents.config import HyperParam, schema_from_signature
from agents.errors import UsageError

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU,
               "silu": nn.SiLU}


def _sb3_class(name: str) -> type:
    import sb3_contrib
    import stable_baselines3 as sb3

    return getattr(sb3_contrib if name == "RecurrentPPO" else sb3, name)


def _buffer_classes() -> dict[str, type]:
    from stable_baselines3 import HerReplayBuffer
    from stable_baselines3.common.buffers import DictReplayBuffer, DictRolloutBuffer, ReplayBuffer, RolloutBuffer

    return {c.__name__: c for c in (HerReplayBuffer, ReplayBuffer, DictReplayBuffer, RolloutBuffer, DictRolloutBuffer)}


@dataclasses.dataclass(frozen=True)
class SB3Baseline:
    """One SB3 algorithm as a registry entry."""

    class_name: str
    action_spaces: tuple[type, ...]
    off_policy: bool = False
    recurrent: bool = False
    continuous_noise: bool = False  # takes an action_noise (TD3, DDPG, SAC)

    def agent_class(self) -> type:
        return _sb3_class(self.class_name)

    def schema(self) -> dict[str, HyperParam]:
        schema = schema_from_signature(self.agent_class(), skip={"action_noise"})
        schema["policy"] = HyperParam("policy", "str", "auto")
        for key in ("replay_buffer_class", "rollout_buffer_class"):
            if key in schema:
                schema[key] = HyperParam(key, "str", None, nullable=True, choices=tuple(_buffer_classes()))
        if self.continuous_noise:
            schema["action_noise_std"] = HyperParam("action_noise_std", "float", 0.0)
        return schema

    def check_spaces(self, agent_id: str, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        if not isinstance(action_space, self.action_spaces):
            allowed = " or ".join(c.__name__ for c in self.action_spaces)
            raise UsageError(
                f"agent {agent_id!r} needs a {allowed} action space; this env has {action_space}"
            )
        if not isinstance(observation_space, (spaces.Box, spaces.Discrete, spaces.Dict, spaces.MultiBinary,
                                              spaces.MultiDiscrete)):
            raise UsageError(f"agent {agent_id!r} does not support the observation space {observation_space}")

    def build(self, env, seed: int | None, tensorboard_log: str | None, hyperparams: dict[str, Any]):
        import numpy as np
        from stable_baselines3.common.noise import NormalActionNoise

        kwargs = dict(hyperparams)
        policy = kwargs.pop("policy")
        if policy == "auto":
            prefix = "MultiInput" if isinstance(env.observation_space, spaces.Dict) else "Mlp"
            policy = prefix + ("LstmPolicy" if self.recurrent else "Policy")
        policy_kwargs = dict(kwargs.pop("policy_kwargs") or {})
        act = policy_kwargs.get("activation_fn")
        if isinstance(act, str):
            if act not in ACTIVATIONS:
                raise UsageError(f"policy_kwargs.activation_fn must be one of {sorted(ACTIVATIONS)}, got {act!r}")
            policy_kwargs["activation_fn"] = ACTIVATIONS[act]
        for key in ("replay_buffer_class", "rollout_buffer_class"):
            if kwargs.get(key) is not None:
                kwargs[key] = _buffer_classes()[kwargs[key]]
        if isinstance(kwargs.get("train_freq"), list):
            kwargs["train_freq"] = tuple(kwargs["train_freq"])
        noise_std = kwargs.pop("action_noise_std", 0.0)
        if noise_std:
            n = env.action_space.shape[-1]
            kwargs["action_noise"] = NormalActionNoise(np.zeros(n), noise_std * np.ones(n))
        try:
            return self.agent_class()(
                policy, env, seed=seed, tensorboard_log=tensorboard_log, verbose=0, device="cpu",
                policy_kwargs=policy_kwargs or None, **kwargs,
            )
        except (ValueError, AssertionError, TypeError) as exc:
            # SB3 validates its arguments with asserts/ValueErrors: surface them as one line.
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UsageError(f"{self.class_name} rejected the configuration: {message}") from None


BASELINES: dict[str, tuple[SB3Baseline, str]] = {
    "ppo": (SB3Baseline("PPO", (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)),
            "stable-baselines3 PPO (feed-forward), the default on-policy baseline"),
    "recurrent-ppo": (SB3Baseline("RecurrentPPO", (spaces.Box, spaces.Discrete, spaces.MultiDiscrete,
                                                   spaces.MultiBinary), recurrent=True),
                      "sb3-contrib RecurrentPPO (LSTM policy), the baseline for partial observability"),
    "td3": (SB3Baseline("TD3", (spaces.Box,), off_policy=True, continuous_noise=True),
            "stable-baselines3 TD3 (continuous actions; HER via replay_buffer_class)"),
    "sac": (SB3Baseline("SAC", (spaces.Box,), off_policy=True, continuous_noise=True),
            "stable-baselines3 SAC (continuous actions; HER via replay_buffer_class)"),
    "ddpg": (SB3Baseline("DDPG", (spaces.Box,), off_policy=True, continuous_noise=True),
             "stable-baselines3 DDPG (continuous actions)"),
    "dqn": (SB3Baseline("DQN", (spaces.Discrete,), off_policy=True),
            "stable-baselines3 DQN (discrete actions)"),
}
