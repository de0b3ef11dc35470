"""``planner-c-m``: C trained by back-propagation through a frozen recurrent world model M."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import run_script
from gymnasium import spaces
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

import envs  # noqa: F401
from agents.persistence import load_agent, save_agent
from agents.planner_cm import PlannerCM
from agents.registry import get_agent
from agents.runner import make_vec_env


class Reach(gym.Env):
    """A tiny planning problem: move a point on a line to a goal named by an input, in 3 steps.

    obs = [x, goal]; a move ``a`` (Box(-1, 1), scaled by 0.5) or, discrete, one of {-0.5, 0, +0.5}
    with start and goal on the lattice {-1, -0.5, 0, 0.5, 1}; reward = -|x' - goal| every step;
    episodes of 3 steps. A random policy ends about 0.6 from the goal, the best one near 0.
    """

    def __init__(self, discrete: bool = False):
        self.discrete = discrete
        self.observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = spaces.Discrete(3) if discrete else spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        if self.discrete:
            self.x, self.goal = (float(v) for v in self.np_random.integers(-2, 3, 2) / 2)
        else:
            self.x, self.goal = (float(v) for v in self.np_random.uniform(-0.9, 0.9, 2))
        self.t = 0
        return self._obs(), {}

    def _obs(self):
        return np.array([self.x, self.goal], np.float32)

    def step(self, action):
        move = (int(action) - 1) * 0.5 if self.discrete else 0.5 * float(np.clip(action[0], -1, 1))
        self.x = float(np.clip(self.x + move, -1, 1))
        self.t += 1
        distance = abs(self.x - self.goal)
        done = self.t >= 3
        return self._obs(), -distance, False, done, {"is_success": bool(done and distance < 0.2), "distance": distance}


def reach_env(n_envs=4, discrete=False):
    return DummyVecEnv([lambda: Monitor(Reach(discrete)) for _ in range(n_envs)])


def final_distance(model, discrete=False, episodes=40) -> float:
    env, out = Reach(discrete), []
    for i in range(episodes):
        obs, _ = env.reset(seed=10_000 + i)
        state, start, done, info = None, np.ones(1, bool), False, {}
        while not done:
            action, state = model.predict(obs[None], state, start, deterministic=True)
            start = np.zeros(1, bool)
            obs, _, _, done, info = env.step(action[0])
        out.append(info["distance"])
    return float(np.mean(out))


def collected(model, steps=256):
    """Fill the agent's replay with ``steps`` env steps (random actions: learning_starts is large)."""
    _, callback = model._setup_learn(10**6, None)
    while model.num_timesteps < steps:
        model.collect(callback)
    return model


# ----------------------------------------------------------------------------- the gradient paths


def test_gradients_flow_from_M_predicted_reward_into_C_and_not_into_M():
    model = collected(PlannerCM(reach_env(), seed=0, **{**TINY, "learning_starts": 10**6, "horizon": 1}))
    model.train_model()
    w = model.replay_buffer.sample(4, 8, model._rng)
    with torch.no_grad():  # no critic: the objective is M's predicted reward alone
        model.critic.weights[-1].zero_()
        model.critic.biases[-1].zero_()
    m_before = {k: v.clone() for k, v in model.world_model.state_dict().items()}
    with model.frozen():
        assert not any(p.requires_grad for p in model.world_model.parameters())
        loss, _ = model.controller_loss(w)
        loss.backward()
    assert all(p.grad is None for p in model.world_model.parameters()), "M received gradients during C's update"
    assert all(p.grad is None for p in model.critic.parameters())
    grad = model.controller.head.weight.grad
    assert grad is not None and grad.abs().sum() > 0, "no gradient reached C from M's predicted reward"
    assert all(p.requires_grad for p in model.world_model.parameters()), "M must be unfrozen afterwards"

    # The gradient is M's: with M's reward head silenced, C gets none (Box actions: no entropy term).
    model.controller.zero_grad(set_to_none=True)
    with torch.no_grad():
        model.world_model.reward_head.weight.zero_()
        model.world_model.reward_head.bias.zero_()
    with model.frozen():
        loss, _ = model.controller_loss(w)
        loss.backward()
    assert float(model.controller.head.weight.grad.abs().sum()) == 0.0

    # A whole controller update changes C and leaves M exactly as it was.
    model.world_model.load_state_dict(m_before)
    c_before = [p.clone() for p in model.controller.parameters()]
    logs = model.train_controller()
    assert {"train/actor_loss", "planner/imagined_return"} <= logs.keys()
    for key, value in model.world_model.state_dict().items():
        torch.testing.assert_close(value, m_before[key], rtol=0, atol=0)
    assert any(not torch.equal(a, b) for a, b in zip(c_before, model.controller.parameters()))


