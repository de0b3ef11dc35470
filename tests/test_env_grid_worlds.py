"""NoisyTVRoom, TMaze and POMaze: the env contract, their rules, and scripted reference policies."""

from __future__ import annotations

import os

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envs.gridworld import bfs_path, flat_moves
from envs.noisy_tv_room import FLOOR, GOAL
from tests.env_contract import (
    assert_env_contract,
    assert_human_render,
    render_frame,
    rollout,
    run_checkers,
)

NTV, TMAZE, POMAZE = "mirabilis/NoisyTVRoom-v0", "mirabilis/TMaze-v0", "mirabilis/POMaze-v0"
INTERACT = 4
FAST = settings(max_examples=15, deadline=None, derandomize=True)


# --------------------------------------------------------------------------- the contract


@pytest.mark.parametrize(
    "env_id, kwargs",
    [
        (NTV, {}),
        (NTV, {"tv_mode": "passive"}),
        (NTV, {"tv_mode": "off"}),
        (NTV, {"display": True}),
        (NTV, {"goal": True}),
        (NTV, {"n_rooms_x": 2, "n_rooms_y": 1, "room_size": 3, "view_size": 3,
               "observe_position": False, "screen_pixels": 4, "tv_mode": "passive"}),
        (TMAZE, {}),
        (TMAZE, {"length": 1}),
        (TMAZE, {"length": 200}),
        (POMAZE, {}),
        (POMAZE, {"task": "flag"}),
        (POMAZE, {"size": 15, "view_size": 5, "flag_reward": 0.5, "task": "flag"}),
    ],
    ids=repr,
)
def test_env_contract(env_id, kwargs):
    assert_env_contract(env_id, steps=200, **kwargs)


def test_pomaze_fixed_maze_contract():
    # A fixed maze has no randomness left (maze, start and flag all come from maze_seed), so
    # different reset seeds give the same trajectory: everything of the contract but that.
    kwargs = {"fixed_maze": True, "maze_seed": 3, "task": "flag"}
    run_checkers(POMAZE, **kwargs)
    a = rollout(POMAZE, seed=123, steps=200, **kwargs)
    assert a == rollout(POMAZE, seed=123, steps=200, **kwargs)
    assert a == rollout(POMAZE, seed=124, steps=200, **kwargs)
    assert a != rollout(POMAZE, seed=123, steps=200, **{**kwargs, "maze_seed": 4})
    frame = render_frame(POMAZE, **kwargs)
    assert frame.ndim == 3 and frame.dtype == np.uint8 and frame.std() > 0


@pytest.mark.parametrize(
    "env_id, kwargs", [(NTV, {"display": True, "goal": True}), (TMAZE, {}), (POMAZE, {"task": "flag"})]
)
def test_human_render(env_id, kwargs):
    assert_human_render(env_id, **kwargs)


def test_frames_have_readable_size():
    for env_id, kwargs in [(NTV, {}), (TMAZE, {}), (TMAZE, {"length": 1000}), (POMAZE, {}), (POMAZE, {"size": 51})]:
        h, w, _ = render_frame(env_id, **kwargs).shape
        assert 150 <= h <= 1024 and 300 <= w <= 1024, (env_id, kwargs, h, w)
        assert h % 16 == 0 and w % 16 == 0  # video encoders want even sizes (imageio: 16)


# --------------------------------------------------------------------------- properties


def _check_run(env_id, kwargs, seed, actions):
    """Step through ``actions``; check spaces and reward vectors; return a comparable trace."""
    env = gym.make(env_id, **kwargs)
    un = env.unwrapped
    obs, info = env.reset(seed=seed)
    trace = [obs.tobytes(), repr(info)]
    for a in actions:
        assert env.observation_space.contains(obs)
        obs, reward, terminated, truncated, info = env.step(a)
        vec = info["vector_reward"]
        assert vec.dtype == np.float32 and vec.shape == (len(un.reward_names),)
        assert un.reward_space.contains(vec)
        assert isinstance(reward, float) and np.isclose(reward, float(np.dot(un.weights, vec)), atol=1e-6)
        assert isinstance(terminated, bool) and isinstance(truncated, bool)
        if terminated or truncated:
            assert isinstance(info["is_success"], bool)
        else:
            assert "is_success" not in info
        trace.append((obs.tobytes(), reward, terminated, truncated, repr(info)))
        if terminated or truncated:
            obs, info = env.reset()
            trace.append((obs.tobytes(), repr(info)))
    assert env.observation_space.contains(obs)
    env.close()
    return trace


