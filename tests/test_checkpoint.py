"""Checkpoints: atomic writes, no unpickling, clear errors for corrupt and foreign files."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from stable_baselines3.common.env_util import make_vec_env

from agents import checkpoint
from agents.errors import CheckpointError
from agents.persistence import load_agent, save_agent
from agents.registry import get_agent
from conftest import REPO


def build(agent_id, env_id, **overrides):
    spec = get_agent(agent_id)
    hp = {name: p.default for name, p in spec.schema().items()}
    hp.update(overrides)
    env = make_vec_env(env_id, n_envs=1, seed=0)
    return spec.build(env, 0, None, hp), hp


def test_round_trip_restores_weights_optimiser_counters_and_buffer(tmp_path):
    model, hp = build("sac", "Pendulum-v1", learning_starts=20, policy_kwargs={"net_arch": [16, 16]})
    model.learn(60)
    path = save_agent(model, tmp_path / "c.safetensors", "sac", hp, "Pendulum-v1", {}, 0, include_buffer=True)
    loaded = load_agent(path)
    for (name, a), b in zip(model.policy.state_dict().items(), loaded.policy.state_dict().values()):
        assert torch.equal(a, b), name
    assert loaded.num_timesteps == 60 and loaded.replay_buffer.pos == 60
    assert np.array_equal(loaded.replay_buffer.observations[:60], model.replay_buffer.observations[:60])
    assert torch.equal(loaded.log_ent_coef, model.log_ent_coef)
    opt_a = model.actor.optimizer.state_dict()["state"]
    opt_b = loaded.actor.optimizer.state_dict()["state"]
    assert all(torch.equal(opt_a[k]["exp_avg"], opt_b[k]["exp_avg"]) for k in opt_a)
    obs = np.zeros((1, 3), dtype=np.float32)
    assert np.allclose(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])


def test_her_buffer_with_its_info_dicts_round_trips(tmp_path):
    """SB3's HerReplayBuffer keeps every transition's info dicts in an object array: stored as plain data."""
    import envs  # noqa: F401

    kwargs = {"max_steps": 20}
    spec = get_agent("sac")
    hp = {name: p.default for name, p in spec.schema().items()}
    hp.update(learning_starts=30, replay_buffer_class="HerReplayBuffer", policy_kwargs={"net_arch": [16, 16]})
    env = make_vec_env("mirabilis/StartGoalNav-v0", n_envs=1, seed=0, env_kwargs=kwargs)
    model = spec.build(env, 0, None, hp)
    model.learn(70)
    path = save_agent(model, tmp_path / "c.safetensors", "sac", hp, "mirabilis/StartGoalNav-v0", kwargs, 0,
                      include_buffer=True)
    loaded = load_agent(path)
    assert loaded.replay_buffer.infos.dtype == object and loaded.replay_buffer.pos == 70
    assert np.array_equal(loaded.replay_buffer.ep_length[:70], model.replay_buffer.ep_length[:70])
    loaded.learn(20, reset_num_timesteps=False)  # relabelling samples the restored episodes
    # with copy_info_dict=True the dicts hold data: arrays, numbers, nested dicts come back as they were
    infos = np.empty((2, 1), dtype=object)
    infos[0, 0] = {"vector_reward": np.array([1.0, -0.5], np.float32), "is_success": True, "step": np.int64(3)}
    infos[1, 0] = {"terminal_observation": {"achieved_goal": np.zeros(2)}, "TimeLimit.truncated": False}
    tensors = {}
    back = checkpoint.decode(checkpoint.encode(infos, tensors, "infos"), tensors)
    assert back.shape == (2, 1) and back[0, 0]["vector_reward"].dtype == np.float32
    assert np.array_equal(back[0, 0]["vector_reward"], infos[0, 0]["vector_reward"]) and back[0, 0]["step"] == 3
    assert np.array_equal(back[1, 0]["terminal_observation"]["achieved_goal"], np.zeros(2))
    assert back[1, 0]["TimeLimit.truncated"] is False


def test_a_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    checkpoint.write(path, {"agent": "x"}, {"w": torch.ones(3)})

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", crash)
    with pytest.raises(OSError):
        checkpoint.write(path, {"agent": "x"}, {"w": torch.zeros(3)})
    meta, state = checkpoint.read(path)
    assert torch.equal(state["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"], "no temporary file left behind"


def test_a_process_killed_mid_save_leaves_the_previous_checkpoint_intact(tmp_path):
    path = tmp_path / "c.safetensors"
    checkpoint.write(path, {"agent": "x"}, {"w": torch.ones(1000)})
    script = f"""
import os, torch
from agents import checkpoint
real = checkpoint.save_file
def dying(tensors, filename, metadata=None):
    real(tensors, filename, metadata=metadata)
    with open(filename, "r+b") as fh:
        fh.truncate(100)
    os._exit(9)  # killed after writing part of the temporary file
checkpoint.save_file = dying
checkpoint.write({str(path)!r}, {{"agent": "x"}}, {{"w": torch.zeros(1000)}})
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True)
    assert proc.returncode == 9
    _, state = checkpoint.read(path)
    assert torch.equal(state["w"], torch.ones(1000))


def test_truncated_checkpoint_gives_one_clear_error(tmp_path):
    model, hp = build("ppo", "CartPole-v1", n_steps=64)
    path = save_agent(model, tmp_path / "c.safetensors", "ppo", hp, "CartPole-v1")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_agent(path)


def test_garbage_and_foreign_files_are_refused(tmp_path):
    garbage = tmp_path / "g.safetensors"
    garbage.write_bytes(os.urandom(256))
    with pytest.raises(CheckpointError):
        load_agent(garbage)
    foreign = tmp_path / "f.safetensors"
    save_file({"w": torch.ones(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a mirabilis checkpoint"):
        load_agent(foreign)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_agent(tmp_path / "missing.safetensors")


def test_checkpoint_of_another_agent_or_env_is_refused(tmp_path):
    model, hp = build("dqn", "CartPole-v1")
    path = save_agent(model, tmp_path / "dqn.safetensors", "dqn", hp, "CartPole-v1")
    with pytest.raises(CheckpointError, match="holds a 'dqn' agent, not 'ppo'"):
        load_agent(path, expected_agent="ppo")
    with pytest.raises(CheckpointError, match="observation_space"):
        load_agent(path, env=make_vec_env("Acrobot-v1", n_envs=1))


def test_loading_never_unpickles(tmp_path, monkeypatch):
    import pickle

    model, hp = build("ppo", "CartPole-v1", n_steps=64)
    path = save_agent(model, tmp_path / "c.safetensors", "ppo", hp, "CartPole-v1")

    def forbidden(*args, **kwargs):
        raise AssertionError("checkpoint loading must not unpickle")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    load_agent(path)
