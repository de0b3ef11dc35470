"""The recurrent world model M (seed Sec. 5, 6, 11): learning, resets, imagination, spaces."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch import nn

from world_models import RecurrentWorldModel, SequenceBatch, transition_targets

torch.set_num_threads(1)


# --------------------------------------------------------------------------- tasks


class LinearBoxTask:
    """Deterministic Box dynamics: next = clip(A obs + B action); rewards = (-|next|^2, next_0);
    terminates when next_0 > 0.8. Markov: M needs no memory here."""

    def __init__(self, seed: int = 0, n_envs: int = 16):
        self.rng = np.random.default_rng(seed)
        angle = 0.3
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        self.A = 0.9 * np.kron(np.eye(2), rot)
        self.B = 0.3 * self.rng.normal(size=(2, 4))
        self.n_envs = n_envs
        self.obs_space = spaces.Box(-1, 1, (4,), np.float32)
        self.act_space = spaces.Box(-1, 1, (2,), np.float32)

    def batch(self, T: int = 32) -> SequenceBatch:
        B = self.n_envs
        o = self.rng.uniform(-1, 1, (B, 4))
        obs, next_obs, acts = np.zeros((T, B, 4)), np.zeros((T, B, 4)), self.rng.uniform(-1, 1, (T, B, 2))
        rewards, terms, starts = np.zeros((T, B, 2)), np.zeros((T, B)), np.zeros((T, B))
        starts[0] = 1
        for t in range(T):
            obs[t] = o
            n = np.clip(o @ self.A.T + acts[t] @ self.B, -1, 1)
            next_obs[t] = n
            rewards[t] = np.stack([-(n**2).sum(-1), n[:, 0]], -1)
            terms[t] = n[:, 0] > 0.8
            o = np.where(terms[t][:, None] > 0, self.rng.uniform(-1, 1, (B, 4)), n)
            if t + 1 < T:
                starts[t + 1] = terms[t]
        return SequenceBatch.from_numpy(obs, acts, rewards, next_obs, terms, starts)


class MemoryDiscreteTask:
    """Discrete obs that need memory: o_1 = o_0, then o_{t+1} = (o_{t-1} + a_t) mod n.

    Without remembering o_{t-1} (no longer visible) the next obs is unpredictable: a model
    without memory is stuck at cross-entropy ~log(n). Episodes of 8 steps, reset mid-batch.
    """

    def __init__(self, seed: int = 0, n: int = 5, n_actions: int = 3, n_envs: int = 16, episode_length: int = 8):
        self.rng = np.random.default_rng(seed)
        self.n, self.n_actions, self.n_envs, self.episode_length = n, n_actions, n_envs, episode_length
        self.obs_space, self.act_space = spaces.Discrete(n), spaces.Discrete(n_actions)

    def batch(self, T: int = 32) -> SequenceBatch:
        B = self.n_envs
        obs, next_obs = np.zeros((T, B), np.int64), np.zeros((T, B), np.int64)
        acts = self.rng.integers(0, self.n_actions, (T, B))
        starts, terms, rewards = np.zeros((T, B)), np.zeros((T, B)), np.zeros((T, B))
        for b in range(B):
            age = self.rng.integers(0, self.episode_length)  # envs out of phase
            prev, cur = None, self.rng.integers(0, self.n)
            for t in range(T):
                if age == self.episode_length:
                    age, prev, cur = 0, None, self.rng.integers(0, self.n)
                starts[t, b] = age == 0 or t == 0
                new = cur if prev is None else (prev + acts[t, b]) % self.n
                obs[t, b], next_obs[t, b] = cur, new
                rewards[t, b] = float(new == 0)
                terms[t, b] = age == self.episode_length - 1
                prev, cur, age = cur, new, age + 1
        return SequenceBatch.from_numpy(obs, acts, rewards, next_obs, terms, starts)


def train(model: RecurrentWorldModel, task, n_updates: int) -> list[dict[str, float]]:
    return [model.train_on_sequences(task.batch()) for _ in range(n_updates)]


# --------------------------------------------------------------------------- learning


def test_learns_deterministic_box_task():
    torch.manual_seed(0)
    task = LinearBoxTask()
    model = RecurrentWorldModel(task.obs_space, task.act_space, 2, hidden_size=64, embed_size=64, lr=3e-3)
    history = train(model, task, 150)
    first = {k: np.mean([h[k] for h in history[:3]]) for k in history[0]}
    last = {k: np.mean([h[k] for h in history[-10:]]) for k in history[0]}
    print({k: (round(first[k], 4), round(last[k], 5)) for k in first})
    assert set(first) >= {"world_model/loss", "world_model/obs_loss", "world_model/reward_loss", "world_model/termination_loss"}
    assert last["world_model/obs_loss"] < first["world_model/obs_loss"] / 30
    assert last["world_model/reward_loss"] < first["world_model/reward_loss"] / 10
    assert last["world_model/termination_loss"] < first["world_model/termination_loss"] / 20


@pytest.mark.parametrize("rnn", ["gru", "lstm"])
def test_learns_discrete_task_that_needs_memory(rnn):
    torch.manual_seed(0)
    task = MemoryDiscreteTask()
    model = RecurrentWorldModel(task.obs_space, task.act_space, 1, hidden_size=64, embed_size=64, rnn=rnn, lr=3e-3)
    history = train(model, task, 220)
    first = np.mean([h["world_model/obs_loss"] for h in history[:3]])
    last = np.mean([h["world_model/obs_loss"] for h in history[-10:]])
    print(f"{rnn}: obs cross-entropy {first:.3f} -> {last:.4f}")
    assert first > 1.4  # ~log(5)
    assert last < first / 20  # far below the ~log(5) of every memoryless predictor


def test_errors_match_training_loss_and_are_per_transition():
    torch.manual_seed(0)
    task = MemoryDiscreteTask(n_envs=4)
    model = RecurrentWorldModel(task.obs_space, task.act_space, 1, hidden_size=32, embed_size=32)
    batch = task.batch(T=12)
    err = model.errors(batch)
    assert err.shape == (12, 4) and not err.requires_grad
    logs = model.train_on_sequences(batch, bptt=12)  # one chunk: its loss is measured before the step
    assert logs["world_model/obs_loss"] == pytest.approx(err.mean().item(), rel=1e-5)
    with_reward = model.errors(batch, reward_coef=1.0, termination_coef=1.0)
    assert torch.all(with_reward >= model.errors(batch))


# --------------------------------------------------------------------------- recurrence


@pytest.mark.parametrize("rnn", ["gru", "lstm"])
def test_hidden_state_resets_at_episode_starts(rnn):
    torch.manual_seed(0)
    obs_space, act_space = spaces.Box(-1, 1, (3,), np.float32), spaces.Discrete(2)
    model = RecurrentWorldModel(obs_space, act_space, 2, hidden_size=16, embed_size=16, rnn=rnn)
    T, B, k = 10, 3, 4
    obs, acts = torch.rand(T, B, 3) * 2 - 1, torch.randint(0, 2, (T, B))
    starts = torch.zeros(T, B)
    starts[k, 1] = 1  # env 1 starts a new episode at step k
    state0 = model.initial_state(B)
    state0 = tuple(torch.randn_like(s) for s in state0) if rnn == "lstm" else torch.randn_like(state0)
    with torch.no_grad():
        pred, _ = model.forward_sequence(obs, acts, starts, state0)
        fresh, _ = model.forward_sequence(obs[k:, 1:2], acts[k:, 1:2])
        no_reset, _ = model.forward_sequence(obs, acts, torch.zeros(T, B), state0)
    for field in ("next_obs", "reward", "termination_logit", "hidden"):
        after_reset = getattr(pred, field)[k:, 1:2]
        torch.testing.assert_close(after_reset, getattr(fresh, field), rtol=1e-5, atol=1e-6)
    # the reset matters (the carried state did change the outputs), and only for env 1
    assert not torch.allclose(no_reset.next_obs[k:, 1], pred.next_obs[k:, 1], atol=1e-4)
    torch.testing.assert_close(no_reset.next_obs[:, [0, 2]], pred.next_obs[:, [0, 2]])

    # step() one at a time gives the same as forward_sequence
    state, outs = state0, []
    with torch.no_grad():
        for t in range(T):
            p, state = model.step(obs[t], acts[t], state, starts[t])
            outs.append(p.next_obs)
    torch.testing.assert_close(torch.stack(outs), pred.next_obs, rtol=1e-5, atol=1e-6)


def test_truncated_bptt_carries_state_across_chunks():
    """bptt shorter than T still learns the memory task (state carried, detached)."""
    torch.manual_seed(0)
    task = MemoryDiscreteTask()
    model = RecurrentWorldModel(task.obs_space, task.act_space, 1, hidden_size=64, embed_size=64, lr=3e-3, bptt=5)
    history = train(model, task, 120)
    # carried: ~0.001; restarting each chunk from zeros (memory lost at chunk edges): ~0.43
    assert np.mean([h["world_model/obs_loss"] for h in history[-10:]]) < 0.05


# --------------------------------------------------------------------------- imagination


def _policy(obs_dim: int, hidden: int, act_dim: int, discrete: bool) -> nn.Module:
    class Policy(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(obs_dim + hidden, act_dim)

        def forward(self, obs, h):
            out = self.net(torch.cat([obs, h], -1))
            return out.softmax(-1) if discrete else torch.tanh(out)

    return Policy()


@pytest.mark.parametrize("discrete", [False, True])
def test_imagine_is_differentiable_for_the_policy_and_frozen_m_gets_no_grad(discrete):
    torch.manual_seed(0)
    obs_space = spaces.Discrete(6) if discrete else spaces.Box(-1, 1, (4,), np.float32)
    act_space = spaces.Discrete(3) if discrete else spaces.Box(-1, 1, (2,), np.float32)
    model = RecurrentWorldModel(obs_space, act_space, 2, hidden_size=16, embed_size=16)
    policy = _policy(model.obs_dim, 16, model.action_dim, discrete)
    B, H = 5, 6
    obs = torch.randint(0, 6, (B,)) if discrete else torch.rand(B, 4)

    actions = torch.zeros(1, B, dtype=torch.long) if discrete else torch.zeros(1, B, 2)
    one_step = SequenceBatch.from_numpy(obs[None], actions, torch.zeros(1, B, 2), obs[None])
    model.train_on_sequences(one_step)  # a trained M leaves no stale gradients behind
    model.requires_grad_(False)  # freeze M: NOT torch.no_grad(), which would cut C's gradient too
    out = model.imagine(model.initial_state(B), obs, policy, horizon=H)
    assert out["rewards"].shape == (H, B, 2)
    assert out["termination_probs"].shape == out["alive"].shape == (H, B)
    assert out["next_obs"].shape == out["obs"].shape == (H, B, model.obs_dim)
    assert out["actions"].shape == (H, B, model.action_dim)
    torch.testing.assert_close(out["obs"][1:], out["next_obs"][:-1])  # the policy acts on M's predictions
    value = (out["rewards"].sum(-1) * out["alive"]).sum()
    value.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.parameters())
    assert all(p.grad is None for p in model.parameters())

    # the gradient flows through the imagined chain: the last reward depends on the first action
    taken = []

    def recording_policy(o, h):
        taken.append(policy(o, h))
        return taken[-1]

    out = model.imagine(model.initial_state(B), obs, recording_policy, horizon=H)
    (grad_a0,) = torch.autograd.grad(out["rewards"][-1].sum(), taken[0])
    assert grad_a0.abs().sum() > 0

    model.requires_grad_(True)  # unfrozen, M's parameters do get gradients
    model.imagine(model.initial_state(B), obs, policy, horizon=H)["rewards"].sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


# --------------------------------------------------------------------------- spaces and data


@pytest.mark.parametrize(
    "obs_space, act_space, named",
    [
        (spaces.MultiDiscrete([3, 4]), spaces.Discrete(2), "MultiDiscrete"),
        (spaces.MultiBinary(5), spaces.Discrete(2), "MultiBinary"),
        (spaces.Tuple([spaces.Discrete(2)]), spaces.Discrete(2), "Tuple"),
        (spaces.Dict({"a": spaces.MultiBinary(2)}), spaces.Discrete(2), "MultiBinary"),
        (spaces.Box(-1, 1, (2,)), spaces.MultiDiscrete([2, 2]), "MultiDiscrete"),
        (spaces.Box(-1, 1, (2,)), spaces.Dict({"a": spaces.Discrete(2)}), "Dict"),
    ],
)
def test_unsupported_spaces_raise_value_error_naming_the_space(obs_space, act_space, named):
    with pytest.raises(ValueError, match=named):
        RecurrentWorldModel(obs_space, act_space, 1)


def test_dict_observations_are_flattened():
    torch.manual_seed(0)
    obs_space = spaces.Dict({"pos": spaces.Box(-1, 1, (2,), np.float32), "kind": spaces.Discrete(3)})
    model = RecurrentWorldModel(obs_space, spaces.Discrete(2), 1, hidden_size=16, embed_size=16)
    assert model.obs_dim == 5
    T, B = 6, 2
    obs = {"pos": np.random.uniform(-1, 1, (T, B, 2)).astype(np.float32), "kind": np.random.randint(0, 3, (T, B))}
    batch = SequenceBatch.from_numpy(obs, np.zeros((T, B), np.int64), np.zeros((T, B)), obs)
    assert model.errors(batch).shape == (T, B)
    assert np.isfinite(model.train_on_sequences(batch)["world_model/loss"])
    pred, _ = model.step({k: v[0] for k, v in obs.items()}, np.zeros(B, np.int64), model.initial_state(B))
    assert pred.next_obs.shape == (B, 5)


def test_embedding_target_learns_and_refuses_imagination():
    torch.manual_seed(0)
    task = LinearBoxTask()
    model = RecurrentWorldModel(
        task.obs_space, task.act_space, 2, hidden_size=64, embed_size=64, lr=3e-3, target="embedding", target_embed_size=8
    )
    history = train(model, task, 60)
    assert history[-1]["world_model/obs_loss"] < history[0]["world_model/obs_loss"] / 5
    with pytest.raises(ValueError, match="target='raw'"):
        model.imagine(model.initial_state(2), torch.zeros(2, 4), lambda o, h: torch.zeros(2, 2), horizon=2)
    # the random target embedding is a buffer: freezing/unfreezing M cannot make it trainable
    model.requires_grad_(True)
    assert "target_w1" in dict(model.named_buffers())


def test_transition_targets_restore_terminal_obs_and_split_truncations():
    new_obs = np.array([[0.0], [1.0], [2.0]])
    dones = np.array([False, True, True])
    infos = [
        {},
        {"terminal_observation": np.array([9.0])},
        {"terminal_observation": np.array([8.0]), "TimeLimit.truncated": True},
    ]
    next_obs, terminations = transition_targets(new_obs, dones, infos)
    np.testing.assert_array_equal(next_obs[:, 0], [0.0, 9.0, 8.0])
    np.testing.assert_array_equal(terminations, [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(new_obs[:, 0], [0.0, 1.0, 2.0])  # input untouched

    batch = SequenceBatch.from_numpy(np.zeros((4, 3, 1)), np.zeros((4, 3), np.int64), np.ones((4, 3)), np.zeros((4, 3, 1)))
    assert batch.rewards.shape == (4, 3, 1) and batch.actions.dtype == torch.int64
    assert batch.T == 4 and batch.B == 3 and batch.slice(1, 3).T == 2


def test_discrete_values_in_sb3_rollout_buffer_format_are_understood():
    """SB3's buffers store Discrete obs/actions as float32 [T, B, 1]: same errors as int [T, B]."""
    torch.manual_seed(0)
    task = MemoryDiscreteTask(n_envs=4)
    model = RecurrentWorldModel(task.obs_space, task.act_space, 1, hidden_size=16, embed_size=16)
    batch = task.batch(T=6)
    as_float = lambda x: x.float().unsqueeze(-1)  # noqa: E731
    sb3_batch = dataclasses.replace(
        batch, obs=as_float(batch.obs), actions=as_float(batch.actions), next_obs=as_float(batch.next_obs)
    )
    torch.testing.assert_close(model.errors(batch), model.errors(sb3_batch))