#: Small networks for the tiny problems: the tests must stay fast on a loaded 2-core machine.
TINY = {"learning_starts": 300, "n_steps": 8, "horizon": 3, "seq_len": 6, "actor_updates": 4, "critic_updates": 4,
        "model_updates": 4, "model_hidden_size": 32, "controller_size": 32, "critic_size": 32, "model_batch_size": 8,
        "critic_batch_size": 8, "pretrain_updates": 40, "actor_lr": 1e-3}


def test_tiny_planning_problem_is_solved_in_seconds():
    model = PlannerCM(reach_env(n_envs=4), seed=0, action_noise_std=0.2, exploration_eps=0.1, **TINY)
    untrained = final_distance(model)
    model.learn(1600)
    trained = final_distance(model)
    print(f"Reach: final distance to the goal {untrained:.3f} untrained -> {trained:.3f} after 1600 steps")
    assert trained < 0.15 and trained < 0.3 * untrained


# ----------------------------------------------------------------------------- discrete actions


def test_discrete_straight_through_estimator():
    model = PlannerCM(reach_env(discrete=True), seed=0, learning_starts=10**6)
    logits = torch.tensor([[0.3, -1.0, 2.0], [0.0, 0.0, 0.0]], requires_grad=True)
    torch.manual_seed(0)
    action, entropy = model._imagined_action(logits)
    # forward: an exact one-hot of a sampled action
    assert torch.equal(action.detach().sum(-1), torch.ones(2)) and set(action.detach().unique().tolist()) <= {0.0, 1.0}
    # backward: d action / d logits is the softmax Jacobian (the straight-through estimator)
    upstream = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]])
    (action * upstream).sum().backward()
    p = torch.softmax(logits.detach(), -1)
    expected = p * (upstream - (p * upstream).sum(-1, keepdim=True))
    torch.testing.assert_close(logits.grad, expected)
    assert entropy.shape == (2,) and float(entropy[1].detach()) == pytest.approx(np.log(3), abs=1e-5)


def test_discrete_planner_learns_the_tiny_problem_through_straight_through_actions():
    model = PlannerCM(reach_env(n_envs=4, discrete=True), seed=0, ent_coef=0.003, **TINY)
    assert model.discrete_gradient == "straight-through"
    untrained = final_distance(model, discrete=True)
    model.learn(1600)
    trained = final_distance(model, discrete=True)
    print(f"Reach (discrete, straight-through): final distance {untrained:.3f} untrained -> {trained:.3f}")
    assert trained < 0.6 * untrained


# ----------------------------------------------------------------------------- API, spaces, checkpoints


def test_unsupported_spaces_and_bad_hyperparameters_are_refused():
    class DictObs(gym.Env):
        observation_space = spaces.Dict({"a": spaces.Box(0, 1, (2,))})
        action_space = spaces.Box(-1, 1, (1,))

    class MultiAction(gym.Env):
        observation_space = spaces.Box(0, 1, (2,))
        action_space = spaces.MultiDiscrete([2, 3])

    for env_cls, what in ((DictObs, "observation"), (MultiAction, "action")):
        with pytest.raises(ValueError, match=f"Box and Discrete {what} spaces; got the {what} space (Dict|MultiDiscrete)"):
            PlannerCM(DummyVecEnv([env_cls]), seed=0)
    for name, value in (("horizon", 0), ("gamma", 1.5), ("controller", "lstm"), ("model_rnn", "rnn"),
                        ("discrete_gradient", "gumbel"), ("tau", 0.0), ("actor_lr", -1.0)):
        with pytest.raises(ValueError, match=name):
            PlannerCM(reach_env(1), seed=0, **{name: value})
    with pytest.raises(ValueError, match="channel_gammas: unknown channel 'nope'"):
        PlannerCM(reach_env(1), seed=0, channel_gammas={"nope": 0.9})


