"""FoveaSearch and StartGoalNav: the env contract, their rules, and scripted reference policies."""

from __future__ import annotations

import math
import os
import warnings

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envs.geometry import segments_hit
from envs.start_goal_nav import LAYOUTS, PLAN_MARGIN
from tests.env_contract import assert_env_contract, assert_human_render, render_frame

FOVEA, NAV = "mirabilis/FoveaSearch-v0", "mirabilis/StartGoalNav-v0"
FAST = settings(max_examples=15, deadline=None, derandomize=True)


# --------------------------------------------------------------------------- the contract


@pytest.mark.parametrize(
    "env_id, kwargs",
    [
        (FOVEA, {}),
        (FOVEA, {"action_type": "discrete"}),
        (FOVEA, {"clutter": 0.4}),
        (FOVEA, {"clutter": 0.0, "fovea_start": "random"}),
        (FOVEA, {"n_kinds": 6, "n_objects": 5, "distinct_kinds": True, "max_saccades": 5}),
        (FOVEA, {"scene_size": 96, "glimpse_size": 12, "n_scales": 4, "scale_ratio": 2, "weights": (1, 0.1, 0.5)}),
        (FOVEA, {"scene_size": 48, "glimpse_size": 6, "n_scales": 3, "scale_ratio": 3, "n_objects": 1}),
        (NAV, {}),
        (NAV, {"layout": "open"}),
        (NAV, {"layout": "u"}),
        (NAV, {"layout": "rooms"}),
        (NAV, {"layout": "wall", "far_pairs": True}),
        (NAV, {"layout": "u", "far_pairs": True}),
        (NAV, {"layout": "rooms", "far_pairs": True, "weights": (1.0, 1.0, 0.5)}),
        (NAV, {"max_speed": 0.02, "goal_radius": 0.02, "agent_radius": 0.0, "max_steps": 50}),
    ],
    ids=repr,
)
def test_env_contract(env_id, kwargs):
    assert_env_contract(env_id, steps=200, **kwargs)


@pytest.mark.parametrize("env_id", [FOVEA, NAV])
def test_human_render(env_id):
    assert_human_render(env_id)


@pytest.mark.parametrize(
    "env_id, kwargs, name",
    [
        (FOVEA, {"scene_size": 16}, "scene_size"),
        (FOVEA, {"n_objects": 0}, "n_objects"),
        (FOVEA, {"n_objects": 26}, "n_objects"),
        (FOVEA, {"n_kinds": 1}, "n_kinds"),
        (FOVEA, {"n_kinds": 17}, "n_kinds"),
        (FOVEA, {"n_objects": 4, "n_kinds": 3, "distinct_kinds": True}, "n_objects"),
        (FOVEA, {"distinct_kinds": "yes"}, "distinct_kinds"),
        (FOVEA, {"object_size": 2}, "object_size"),
        (FOVEA, {"clutter": -0.1}, "clutter"),
        (FOVEA, {"clutter": float("nan")}, "clutter"),
        (FOVEA, {"glimpse_size": 1}, "glimpse_size"),
        (FOVEA, {"glimpse_size": 20}, "glimpse_size"),
        (FOVEA, {"n_scales": 0}, "n_scales"),
        (FOVEA, {"n_scales": 5}, "n_scales"),  # 8 * 4**4 px > 4 * 64
        (FOVEA, {"scale_ratio": 5}, "scale_ratio"),
        (FOVEA, {"action_type": "joystick"}, "action_type"),
        (FOVEA, {"max_jump": 0}, "max_jump"),
        (FOVEA, {"discrete_step": 0}, "discrete_step"),
        (FOVEA, {"fovea_start": "corner"}, "fovea_start"),
        (FOVEA, {"max_saccades": 0}, "max_saccades"),
        (FOVEA, {"max_saccades": 2.5}, "max_saccades"),
        (FOVEA, {"weights": (1.0, 2.0)}, "weights"),
        (FOVEA, {"weights": {"fund": 1.0}}, "weights"),
        (FOVEA, {"render_mode": "ansi"}, "render_mode"),
        (NAV, {"layout": "maze"}, "layout"),
        (NAV, {"layout": "open", "far_pairs": True}, "far_pairs"),
        (NAV, {"far_pairs": 2}, "far_pairs"),
        (NAV, {"far_pairs": -0.1}, "far_pairs"),
        (NAV, {"far_pairs": "often"}, "far_pairs"),
        (NAV, {"max_speed": 0.0}, "max_speed"),
        (NAV, {"max_speed": 1.0}, "max_speed"),
        (NAV, {"goal_radius": 0.5}, "goal_radius"),
        (NAV, {"agent_radius": -0.01}, "agent_radius"),
        (NAV, {"agent_radius": 0.1}, "agent_radius"),
        (NAV, {"max_steps": 0}, "max_steps"),
        (NAV, {"weights": [1, 1, float("inf")]}, "weights"),
    ],
    ids=repr,
)
def test_bad_kwargs_raise_naming_the_kwarg(env_id, kwargs, name):
    with pytest.raises(ValueError, match=name), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gym.make's own warning about an unknown render_mode
        gym.make(env_id, **kwargs)