def _weights(n):
    return st.none() | st.lists(st.floats(-5, 5, allow_nan=False), min_size=n, max_size=n)


@FAST
@given(
    seed=st.integers(0, 2**31 - 1),
    actions=st.lists(st.integers(0, 4), min_size=1, max_size=120),
    kw=st.fixed_dictionaries(
        {
            "n_rooms_x": st.integers(1, 3),
            "n_rooms_y": st.integers(2, 3),
            "room_size": st.integers(3, 6),
            "view_size": st.sampled_from([1, 3, 5, 7]),
            "observe_position": st.booleans(),
            "screen_pixels": st.sampled_from([1, 4, 16, 25]),
            "tv_mode": st.sampled_from(["remote", "passive", "off"]),
            "display": st.booleans(),
            "goal": st.booleans(),
            "max_steps": st.integers(1, 60),
            "weights": _weights(2),
        }
    ),
)
def test_noisy_tv_properties(seed, actions, kw):
    if kw["goal"] and kw["n_rooms_x"] * kw["n_rooms_y"] < 2 + kw["display"]:
        kw["goal"] = False  # no room left for the goal (tested in test_bad_kwargs_raise)
    a = _check_run(NTV, kw, seed, actions)
    assert a == _check_run(NTV, kw, seed, actions)


@FAST
@given(
    seed=st.integers(0, 2**31 - 1),
    actions=st.lists(st.integers(0, 3), min_size=1, max_size=120),
    kw=st.fixed_dictionaries(
        {"length": st.integers(1, 12), "max_steps": st.none() | st.integers(1, 50), "weights": _weights(4)}
    ),
)
def test_tmaze_properties(seed, actions, kw):
    a = _check_run(TMAZE, kw, seed, actions)
    assert a == _check_run(TMAZE, kw, seed, actions)


@FAST
@given(
    seed=st.integers(0, 2**31 - 1),
    actions=st.lists(st.integers(0, 3), min_size=1, max_size=120),
    kw=st.fixed_dictionaries(
        {
            "size": st.sampled_from([5, 7, 9, 13]),
            "view_size": st.sampled_from([1, 3, 5]),
            "task": st.sampled_from(["goal", "flag"]),
            "fixed_maze": st.booleans(),
            "maze_seed": st.integers(0, 1000),
            "flag_reward": st.sampled_from([0.0, 0.5]),
            "max_steps": st.none() | st.integers(1, 60),
            "weights": _weights(3),
        }
    ),
)
def test_pomaze_properties(seed, actions, kw):
    a = _check_run(POMAZE, kw, seed, actions)
    assert a == _check_run(POMAZE, kw, seed, actions)


