"""Hyperparameter schemas, typing of --set values, YAML defaults."""

from __future__ import annotations

import pytest

from agents import config as cfg
from agents.errors import UsageError
from agents.registry import AGENTS, get_agent
from agents.runner import build_config


def test_every_agent_has_a_schema_and_its_yaml_defaults_are_valid():
    for agent_id, spec in AGENTS.items():
        schema = spec.schema()
        assert "learning_rate" in schema or agent_id not in ("ppo", "td3")
        for env_id in ("CartPole-v1", "Pendulum-v1", "mirabilis/StartGoalNav-v0"):
            cfg.resolve(schema, agent_id, env_id)  # raises on an invalid repo default


@pytest.mark.parametrize(
    "key, raw, expected",
    [("n_steps", "128", 128), ("learning_rate", "1e-3", 1e-3), ("learning_rate", 3, 3.0),
     ("normalize_advantage", "false", False), ("target_kl", "null", None),
     ("policy_kwargs", {"net_arch": [8]}, {"net_arch": [8]})],
)
def test_values_are_typed_by_the_declared_type(key, raw, expected):
    schema = get_agent("ppo").schema()
    value = cfg.coerce(schema[key], raw)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("key, raw", [("n_steps", "1.5"), ("n_steps", True), ("gamma", "high"),
                                      ("normalize_advantage", "maybe"), ("n_epochs", None)])
def test_wrong_types_are_refused(key, raw):
    with pytest.raises(UsageError, match=key):
        cfg.coerce(get_agent("ppo").schema()[key], raw)


def test_sac_entropy_coefficient_takes_auto_or_a_number():
    schema = get_agent("sac").schema()
    assert cfg.coerce(schema["ent_coef"], "auto") == "auto"
    assert cfg.coerce(schema["ent_coef"], "0.1") == 0.1


def test_resolution_order_defaults_yaml_config_set():
    config = build_config(agent="ppo", env="CartPole-v1", set_args=["n_epochs=3"])
    assert config.hyperparams["n_steps"] == 32  # from agents/hyperparams/ppo.yml, CartPole-v1 section
    assert config.hyperparams["n_epochs"] == 3  # --set wins
    assert config.hyperparams["vf_coef"] == 0.5  # the signature default
    assert config.n_envs == 8  # run-level default from the same YAML