# --------------------------------------------------------------------------- FoveaSearch


def _fovea_episode(seed: int, actions, **kwargs):
    env = gym.make(FOVEA, **kwargs)
    un = env.unwrapped
    obs, info = env.reset(seed=seed)
    trace = [(obs.tobytes(), info)]
    steps = []
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        steps.append((obs, reward, terminated, truncated, info, un.fovea_pos.copy()))
        trace.append((obs.tobytes(), reward, terminated, truncated, repr(info)))
        if terminated or truncated:
            break
    env.close()
    return un, steps, trace


@FAST
@given(
    seed=st.integers(0, 2**31 - 1),
    discrete=st.booleans(),
    n_objects=st.integers(1, 6),
    n_kinds=st.integers(2, 16),
    clutter=st.floats(0.0, 1.0),
    start=st.sampled_from(["center", "random"]),
    raw_actions=st.lists(st.tuples(st.floats(-1, 1), st.floats(-1, 1)), min_size=1, max_size=12),
)
def test_fovea_properties(seed, discrete, n_objects, n_kinds, clutter, start, raw_actions):
    kwargs = dict(n_objects=n_objects, n_kinds=n_kinds, clutter=clutter, fovea_start=start)
    if discrete:
        kwargs["action_type"] = "discrete"
        actions = [int((a + 1.0) * 2.5) % 5 for a, _ in raw_actions]
    else:
        actions = [np.array(a, dtype=np.float32) for a in raw_actions]
    un, steps, trace = _fovea_episode(seed, actions, **kwargs)
    _, _, trace2 = _fovea_episode(seed, actions, **kwargs)
    assert trace == trace2, "same seed and actions, same episode"

    S, G = un.scene_size, un.glimpse_size
    sl = un.obs_slices
    target = un.target_pos
    assert sum(k == un.target_kind for k, _, _ in un.objects) == 1, "the target's kind is unique"
    assert len(un.objects) == n_objects
    for obs, reward, terminated, truncated, info, fovea in steps:
        assert un.observation_space.contains(obs)
        vec = info["vector_reward"]
        assert vec.dtype == np.float32 and vec.shape == (3,) and un.reward_space.contains(vec)
        assert math.isclose(reward, float(np.dot(un.weights, vec)), abs_tol=1e-6)
        goal = obs[sl["goal"]]
        assert goal.sum() == 1.0 and goal[un.target_kind] == 1.0 and info["target_kind"] == un.target_kind
        np.testing.assert_allclose(obs[sl["fovea"]], 2 * fovea / S - 1, atol=1e-6)
        assert info["fovea"] == tuple(fovea) and info["target_pos"] == tuple(target)
        found = bool(np.all(np.abs(target - fovea) <= G / 2))
        assert terminated == found == info["is_success"] == (vec[0] == 1.0)
        assert vec[1] == -1.0
        half = un.object_size / 2
        on_distractor = any(abs(fovea[0] - x) <= half and abs(fovea[1] - y) <= half for _, x, y in un.objects[1:])
        assert vec[2] == (-1.0 if on_distractor and not found else 0.0)
        # the sharp patch is the scene itself around the fovea
        sharp = obs[sl["glimpse"]].reshape(un.glimpse_shape)[0]
        x0, y0 = int(fovea[0]) - G // 2, int(fovea[1]) - G // 2
        if 0 <= x0 and 0 <= y0 and x0 + G <= S and y0 + G <= S:
            np.testing.assert_allclose(sharp, un.scene[y0 : y0 + G, x0 : x0 + G].transpose(2, 0, 1) / 255.0, atol=1e-6)
    last = steps[-1]
    assert last[2] or last[3] or len(steps) == len(actions)
    if last[3]:
        assert info["saccades"] == un.max_saccades