@pytest.mark.parametrize(
    "env_id, kwargs, name",
    [
        (NTV, {"n_rooms_x": 0}, "n_rooms_x"),
        (NTV, {"n_rooms_x": 1, "n_rooms_y": 1}, "n_rooms_x * n_rooms_y"),
        (NTV, {"room_size": 2}, "room_size"),
        (NTV, {"view_size": 4}, "view_size"),
        (NTV, {"screen_pixels": 15}, "screen_pixels"),
        (NTV, {"tv_mode": "loud"}, "tv_mode"),
        (NTV, {"tv_room": 9}, "tv_room"),
        (NTV, {"display": True, "display_room": 1}, "display_room"),
        (NTV, {"goal": True, "goal_room": 1}, "goal_room"),
        (NTV, {"n_rooms_x": 2, "n_rooms_y": 1, "display": True, "goal": True}, "goal_room"),
        (NTV, {"max_steps": 0}, "max_steps"),
        (NTV, {"weights": (1.0,)}, "weights"),
        (NTV, {"weights": {"pain": 1.0}}, "weights"),
        (TMAZE, {"length": 0}, "length"),
        (TMAZE, {"length": 2.5}, "length"),
        (TMAZE, {"max_steps": 0}, "max_steps"),
        (POMAZE, {"size": 3}, "size"),
        (POMAZE, {"size": 10}, "size"),
        (POMAZE, {"view_size": 2}, "view_size"),
        (POMAZE, {"task": "treasure"}, "task"),
        (POMAZE, {"maze_seed": -1}, "maze_seed"),
        (POMAZE, {"flag_reward": 2.0}, "flag_reward"),
        (POMAZE, {"render_mode": "ansi"}, "render_mode"),
    ],
    ids=lambda x: repr(x) if isinstance(x, dict) else None,
)
@pytest.mark.filterwarnings("ignore:.*not in the possible render_modes")
def test_bad_kwargs_raise(env_id, kwargs, name):
    with pytest.raises(ValueError, match=name.replace("*", r"\*")):
        gym.make(env_id, **kwargs)


# --------------------------------------------------------------------------- NoisyTVRoom


def _free_cells(un):
    return bytearray(((un.grid == FLOOR) | (un.grid == GOAL)).reshape(-1).tolist())


def _walk_to(env, info, targets):
    """Follow a BFS shortest path to the nearest of ``targets`` (flat indices); last step's data."""
    un = env.unwrapped
    path = bfs_path(_free_cells(un), un.cell_index(info["cell"]), set(targets), un.grid_shape[1])
    assert path is not None
    out = None
    for a in path:
        out = env.step(a)
    return out


def _neighbours(un, cell):
    x, y = cell
    return [un.cell_index((x + dx, y + dy)) for dx, dy in ((0, -1), (1, 0), (0, 1), (-1, 0))]


def _screen(un, obs):
    return obs[-un.screen_pixels :]


def test_noisy_tv_remote_noise_only_when_used():
    env = gym.make(NTV, max_steps=1000)
    un = env.unwrapped
    obs, info = env.reset(seed=0)
    # walking up to the TV: no noise, and a blank screen, also once the TV is in view
    obs, _, _, _, info = _walk_to(env, info, _neighbours(un, un.tv_cell))
    assert not info["tv_on"] and not _screen(un, obs).any()
    screens = []
    for _ in range(3):
        obs, _, _, _, info = env.step(INTERACT)
        assert info["tv_on"]
        screens.append(_screen(un, obs).copy())
        assert screens[-1].min() >= 0 and screens[-1].max() <= 1 and screens[-1].std() > 0
    assert not np.array_equal(screens[0], screens[1]) and not np.array_equal(screens[1], screens[2])
    # one step without the remote: blank again
    x, y = info["cell"]
    free = _free_cells(un)
    move = next(a for a, m in enumerate(flat_moves(un.grid_shape[1])) if free[un.cell_index((x, y)) + m])
    obs, _, _, _, info = env.step(move)
    assert not info["tv_on"] and not _screen(un, obs).any()


@pytest.mark.parametrize("tv_mode", ["remote", "passive", "off"])
def test_noisy_tv_on_exactly_when_rules_say(tv_mode):
    """Random walk biased to the TV: ``tv_on`` follows the mode's rule; the screen is blank otherwise."""
    env = gym.make(NTV, tv_mode=tv_mode, n_rooms_x=2, n_rooms_y=1, max_steps=400)
    un = env.unwrapped
    r = un.view_size // 2
    tx, ty = un.tv_cell
    rng = np.random.default_rng(0)
    n_on = 0
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        done = False
        while not done:
            a = int(rng.integers(5)) if rng.random() < 0.7 else int(rng.choice([1, 4]))
            obs, _, term, trunc, info = env.step(a)
            done = term or trunc
            x, y = info["cell"]
            adjacent = abs(x - tx) + abs(y - ty) == 1
            in_view = max(abs(x - tx), abs(y - ty)) <= r
            expected = {"remote": a == INTERACT and adjacent, "passive": in_view, "off": False}[tv_mode]
            assert info["tv_on"] == expected
            screen = _screen(un, obs)
            if info["tv_on"]:
                n_on += 1
                assert screen.std() > 0
            else:
                assert not screen.any()
    if tv_mode == "off":
        assert n_on == 0
    else:
        assert n_on > 5


