"""`subgoal-c-m`: the generator learns through E only, finds a known optimum, C switches subgoals, end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import run_script
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from torch import nn

import envs  # noqa: F401  (registers mirabilis/*)
from agents.errors import UsageError
from agents.registry import get_agent
from agents.subgoal_cm import SubgoalCM

ENV = "mirabilis/StartGoalNav-v0"
SMALL = {"learning_starts": 150, "subgoal_starts": 300, "net_arch": [32, 32], "evaluator_net_arch": [32, 32],
         "generator_net_arch": [32, 32], "batch_size": 64, "evaluator_batch_size": 64, "generator_batch_size": 64,
         "evaluator_updates": 10, "generator_updates": 2, "her_terminal_channel": "reached", "buffer_size": 5000}


def nav(n_envs=1, **kwargs):
    return make_vec_env(ENV, n_envs=n_envs, seed=0, env_kwargs=kwargs)


def trained(steps=400, **hp):
    model = SubgoalCM(nav(max_steps=50), seed=0, **{**SMALL, **hp})
    model.learn(steps)
    return model


class ToyEvaluator(nn.Module):
    """A known cost in env units: E(a, b) = |a − b|² + w |a − c|² (leaving from far off the station c costs)."""

    def __init__(self, model: SubgoalCM, c, w: float):
        super().__init__()
        self.off, self.scale = model._g_off, model._g_scale
        self.c, self.w = torch.tensor(c, dtype=torch.float32), w
        self.dummy = nn.Parameter(torch.zeros(()))  # a weight, to show it never moves

    def forward(self, a, b):
        a, b = a * self.scale + self.off, b * self.scale + self.off
        return (a - b).square().sum(-1) + self.w * (a - self.c).square().sum(-1) + 0 * self.dummy


# --------------------------------------------------------------------------- the generator and E


@pytest.mark.parametrize("kind", ["feedforward", "recurrent"])
def test_the_generator_learns_only_through_E_and_E_does_not_move(kind):
    model = trained(300, n_subgoals=2, generator=kind)
    e_before = [p.detach().clone() for p in model.evaluator.parameters()]
    g_before = [p.detach().clone() for p in model.generator.parameters()]
    model.evaluator.zero_grad(set_to_none=True)
    model.train_generator(5)
    for p, q in zip(model.evaluator.parameters(), e_before):
        assert torch.equal(p, q), "the generator's update changed E"
        assert p.grad is None, "the generator's loss put gradients on E itself (not a frozen copy)"
    assert any(not torch.equal(p, q) for p, q in zip(model.generator.parameters(), g_before))
    # the gradient comes only through E: with E's output cut from the graph, the generator gets none
    start, goal = torch.tensor([[0.2, 0.2]]), torch.tensor([[0.8, 0.2]])

    class Constant(nn.Module):
        def forward(self, a, b):
            return (a * 0).sum(-1).detach() + 1.0

    loss = model.generator_loss(start, goal, Constant())
    assert not loss.requires_grad
    frozen = model.frozen_evaluator()
    assert all(not p.requires_grad for p in frozen.parameters())
    loss = model.generator_loss(start, goal, frozen)
    grads = torch.autograd.grad(loss, list(model.generator.parameters()), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("kind, k", [("feedforward", 1), ("feedforward", 2), ("recurrent", 2)])
def test_a_toy_evaluator_with_a_known_cost_gives_the_known_optimal_subgoals(kind, k):
    torch.manual_seed(0)
    model = SubgoalCM(nav(), seed=0, **{**SMALL, "n_subgoals": k, "generator": kind, "generator_lr": 3e-3})
    s, g, c, w = np.array([0.2, 0.2]), np.array([0.8, 0.2]), np.array([0.5, 0.9]), 2.0
    toy = ToyEvaluator(model, c, w)
    model.evaluator = toy
    pairs = (torch.tensor(s[None], dtype=torch.float32), torch.tensor(g[None], dtype=torch.float32))
    before = model.plan(s[None], g[None], k)[0]
    model.train_generator(800, pairs=pairs)
    assert float(toy.dummy.detach()) == 0.0
    # the optimum: for k = 1, s1 = (s + g + w c) / (2 + w); for k = 2, the linear system of the two stationarity
    # conditions  2(s1 − s) + 2(s1 − s2) + 2w(s1 − c) = 0,  2(s2 − s1) + 2(s2 − g) + 2w(s2 − c) = 0
    if k == 1:
        optimum = [(s + g + w * c) / (2 + w)]
    else:
        A = np.array([[2 + w, -1], [-1, 2 + w]])
        optimum = list(np.linalg.solve(A, np.stack([s + w * c, g + w * c])))
    got = model.plan(s[None], g[None], k)[0]
    assert np.abs(before - np.asarray(optimum)).max() > 0.1, "the straight line is not already optimal"
    np.testing.assert_allclose(got, np.asarray(optimum), atol=0.02)


class BlockedDisc(nn.Module):
    """E(a, b) = |a − b|² + 10 · (b lies in the disc of radius 0.2 around (0.5, 0.5)), the step smoothed to a
    0.01-wide rim: flat inside (no gradient there), as a learned E is flat at ``cost_cap`` behind a wall."""

    def __init__(self, model: SubgoalCM):
        super().__init__()
        self.off, self.scale = model._g_off, model._g_scale

    def forward(self, a, b):
        a, b = a * self.scale + self.off, b * self.scale + self.off
        inside = torch.sigmoid((0.2 - (b - torch.tensor([0.5, 0.5])).norm(dim=-1)) / 0.01)
        return (a - b).square().sum(-1) + 10.0 * inside


@pytest.mark.parametrize("kind", ["feedforward", "recurrent"])
def test_hypotheses_start_on_other_routes_and_E_picks_the_cheapest(kind):
    s, g = np.array([[0.2, 0.5]], np.float32), np.array([[0.8, 0.5]], np.float32)
    pairs = (torch.tensor(s), torch.tensor(g))
    costs = {}
    for hypotheses in (1, 9):
        torch.manual_seed(0)
        model = SubgoalCM(nav(), seed=0, **{**SMALL, "n_subgoals": 1, "generator": kind, "generator_lr": 3e-3,
                                            "generator_hypotheses": hypotheses})
        routes = model.routes(pairs[0], pairs[1], 3)[0].numpy()
        np.testing.assert_allclose(routes[0], [[0.35, 0.5], [0.5, 0.5], [0.65, 0.5]], atol=1e-6)  # the line
        if hypotheses > 1:  # every other route runs through its anchor (the middle of 3 subgoals sits on it)
            np.testing.assert_allclose(routes[1:, 1], model._anchors.numpy(), atol=1e-6)
            assert len(model._anchors) == 8 and model._anchors.std(0).min() > 0.15  # spread over the box
        model.evaluator = BlockedDisc(model)
        model.train_generator(300, pairs=pairs)
        chain = torch.as_tensor(model.plan(s, g, 1))
        costs[hypotheses] = float(model.chain_cost(pairs[0], pairs[1], chain))
        # the plan is the hypothesis with the least summed E
        every = model.candidate_chains(pairs[0], pairs[1], 1)[0]
        with torch.no_grad():
            each = model.chain_cost(pairs[0].expand(hypotheses, 2), pairs[1].expand(hypotheses, 2), every)
        assert costs[hypotheses] == pytest.approx(float(each.min()), abs=1e-6)
    assert costs[1] > 10.0, "the straight line's subgoal sits inside the disc, where E has no gradient"
    assert costs[9] < 1.0, "a hypothesis that started off the disc went round it"


# --------------------------------------------------------------------------- the executor


def test_the_executor_switches_subgoals_when_reached_and_replans_when_the_budget_runs_out():
    model = SubgoalCM(nav(), seed=0, **{**SMALL, "n_subgoals": 2, "subgoal_budget": 3})
    calls = []

    def fake_plan(start, goal, m=None, avoid=None):  # chain of m points: 0.3, 0.6 (x) on y = 0.5
        calls.append((np.asarray(start).copy(), m))
        xs = [0.3, 0.6][-m:]
        return np.array([[[x, 0.5] for x in xs]] * len(start), np.float32)

    model.plan = fake_plan
    goal = np.array([[0.9, 0.5]], np.float32)

    def obs(x):
        pos = np.array([[x, 0.5]], np.float32)
        return {"observation": pos, "achieved_goal": pos, "desired_goal": goal}

    state = np.full((1, model._state_width()), np.nan, np.float32)
    np.testing.assert_allclose(model._advance(obs(0.1), state, True), [[0.3, 0.5]])  # first subgoal
    assert calls[-1][1] == 2 and state[0, 0] == 2
    np.testing.assert_allclose(model._advance(obs(0.3), state, True), [[0.6, 0.5]])  # reached: the next one
    assert calls[-1][1] == 1 and state[0, 0] == 1 and state[0, 1] == 1
    n_calls = len(calls)
    for _ in range(2):  # not reached within the budget of 3 steps ...
        model._advance(obs(0.45), state, True)
    assert len(calls) == n_calls
    model._advance(obs(0.45), state, True)  # ... then a fresh chain from where the agent is
    assert len(calls) == n_calls + 1 and calls[-1][1] == 1
    np.testing.assert_allclose(calls[-1][0], [[0.45, 0.5]])
    np.testing.assert_allclose(model._advance(obs(0.6), state, True), goal)  # last subgoal reached: the goal
    assert state[0, 0] == 0
    # a subgoal_radius replaces the env's success test (goal_radius 0.05) for subgoals
    near = np.array([[0.33, 0.5]], np.float32), np.array([[0.3, 0.5]], np.float32)
    assert model._subgoal_reached(*near)[0]
    model.subgoal_radius = 0.02
    assert not model._subgoal_reached(*near)[0]
    model.subgoal_radius = None
    # predict keeps that state per env and resets it at episode starts
    model.plan = SubgoalCM.plan.__get__(model)
    batch = {k: np.repeat(v, 3, 0) for k, v in obs(0.1).items()}
    actions, st = model.predict(batch, None, np.ones(3, bool), deterministic=True)
    assert actions.shape == (3, 2) and st.shape == (3, model._state_width()) and np.all(st[:, 0] == 2)
    subgoals = SubgoalCM.subgoals_of(st, 2)
    assert len(subgoals) == 3 and subgoals[0].shape == (2, 2)
    assert np.all((subgoals[0] > 0) & (subgoals[0] < 1)), "subgoals inside the goal box"
    _, st2 = model.predict(batch, st, np.array([True, False, False]), deterministic=True)
    assert st2[0, 1] == 1 and st2[1, 1] == 2
    flat = SubgoalCM(nav(), seed=0, **{**SMALL, "n_subgoals": 0})
    _, st = flat.predict(batch, None, np.ones(3, bool), deterministic=True)
    assert np.all(st[:, 0] == 0)


def _line_obs(x, goal):
    pos = np.array([[x, 0.5]], np.float32)
    return {"observation": pos, "achieved_goal": pos, "desired_goal": np.array([goal], np.float32)}


class SquaredHops(nn.Module):
    """E(a, b) = |a − b|² in env units: straight, evenly split chains are the cheapest."""

    def __init__(self, model: SubgoalCM):
        super().__init__()
        self.off, self.scale = model._g_off, model._g_scale

    def forward(self, a, b):
        return ((a - b) * self.scale).square().sum(-1)


@pytest.mark.parametrize("keep", [False, True])
def test_keep_remaining_chain_holds_on_to_the_rest_of_the_chain_where_E_rates_it_cheaper(keep):
    model = SubgoalCM(nav(), seed=0, **{**SMALL, "n_subgoals": 2, "keep_remaining_chain": keep})
    model.evaluator = SquaredHops(model)
    first = [True]

    def fake_plan(start, goal, m=None, avoid=None):  # first a good chain, then a detour far off the line
        xs = [[0.3, 0.5], [0.6, 0.5]] if first[0] else [[0.45, 0.95]]
        first[0] = False
        return np.array([xs[-m:]] * len(start), np.float32)

    model.plan = fake_plan
    state = np.full((1, model._state_width()), np.nan, np.float32)
    model._advance(_line_obs(0.1, [0.9, 0.5]), state, True)
    commanded = model._advance(_line_obs(0.3, [0.9, 0.5]), state, True)  # s_1 reached: replanned
    expected = [0.6, 0.5] if keep else [0.45, 0.95]
    np.testing.assert_allclose(commanded, [expected])
    assert state[0, 0] == 1


def test_avoid_failed_subgoal_takes_another_hypothesis_when_a_budget_runs_out():
    model = SubgoalCM(nav(), seed=0, **{**SMALL, "n_subgoals": 1, "generator_hypotheses": 2, "subgoal_budget": 2})
    model.evaluator = SquaredHops(model)
    cheap, dear = [0.5, 0.5], [0.5, 0.8]

    def fake_candidates(start, goal, m, generator=None):
        return torch.tensor([[[cheap], [dear]]] * len(start), dtype=torch.float32)

    model.candidate_chains = fake_candidates
    s, g = torch.tensor([[0.1, 0.5]]), torch.tensor([[0.9, 0.5]])
    np.testing.assert_allclose(model.chain(s, g, 1).numpy(), [[cheap]])  # E's choice
    np.testing.assert_allclose(model.chain(s, g, 1, avoid=np.array([cheap], np.float32)).numpy(), [[dear]])
    both = torch.tensor([[[cheap], [[0.52, 0.5]]]], dtype=torch.float32)  # every hypothesis at the failed point:
    model.candidate_chains = lambda *a, **k: both  # E's choice all the same
    np.testing.assert_allclose(model.chain(s, g, 1, avoid=np.array([cheap], np.float32)).numpy(), [[cheap]])
    model.candidate_chains = fake_candidates
    for avoid, after in ((False, cheap), (True, dear)):
        model.avoid_failed_subgoal = avoid
        state = np.full((1, model._state_width()), np.nan, np.float32)
        assert np.allclose(model._advance(_line_obs(0.1, [0.9, 0.5]), state, True), [cheap])
        model._advance(_line_obs(0.2, [0.9, 0.5]), state, True)
        commanded = model._advance(_line_obs(0.2, [0.9, 0.5]), state, True)  # budget of 2 spent: replanned
        np.testing.assert_allclose(commanded, [after])


@pytest.mark.parametrize("replan", [False, True])
def test_replan_goal_leg_gives_the_goal_a_budget_too(replan):
    model = SubgoalCM(nav(), seed=0, **{**SMALL, "n_subgoals": 1, "subgoal_budget": 3, "replan_goal_leg": replan})
    calls = []

    def fake_plan(start, goal, m=None, avoid=None):  # first a subgoal at x = 0.5, then one off the line
        calls.append(m)
        return np.array([[[0.5, 0.5] if len(calls) == 1 else [0.7, 0.3]]] * len(start), np.float32)

    model.plan = fake_plan
    goal = [0.9, 0.5]
    state = np.full((1, model._state_width()), np.nan, np.float32)
    model._advance(_line_obs(0.1, goal), state, True)
    np.testing.assert_allclose(model._advance(_line_obs(0.5, goal), state, True)[0], [0.9, 0.5])  # on to the goal
    for _ in range(2):  # the goal not reached in the budget of 3 steps ...
        model._advance(_line_obs(0.5, goal), state, True)
    assert state[0, 0] == 0
    commanded = model._advance(_line_obs(0.5, goal), state, True)
    assert state[0, 0] == (1 if replan else 0)  # ... a fresh chain of n_subgoals from here, or the goal again
    np.testing.assert_allclose(commanded[0], [0.7, 0.3] if replan else goal)
    assert calls == ([1, 1] if replan else [1])


@pytest.mark.parametrize("full", [False, True])
def test_replan_full_chain_plans_n_subgoals_again_after_a_failed_leg_but_only_when_acting(full):
    model = SubgoalCM(nav(), seed=0, **{**SMALL, "n_subgoals": 2, "subgoal_budget": 3, "replan_full_chain": full})
    calls = []

    def fake_plan(start, goal, m=None, avoid=None):  # chains of m points off the line
        calls.append(m)
        return np.array([[[0.3, 0.5], [0.6, 0.3]][-m:]] * len(start), np.float32)

    model.plan = fake_plan
    goal = [0.9, 0.5]
    for training in (False, True):
        calls.clear()
        state = np.full((1, model._state_width()), np.nan, np.float32)
        model._advance(_line_obs(0.1, goal), state, True, training=training)
        model._advance(_line_obs(0.3, goal), state, True, training=training)  # s_1 reached: m = 1 to go
        assert state[0, 0] == 1
        for _ in range(3):  # s_2 not reached in the budget of 3 steps: a fresh chain from here
            commanded = model._advance(_line_obs(0.45, goal), state, True, training=training)
        again = full and not training  # training episodes are unchanged by the option
        assert calls == [2, 1, 2 if again else 1]
        assert state[0, 0] == (2 if again else 1) and state[0, 1] == 1
        np.testing.assert_allclose(commanded[0], [0.3, 0.5] if again else [0.6, 0.3])


@pytest.mark.parametrize("escape", [False, True])
def test_stuck_escape_replaces_the_move_after_a_stopped_one_by_a_random_action(escape):
    env = nav(layout="wall")
    model = SubgoalCM(env, seed=0, **{**SMALL, "n_subgoals": 0, "stuck_escape": escape})
    push = np.array([1.0, 1.0], np.float32)  # a deterministic C that presses into the wall at x = 0.48
    model.executor.predict = lambda obs, deterministic=False: (np.tile(push, (len(obs["desired_goal"]), 1)), None)
    nav_env = env.envs[0].unwrapped
    obs, _ = nav_env.reset(options={"start": np.array([0.46, 0.3]), "goal": np.array([0.6, 0.3])})
    state, actions, positions = None, [], [obs["achieved_goal"].copy()]
    for t in range(12):
        action, state = model.predict(obs, state, np.array([t == 0]), deterministic=True)
        actions.append(np.asarray(action).reshape(2))
        obs, *_ = nav_env.step(actions[-1])
        positions.append(obs["achieved_goal"].copy())
    np.testing.assert_allclose(actions[0], push)  # nothing stopped yet: C's own action
    np.testing.assert_allclose(positions[1], positions[0])  # ... which the wall stops
    moved = [not np.array_equal(a, b) for a, b in zip(positions, positions[1:])]
    if escape:  # each move after a stopped one is random, and some of those get C off the wall
        assert all(not np.allclose(a, push) for a, stopped in zip(actions[1:], moved) if not stopped)
        assert any(moved)
    else:  # C repeats the stopped move for ever
        assert not any(moved) and all(np.allclose(a, push) for a in actions)
    in_a_row = 0  # the state counts stopped moves in a row, up to the one before its last call
    for m in moved[:-1]:
        in_a_row = 0 if m else in_a_row + 1
    assert state[0, -3] == in_a_row == (in_a_row if escape else 11)


# --------------------------------------------------------------------------- end to end


def test_a_short_run_trains_E_logs_hrl_keys_and_plays_with_evaluate_policy(tmp_path):
    from stable_baselines3.common.logger import configure

    model = SubgoalCM(nav(2, max_steps=40), seed=0, **{**SMALL, "hrl_train_freq": 20, "log_interval": 2})
    model.set_logger(configure(str(tmp_path), ["csv"]))
    e_before = [p.detach().clone() for p in model.evaluator.parameters()]
    model.learn(700)
    assert model.num_timesteps == 700 and model._hrl_updates > 5
    assert any(not torch.equal(p, q) for p, q in zip(model.evaluator.parameters(), e_before))
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    for key in ("hrl/evaluator_loss", "hrl/generator_cost", "hrl/evaluator_error", "hrl/evaluator_corr",
                "train/critic_loss", "train/actor_loss", "rollout/success_rate"):
        assert key in header, key
    mean, _ = evaluate_policy(model, nav(2, max_steps=40), n_eval_episodes=4)
    assert np.isfinite(mean)
    assert model._train_state is not None and np.nanmax(model._train_state[:, 0]) <= 2
    report = model.evaluator_report(32)
    assert set(report) == {"evaluator_error", "evaluator_corr"}


def test_E_can_be_distilled_from_the_executors_critic_instead():
    model = SubgoalCM(nav(max_steps=50), seed=0, **{**SMALL, "evaluator_target": "critic", "cost_channel": "step_cost"})
    e_before = [p.detach().clone() for p in model.evaluator.parameters()]
    model.learn(400)
    assert any(not torch.equal(p, q) for p, q in zip(model.evaluator.parameters(), e_before))
    data = model.replay_buffer.sample(32)
    cost = model.critic_cost({k: v.float() for k, v in data.observations.items()})
    assert cost.shape == (32,) and torch.all((cost >= 0) & (cost <= model.cost_cap))
    with pytest.raises(ValueError, match="cost_channel: unknown channel 'pain'"):
        SubgoalCM(nav(), seed=0, **{**SMALL, "cost_channel": "pain"})


def test_the_attempt_log_turns_C_s_pursuits_into_observed_costs():
    from agents.subgoal_cm import AttemptLog

    log = AttemptLog(2, 100, budget=4, cap=60.0, rng=np.random.default_rng(0))
    target = np.array([0.5, 0.5], np.float32)
    for x in (0.1, 0.2, 0.3):
        log.follow(0, np.array([x, 0.5]), target)
    log.close(0, reached=True, point=np.array([0.45, 0.5]))  # reached in 3 steps
    rows = {(round(float(a[0]), 2), round(float(b[0]), 2)): float(c) for a, b, c in
            zip(log.start[:log.size], log.target[:log.size], log.cost[:log.size])}
    assert rows[(0.1, 0.5)] == 3 and rows[(0.2, 0.5)] == 2 and rows[(0.3, 0.5)] == 1  # cost from each point on the way
    hindsight = [c for (a, b), c in rows.items() if b != 0.5]
    assert hindsight and all(1 <= c <= 3 for c in hindsight)  # (p_i, p_j, j - i)
    size = log.size
    for _ in range(5):  # pursuing the goal itself for more than the budget: one failed attempt, a new one opened
        log.follow(1, np.array([0.9, 0.9]), target)
    assert log.failed == 1 and np.all(log.cost[size:log.size] == 60.0) and 1 in log.open
    size = log.size
    log.follow(1, np.array([0.8, 0.9]), np.array([0.1, 0.1], np.float32))  # a new target: the old attempt is cut short
    log.drop(1)
    assert log.size == size and log.reached == 1 and log.failed == 1


def test_E_fitted_on_C_s_attempts_learns_and_mixed_chains_vary_the_chain_length():
    model = SubgoalCM(nav(max_steps=50), seed=0, **{**SMALL, "evaluator_target": "attempts", "mixed_chains": True,
                                                    "n_subgoals": 2, "relative_goal": True})
    lengths = set()
    original = model._advance

    def spy(obs, state, active, log=None, mixed=False, **kwargs):
        fresh = np.isnan(state[:, 0]).copy()
        out = original(obs, state, active, log=log, mixed=mixed, **kwargs)
        lengths.update(int(v) for v in state[fresh, 0] if active)
        return out

    model._advance = spy
    e_before = [p.detach().clone() for p in model.evaluator.parameters()]
    model.learn(800)
    assert lengths == {0, 1, 2}  # every chain length from the flat pursuit to n_subgoals
    assert model._attempts.reached + model._attempts.failed > 10 and len(model._attempts) > 50
    assert any(not torch.equal(p, q) for p, q in zip(model.evaluator.parameters(), e_before))
    costs = model._attempts.cost[:len(model._attempts)]
    assert np.all((costs >= 1) & (costs <= model.cost_cap))
    assert model.executor.policy.features_dim == 8  # achieved, desired, observation and desired - achieved


def test_refit_evaluator_follows_the_latest_attempts_and_rejects_what_it_cannot_use():
    model = SubgoalCM(nav(), seed=0, **{**SMALL, "evaluator_target": "attempts"})
    log, rng = model._attempts, np.random.default_rng(0)
    start = rng.uniform(0.05, 0.95, (400, 2)).astype(np.float32)
    target = np.clip(start + rng.uniform(-0.1, 0.1, (400, 2)), 0, 1).astype(np.float32)
    log._add(start, target, np.full(400, 60.0, np.float32))  # early on C failed these legs ...
    log._add(start[:200], target[:200], np.full(200, 3.0, np.float32))  # ... lately it reaches them in 3 steps
    np.testing.assert_array_equal(log.latest(1 / 3)[2], 3.0)
    model._fit_attempts(300)  # E fit on the whole log sits between the two
    assert model.evaluate_cost(start[:200], target[:200]).mean() > 20
    model.refit_evaluator(share=1 / 3, updates=300)
    assert model.evaluate_cost(start[:200], target[:200]).mean() < 8
    for share in (0, 1.5, "half"):
        with pytest.raises(ValueError, match="share"):
            model.refit_evaluator(share=share)
    with pytest.raises(ValueError, match="fewer than evaluator_batch_size"):
        model.refit_evaluator(share=0.01)
    with pytest.raises(ValueError, match="attempts"):
        SubgoalCM(nav(), seed=0, **SMALL).refit_evaluator()


def test_relative_goal_appends_where_the_goal_lies_from_here():
    from agents.dpg import DPG

    model = DPG(nav(), relative_goal=True, net_arch=[8], seed=0)
    obs = {"achieved_goal": torch.tensor([[0.2, 0.3]]), "desired_goal": torch.tensor([[0.7, 0.1]]),
           "observation": torch.tensor([[0.2, 0.3]])}
    np.testing.assert_allclose(model.policy.features(obs)[0, -2:].numpy(), [0.5, -0.2], atol=1e-6)
    with pytest.raises(ValueError, match="relative_goal needs a Dict observation"):
        DPG(make_vec_env("Pendulum-v1", n_envs=1), relative_goal=True)


def test_save_load_round_trip(tmp_path):
    model = trained(350, n_subgoals=3, generator="recurrent")
    model.set_generator(1, "feedforward", hypotheses=3)
    model.train_generator(3)
    path = tmp_path / "sg.safetensors"
    model.save(path)
    loaded = SubgoalCM.load(path)
    assert loaded.n_subgoals == 1 and loaded.generator_kind == "feedforward" and loaded.generator_hypotheses == 3
    assert loaded.num_timesteps == model.num_timesteps == loaded.executor.num_timesteps
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.1, 0.9, (8, 2)), rng.uniform(0.1, 0.9, (8, 2))
    np.testing.assert_array_equal(model.evaluate_cost(a, b), loaded.evaluate_cost(a, b))
    np.testing.assert_array_equal(model.plan(a, b), loaded.plan(a, b))
    obs = {"observation": a.astype(np.float32), "achieved_goal": a.astype(np.float32),
           "desired_goal": b.astype(np.float32)}
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    loaded.learn(60, reset_num_timesteps=False)  # without its replay: C waits for a finished episode, then trains
    assert loaded.num_timesteps == model.num_timesteps + 60
    # a checkpoint with its replay (what train.py's latest.safetensors holds) trains on
    from agents.persistence import load_agent, save_agent

    latest = save_agent(model, tmp_path / "latest.safetensors", "subgoal-c-m", model.hyperparams, ENV,
                        {"max_steps": 50}, 0, include_buffer=True)
    resumed = load_agent(latest)
    assert resumed.replay_buffer.pos == model.replay_buffer.pos
    resumed.learn(60, reset_num_timesteps=False)
    assert resumed.num_timesteps == model.num_timesteps + 60


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("key, value", [
    ("n_subgoals", -1), ("n_subgoals", 9), ("generator", "lstm"), ("subgoal_budget", 0), ("subgoal_margin", 0.5),
    ("evaluator_expectile", 1.0), ("evaluator_tau", 0.0), ("evaluator_random_goals", 1.5), ("cost_cap", 0.0),
    ("evaluator_net_arch", []), ("generator_net_arch", [8, -1]), ("evaluator_lr", -1.0), ("hrl_train_freq", 0),
    ("batch_size", 0), ("evaluator_target", "mc"), ("subgoal_radius", 0.0), ("generator_hypotheses", 0),
    ("generator_hypotheses", 65), ("keep_remaining_chain", 1), ("avoid_failed_subgoal", "yes"),
    ("replan_goal_leg", None), ("stuck_escape", "on"), ("replan_full_chain", 1), ("action_l2", -0.5),
])
def test_bad_hyperparameters_are_named(key, value):
    with pytest.raises(ValueError, match=key):
        SubgoalCM(nav(), seed=0, **{**SMALL, key: value})


def test_non_goal_envs_are_refused_with_the_space_named():
    with pytest.raises(ValueError, match="goal-conditioned Dict observation space"):
        SubgoalCM(make_vec_env("Pendulum-v1", n_envs=1))
    with pytest.raises(UsageError, match="subgoal-c-m"):
        get_agent("subgoal-c-m").check_spaces(spaces.Box(-1, 1, (2,)), spaces.Box(-1, 1, (2,)))
    assert get_agent("subgoal-c-m").schema()["n_subgoals"].default == 2


def test_reproduce_quick_end_to_end(tmp_path):
    proc = run_script("reproduce.py", "subgoals", "--quick", "--workers", "1", "--out", str(tmp_path), timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "metrics.json").read_text())
    labels = {run["label"] for run in data["runs"]}
    assert labels == {f"{label}@u" for label in ("flat", "subgoal-c-m/k1", "subgoal-c-m/k2", "subgoal-c-m/k3",
                                                 "subgoal-c-m/recurrent", "subgoal-c-m/k3-h9",
                                                 "subgoal-c-m/recurrent-h9", "sac")}
    for run in data["runs"]:
        assert run["error"] is None
        assert 0.0 <= run["metrics"]["success_rate"] <= 1.0
        if run["agent"] == "subgoal-c-m":
            assert np.isfinite(run["metrics"]["evaluator_corr"])
    readme = (tmp_path / "README.md").read_text()
    assert "Quick mode" in readme and "## Target" in readme
    for name in ("curves.png", "chains_u.png", "episode_subgoals.gif"):
        assert (tmp_path / name).stat().st_size > 1000, name