def test_fovea_glimpse_matches_block_averages():
    """Every scale is the block average of the zero-padded scene around the (lattice) centre."""
    variants = ({}, {"scene_size": 50, "glimpse_size": 5, "clutter": 1.0}, {"scale_ratio": 3, "glimpse_size": 6})
    for kwargs in variants:
        env = gym.make(FOVEA, **kwargs)
        un = env.unwrapped
        env.action_space.seed(1)
        obs, _ = env.reset(seed=2)
        S, G, r = un.scene_size, un.glimpse_size, un.scale_ratio
        for _ in range(40):
            obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
            fx, fy = (int(v) for v in un.fovea_pos)
            glimpse = obs[un.obs_slices["glimpse"]].reshape(un.glimpse_shape)
            for s in range(un.n_scales):
                k = r**s
                q = 1 if s == 0 else k // (2 if r % 2 == 0 else r)
                W = G * k
                padded = np.zeros((S + 2 * W, S + 2 * W, 3))
                padded[W : W + S, W : W + S] = un.scene / 255.0
                top = q * math.floor((fy - W / 2) / q + 0.5) + W
                left = q * math.floor((fx - W / 2) / q + 0.5) + W
                expect = padded[top : top + W, left : left + W].reshape(G, k, G, k, 3).mean(axis=(1, 3))
                np.testing.assert_allclose(glimpse[s], expect.transpose(2, 0, 1), atol=1e-6)
            if terminated or truncated:
                env.reset()


def _greedy_saccade(un) -> np.ndarray:
    return np.clip((un.target_pos - un.fovea_pos) / un.max_jump, -1, 1).astype(np.float32)


def test_fovea_oracle_finds_the_target():
    env = gym.make(FOVEA)
    un = env.unwrapped
    found, saccades = 0, []
    for seed in range(200):
        env.reset(seed=seed)
        terminated = truncated = False
        while not (terminated or truncated):
            _, _, terminated, truncated, info = env.step(_greedy_saccade(un))
        found += info["is_success"]
        saccades.append(info["saccades"])
    assert found / 200 >= 0.99
    mean = float(np.mean(saccades))
    print(f"FoveaSearch greedy oracle: {found / 200:.1%} found, {mean:.2f} saccades on average")
    assert mean <= 2.0  # max_jump is half the scene: one saccade, two for far corners


def test_fovea_discrete_oracle_and_random_baseline():
    env = gym.make(FOVEA, action_type="discrete")
    un = env.unwrapped
    found = 0
    for seed in range(100):
        env.reset(seed=seed)
        terminated = truncated = False
        while not (terminated or truncated):
            dx, dy = un.target_pos - un.fovea_pos
            if abs(dx) >= abs(dy):
                action = 2 if dx > 0 else 4
            else:
                action = 3 if dy > 0 else 1
            _, _, terminated, truncated, info = env.step(action)
        found += info["is_success"]
    assert found == 100
    # a random saccade policy rarely finds the target: the task needs the goal input and glimpse
    env = gym.make(FOVEA)
    env.action_space.seed(0)
    found = 0
    for seed in range(200):
        env.reset(seed=seed)
        terminated = truncated = False
        while not (terminated or truncated):
            _, _, terminated, truncated, info = env.step(env.action_space.sample())
        found += info["is_success"]
    assert found / 200 < 0.5