def test_noisy_tv_display_is_learnable():
    """The display's bar advances by one phase per press, the same way in every episode."""
    runs = []
    for seed in (1, 2):
        env = gym.make(NTV, display=True, max_steps=1000)
        un = env.unwrapped
        obs, info = env.reset(seed=seed)
        assert un.display_cell is not None
        obs, _, _, _, info = _walk_to(env, info, _neighbours(un, un.display_cell))
        seen = [_screen(un, obs).copy()]
        for _ in range(2 * un.screen_side + 2):
            obs, _, _, _, info = env.step(INTERACT)
            assert not info["tv_on"]
            seen.append(_screen(un, obs).copy())
        runs.append(np.stack(seen))
        side = un.screen_side
        for k, img in enumerate(seen):
            img = img.reshape(side, side)
            phase = k % (2 * side)
            lit = img[:, phase] if phase < side else img[phase - side, :]
            assert np.all(lit == 1.0) and np.isclose(img.sum(), side + 0.2 * (side * side - side))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert len({r.tobytes() for r in runs[0][: 2 * side]}) == 2 * side  # every phase distinct


def test_noisy_tv_layout_and_observation():
    env = gym.make(NTV)
    un = env.unwrapped
    assert un.grid_shape == (19, 19) and un.reachable_cells == 236
    assert env.observation_space.shape == (5 * 5 * 5 + 2 + 16,)
    assert un.reward_names == ("goal", "bump") and np.allclose(un.weights, (1.0, 0.0))
    obs, info = env.reset(seed=0)
    x, y = info["cell"]
    assert 1 <= x <= 5 and 1 <= y <= 5  # the top-left room
    window = obs[:125].reshape(5, 5, 5)
    assert np.all(window.sum(axis=2) == 1) and window[2, 2, FLOOR] == 1
    assert np.allclose(obs[125:127], (x / 18, y / 18))
    # the TV's room is next to the start room: its doorway is reachable in a few steps
    assert abs(un.tv_cell[0] - x) + abs(un.tv_cell[1] - y) <= 12
    # a bump is pain
    obs, info = env.reset(seed=0)
    for _ in range(6):
        obs, reward, _, _, info = env.step(3)  # left into the west wall eventually
    assert info["vector_reward"][1] == -1.0 and reward == 0.0


def test_noisy_tv_bfs_reaches_goal():
    env = gym.make(NTV, goal=True)
    un = env.unwrapped
    goal = un.cell_index(un.goal_cell)
    successes = 0
    for seed in range(200):
        obs, info = env.reset(seed=seed)
        obs, reward, term, trunc, info = _walk_to(env, info, {goal})
        assert term and info["is_success"] and info["vector_reward"][0] == 1.0 and reward == 1.0
        successes += info["is_success"]
    assert successes / 200 >= 0.99


def test_noisy_tv_explorer_covers_every_reachable_cell():
    """A greedy explorer (nearest unvisited cell) visits all 236 cells within the default 300 steps."""
    env = gym.make(NTV)
    un = env.unwrapped
    free, width = _free_cells(un), un.grid_shape[1]
    moves = flat_moves(width)
    covered = 0
    for seed in range(200):
        obs, info = env.reset(seed=seed)
        visited = {un.cell_index(info["cell"])}
        plan, done = [], False
        while len(visited) < un.reachable_cells and not done:
            pos = un.cell_index(info["cell"])
            if not plan:
                plan = [a for a, m in enumerate(moves) if free[pos + m] and pos + m not in visited][:1]
                plan = plan or bfs_path(free, pos, lambda q: q not in visited, width)
            obs, _, term, trunc, info = env.step(plan.pop(0))
            visited.add(un.cell_index(info["cell"]))
            done = term or trunc
        covered += len(visited) == un.reachable_cells == round(un.episode_coverage() * un.reachable_cells)
    assert covered / 200 >= 0.99


