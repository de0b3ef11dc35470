"""`dpg`: learning, weight retargeting, vector replay (with HER), checkpoints, refusals, experiments."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import run_script
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv

import envs  # noqa: F401  (registers mirabilis/*)
from agents.dpg import DPG
from agents.errors import UsageError
from agents.registry import get_agent
from agents.vector_replay import VectorReplayBuffer
from agents.wrappers import PreviousActionReward

SMALL = {"net_arch": [32, 32], "batch_size": 64, "learning_starts": 100, "buffer_size": 10_000}


class Reach1D(gym.Env):
    """x on [-1, 1], action = velocity; channels progress (−|x|) and effort (−a²/10); 20 steps."""

    reward_names = ("progress", "effort")

    def __init__(self, weights=(1.0, 1.0)):
        self.observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.weights = np.asarray(weights, np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = float(self.np_random.uniform(-1, 1)), 0
        return np.array([self.x], np.float32), {}

    def step(self, action):
        a = float(np.clip(action[0], -1, 1))
        self.x = float(np.clip(self.x + 0.2 * a, -1, 1))
        self.t += 1
        vec = np.array([-abs(self.x), -a * a / 10], np.float32)
        return np.array([self.x], np.float32), float(self.weights @ vec), False, self.t >= 20, {"vector_reward": vec}


class TwoTargets(gym.Env):
    """A one-step bandit: channel ``right`` = −(a − 0.6)², channel ``left`` = −(a + 0.6)²."""

    reward_names = ("right", "left")

    def __init__(self, weights=(1.0, 0.0)):
        self.observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.weights = np.asarray(weights, np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.ones(1, np.float32), {}

    def step(self, action):
        a = float(np.clip(action[0], -1, 1))
        vec = np.array([-(a - 0.6) ** 2, -(a + 0.6) ** 2], np.float32)
        return np.ones(1, np.float32), float(self.weights @ vec), True, False, {"vector_reward": vec}


def vec(env_cls, n_envs=1, **kwargs):
    return make_vec_env(lambda: env_cls(**kwargs), n_envs=n_envs, seed=0)


def greedy(model, obs) -> np.ndarray:
    return model.predict(np.asarray(obs, np.float32), deterministic=True)[0]


def mean_return(model, n=10) -> float:
    env, total = Reach1D(), 0.0
    for episode in range(n):
        obs, _ = env.reset(seed=1000 + episode)
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(greedy(model, obs[None])[0])
            total += reward
            done = terminated or truncated
    return total / n


# --------------------------------------------------------------------------- learning


def test_a_short_run_learns_to_reach_the_origin():
    model = DPG(vec(Reach1D), seed=0, gamma=0.9, **SMALL)
    before = mean_return(model)
    model.learn(1500)
    after = mean_return(model)
    # random-ish initial policy: about -7; heading to 0 and staying there: about -1.5
    assert after > before + 2.0 and after > -3.0, (before, after)
    values = model._stats  # the running sums are reset at each log dump; they exist per channel
    assert values["values"].shape == (2,)


@pytest.mark.parametrize("options", [
    {"twin_critics": False, "policy_delay": 1, "target_policy_noise": 0.0},  # DDPG
    {"vector_critic": False},  # one scalar critic on w · r
    {"channel_gammas": {"effort": 0.5}, "n_envs": 2, "gradient_steps": -1, "train_freq": 2},
])
def test_variants_train(options):
    options = dict(options)
    n_envs = options.pop("n_envs", 1)
    model = DPG(vec(Reach1D, n_envs=n_envs), seed=0, **{**SMALL, **options})
    model.learn(300)
    assert model._n_updates > 0
    action = greedy(model, [[0.5]])
    assert action.shape == (1, 1) and np.all(np.abs(action) <= 1)


# --------------------------------------------------------------------------- weights after training


def test_retargeting_weights_moves_the_greedy_action_without_new_env_steps():
    model = DPG(vec(TwoTargets), seed=0, learning_starts=200, batch_size=64, net_arch=[32, 32], buffer_size=5000)
    model.learn(1200)
    assert 0.4 < greedy(model, [[1.0]])[0, 0] < 0.8  # weights (1, 0): the "right" target
    steps = model.num_timesteps
    model.set_reward_weights({"right": 0.0, "left": 1.0})
    assert 0.4 < greedy(model, [[1.0]])[0, 0] < 0.8, "new weights alone do not move the actor"
    report = model.retarget([0.0, 1.0], gradient_steps=400)
    assert -0.8 < greedy(model, [[1.0]])[0, 0] < -0.4  # now the "left" target
    assert report["weighted_value_after"] > report["weighted_value_before"]
    model.retarget({"right": 1.0, "left": 1.0}, gradient_steps=400)
    assert abs(greedy(model, [[1.0]])[0, 0]) < 0.2  # equal weights: halfway
    assert model.num_timesteps == steps, "retargeting takes no env steps"


def test_a_scalar_critic_cannot_be_retargeted():
    model = DPG(vec(TwoTargets), seed=0, vector_critic=False, **SMALL)
    model.learn(150)
    with pytest.raises(ValueError, match="vector_critic"):
        model.retarget([0.0, 1.0], gradient_steps=10)


# --------------------------------------------------------------------------- vector replay


def test_vector_replay_buffer_stores_and_samples_reward_vectors():
    obs_space = spaces.Box(-np.inf, np.inf, (1,), np.float32)
    buffer = VectorReplayBuffer(100, obs_space, spaces.Box(-1, 1, (1,), np.float32), n_channels=3, n_envs=2)
    for i in range(50):
        obs = np.array([[i], [1000 + i]], np.float32)
        vectors = np.stack([obs[:, 0], -obs[:, 0], np.full(2, i % 7)], axis=1)
        infos = [{"vector_reward": v, "TimeLimit.truncated": i == 9} for v in vectors]
        buffer.add(obs, obs + 1, np.zeros((2, 1)), vectors.sum(1), np.array([i == 9] * 2), infos)
    data = buffer.sample(256)
    o = data.observations[:, 0]
    expected = torch.stack([o, -o, (o % 1000) % 7], dim=1)
    assert torch.equal(data.reward_vectors, expected)
    assert torch.equal(data.rewards[:, 0], expected.sum(1))
    assert not data.dones.any(), "a time-out is not a termination"


def test_the_agent_stores_the_env_reward_vector():
    model = DPG(vec(Reach1D), seed=0, **{**SMALL, "learning_starts": 1000})
    model.learn(60)
    buf = model.replay_buffer
    x_next, a = buf.next_observations[:60, 0, 0], buf.actions[:60, 0, 0]
    assert np.allclose(buf.reward_vectors[:60, 0, 0], -np.abs(x_next), atol=1e-6)
    assert np.allclose(buf.reward_vectors[:60, 0, 1], -a * a / 10, atol=1e-6)
    assert np.allclose(buf.rewards[:60, 0], buf.reward_vectors[:60, 0].sum(1), atol=1e-6)


def test_hindsight_relabelling_recomputes_goal_channels_and_keeps_the_others():
    env = make_vec_env("mirabilis/StartGoalNav-v0", n_envs=2, seed=0, env_kwargs={"weights": [1.0, 1.0, 2.0]})
    model = DPG(env, seed=0, learning_starts=5000, net_arch=[16], her_terminal_channel="reached", buffer_size=5000)
    model.learn(1200)  # random actions only: many collisions with the walls and the plane's edge
    data = model.replay_buffer.sample(2000)
    goal_radius = env.get_attr("goal_radius")[0]
    reached = torch.linalg.norm(data.next_observations["achieved_goal"] - data.next_observations["desired_goal"],
                                dim=1) <= goal_radius + 1e-6
    vectors = data.reward_vectors
    n_virtual = int(model.replay_buffer.her_ratio * 2000)
    assert torch.equal(vectors[:, 0], reached.float())
    assert vectors[:n_virtual, 0].sum() > 50, "hindsight goals are often reached"
    assert torch.all(vectors[:, 1] == -1.0)
    hit = vectors[:, 2] == -1.0
    assert hit.sum() > 20, "collisions survive relabelling"
    stopped = torch.all(data.observations["achieved_goal"] == data.next_observations["achieved_goal"], dim=1)
    assert torch.all(stopped[hit]), "a collision stops the move"
    assert torch.equal(data.dones[:, 0], reached.float()), "relabelled episodes end where their goal is reached"
    assert torch.allclose(data.rewards[:, 0], vectors @ torch.tensor([1.0, 1.0, 2.0]))


def test_a_resumed_goal_env_run_ends_the_open_episode_in_its_buffer(tmp_path):
    from agents.persistence import load_agent, save_agent

    kwargs = {"max_steps": 30}
    model = DPG(make_vec_env("mirabilis/StartGoalNav-v0", n_envs=1, seed=0, env_kwargs=kwargs), seed=0,
                her_terminal_channel="reached", **SMALL)
    model.learn(145)  # stops inside an episode
    path = save_agent(model, tmp_path / "c.safetensors", "dpg", model.hyperparams, "mirabilis/StartGoalNav-v0",
                      kwargs, 0, include_buffer=True)
    loaded = load_agent(path)
    buffer = loaded.replay_buffer
    assert buffer.pos == 145 and buffer.ep_length[144, 0] == 0, "the open episode cannot be sampled yet"
    loaded.learn(40, reset_num_timesteps=False)
    assert buffer.ep_length[144, 0] > 0 and buffer.timeouts[144, 0], "ended as a time-out, not a termination"
    assert buffer.ep_start[145, 0] == 145, "the next episode starts after it"


def test_a_goal_env_run_resumed_without_its_replay_waits_for_an_episode_instead_of_failing(tmp_path):
    from agents.persistence import load_agent, save_agent

    kwargs = {"max_steps": 30}
    model = DPG(make_vec_env("mirabilis/StartGoalNav-v0", n_envs=1, seed=0, env_kwargs=kwargs), seed=0,
                her_terminal_channel="reached", **SMALL)
    model.learn(145)
    path = save_agent(model, tmp_path / "c.safetensors", "dpg", model.hyperparams, "mirabilis/StartGoalNav-v0",
                      kwargs, 0, include_buffer=False)
    loaded = load_agent(path)
    loaded.set_env(make_vec_env("mirabilis/StartGoalNav-v0", n_envs=1, seed=1, env_kwargs=kwargs))
    updates = loaded._n_updates
    loaded.learn(60, reset_num_timesteps=False)  # empty HER buffer: no sampling until an episode has ended
    assert loaded._n_updates > updates, "it trains once an episode has ended"


def test_goal_env_training_logs_every_channel(tmp_path):
    from stable_baselines3.common.logger import configure

    env = make_vec_env("mirabilis/StartGoalNav-v0", n_envs=1, seed=0, env_kwargs={"max_steps": 20})
    model = DPG(env, seed=0, her_terminal_channel="reached", **SMALL)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(400)
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    for key in ("train/actor_loss", "train/critic_loss", "critic/value_reached", "critic/value_step_cost",
                "critic/value_collision", "rollout/success_rate"):
        assert key in header


# --------------------------------------------------------------------------- checkpoints


def test_save_load_round_trip_gives_the_same_actions_and_weights(tmp_path):
    model = DPG(make_vec_env("Pendulum-v1", n_envs=1, seed=0), seed=0, **SMALL)
    model.learn(400)
    model.set_reward_weights([2.0])
    path = tmp_path / "dpg.safetensors"
    model.save(path)
    loaded = DPG.load(path)  # env rebuilt from the recorded id
    obs = np.random.default_rng(0).uniform(-1, 1, (16, 3)).astype(np.float32)
    assert np.array_equal(greedy(model, obs), greedy(loaded, obs))
    assert loaded.channels.weights.tolist() == [2.0]
    for a, b in zip(model.policy.state_dict().values(), loaded.policy.state_dict().values()):
        assert torch.equal(a, b)
    loaded.learn(50, reset_num_timesteps=False)  # and it trains on


def test_reward_inputs_need_the_wrapper_and_then_train():
    with pytest.raises(ValueError, match="PreviousActionReward"):
        DPG(vec(Reach1D), reward_inputs=True, **SMALL)
    env = make_vec_env(lambda: Reach1D(), n_envs=1, seed=0, wrapper_class=PreviousActionReward)
    model = DPG(env, seed=0, reward_inputs=True, **SMALL)
    assert model.observation_space.shape == (1 + 1 + 2,)
    model.learn(200)
    assert DPG.env_wrapper({"reward_inputs": True}) is PreviousActionReward


# --------------------------------------------------------------------------- refusals


def test_unsupported_spaces_are_refused_with_the_space_named():
    with pytest.raises(ValueError, match=r"continuous \(Box\) action space, got Discrete\(2\)"):
        DPG(make_vec_env("CartPole-v1", n_envs=1))
    with pytest.raises(UsageError, match="dpg.*Discrete"):
        get_agent("dpg").check_spaces(spaces.Box(-1, 1, (2,)), spaces.Discrete(3))

    class SetObs(Reach1D):
        def __init__(self):
            super().__init__()
            self.observation_space = spaces.Tuple([spaces.Discrete(2), spaces.Discrete(3)])

    with pytest.raises(ValueError, match="Tuple"):
        DPG(DummyVecEnv([SetObs]))


def test_action_l2_pulls_the_actor_towards_zero_actions_where_the_critic_is_flat():
    out = {}
    for l2 in (0.0, 1.0):
        model = DPG(vec(Reach1D), seed=0, **SMALL, action_l2=l2)
        with torch.no_grad():  # a critic that values every action alike
            for p in model.policy.critic.parameters():
                p.zero_()
        obs = torch.rand(256, 1) * 2 - 1
        with torch.no_grad():
            model.policy.actor[-2].bias.fill_(1.0)  # start from actions well away from zero
        before = model.policy.actor(obs).square().mean().item()
        for _ in range(20):
            model._actor_step(obs)
        out[l2] = (before, model.policy.actor(obs).square().mean().item())
    assert out[0.0][1] == pytest.approx(out[0.0][0]), "no penalty, flat critic: no gradient at all"
    assert out[1.0][1] < 0.5 * out[1.0][0], "the penalty alone shrinks the actions"


@pytest.mark.parametrize("key, value, message", [
    ("batch_size", 0, "batch_size must be >= 1"),
    ("tau", 1.5, r"tau must be in \(0, 1\]"),
    ("gamma", -0.1, r"gamma must be in \[0, 1\]"),
    ("net_arch", [], "net_arch must be a non-empty list"),
    ("net_arch", [64, -1], "net_arch must be a non-empty list"),
    ("reward_weights", [1.0, 2.0, 3.0], "reward_weights needs 2 values"),
    ("reward_weights", {"pain": 1.0}, "reward_weights: unknown channel 'pain'"),
    ("channel_gammas", {"effort": 1.5}, r"channel_gammas must each be in \[0, 1\]"),
    ("her_terminal_channel", "reached", "her_terminal_channel: unknown channel 'reached'"),
    ("her_goal_selection_strategy", "past", "her_goal_selection_strategy must be one of"),
    ("policy_delay", 0, "policy_delay must be >= 1"),
    ("action_l2", -1.0, "action_l2 must be >= 0"),
])
def test_bad_hyperparameters_are_named(key, value, message):
    with pytest.raises(ValueError, match=message):
        DPG(vec(Reach1D), **{**SMALL, key: value})


def test_cli_trains_logs_and_resumes(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    args = ["--agent", "dpg", "--env", "Pendulum-v1", "--env-kwargs", "max_episode_steps=25", "--run-dir", str(run),
            "--no-progress", "--set", "net_arch=[32,32]", "--set", "learning_starts=50", "--set", "batch_size=32"]
    first = run_script("train.py", *args, "--total-steps", "200")
    assert first.returncode == 0, first.stderr
    second = run_script("train.py", "--resume", str(run), "--total-steps", "300", "--no-progress")
    assert second.returncode == 0, second.stderr
    tags = set()
    for events in run.glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    assert {"train/actor_loss", "train/critic_loss", "critic/value_reward", "rollout/ep_rew_mean"} <= tags
    assert (run / "checkpoints" / "final.safetensors").is_file()
    bad = run_script("train.py", "--agent", "dpg", "--env", "CartPole-v1", "--run-dir", str(tmp_path / "x"))
    assert bad.returncode == 2 and "Box" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------- experiments


@pytest.mark.parametrize("name", ["pendulum_dpg", "vector_critic"])
def test_experiment_quick_runs_end_to_end(name, tmp_path):
    import json

    proc = run_script("reproduce.py", name, "--quick", "--out", str(tmp_path), "--workers", "1", timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["runs"] and all(run["error"] is None for run in metrics["runs"])
    assert (tmp_path / "README.md").read_text().count("|") > 10
