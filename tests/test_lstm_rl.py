"""Issue 7 (``lstm-rl``): its learning options, its YAML defaults, and the tmaze / pomaze experiments.

The shared learner's sequence batching, state resets, reward inputs, save/load and the N = 5
T-maze are tested in ``test_recurrent_agents.py``.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, run_script

import envs  # noqa: F401
from agents.lstm_rl import LSTMRL
from agents.runner import build_config, make_vec_env
from agents.sequences import split_segments
from agents.wrappers import PreviousActionReward

sys.path.insert(0, str(REPO / "scripts"))


def tmaze_env(n_envs=2, seed=0, length=4):
    return make_vec_env("mirabilis/TMaze-v0", {"length": length}, n_envs, seed, wrapper=PreviousActionReward)


def replay_matches_collection(model):
    """The padded-segment replay of a rollout gives the log-probs and values recorded while acting."""
    _, callback = model._setup_learn(10_000, None)
    rollout = model.collect_rollout(callback)
    assert rollout.episode_starts[1:].any()
    seg = split_segments(rollout.episode_starts, model.seq_len)
    with torch.no_grad():
        features, values = model._sequence_outputs(rollout, seg)
        mask = torch.as_tensor(seg.mask)
        t, b = torch.as_tensor(seg.t_index), torch.as_tensor(seg.b_index)
        dist = model.policy.distribution(features[mask], rollout.obs[t, b][mask])
        logp = model.policy.log_prob(dist, rollout.actions[t, b][mask])
    torch.testing.assert_close(logp, rollout.log_probs[t, b][mask], atol=1e-5, rtol=0)
    np.testing.assert_allclose(values[mask][:, :model.n_env_channels].numpy(),
                               rollout.values[seg.t_index[seg.mask], seg.b_index[seg.mask]], atol=1e-5)
    return rollout


# ----------------------------------------------------------------------------- the learning options


def test_critic_lstm_and_persistence_replay_exactly_and_keep_the_actor_apart():
    model = LSTMRL(tmaze_env(), seed=0, n_steps=48, seq_len=16, lstm_size=8, critic_lstm=True, persistence=3.0,
                   forget_bias=2.0)
    assert model.policy.state_size == 16  # [actor | critic]
    replay_matches_collection(model)
    # the critic's loss never reaches the actor's LSTM: no shared parameters
    actor = {id(p) for p in model.policy.lstm.parameters()} | {id(p) for p in model.policy.encoder.parameters()}
    critic = {id(p) for p in model.policy.critic_rnn.parameters()} | {id(p) for p in model.policy.critic_encoder.parameters()}
    assert not actor & critic
    features = torch.zeros(3, 16, requires_grad=True)
    model.policy.value(features).sum().backward()
    assert features.grad[:, :8].abs().sum() == 0 and features.grad[:, 8:].abs().sum() > 0


def test_persistence_prior_repeats_the_previous_action_at_first():
    model = LSTMRL(tmaze_env(), seed=0, persistence=3.0)
    obs = np.zeros((4, 3 + 4 + 4), np.float32)
    obs[:, 0] = obs[:, 2] = 1  # corridor
    obs[np.arange(4), 3 + np.arange(4)] = 1  # previous action 0, 1, 2, 3
    x = torch.as_tensor(obs)
    features, _ = model.policy.step(x, model._initial_state(4))
    probs = model.policy.distribution(features, x).probs
    assert torch.equal(probs.argmax(-1), torch.arange(4))
    assert (probs.diagonal() > 0.8).all()  # e^3 / (e^3 + 3) = 0.87 before any learning
    # a reset (no previous action) leaves the first action uniform
    first = model.policy.distribution(features[:1], torch.zeros(1, 11)).probs
    torch.testing.assert_close(first, torch.full((1, 4), 0.25), atol=0.02, rtol=0)


def test_forget_bias_sets_the_forget_gates():
    model = LSTMRL(tmaze_env(), seed=0, lstm_size=8, forget_bias=2.0)
    lstm = model.policy.lstm
    assert torch.all(lstm.bias_ih_l0[8:16] + lstm.bias_hh_l0[8:16] == 2.0)


def test_long_memory_init_shuts_the_actors_input_gates_only_and_scales_the_policy_head():
    model = LSTMRL(tmaze_env(), seed=0, lstm_size=8, forget_bias=6.0, input_bias=-5.0, policy_gain=1.0)
    actor, critic = model.policy.lstm, model.policy.critic_rnn
    assert torch.all(actor.bias_ih_l0[:8] + actor.bias_hh_l0[:8] == -5.0)
    assert torch.all(actor.bias_ih_l0[8:16] + actor.bias_hh_l0[8:16] == 6.0)
    assert torch.all(critic.bias_ih_l0[8:16] + critic.bias_hh_l0[8:16] == 6.0)
    assert not torch.all(critic.bias_ih_l0[:8] + critic.bias_hh_l0[:8] == -5.0)  # the critic sees the present
    default = LSTMRL(tmaze_env(), seed=0, lstm_size=8)
    # orthogonal rows: the head's singular values are its gain
    gain = float(torch.linalg.matrix_norm(model.policy.policy_head.weight.detach(), ord=2))
    small = float(torch.linalg.matrix_norm(default.policy.policy_head.weight.detach(), ord=2))
    assert gain == pytest.approx(1.0, abs=1e-4) and small == pytest.approx(0.01, abs=1e-6)


def test_value_skip_lets_the_value_read_the_present_input():
    """With ``value_skip`` the critic values the junction by its input, whatever its LSTM state says;
    without it, the value is a function of the LSTM state alone."""
    env = tmaze_env()
    obs = torch.as_tensor(np.stack([env.reset()[0]] * 2), dtype=torch.float32)
    obs[1, :3] = torch.tensor([0.0, 1.0, 0.0])  # the same step's inputs, but standing on the junction
    for skip in (False, True):
        policy = LSTMRL(env, seed=0, lstm_size=8, value_skip=skip).policy
        features = torch.randn(1, policy.state_size).expand(2, -1)  # one LSTM state for both
        values = policy.value(features, obs).detach()
        assert (values[0] != values[1]).any() == skip
    with pytest.raises(ValueError, match="value_skip needs the inputs"):
        policy.value(features)


def test_normalize_value_loss_weighs_every_channel_alike():
    """Summed raw, a channel with returns 100x larger carries 10^4x the weight in the critic's loss; with
    ``normalize_value_loss`` each channel's squared error is divided by its returns' variance in the rollout."""
    rng = np.random.default_rng(0)
    returns = rng.normal(size=(64, 2, 4)).astype(np.float32) * np.array([1.0, 100.0, 0.0, 1.0], np.float32)
    raw = LSTMRL(tmaze_env(), seed=0, lstm_size=8)
    np.testing.assert_array_equal(raw.value_loss_scale(returns), np.ones(4))
    scale = LSTMRL(tmaze_env(), seed=0, lstm_size=8, normalize_value_loss=True).value_loss_scale(returns)
    std = returns.reshape(-1, 4).std(0)
    np.testing.assert_allclose(scale[[0, 1, 3]] * std[[0, 1, 3]] ** 2, 1.0, rtol=1e-5)
    assert scale[2] == pytest.approx(1e4)  # a constant channel: the floor (std 0.01), not a division by zero


def test_target_kl_stops_the_epochs_early(tmp_path):
    """SB3's early stop: once a minibatch's approximate KL to the acting policy exceeds 1.5 target_kl, the
    update ends (``train/epochs`` logs the epochs completed); without it every epoch runs."""
    from stable_baselines3.common.logger import configure

    epochs = {}
    for target in (None, 1e-6):
        model = LSTMRL(tmaze_env(), seed=0, lstm_size=8, n_steps=64, n_epochs=6, learning_rate=0.01,
                       target_kl=target)
        model.set_logger(configure(str(tmp_path / str(target)), ["csv"]))
        model.learn(256)  # two rollouts of 2 envs x 64 steps
        rows = (tmp_path / str(target) / "progress.csv").read_text().splitlines()
        header = rows[0].split(",")
        epochs[target] = [float(row.split(",")[header.index("train/epochs")]) for row in rows[1:]]
    assert epochs[None] == [6.0, 6.0]
    assert all(e < 6 for e in epochs[1e-6])
    with pytest.raises(ValueError, match="target_kl"):
        LSTMRL(tmaze_env(), seed=0, target_kl=0.0)


@pytest.mark.parametrize("separate", [False, True])
def test_gradient_clipping_together_or_per_network(separate, tmp_path):
    """SB3's clip scales the actor's gradient down whenever the critic's is large; ``separate_grad_clip``
    bounds each network's norm on its own, so the actor's step no longer depends on the critic's error."""
    model = LSTMRL(tmaze_env(), seed=0, lstm_size=8, max_grad_norm=0.5, separate_grad_clip=separate)
    critic = model.policy.critic_parameters()
    critic_ids = {id(p) for p in critic}
    actor = [p for p in model.policy.parameters() if id(p) not in critic_ids]
    assert id(model.policy.value_head.weight) in critic_ids and id(model.policy.lstm.weight_hh_l0) not in critic_ids
    for params, norm in ((actor, 0.1), (critic, 100.0)):
        total = sum(p.numel() for p in params)
        for p in params:
            p.grad = torch.full_like(p, norm / np.sqrt(total))
    norms = model._clip_gradients()
    actor_after = float(torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in actor])))
    critic_after = float(torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in critic])))
    if separate:
        assert norms == pytest.approx([0.1, 100.0], rel=1e-4)
        assert actor_after == pytest.approx(0.1, rel=1e-4) and critic_after == pytest.approx(0.5, rel=1e-4)
    else:
        assert norms == pytest.approx([np.hypot(0.1, 100.0)], rel=1e-4)
        assert actor_after == pytest.approx(0.1 * 0.5 / np.hypot(0.1, 100.0), rel=1e-3)
    from stable_baselines3.common.logger import configure

    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(64)  # and training logs the norms it clipped
    header = set((tmp_path / "progress.csv").read_text().splitlines()[0].split(","))
    assert ({"train/grad_norm_actor", "train/grad_norm_critic"} if separate else {"train/grad_norm"}) <= header