# --------------------------------------------------------------------------- TMaze


def _tmaze_episodes(policy, n=200, **kwargs):
    env = gym.make(TMAZE, **kwargs)
    wins, lengths = 0, []
    for seed in range(n):
        obs, _ = env.reset(seed=seed)
        first, done, t = obs.copy(), False, 0
        while not done:
            obs, reward, term, trunc, info = env.step(policy(first, obs))
            done, t = term or trunc, t + 1
        wins += info["is_success"]
        lengths.append(t)
    return wins / n, lengths


def _remembering_policy(first, obs):
    if obs[0] == 0 and obs[1] == 1 and obs[2] == 0:  # junction: turn as the start signal said
        return 0 if first[0] == 1 else 2
    return 1  # east


def test_tmaze_observations_and_rewards():
    env = gym.make(TMAZE, length=4)
    un = env.unwrapped
    assert un.reward_names == ("goal", "wrong_arm", "bump", "step_cost")
    for seed in range(6):
        obs, _ = env.reset(seed=seed)
        assert obs.tolist() in ([1, 1, 0], [0, 1, 1])
        up = obs[0] == 1
        obs, reward, *_ , info = env.step(3)  # west at the start: a bump
        assert reward == pytest.approx(-0.1) and info["vector_reward"][2] == -1
        for x in range(1, 5):
            obs, reward, term, trunc, info = env.step(1)
            assert obs.tolist() == ([1, 0, 1] if x < 4 else [0, 1, 0]) and reward == 0.0 and not term
        obs, reward, term, trunc, info = env.step(0 if up else 2)
        assert term and info["is_success"] and reward == pytest.approx(4.0)
    obs, _ = env.reset(seed=0)
    for _ in range(4):
        env.step(1)
    obs, reward, term, _, info = env.step(2 if obs[0] == 1 else 0)
    assert term and not info["is_success"] and reward == pytest.approx(-0.1)


@pytest.mark.parametrize("length", [1, 10, 100])
def test_tmaze_memory_solves_it_and_chance_is_half(length):
    rate, lengths = _tmaze_episodes(_remembering_policy, length=length)
    assert rate >= 0.99 and set(lengths) == {length + 1}
    always_up, _ = _tmaze_episodes(lambda first, obs: 0 if obs.tolist() == [0, 1, 0] else 1, length=length)
    assert 0.38 <= always_up <= 0.62  # a memory-less policy is at chance


def test_tmaze_long_corridor_and_truncation():
    env = gym.make(TMAZE, length=1000)
    assert env.unwrapped.max_steps == 10 * 1001
    env = gym.make(TMAZE, length=5, max_steps=3)
    env.reset(seed=0)
    for t in range(3):
        obs, reward, term, trunc, info = env.step(1)
    assert trunc and not term and info["is_success"] is False


# --------------------------------------------------------------------------- POMaze


def _pomaze_episode(env, seed):
    """BFS policy for both tasks; returns (success, steps, shortest_path)."""
    un = env.unwrapped
    obs, info = env.reset(seed=seed)
    size = un.size
    steps, done = 0, False
    while not done:
        free = bytearray((un.maze != 0).reshape(-1).tolist())
        pos = un.agent_cell[1] * size + un.agent_cell[0]
        if un.task == "goal" or un.carrying_flag:
            target = un.goal_cell if un.task == "goal" else un.start_cell
        else:
            target = un.flag_cell
        path = bfs_path(free, pos, {target[1] * size + target[0]}, size)
        was_carrying = un.carrying_flag
        for a in path:
            obs, _, term, trunc, info = env.step(a)
            steps += 1
            done = term or trunc
            if done:
                break
        if un.task == "flag" and not was_carrying and not done:
            assert un.carrying_flag
            # the flag has vanished from the window (agent stands where it was)
            assert obs.reshape(-1, 5)[:, 3].sum() == 0
    return info["is_success"], steps, info["shortest_path"]


