"""The base class of mirabilis's own agents: SB3's ``BaseAlgorithm`` with safe checkpoints.

Subclassing stable-baselines3's ``BaseAlgorithm`` gives every agent SB3's public API and
machinery unchanged — ``learn(total_timesteps, callback, progress_bar, reset_num_timesteps)``,
VecEnvs, the logger, callbacks, ``evaluate_policy``, ``VecVideoRecorder``. What changes:

* ``save`` / ``load`` go through :mod:`agents.checkpoint` (safetensors + JSON, atomic, never
  unpickled) instead of SB3's pickle-based zip;
* constructors take ``(env, seed=..., tensorboard_log=..., **hyperparams)`` with typed,
  defaulted hyperparameters, which the registry reads as the agent's schema;
* unsupported spaces are refused at construction by :meth:`check_spaces`.

A subclass sets ``agent_id``, ``supported_observation_spaces`` / ``supported_action_spaces``,
implements ``_setup_model``, ``learn``, ``predict`` and names its torch state in
``_get_torch_save_params`` (and non-tensor state in ``extra_checkpoint_state``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm


class MirabilisAlgorithm(BaseAlgorithm):
    agent_id: str = ""
    supported_observation_spaces: tuple[type[spaces.Space], ...] = (spaces.Box, spaces.Discrete)
    supported_action_spaces: tuple[type[spaces.Space], ...] = (spaces.Box, spaces.Discrete)

    @classmethod
    def check_spaces(cls, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        """Raise ``ValueError`` naming a space this agent cannot handle."""
        if not isinstance(observation_space, cls.supported_observation_spaces):
            allowed = ", ".join(c.__name__ for c in cls.supported_observation_spaces)
            raise ValueError(f"unsupported observation space {observation_space} (supported: {allowed})")
        if not isinstance(action_space, cls.supported_action_spaces):
            allowed = ", ".join(c.__name__ for c in cls.supported_action_spaces)
            raise ValueError(f"unsupported action space {action_space} (supported: {allowed})")

    def _record_hyperparams(self, frame_locals: dict[str, Any]) -> None:
        """Remember the constructor's hyperparameters (for checkpoints); call first in ``__init__``."""
        from agents.config import schema_from_signature

        self.hyperparams = {n: frame_locals[n] for n in schema_from_signature(type(self)) if n in frame_locals}

    # ------------------------------------------------------------------ checkpoints

    def save(self, path: str | Path, exclude=None, include=None) -> None:  # noqa: D401 (SB3 signature)
        """Write a safetensors checkpoint (atomically) that :meth:`load` can read without unpickling."""
        from agents.persistence import save_agent

        env_id = None
        try:
            spec = self.get_env().get_attr("spec", indices=[0])[0] if self.get_env() is not None else None
            env_id = spec.id if spec is not None else None
        except AttributeError:
            pass
        save_agent(self, path, self.agent_id, self.hyperparams, env_id, seed=self.seed)

    @classmethod
    def load(cls, path: str | Path, env=None, **kwargs):  # noqa: D401 (SB3 signature)
        """Rebuild the agent saved at ``path`` (``env`` defaults to the saved env id)."""
        from agents.persistence import load_agent

        return load_agent(path, env=env, expected_agent=cls.agent_id)

    def extra_checkpoint_state(self) -> dict[str, Any]:
        """Non-network state (running statistics, ...) to store as JSON/tensors."""
        return {}

    def load_extra_checkpoint_state(self, state: dict[str, Any]) -> None:
        pass