def test_bad_options_are_refused_by_name():
    with pytest.raises(ValueError, match="persistence"):
        LSTMRL(make_vec_env("Pendulum-v1", {}, 1, 0, wrapper=PreviousActionReward), seed=0, persistence=2.0)
    with pytest.raises(ValueError, match="policy_gain"):
        LSTMRL(tmaze_env(), seed=0, policy_gain=0.0)


def test_trained_agent_with_every_option_round_trips(tmp_path):
    model = LSTMRL(tmaze_env(length=3), seed=0, n_steps=32, lstm_size=8, critic_lstm=True, persistence=2.0,
                   forget_bias=2.0, value_skip=True, separate_grad_clip=True, normalize_value_loss=True)
    model.learn(256)
    model.save(tmp_path / "a.safetensors")
    loaded = LSTMRL.load(tmp_path / "a.safetensors", env=tmaze_env(length=3))
    assert loaded.critic_lstm and loaded.persistence == 2.0 and loaded.policy.state_size == 16
    assert loaded.value_skip and loaded.separate_grad_clip and loaded.normalize_value_loss
    for param, param_l in zip(model.policy.parameters(), loaded.policy.parameters()):
        torch.testing.assert_close(param, param_l)
    obs = np.stack([tmaze_env(1, 5, 3).reset()[0] for _ in range(2)])
    state, state_l, starts = None, None, np.ones(2, bool)
    for _ in range(3):
        a, state = model.predict(obs, state, starts, deterministic=True)
        b, state_l = loaded.predict(obs, state_l, starts, deterministic=True)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(state[1], state_l[1], atol=1e-6)
        starts = np.zeros(2, bool)