def test_fovea_scene_rules():
    env = gym.make(FOVEA, n_objects=8, n_kinds=4, fovea_start="random")
    un = env.unwrapped
    K, G = un.object_size, un.glimpse_size
    for seed in range(50):
        _, info = env.reset(seed=seed)
        kinds = [k for k, _, _ in un.objects]
        assert kinds.count(un.target_kind) == 1 and all(0 <= k < 4 for k in kinds)
        centres = np.array([(x, y) for _, x, y in un.objects])
        gaps = np.abs(centres[:, None] - centres[None]).max(axis=2) + np.eye(len(centres)) * 1e9
        assert gaps.min() >= K, "objects never overlap"
        assert np.all(centres >= K / 2) and np.all(centres <= un.scene_size - K / 2)
        assert not np.all(np.abs(un.target_pos - un.fovea_pos) <= G / 2), "not found at the start"
        assert info["saccades"] == 0


def test_fovea_render_shows_the_episode():
    env = gym.make(FOVEA, render_mode="rgb_array")
    un = env.unwrapped
    env.reset(seed=4)
    first = env.render()
    env.step(_greedy_saccade(un))
    second = env.render()
    assert first.shape == second.shape and first.dtype == np.uint8 and first.shape[2] == 3
    assert first.shape[0] >= 400 and first.shape[1] > first.shape[0]  # scene plus side panel
    assert np.any(first != second)
    env.close()


# --------------------------------------------------------------------------- StartGoalNav


def _nav_episode(seed: int, actions, **kwargs):
    env = gym.make(NAV, **kwargs)
    un = env.unwrapped
    obs, info = env.reset(seed=seed)
    steps, trace = [], [(repr(obs), repr(info))]
    for a in actions:
        before = un.position.copy()
        obs, reward, terminated, truncated, info = env.step(a)
        steps.append((before, un.position.copy(), obs, reward, terminated, truncated, info))
        trace.append((repr(obs), reward, terminated, truncated, repr(info)))
        if terminated or truncated:
            break
    env.close()
    return un, steps, trace


@FAST
@given(
    seed=st.integers(0, 2**31 - 1),
    layout=st.sampled_from(sorted(LAYOUTS)),
    far=st.booleans(),
    collision_weight=st.sampled_from([0.0, 0.5]),
    raw_actions=st.lists(st.tuples(st.floats(-1, 1), st.floats(-1, 1)), min_size=1, max_size=40),
)
def test_nav_properties(seed, layout, far, collision_weight, raw_actions):
    kwargs = dict(layout=layout, far_pairs=far and layout != "open", weights=(1.0, 1.0, collision_weight))
    actions = [np.array(a, dtype=np.float32) for a in raw_actions]
    un, steps, trace = _nav_episode(seed, actions, **kwargs)
    _, _, trace2 = _nav_episode(seed, actions, **kwargs)
    assert trace == trace2, "same seed and actions, same episode"

    r, ms = un.agent_radius, un.max_speed
    travelled = 0.0
    for (before, after, obs, reward, terminated, truncated, info), a in zip(steps, actions):
        assert un.observation_space.contains(obs)
        np.testing.assert_array_equal(obs["observation"], obs["achieved_goal"])
        np.testing.assert_array_equal(obs["desired_goal"], un.goal)
        vec = info["vector_reward"]
        assert vec.dtype == np.float32 and vec.shape == (3,) and un.reward_space.contains(vec)
        assert math.isclose(reward, float(np.dot(un.weights, vec)), abs_tol=1e-6)
        assert reward == un.compute_reward(obs["achieved_goal"], obs["desired_goal"], info)
        np.testing.assert_array_equal(un.compute_vector_reward(obs["achieved_goal"], obs["desired_goal"], info), vec)
        assert un.is_free(after)
        if info["collision"]:
            np.testing.assert_array_equal(after, before)
            assert vec[2] == -1.0
        else:
            np.testing.assert_allclose(after, before + a.astype(np.float64) * ms, atol=1e-12)
            assert not segments_hit(before, after, un._rects).any()
            travelled += float(np.linalg.norm(after - before))
        assert math.isclose(info["path_length"], travelled, abs_tol=1e-9)
        reached = np.linalg.norm(obs["achieved_goal"].astype(np.float64) - obs["desired_goal"]) <= un.goal_radius
        assert terminated == reached == info["is_success"] == (vec[0] == 1.0)
        assert info["shortest_path"] >= np.linalg.norm(un.start - un.goal) - 1e-6
        assert all(r <= v <= 1 - r for v in after)