@pytest.mark.parametrize("kwargs", [{}, {"task": "flag"}, {"task": "flag", "size": 13, "view_size": 5}])
def test_pomaze_bfs_policy_solves_it_optimally(kwargs):
    env = gym.make(POMAZE, **kwargs)
    results = [_pomaze_episode(env, seed) for seed in range(200)]
    assert sum(r[0] for r in results) / 200 >= 0.99
    assert all(steps == shortest for _, steps, shortest in results)


def test_pomaze_mazes_are_perfect_and_fresh():
    env = gym.make(POMAZE, size=11)
    un = env.unwrapped
    mazes = set()
    for seed in range(20):
        env.reset(seed=seed)
        free = un.maze != 0
        cells = 5 * 5
        assert free.sum() == 2 * cells - 1  # a spanning tree: cells + (cells - 1) passages
        assert not free[0].any() and not free[-1].any() and not free[:, 0].any() and not free[:, -1].any()
        mazes.add(free.tobytes())
    assert len(mazes) == 20


def test_pomaze_fixed_maze_is_fixed():
    env = gym.make(POMAZE, fixed_maze=True, maze_seed=7, task="flag")
    un = env.unwrapped
    layouts = set()
    for seed in range(5):
        obs, info = env.reset(seed=seed)
        layouts.add((un.maze.tobytes(), un.start_cell, un.flag_cell, info["shortest_path"], obs.tobytes()))
        _pomaze_episode(env, seed)  # picks the flag up; the next reset must put it back
    assert len(layouts) == 1
    other = gym.make(POMAZE, fixed_maze=True, maze_seed=8, task="flag").unwrapped
    other.reset(seed=0)
    assert other.maze.tobytes() != un.maze.tobytes() or other.start_cell != un.start_cell


def test_pomaze_flag_pickup_reward_and_bumps():
    env = gym.make(POMAZE, task="flag", flag_reward=0.5)
    un = env.unwrapped
    assert un.reward_names == ("goal", "bump", "step_cost") and np.allclose(un.weights, (1.0, 0.05, 0.01))
    obs, info = env.reset(seed=5)
    size = un.size
    free = bytearray((un.maze != 0).reshape(-1).tolist())
    pos = un.agent_cell[1] * size + un.agent_cell[0]
    wall = next(a for a, m in enumerate(flat_moves(size)) if not free[pos + m])
    obs, reward, *_, info = env.step(wall)
    assert info["vector_reward"].tolist() == [0, -1, -1] and reward == pytest.approx(-0.06)
    fx, fy = un.flag_cell
    for a in bfs_path(free, pos, {fy * size + fx}, size):
        obs, reward, term, trunc, info = env.step(a)
    assert un.carrying_flag and info["vector_reward"].tolist() == [0.5, 0, -1] and not term


# --------------------------------------------------------------------------- SB3 smoke test


@pytest.mark.parametrize("env_id", [NTV, TMAZE, POMAZE])
def test_ppo_runs(env_id):
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", gym.make(env_id), n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(128)


def test_mo_wrappers_round_trip():
    from envs import MOWrapper, ScalarizeWrapper

    for env_id in (NTV, TMAZE, POMAZE):
        base = gym.make(env_id)
        mo = MOWrapper(gym.make(env_id))
        back = ScalarizeWrapper(MOWrapper(gym.make(env_id)), base.unwrapped.weights.tolist())
        for env in (base, mo, back):
            env.reset(seed=0)
            env.action_space.seed(0)
        for _ in range(50):
            a = base.action_space.sample()
            _, r, *_ = base.step(a)
            _, vec, *_ = mo.step(a)
            _, r2, *_ = back.step(a)
            assert vec.dtype == np.float32 and mo.reward_space.contains(vec)
            assert np.isclose(r, r2)