def test_evaluate_policy_and_save_load_round_trip(tmp_path):
    env = make_vec_env("mirabilis/POMaze-v0", {"size": 5, "task": "flag", "fixed_maze": True}, 2, 0)
    hp = {"learning_starts": 64, "n_steps": 16, "seq_len": 8, "horizon": 3, "model_hidden_size": 32, "pretrain_updates": 8,
          "controller_size": 16, "critic_size": 32}
    model = PlannerCM(env, seed=0, **hp)
    model.learn(256)
    mean, _ = evaluate_policy(model, env, n_eval_episodes=2)
    assert np.isfinite(mean)
    spec = get_agent("planner-c-m")
    path = save_agent(model, tmp_path / "latest.safetensors", "planner-c-m", {**model.hyperparams},
                      "mirabilis/POMaze-v0", {"size": 5, "task": "flag", "fixed_maze": True}, 0, include_buffer=True)
    loaded = load_agent(path, env=env, expected_agent="planner-c-m")
    assert isinstance(loaded, PlannerCM) and loaded.num_timesteps == model.num_timesteps
    for name in ("controller", "world_model", "critic", "critic_target"):
        for (k, a), b in zip(getattr(model, name).state_dict().items(), getattr(loaded, name).state_dict().values()):
            torch.testing.assert_close(a, b, msg=f"{name}.{k}")
    assert loaded.replay_buffer.pos == model.replay_buffer.pos
    np.testing.assert_array_equal(loaded.replay_buffer.data["obs"], model.replay_buffer.data["obs"])
    obs = np.stack([env.observation_space.sample() for _ in range(3)])
    state = np.random.default_rng(0).normal(size=(3, model.controller_size)).astype(np.float32)
    a1, s1 = model.predict(obs, state, np.zeros(3, bool), deterministic=True)
    a2, s2 = loaded.predict(obs, state, np.zeros(3, bool), deterministic=True)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_allclose(s1, s2)
    # a checkpoint with its replay loads into fewer envs too (e.g. to watch it); training there starts a new replay
    one = load_agent(path, env=make_vec_env("mirabilis/POMaze-v0", {"size": 5, "task": "flag", "fixed_maze": True}, 1, 0))
    one.learn(32, reset_num_timesteps=False)
    assert one.replay_buffer.n_envs == 1
    # SB3's own method names work too, and training continues from the checkpoint
    model.save(tmp_path / "final.safetensors")
    again = PlannerCM.load(tmp_path / "final.safetensors", env=env)
    again.learn(64, reset_num_timesteps=False)
    assert again.num_timesteps >= model.num_timesteps + 64
    assert spec.schema()["horizon"].default == 5


# ----------------------------------------------------------------------------- scripts