def _follow_planner(un, env):
    """Scripted reference: walk the planner's shortest path at full speed."""
    path = un.shortest_path(un.position, un.goal)[1:]
    terminated = truncated = False
    collisions = 0
    while not (terminated or truncated):
        pos = un.position
        while len(path) > 1 and np.max(np.abs(np.asarray(path[0]) - pos)) < 1e-6:
            path.pop(0)
        delta = np.asarray(path[0]) - pos
        action = (delta / max(np.max(np.abs(delta)), un.max_speed)).astype(np.float32)
        _, _, terminated, truncated, info = env.step(action)
        collisions += info["collision"]
    return info, collisions


@pytest.mark.parametrize(
    "layout, far",
    [("open", False), ("wall", True), ("u", True), ("rooms", True), ("rooms", False), ("zigzag", True),
     ("doors", True)],
)
def test_nav_planner_following_reaches_the_goal(layout, far):
    env = gym.make(NAV, layout=layout, far_pairs=far)
    un = env.unwrapped
    successes, ratios = 0, []
    for seed in range(200):
        _, info0 = env.reset(seed=seed)
        info, collisions = _follow_planner(un, env)
        successes += info["is_success"]
        assert collisions == 0
        ratios.append(info["path_length"] / info0["shortest_path"])
    assert successes / 200 >= 0.99
    # it stops inside the goal radius, so never walks more than the shortest path (float slack)
    assert max(ratios) <= 1.0 + 1e-6 and np.mean(ratios) > 0.7


@pytest.mark.parametrize("layout", ["wall", "u", "rooms", "zigzag", "doors"])
def test_nav_far_pairs_are_blocked(layout):
    env = gym.make(NAV, layout=layout, far_pairs=True)
    un = env.unwrapped
    for seed in range(100):
        _, info = env.reset(seed=seed)
        assert segments_hit(un.start, un.goal, un._rects).any(), "the straight segment is blocked"
        assert info["shortest_path"] >= np.linalg.norm(un.start - un.goal) + 2 * un.goal_radius
        assert np.linalg.norm(un.start - un.goal) > 2 * un.goal_radius
        assert un.is_free(un.start) and un.is_free(un.goal)


def test_nav_far_pairs_as_a_share_mixes_far_and_plain_pairs():
    env = gym.make(NAV, layout="u", far_pairs=0.5)
    un = env.unwrapped
    env.reset(seed=0)
    far = []
    for _ in range(400):
        _, info = env.reset()
        blocked = bool(segments_hit(un.start, un.goal, un._rects).any())
        assert blocked or not un._episode_far, "a far draw is always blocked"
        far.append(un._episode_far)
    assert 0.4 < np.mean(far) < 0.6
    # True and 1.0 are the same env (a share of 1 draws no extra random number)
    pairs = []
    for share in (True, 1.0):
        e = gym.make(NAV, layout="u", far_pairs=share).unwrapped
        pairs.append([(*e.reset(seed=seed)[0]["observation"], *e.goal) for seed in range(20)])
    assert pairs[0] == pairs[1]


