"""The shared recurrent vector-critic learner, ``lstm-rl`` and ``curious-c-m``."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.evaluation import evaluate_policy

import envs  # noqa: F401
from agents.curious_cm import CuriousCM
from agents.lstm_rl import LSTMRL
from agents.recurrent_pg import RecurrentVectorPG
from agents.runner import make_vec_env
from agents.sequences import minibatches, split_segments
from agents.wrappers import PreviousActionReward
from conftest import run_script


def tmaze_env(n_envs=8, seed=0, length=5):
    return make_vec_env("mirabilis/TMaze-v0", {"length": length}, n_envs, seed, wrapper=PreviousActionReward)


# ----------------------------------------------------------------------------- sequence batching


def test_segments_cut_at_episode_starts_and_max_len():
    starts = np.zeros((10, 2), bool)
    starts[0, 0] = starts[4, 0] = True  # env 0: episodes start at 0 and 4
    starts[7, 1] = True  # env 1: an episode starts at 7 (the first one started before the rollout)
    seg = split_segments(starts, max_len=5)
    spans = sorted((int(b), int(t), int(n)) for t, b, n in zip(seg.starts, seg.b_index[0], seg.lengths))
    assert spans == [(0, 0, 4), (0, 4, 1), (0, 5, 5), (1, 0, 5), (1, 5, 2), (1, 7, 3)]
    for i in range(seg.n):  # each segment's steps are consecutive in time and masked after its end
        ts = seg.t_index[: seg.lengths[i], i]
        assert list(ts) == list(range(seg.starts[i], seg.starts[i] + seg.lengths[i]))
        assert seg.mask[: seg.lengths[i], i].all() and not seg.mask[seg.lengths[i]:, i].any()
    groups = minibatches(seg, 2, np.random.default_rng(0))
    assert sum(g.lengths.sum() for g in groups) == 20


def test_hidden_state_resets_exactly_where_episodes_start():
    """Replaying the rollout as padded segments gives exactly the log-probs and values of acting."""
    model = LSTMRL(tmaze_env(n_envs=3), seed=0, n_steps=64, seq_len=16)
    _, callback = model._setup_learn(10_000, None)
    rollout = model.collect_rollout(callback)
    assert rollout.episode_starts[1:].any(), "the rollout must contain episode boundaries"
    seg = split_segments(rollout.episode_starts, model.seq_len)
    torch.set_grad_enabled(False)
    features, values = model._sequence_outputs(rollout, seg)
    mask = torch.as_tensor(seg.mask)
    t, b = torch.as_tensor(seg.t_index), torch.as_tensor(seg.b_index)
    logp = model.policy.log_prob(model.policy.distribution(features[mask]), rollout.actions[t, b][mask])
    torch.testing.assert_close(logp, rollout.log_probs[t, b][mask], atol=1e-5, rtol=0)
    np.testing.assert_allclose(values[mask][:, :model.n_env_channels].detach().numpy(),
                               rollout.values[seg.t_index[seg.mask], seg.b_index[seg.mask]], atol=1e-5)
    # ... and a state that is NOT reset at an episode start would give different outputs:
    starts_ignored = np.zeros_like(rollout.episode_starts)
    seg_wrong = split_segments(starts_ignored, model.n_steps)
    f_wrong, _ = model._sequence_outputs(rollout, seg_wrong)
    t_w, b_w = seg_wrong.t_index[seg_wrong.mask], seg_wrong.b_index[seg_wrong.mask]
    lookup = {(int(tt), int(bb)): i for i, (tt, bb) in enumerate(zip(t_w, b_w))}
    t_s, b_s = seg.t_index[seg.mask], seg.b_index[seg.mask]
    after_reset = [i for i, (tt, bb) in enumerate(zip(t_s, b_s)) if tt > 0 and rollout.episode_starts[tt, bb]]
    diffs = [float((features[mask][i] - f_wrong[torch.as_tensor(seg_wrong.mask)][lookup[(int(t_s[i]), int(b_s[i]))]])
                   .abs().max()) for i in after_reset]
    torch.set_grad_enabled(True)
    assert max(diffs) > 1e-3


def test_vector_advantages_per_channel_discounts_and_episodic_flags():
    model = LSTMRL(tmaze_env(n_envs=1), seed=0, n_steps=8, gae_lambda=1.0)
    model.channels = model.channels.with_channel("curiosity", 1.0, 0.5, episodic=False)
    model.channels.gammas[:] = [0.9, 0.9, 0.9, 0.9, 0.5]
    rewards = np.zeros((3, 1, 5), np.float32)
    rewards[:, 0, 0] = 1.0  # goal channel: 1 per step
    rewards[:, 0, 4] = 1.0  # curiosity channel: 1 per step
    values = np.zeros_like(rewards)
    last = np.full((1, 5), 10.0, np.float32)
    dones = np.array([[False], [True], [False]])  # episode ends after step 1
    adv, returns = model.compute_advantages(rewards, values, last, dones, dones)
    # episodic goal channel: step 1 ends the episode -> return 1; step 0 -> 1 + 0.9
    assert returns[1, 0, 0] == pytest.approx(1.0) and returns[0, 0, 0] == pytest.approx(1.9)
    assert returns[2, 0, 0] == pytest.approx(1 + 0.9 * 10)
    # non-episodic curiosity channel flows across the episode end with its own discount 0.5
    assert returns[2, 0, 4] == pytest.approx(1 + 0.5 * 10)
    assert returns[1, 0, 4] == pytest.approx(1 + 0.5 * returns[2, 0, 4])


# ----------------------------------------------------------------------------- reward inputs


def test_previous_action_and_reward_are_inputs():
    env = PreviousActionReward(gym.make("mirabilis/TMaze-v0", length=3))
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3 + 4 + 4,) and not obs[3:].any(), "no previous action/reward at reset"
    obs, reward, *_ , info = env.step(1)  # east
    assert obs[3:7].tolist() == [0, 1, 0, 0]
    np.testing.assert_array_equal(obs[7:], info["vector_reward"])
    assert env.observation_space.contains(obs)


def test_memory_diagnostics_follow_the_forget_gates():
    """``memory/*`` is computed from the forget gates: a large forget bias must show as long memory."""
    stats = {}
    for bias in (-3.0, 3.0):
        model = LSTMRL(tmaze_env(n_envs=2), seed=0, n_steps=16, forget_bias=bias)
        _, callback = model._setup_learn(1_000, None)
        stats[bias] = model.memory_stats(model.collect_rollout(callback))
        assert set(stats[bias]) == {"memory/forget_gate_mean", "memory/horizon_median", "memory/long_units"}
    assert stats[3.0]["memory/forget_gate_mean"] > 0.8 > 0.2 > stats[-3.0]["memory/forget_gate_mean"]
    assert stats[3.0]["memory/horizon_median"] > 5 * stats[-3.0]["memory/horizon_median"]
    assert stats[3.0]["memory/long_units"] > stats[-3.0]["memory/long_units"]


def test_reward_inputs_without_the_wrapper_is_a_clear_error():
    with pytest.raises(ValueError, match="PreviousActionReward"):
        LSTMRL(make_vec_env("mirabilis/TMaze-v0", {"length": 3}, 1, 0), seed=0)


def test_unsupported_space_is_refused_by_name():
    env = make_vec_env("mirabilis/StartGoalNav-v0", {}, 1, 0)
    with pytest.raises(ValueError, match="unsupported observation space Dict"):
        RecurrentVectorPG(env, seed=0)


# ----------------------------------------------------------------------------- learning


@pytest.mark.slow
def test_lstm_rl_solves_a_short_tmaze():
    """With its TMaze defaults (agents/hyperparams/lstm-rl.yml), in 8k steps (~2 s). When this test was
    written, seeds 0-6 all took the right arm in all 40 episodes after 8k steps."""
    model = LSTMRL(tmaze_env(length=5), seed=0, **tmaze_defaults())
    model.learn(8_000)
    returns, _ = evaluate_policy(model, tmaze_env(n_envs=1, seed=123), n_eval_episodes=40, deterministic=True,
                                 return_episode_rewards=True)
    right_arm = int((np.asarray(returns) > 0).sum())  # +4 there; the wrong arm and bumps only cost
    assert right_arm == 40, f"the memory of the start signal must take the right arm every time ({right_arm}/40)"


@pytest.mark.slow
def test_curious_c_m_without_curiosity_learns_cartpole():
    """C alone (curiosity none) is an ordinary recurrent policy-gradient learner: it must learn
    CartPole (random policy: ~22 per episode). With one LSTM shared by actor and critic it did not."""
    env = make_vec_env("CartPole-v1", {}, 8, 0)
    model = CuriousCM(env, seed=0, curiosity="none", n_steps=128, n_epochs=8, n_minibatches=8, learning_rate=1e-3)
    model.learn(40_960)
    mean, _ = evaluate_policy(model, make_vec_env("CartPole-v1", {}, 1, 123), n_eval_episodes=10, deterministic=True)
    assert mean >= 100, f"mean return {mean:.1f} after 40k steps"


def tmaze_defaults() -> dict:
    """lstm-rl's hyperparameters for TMaze from agents/hyperparams/lstm-rl.yml."""
    from agents import config
    from agents.registry import get_agent

    return config.resolve(get_agent("lstm-rl").schema(), "lstm-rl", "mirabilis/TMaze-v0", {})


# ----------------------------------------------------------------------------- save / load


def test_trained_lstm_rl_round_trips_with_its_recurrent_state(tmp_path):
    model = LSTMRL(tmaze_env(length=3), seed=0, n_steps=32)
    model.learn(512)
    model.save(tmp_path / "lstm.safetensors")
    loaded = LSTMRL.load(tmp_path / "lstm.safetensors", env=tmaze_env(length=3))
    obs = np.stack([tmaze_env(1, 5, 3).reset()[0] for _ in range(2)])
    state, starts = None, np.ones(2, bool)
    state_l = None
    for _ in range(4):  # the same actions and the same recurrent states, step after step
        a, state = model.predict(obs, state, starts, deterministic=True)
        b, state_l = loaded.predict(obs, state_l, starts, deterministic=True)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(state[0], state_l[0], atol=1e-6)
        starts = np.zeros(2, bool)


def test_curious_c_m_round_trips_with_its_world_model(tmp_path):
    env = make_vec_env("mirabilis/NoisyTVRoom-v0", {}, 2, 0)
    model = CuriousCM(env, seed=0, curiosity="progress", n_steps=32, model_hidden_size=16)
    model.learn(128)
    model.save(tmp_path / "c.safetensors")
    loaded = CuriousCM.load(tmp_path / "c.safetensors", env=make_vec_env("mirabilis/NoisyTVRoom-v0", {}, 2, 0))
    for a, b in zip(model.world_model.state_dict().values(), loaded.world_model.state_dict().values()):
        assert torch.equal(a, b)
    assert loaded.curiosity_rms.var == pytest.approx(model.curiosity_rms.var)
    assert np.array_equal(loaded.visits, model.visits)


# ----------------------------------------------------------------------------- through the CLI


def test_curious_c_m_through_the_cli_logs_its_namespaces(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "run"
    proc = run_script("train.py", "--agent", "curious-c-m", "--env", "mirabilis/NoisyTVRoom-v0", "--total-steps",
                      "2048", "--n-envs", "4", "--set", "n_steps=64", "--set", "curiosity=adversarial",
                      "--set", "heatmap_every=1", "--run-dir", str(run_dir), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    acc = EventAccumulator(str(run_dir), size_guidance={"images": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for key in ("rollout/ep_rew_mean", "time/fps", "curiosity/reward_mean", "world_model/loss",
                "values/curiosity", "explore/coverage", "explore/tv_fraction", "train/policy_loss"):
        assert key in tags, key
    assert "explore/visits" in acc.Tags()["images"]
    proc = run_script("train.py", "--agent", "curious-c-m", "--set", "curiosity=boredom", "--run-dir",
                      str(tmp_path / "bad"))
    assert proc.returncode == 2 and "curiosity must be one of" in proc.stderr