def test_train_py_fovea_tensorboard_checkpoints_and_resume(tmp_path):
    run_dir = tmp_path / "run"
    args = ["--agent", "planner-c-m", "--env", "mirabilis/FoveaSearch-v0", "--n-envs", "2", "--no-progress",
            "--set", "learning_starts=100", "--set", "log_interval=2", "--set", "model_hidden_size=32",
            "--set", "controller_size=16", "--set", "critic_size=32", "--set", "model_updates=1",
            "--set", "critic_updates=1", "--set", "actor_updates=1", "--set", "pretrain_updates=4",
            "--set", "n_steps=8", "--run-dir", str(run_dir)]
    proc = run_script("train.py", *args, "--total-steps", "300", timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (run_dir / "checkpoints" / "final.safetensors").is_file()
    proc = run_script("train.py", "--resume", str(run_dir), "--total-steps", "450", "--no-progress", timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: set[str] = set()
    steps: list[int] = []
    for events in run_dir.glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
        steps += [e.step for e in acc.Scalars("planner/imagined_return")] if "planner/imagined_return" in acc.Tags()[
            "scalars"] else []
    for tag in ("world_model/loss", "world_model/reward_loss", "planner/imagined_return",
                "planner/model_error_on_imagined_states", "train/actor_loss", "train/critic_loss",
                "values/found", "rollout/success_rate"):
        assert tag in tags, tag
    assert max(steps) > 300, "the resumed run logs on the same curve, past the first run's steps"
    config = (run_dir / "config.yaml").read_text()
    assert "horizon: 2" in config  # agents/hyperparams/planner-c-m.yml's FoveaSearch section


@pytest.mark.parametrize("name", ["fovea", "flag_maze"])
def test_reproduce_quick_end_to_end(tmp_path, name):
    out = tmp_path / name
    # one worker: the runs are tiny, and in-process they skip a torch import per run
    proc = run_script("reproduce.py", name, "--quick", "--workers", "1", "--out", str(out), timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((out / "metrics.json").read_text())
    assert data["experiment"] == name and data["quick"] is True
    assert all(run["error"] is None for run in data["runs"])
    labels = {run["label"] for run in data["runs"]}
    readme = (out / "README.md").read_text()
    assert "Quick mode" in readme and "## Target" in readme
    assert (out / "curves.png").stat().st_size > 1000
    if name == "fovea":
        assert labels == {"planner-c-m", "ppo", "dpg", "random-saccades", "oracle"}
        oracle = next(r for r in data["runs"] if r["label"] == "oracle")["metrics"]
        assert oracle["find_rate"] == 1.0 and oracle["mean_saccades"] <= 2.0
        for run in data["runs"]:
            assert 0.0 <= run["metrics"]["find_rate"] <= 1.0 and "find_rate_kind0" in run["metrics"]
        assert (out / "fixations.png").stat().st_size > 1000
        assert (out / "episode_planner_c_m.gif").stat().st_size > 1000
    else:
        assert labels == {"planner-c-m", "planner-c-m/feedforward-C", "recurrent-ppo", "ppo"}
        for run in data["runs"]:
            metrics = run["metrics"]
            assert 0.0 <= metrics["success_rate"] <= 1.0 and isinstance(metrics["solved"], bool)
            assert metrics["shortest_path"] > 0
        ff = next(r for r in data["runs"] if r["label"] == "planner-c-m/feedforward-C")
        assert ff["hyperparams"]["controller"] == "feedforward"
        assert (out / "episode_planner_c_m.gif").stat().st_size > 1000


# ----------------------------------------------------------------------------- spatial_readout (world_models/retina.py)


def test_spatial_readout_gives_C_the_gradient_of_M_read_out_at_the_landing_point_and_survives_save_load(tmp_path):
    env = make_vec_env("mirabilis/FoveaSearch-v0", {}, 2, 0)
    model = collected(PlannerCM(env, seed=0, spatial_readout=True, model_reward_loss="bernoulli",
                                **{**TINY, "learning_starts": 10**6, "horizon": 1}), steps=64)
    assert model.world_model.readout is not None and model.controller.saccade_head is not None
    w = model.replay_buffer.sample(4, 4, model._rng)
    # C's shortcuts on the real window give what its step gives: the state alone, the output from given logits
    scaled, c = model._scaled(w["obs"][0]), torch.randn(4, model.controller.size)
    out, c_next = model.controller.step(scaled, c)
    torch.testing.assert_close(model.controller.recur(scaled, c), c_next)
    logits = model.controller.saccade_head.logits(w["obs"][0])
    torch.testing.assert_close(model.controller.step(scaled, c, saccade_logits=logits)[0], out)
    with torch.no_grad():  # M's reward and termination come from the read-out alone, and there is no critic
        for head in (model.world_model.reward_head, model.world_model.termination_head):
            head.weight.zero_()
            head.bias.zero_()
        model.critic.weights[-1].zero_()
        model.critic.biases[-1].zero_()
    with model.frozen():
        loss, _ = model.controller_loss(w)
        loss.backward()
    assert all(p.grad is None for p in model.world_model.parameters()), "M received gradients during C's update"
    grads = [p.grad for p in model.controller.saccade_head.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
    # the predicted rewards of the Bernoulli channels stay within the env's reward_space
    batch = model.replay_buffer.sample(4, 4, model._rng)
    with torch.no_grad():
        prediction, _ = model.world_model.forward_sequence(batch["obs"], batch["actions"], batch["starts"])
    assert float(prediction.reward[..., 0].min()) >= 0.0 and float(prediction.reward[..., 0].max()) <= 1.0
    path = save_agent(model, tmp_path / "final.safetensors", "planner-c-m", {**model.hyperparams},
                      "mirabilis/FoveaSearch-v0", {}, 0)
    loaded = load_agent(path, env=env, expected_agent="planner-c-m")
    obs = np.stack([env.observation_space.sample() for _ in range(3)])
    a1, _ = model.predict(obs, None, np.ones(3, bool), deterministic=True)
    a2, _ = loaded.predict(obs, None, np.ones(3, bool), deterministic=True)
    np.testing.assert_array_equal(a1, a2)


def test_spatial_readout_is_refused_where_there_is_no_retina_or_no_continuous_saccade():
    with pytest.raises(ValueError, match="retina observation"):
        PlannerCM(reach_env(1), seed=0, spatial_readout=True)
    with pytest.raises(ValueError, match="continuous"):
        PlannerCM(make_vec_env("mirabilis/FoveaSearch-v0", {"action_type": "discrete"}, 1, 0), seed=0,
                  spatial_readout=True)
    for name, value in (("model_reward_loss", "huber"), ("spatial_readout", "yes"), ("deterministic_saccade", "mode"),
                        ("deterministic_saccade", "argmax"),  # argmax without a saccade head
                        ("saccade_from_core", False), ("saccade_from_core", "no"),  # False: no saccade head
                        ("candidate_imitation", 0.5), ("candidate_imitation", -1)):  # 0.5: no candidates
        with pytest.raises(ValueError, match=name):
            PlannerCM(reach_env(1), seed=0, **{name: value})


def test_deterministic_argmax_saccade_goes_to_the_most_probable_pixel_and_sampling_is_unchanged():
    env = make_vec_env("mirabilis/FoveaSearch-v0", {}, 1, 0)
    models = {choice: PlannerCM(env, seed=0, spatial_readout=True, deterministic_saccade=choice, **TINY)
              for choice in ("soft-argmax", "argmax")}
    for model in models.values():
        with torch.no_grad():  # C's saccade is the saccade head's alone
            model.controller.head.weight.zero_()
            model.controller.head.bias.zero_()
    obs = np.stack([env.observation_space.sample() for _ in range(6)])
    head = models["argmax"].controller.saccade_head
    with torch.no_grad():
        logits = head.logits(torch.as_tensor(obs))
        most_probable = head.candidates[logits.argmax(-1)].clamp(-1.0, 1.0).numpy()
        mean = head.saccade(logits).numpy()
    argmax_action, _ = models["argmax"].predict(obs, None, np.ones(6, bool), deterministic=True)
    mean_action, _ = models["soft-argmax"].predict(obs, None, np.ones(6, bool), deterministic=True)
    np.testing.assert_allclose(argmax_action, most_probable, atol=2e-3)
    np.testing.assert_allclose(mean_action, mean, atol=1e-4)
    assert np.abs(argmax_action - mean_action).max() > 0.05  # untrained, the softmax is spread: mean != mode
    # the choice only concerns deterministic actions: sampled ones (training, sampled evaluation) are the same
    for model in models.values():
        model._rng = np.random.default_rng(0)
    torch.manual_seed(0)
    sampled_argmax, _ = models["argmax"].predict(obs, None, np.ones(6, bool), deterministic=False)
    torch.manual_seed(0)
    sampled_mean, _ = models["soft-argmax"].predict(obs, None, np.ones(6, bool), deterministic=False)
    np.testing.assert_allclose(sampled_argmax, sampled_mean, atol=1e-6)


def test_without_the_core_term_C_saccades_exactly_to_the_candidates_whose_predicted_rewards_it_ranks():
    """``saccade_from_core=False``: the deterministic saccade is the most probable candidate itself, and the candidates'
    predicted rewards are M's predictions at those saccades (listed one by one); with the core's output added (the
    default) the saccades land elsewhere."""
    env = make_vec_env("mirabilis/FoveaSearch-v0", {}, 1, 0)
    env.observation_space.seed(0)
    obs = np.stack([env.observation_space.sample() for _ in range(8)])
    actions = {}
    for from_core in (True, False):
        model = PlannerCM(env, seed=0, spatial_readout=True, model_reward_loss="bernoulli",
                          deterministic_saccade="argmax", saccade_from_core=from_core, **TINY)
        with torch.no_grad():
            model.controller.head.bias.copy_(torch.tensor([0.4, -0.3]))  # a core output far from 0
        actions[from_core], _ = model.predict(obs, None, np.ones(8, bool), deterministic=True)
    head, x = model.controller.saccade_head, torch.as_tensor(obs)
    with torch.no_grad():
        most_probable = head.candidates[head.logits(x).argmax(-1)].clamp(-1.0, 1.0)
        rewards = model.candidate_rewards(x)  # [8, K, C]
        for k in (0, 70, 150, 191):
            listed, _ = model.world_model.readout_predictions(x, head.candidates[k].clamp(-1.0, 1.0).expand(8, 1, 2))
            torch.testing.assert_close(rewards[:, k], listed[:, 0], atol=1e-4, rtol=1e-3)
    np.testing.assert_allclose(actions[False], most_probable.numpy(), atol=2e-3)
    moved = np.abs(actions[True] - actions[False])
    inside = np.abs(actions[False]) < 0.99  # a saccade to the edge of the jump range stays there
    assert inside.any() and (moved[inside] > 0.05).all()  # the core's output moves every other saccade


def test_candidate_imitation_pulls_C_to_M_best_candidate_as_hard_however_small_the_spread_of_M_ratings():
    """``candidate_imitation``: a cross-entropy pulls C's softmax to the candidate M rates best, as hard when M's
    ratings differ by little (far targets, where no single saccade is a likely find) as when they differ clearly;
    the expectation of M's ratings alone pulls in proportion to their spread."""
    env = make_vec_env("mirabilis/FoveaSearch-v0", {}, 2, 0)
    model = collected(PlannerCM(env, seed=0, spatial_readout=True, model_reward_loss="bernoulli",
                                saccade_from_core=False, **{**TINY, "learning_starts": 10**6, "horizon": 1}), steps=64)
    w = model.replay_buffer.sample(4, 4, model._rng)
    ranking = torch.randn(1, 192, 1, generator=torch.Generator().manual_seed(0))  # one rating per candidate

    def saccade_head_gradient(spread: float, imitation: float) -> torch.Tensor:
        def rated(obs):  # M's ratings: the fixed ranking on the first channel, 0 on the others
            ratings = torch.zeros(obs.shape[0], 192, len(model.channels))
            ratings[..., :1] = 0.5 + spread * ranking
            return ratings
        model.candidate_rewards, model.candidate_imitation = rated, imitation
        model.controller.zero_grad(set_to_none=True)
        torch.manual_seed(0)  # the same imagined action noise every time
        with model.frozen():
            loss, _ = model.controller_loss(w)
            loss.backward()
        return torch.cat([p.grad.flatten() for p in model.controller.saccade_head.parameters()])

    flat = saccade_head_gradient(0.0, 0.0)
    expectation_pull = {s: saccade_head_gradient(s, 0.0) - flat for s in (1e-3, 1.0)}
    imitation_pull = {s: saccade_head_gradient(s, 1.0) - saccade_head_gradient(s, 0.0) for s in (1e-3, 1.0)}
    assert expectation_pull[1e-3].norm() < 0.01 * expectation_pull[1.0].norm()
    torch.testing.assert_close(imitation_pull[1e-3], imitation_pull[1.0], rtol=1e-4, atol=1e-6)
    assert imitation_pull[1.0].norm() > 0.1 * expectation_pull[1.0].norm()
    # the pull points to M's best candidate: a small step along it raises that candidate's probability everywhere
    best = int(ranking.flatten().argmax())
    head = model.controller.saccade_head
    obs = w["obs"].reshape(-1, w["obs"].shape[-1])
    with torch.no_grad():
        before = torch.softmax(head.logits(obs), -1)[:, best]
        offset = 0
        for p in head.parameters():
            p -= 1e-2 * imitation_pull[1.0][offset:offset + p.numel()].view_as(p) / imitation_pull[1.0].norm()
            offset += p.numel()
        after = torch.softmax(head.logits(obs), -1)[:, best]
    assert (after > before).all()