def test_nav_shortest_paths_are_exact_and_free():
    env = gym.make(NAV, layout="wall")
    un = env.unwrapped
    env.reset(seed=0)
    a, b = np.array([0.2, 0.1]), np.array([0.8, 0.1])
    c = 0.01 + PLAN_MARGIN  # clearance around the wall x in [0.48, 0.52], y <= 0.72
    c1, c2 = np.array([0.48 - c, 0.72 + c]), np.array([0.52 + c, 0.72 + c])
    expect = np.linalg.norm(c1 - a) + np.linalg.norm(c2 - c1) + np.linalg.norm(b - c2)
    assert math.isclose(un.shortest_path_length(a, b), expect, rel_tol=1e-9)
    assert math.isclose(un.shortest_path_length(a, np.array([0.3, 0.5])), np.linalg.norm([0.1, 0.4]))
    assert un.shortest_path_length(a, np.array([0.5, 0.3])) == math.inf  # inside the wall
    for layout in ("u", "rooms", "zigzag", "doors"):
        env = gym.make(NAV, layout=layout)
        un = env.unwrapped
        env.reset(seed=1)
        rng = np.random.default_rng(0)
        for _ in range(30):
            p, q = un.sample_free_point(rng), un.sample_free_point(rng)
            path = np.array(un.shortest_path(p, q))
            np.testing.assert_array_equal(path[0], p)
            np.testing.assert_array_equal(path[-1], q)
            assert not segments_hit(path[:-1], path[1:], un._rects).any()
            length = np.linalg.norm(np.diff(path, axis=0), axis=1).sum()
            assert math.isclose(length, un.shortest_path_length(p, q), rel_tol=1e-9)
            assert length >= np.linalg.norm(q - p) - 1e-12
        pts = un.sample_free_point(rng, n=50)
        assert pts.shape == (50, 2) and all(un.is_free(p) for p in pts)


def test_nav_reset_options_command_start_and_goal():
    env = gym.make(NAV, layout="u")
    un = env.unwrapped
    obs, info = env.reset(seed=0, options={"start": (0.5, 0.1), "goal": (0.5, 0.5)})
    np.testing.assert_array_equal(obs["observation"], np.float32([0.5, 0.1]))
    np.testing.assert_array_equal(obs["desired_goal"], np.float32([0.5, 0.5]))
    assert info["shortest_path"] > 0.4 + 0.2  # around an arm of the U
    obs, _ = env.reset(options={"goal": (0.1, 0.9)})
    np.testing.assert_array_equal(obs["desired_goal"], np.float32([0.1, 0.9]))
    assert un.is_free(un.start)
    with pytest.raises(ValueError, match="goal"):
        env.reset(options={"goal": (0.5, 0.27)})  # inside the U's bottom bar


def test_nav_compute_reward_is_vectorised():
    env = gym.make(NAV, layout="rooms", weights=(1.0, 1.0, 0.5))
    un = env.unwrapped
    env.action_space.seed(3)
    ag, dg, infos, rewards = [], [], [], []
    for seed in range(6):
        env.reset(seed=seed)
        for t in range(60):
            if seed % 2 == 0 and t < 40:  # some episodes head for the goal, so some steps reach it
                delta = un.goal - un.position
                action = (delta / max(np.max(np.abs(delta)), un.max_speed)).astype(np.float32)
            else:
                action = env.action_space.sample()
            obs, reward, terminated, truncated, info = env.step(action)
            ag.append(obs["achieved_goal"]), dg.append(obs["desired_goal"]), infos.append(info), rewards.append(reward)
            if terminated or truncated:
                break
    ag, dg = np.array(ag), np.array(dg)
    rewards = np.array(rewards)
    assert np.any(rewards == -0.0) or np.any(rewards == 0.0)
    assert np.any([i["collision"] for i in infos])
    for batch_infos in (infos, np.array(infos, dtype=object)):
        np.testing.assert_array_equal(un.compute_reward(ag, dg, batch_infos), rewards)
    vec = un.compute_vector_reward(ag, dg, infos)
    assert vec.shape == (len(rewards), 3) and vec.dtype == np.float32
    np.testing.assert_array_equal(vec, np.array([i["vector_reward"] for i in infos]))
    # HER relabelling: new goals, the stored infos (or none: collisions then count as absent)
    new_goals = np.roll(ag, 3, axis=0)
    relabelled = un.compute_reward(ag, new_goals, infos)
    reached = np.linalg.norm(ag - new_goals, axis=1) <= un.goal_radius
    coll = np.array([i["collision"] for i in infos])
    np.testing.assert_allclose(relabelled, np.where(reached, 0.0, -1.0) - 0.5 * coll)
    np.testing.assert_allclose(un.compute_reward(ag, new_goals, [{}] * len(ag)), np.where(reached, 0.0, -1.0))
    # default weights: the standard sparse reward -1 until reached, 0 at the goal
    plain = gym.make(NAV).unwrapped
    sparse = np.where(np.linalg.norm(ag - dg, axis=1) <= 0.05, 0.0, -1.0)
    np.testing.assert_array_equal(plain.compute_reward(ag, dg, None), sparse)


