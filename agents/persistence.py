"""Saving and loading any registered agent through :mod:`agents.checkpoint`.

``save_agent`` records which agent id, env id, env kwargs and resolved hyperparameters built the
model, so ``load_agent(path)`` can rebuild the same networks (from the registry, never from
pickled classes) and then copy the saved tensors into them.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import stable_baselines3
import torch

from agents import checkpoint
from agents.errors import CheckpointError, UsageError


def save_agent(
    model,
    path: str | Path,
    agent_id: str,
    hyperparams: dict[str, Any],
    env_id: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    seed: int | None = None,
    include_buffer: bool = False,
) -> Path:
    """Atomically write ``model`` (built from the registry's ``agent_id``) to ``path``."""
    meta = {
        "agent": agent_id,
        "env": env_id,
        "env_kwargs": env_kwargs or {},
        "seed": seed,
        "hyperparams": hyperparams,
        "observation_space": repr(model.observation_space),
        "action_space": repr(model.action_space),
        "num_timesteps": int(model.num_timesteps),
        "versions": {"stable_baselines3": stable_baselines3.__version__, "torch": torch.__version__,
                     "gymnasium": gym.__version__},
    }
    return checkpoint.write(path, meta, checkpoint.algorithm_state(model, include_buffer=include_buffer))


def read_meta(path: str | Path) -> dict[str, Any]:
    meta, _ = checkpoint.read(path)
    return meta


def load_agent(path: str | Path, env=None, expected_agent: str | None = None, tensorboard_log: str | None = None):
    """Rebuild the agent saved at ``path``; ``env`` defaults to one copy of the saved env.

    Raises :class:`CheckpointError` for a corrupt file, a checkpoint of another agent than
    ``expected_agent``, or an env whose spaces differ from the ones the agent was trained on.
    """
    from agents.registry import AGENTS
    from agents.runner import make_vec_env

    meta, state = checkpoint.read(path)
    agent_id = meta.get("agent")
    if expected_agent is not None and agent_id != expected_agent:
        raise CheckpointError(f"{path} holds a {agent_id!r} agent, not {expected_agent!r}")
    if agent_id not in AGENTS:
        raise CheckpointError(f"{path} holds an agent {agent_id!r} that this version of mirabilis does not know")
    spec = AGENTS[agent_id]
    hyperparams = _coerced(spec, meta.get("hyperparams") or {})
    if env is None:
        if not meta.get("env"):
            raise CheckpointError(f"{path} does not record its env id: pass env= to load it")
        env = make_vec_env(meta["env"], meta.get("env_kwargs") or {}, n_envs=1, seed=meta.get("seed"),
                           wrapper=spec.env_wrapper(hyperparams))
    elif not hasattr(env, "num_envs"):
        from stable_baselines3.common.vec_env import DummyVecEnv

        single = env
        env = DummyVecEnv([lambda: single])
    for name in ("observation_space", "action_space"):
        if repr(getattr(env, name)) != meta.get(name):
            raise CheckpointError(
                f"{path} was trained with {name} {meta.get(name)}, but this env has {getattr(env, name)!r}"
            )
    try:
        with warnings.catch_warnings():  # e.g. PPO's batch-size advice when rebuilt on fewer envs
            warnings.simplefilter("ignore")
            model = spec.build(env, meta.get("seed"), tensorboard_log, hyperparams)
    except UsageError as exc:
        raise CheckpointError(f"{path}: cannot rebuild the agent: {exc}") from None
    checkpoint.restore_algorithm_state(model, state, str(path))
    return model


def _coerced(spec, hyperparams: dict[str, Any]) -> dict[str, Any]:
    from agents.config import apply_overrides

    schema = spec.schema()
    base = {name: p.default for name, p in schema.items()}
    return apply_overrides(schema, base, hyperparams, "the checkpoint")