# ----------------------------------------------------------------------------- defaults


def test_yaml_defaults_resolve_and_apply_to_other_envs():
    tmaze = build_config(agent="lstm-rl", env="mirabilis/TMaze-v0")
    assert tmaze.hyperparams["critic_lstm"] is True and tmaze.hyperparams["persistence"] > 0
    from experiments import tmaze as experiment

    for spec in experiment.plan(quick=False):  # BPTT and rollouts hold whole shortest episodes
        assert spec.hyperparams["n_steps"] >= 2 * (spec.env_kwargs["length"] + 1)
        if spec.agent == "lstm-rl":
            assert spec.hyperparams["seq_len"] == spec.hyperparams["n_steps"]
    # the default section must work for any env, continuous actions included
    config = build_config(agent="lstm-rl", env="Pendulum-v1")
    spec_env = make_vec_env("Pendulum-v1", {}, 1, 0, wrapper=PreviousActionReward)
    LSTMRL(spec_env, seed=0, **config.hyperparams)


# ----------------------------------------------------------------------------- the experiments, end to end


@pytest.mark.parametrize("name", ["tmaze", "pomaze"])
def test_experiment_quick_end_to_end(name, tmp_path):
    out = tmp_path / name
    proc = run_script("reproduce.py", name, "--quick", "--out", str(out), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads((out / "metrics.json").read_text())
    assert data["experiment"] == name and data["quick"] is True
    assert {r["agent"] for r in data["runs"]} == {"lstm-rl", "recurrent-ppo", "ppo"}
    assert len({(r["label"], r["seed"]) for r in data["runs"]}) == len(data["runs"])
    for run in data["runs"]:
        assert run["error"] is None, run["error"]
        m = run["metrics"]
        assert 0.0 <= m["success_rate"] <= 1.0 and m["steps_per_s"] > 0 and m["check_curve"]
        assert m["mean_episode_length"] >= 1
    if name == "tmaze":
        assert all("steps_to_solve" in r["metrics"] for r in data["runs"])
        same = {k for k in ("n_steps", "gamma", "n_epochs") if len({r["hyperparams"][k] for r in data["runs"]}) == 1}
        assert same == {"n_steps", "gamma", "n_epochs"}, "baselines get lstm-rl's PPO settings"
        from experiments.tmaze import BASELINE_LEARNING_RATE

        # the learning rate is the exception: lstm-rl's goes with its long-memory initialisation
        assert {r["hyperparams"]["learning_rate"] for r in data["runs"] if r["agent"] != "lstm-rl"} == {
            BASELINE_LEARNING_RATE}
    else:
        assert all(r["metrics"]["mean_shortest_path"] > 0 for r in data["runs"])
        # POMaze's baselines share lstm-rl's learning rate too (its README says so)
        assert len({r["hyperparams"]["learning_rate"] for r in data["runs"]}) == 1
    readme = (out / "README.md").read_text()
    assert "Quick mode" in readme and "`lstm-rl`" in readme
    for image in ("curves.png", "episode.gif"):
        assert (out / image).stat().st_size > 1000, image


def test_periodic_checks_leave_training_unchanged():
    """The experiments' periodic checks sample actions, but from a fork of torch's random stream: a run
    checked every 128 steps trains exactly as one checked once (before this, results moved with the checks)."""
    from experiments.tmaze import PeriodicCheck, make_envs

    params = []
    for every in (128, 4096):
        model = LSTMRL(tmaze_env(), seed=0, n_steps=64, reward_inputs=True)
        checker = PeriodicCheck(make_envs("mirabilis/TMaze-v0", {"length": 4}, PreviousActionReward, 3), every,
                                seed=0, cap=10)
        model.learn(512, callback=checker)
        assert len(checker.curve) == 512 // every
        params.append(torch.nn.utils.parameters_to_vector(model.policy.parameters()))
    torch.testing.assert_close(params[0], params[1], atol=0, rtol=0)


# ----------------------------------------------------------------------------- tmaze_memory: the memory without RL


def test_memory_trace_vanishes_with_torch_init_and_not_with_a_forget_bias():
    """The diagnosis behind results/tmaze's misses: with PyTorch's LSTM init the start signal has no trace
    left at the junction of a 50-cell corridor (so no gradient reaches it); a forget bias of 2 keeps one."""
    from experiments.tmaze_memory import Walker, build_network, trace

    traces = {}
    for init in ("torch-default", "forget-bias-2"):
        net, _, wrapper = build_network(50, init, "obs+action+reward", seed=0)
        traces[init] = trace(net, Walker(50, wrapper, seed=0))
    assert traces["torch-default"] < 1e-5 and traces["forget-bias-2"] > 1e-3, traces


def test_memory_walker_reaches_the_junction_and_logits_name_two_arms():
    from experiments.tmaze_memory import Walker, build_network, junction_logits

    net, _, wrapper = build_network(6, "long-memory", "obs", seed=1)
    assert net.lstm.bias_ih_l0[: net.lstm_size].eq(-5.0).all() and net.lstm.bias_ih_l0[net.lstm_size:2 * net.lstm_size].eq(6.0).all()
    walker = Walker(6, wrapper, seed=1)
    x, lengths, signals = walker.batch(5)
    assert x.shape[1] == 5 and x.shape[2] == 3 and (lengths >= 7).all()  # obs only; at least N + 1 inputs
    np.testing.assert_array_equal(x[lengths - 1, np.arange(5)].numpy(), np.tile([0, 1, 0], (5, 1)))  # the junction
    assert set(signals.tolist()) <= {0, 1} and junction_logits(net, x, lengths).shape == (5, 2)


def test_tmaze_memory_quick_end_to_end(tmp_path):
    out = tmp_path / "tmaze_memory"
    proc = run_script("reproduce.py", "tmaze_memory", "--quick", "--out", str(out), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads((out / "metrics.json").read_text())
    methods = {r["label"].split(" ")[0] for r in data["runs"]}
    assert methods == {"supervised", "reinforce"}
    for run in data["runs"]:
        assert run["error"] is None, run["error"]
        m = run["metrics"]
        assert m["trace"] >= 0 and m["episodes_seen"] > 0 and m["curve"]
        assert m["episodes_to_learn"] is None or m["final_accuracy"] >= 0.95
    # N = 5 is short enough for a forget bias of 2 to learn the signal supervised within the toy budget
    bias_2 = [r for r in data["runs"] if r["label"].startswith("supervised forget-bias-2 ")]
    assert bias_2 and all(r["metrics"]["episodes_to_learn"] for r in bias_2)
    assert "Trace of the start signal" in (out / "README.md").read_text()