def test_nav_render_draws_subgoals():
    env = gym.make(NAV, layout="rooms", far_pairs=True, render_mode="rgb_array")
    un = env.unwrapped
    env.reset(seed=0)
    env.step(np.zeros(2, dtype=np.float32))
    plain = env.render()
    un.subgoals = [np.array([0.25, 0.25]), (0.75, 0.75)]
    marked = env.render()
    assert plain.shape == marked.shape and plain.dtype == np.uint8
    assert np.any(plain != marked)
    env.reset(seed=1)
    assert un.subgoals is None  # reset clears them
    env.close()


# --------------------------------------------------------------------------- SB3 runs on them


def test_sb3_her_sac_runs_on_start_goal_nav():
    from stable_baselines3 import SAC, HerReplayBuffer

    env = gym.make(NAV)
    model = SAC(
        "MultiInputPolicy", env, replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs=dict(n_sampled_goal=4, goal_selection_strategy="future"),
        learning_starts=100, batch_size=64, buffer_size=1_000, policy_kwargs=dict(net_arch=[32, 32]),
        seed=0, device="cpu",
    )
    model.learn(300)
    action, _ = model.predict(env.reset(seed=0)[0], deterministic=True)
    assert env.action_space.contains(action)


@pytest.mark.parametrize("env_id, policy", [(FOVEA, "MlpPolicy"), (NAV, "MultiInputPolicy")])
def test_sb3_ppo_runs(env_id, policy):
    from stable_baselines3 import PPO

    model = PPO(policy, gym.make(env_id), n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu",
                policy_kwargs=dict(net_arch=[32]))
    model.learn(128)


@pytest.mark.parametrize("env_id", [FOVEA, NAV])
def test_copies_continue_identically(env_id):
    """deepcopy and pickle give an independent env that continues exactly like the original."""
    import copy
    import pickle

    env = gym.make(env_id, render_mode="rgb_array").unwrapped
    env.reset(seed=5)
    env.action_space.seed(5)
    env.step(env.action_space.sample())
    env.render()
    for make_copy in (copy.deepcopy, lambda e: pickle.loads(pickle.dumps(e))):
        clone = make_copy(env)
        env.action_space.seed(9)
        actions = [env.action_space.sample() for _ in range(15)]
        for a in actions:
            ours, theirs = env.step(a), clone.step(a)
            assert repr(ours) == repr(theirs)
            if ours[2] or ours[3]:
                seed = int(env.np_random.integers(1000))
                clone.np_random.integers(1000)
                assert repr(env.reset(seed=seed)) == repr(clone.reset(seed=seed))
        assert clone.render().shape == env.render().shape


def test_frames_are_nonblank():
    for env_id in (FOVEA, NAV):
        frame = render_frame(env_id)
        assert frame.ndim == 3 and frame.std() > 10
