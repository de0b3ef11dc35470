"""The registry of agent ids: one place that maps ``--agent ID`` to a buildable algorithm.

Baselines (stable-baselines3 / sb3-contrib, unchanged) and mirabilis's own agents sit behind the
same interface, :class:`AgentSpec`:

* ``schema()`` — declared hyperparameters (name, type, default),
* ``check_spaces(obs_space, action_space)`` — refuse unsupported spaces with a clear message,
* ``build(vec_env, seed, tensorboard_log, hyperparams)`` — an SB3-style algorithm
  (``learn``, ``predict``, SB3 callbacks and logger).

A mirabilis agent registers with :func:`register_agent` (its class is imported lazily, so
``--help`` stays fast); its constructor is ``Agent(env, seed=..., tensorboard_log=..., **hp)``.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from agents.baselines import BASELINES, SB3Baseline
from agents.config import HyperParam, schema_from_signature
from agents.errors import UsageError, unknown


@dataclasses.dataclass(frozen=True)
class MirabilisAgent:
    """A mirabilis agent class, given as ``"module:ClassName"`` and imported on first use."""

    entry_point: str

    def agent_class(self) -> type:
        module, _, name = self.entry_point.partition(":")
        return getattr(importlib.import_module(module), name)

    def schema(self) -> dict[str, HyperParam]:
        return schema_from_signature(self.agent_class())

    def check_spaces(self, agent_id: str, observation_space, action_space) -> None:
        check = getattr(self.agent_class(), "check_spaces", None)
        if check is not None:
            try:
                check(observation_space, action_space)
            except ValueError as exc:
                raise UsageError(f"agent {agent_id!r}: {exc}") from None

    def env_wrapper(self, hyperparams: dict[str, Any]):
        wrapper = getattr(self.agent_class(), "env_wrapper", None)
        return wrapper(hyperparams) if wrapper is not None else None

    def build(self, env, seed: int | None, tensorboard_log: str | None, hyperparams: dict[str, Any]):
        try:
            return self.agent_class()(env, seed=seed, tensorboard_log=tensorboard_log, **hyperparams)
        except ValueError as exc:
            raise UsageError(f"{self.entry_point.split(':')[1]} rejected the configuration: {exc}") from None


@dataclasses.dataclass(frozen=True)
class AgentSpec:
    id: str
    description: str
    impl: SB3Baseline | MirabilisAgent
    family: str  # "baseline" or "mirabilis"

    def schema(self) -> dict[str, HyperParam]:
        return self.impl.schema()

    def check_spaces(self, observation_space, action_space) -> None:
        self.impl.check_spaces(self.id, observation_space, action_space)

    def build(self, env, seed, tensorboard_log, hyperparams):
        self.check_spaces(env.observation_space, env.action_space)
        return self.impl.build(env, seed, tensorboard_log, hyperparams)

    def agent_class(self) -> type:
        return self.impl.agent_class()

    def env_wrapper(self, hyperparams: dict[str, Any]):
        """A gymnasium wrapper class this agent needs around each env (or ``None``)."""
        return self.impl.env_wrapper(hyperparams) if hasattr(self.impl, "env_wrapper") else None


AGENTS: dict[str, AgentSpec] = {
    agent_id: AgentSpec(agent_id, description, impl, "baseline") for agent_id, (impl, description) in BASELINES.items()
}


def register_agent(agent_id: str, entry_point: str, description: str) -> None:
    """Add a mirabilis agent (``entry_point`` = ``"module:ClassName"``) to the registry."""
    AGENTS[agent_id] = AgentSpec(agent_id, description, MirabilisAgent(entry_point), "mirabilis")


def get_agent(agent_id: str) -> AgentSpec:
    """The spec of ``agent_id`` or a ``UsageError`` naming the closest valid id."""
    if agent_id not in AGENTS:
        raise unknown("agent", agent_id, AGENTS, "see `python scripts/train.py --help` for the list")
    return AGENTS[agent_id]


# The mirabilis agents. Each lives in its own module (one module per idea).
MIRABILIS_AGENTS: dict[str, tuple[str, str]] = {
    "curious-c-m": ("agents.curious_cm:CuriousCM",
                    "recurrent C + recurrent world model M; C paid for M's errors (1990) or learning progress (1991)"),
    "lstm-rl": ("agents.lstm_rl:LSTMRL",
                "LSTM controller by recurrent policy gradient with a vector critic; sees its previous action and reward"),
    "dpg": ("agents.dpg:DPG", "deterministic policy gradients through a vector (per reward channel) critic, TD3's fixes (Sec. 13, 14)"),
    "subgoal-c-m": ("agents.subgoal_cm:SubgoalCM", "learned evaluator E(start, goal) of costs; subgoal generator trained through frozen copies of E; DPG executor C reaches subgoal after subgoal (Sec. 10, 12)"),
    "planner-c-m": ("agents.planner_cm:PlannerCM", "recurrent C trained by backpropagation through a frozen recurrent world model M plus a vector critic (Sec. 9, 11, 12, 14)"),
}

for _id, (_entry, _description) in MIRABILIS_AGENTS.items():
    register_agent(_id, _entry, _description)
