"""``mirabilis/POMaze-v0``: random mazes seen through a small egocentric window.

Seed Sec. 11: the 1991 "flag" maze — a controller with a recurrent world model in a partially
observable world, where the agent must fetch a flag and bring it home although nothing it sees
says whether it carries the flag.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from envs.core import (
    Canvas,
    RenderMixin,
    VectorRewardMixin,
    check_choice,
    check_float,
    check_int,
    check_render_mode,
    get_font,
)
from envs.gridworld import (
    PALETTE,
    WindowObserver,
    bfs_distances,
    draw_agent,
    draw_flag,
    draw_view_outline,
    flat_moves,
    frame_size,
    perfect_maze,
    reward_vectors,
)

WALL, FLOOR, GOAL, FLAG, HOME = range(5)
CELL_TYPES = ("wall", "floor", "goal", "flag", "home")
TASKS = ("goal", "flag")


class POMazeEnv(VectorRewardMixin, RenderMixin, gym.Env):
    """Random perfect mazes seen through a small egocentric window; goal or flag-fetch task.

    **Maze.** A ``size × size`` grid (``size`` odd, outer wall included) holding a perfect maze
    of ``((size-1)/2)²`` cells made by the recursive backtracker from ``self.np_random``: exactly
    one path between any two cells, long dead ends. A new maze each episode unless
    ``fixed_maze=True``, in which case maze, start, goal and flag all come from ``maze_seed`` and
    are the same every episode. Start, goal and flag sit on distinct maze cells drawn uniformly.

    **Tasks.** ``task="goal"``: reach the goal cell. ``task="flag"``: walk onto the flag (picking
    it up; it vanishes from the maze), then return to the start ("home"). Nothing in the
    observation says whether the flag is carried: memory needed.

    **Observation** — ``Box(0, 1, (v*v*5,), float32)``: one-hot cell types of the
    ``v × v`` window centred on the agent (``v = view_size``, not rotated), rows top to bottom,
    columns left to right, the 5 types innermost:

    =====  ===========================================================
    type   meaning
    =====  ===========================================================
    0      wall (also outside the grid)
    1      floor
    2      goal (``task="goal"``)
    3      flag (``task="flag"``, until picked up)
    4      home: the start cell (both tasks)
    =====  ===========================================================

    Index ``(row * v + col) * 5 + type``; the agent is at row = col = ``v // 2``.

    **Actions** — ``Discrete(4)``: ``0`` up, ``1`` right, ``2`` down, ``3`` left. Moving into a
    wall leaves the agent in place (a bump).

    **Reward channels** (``info["vector_reward"]``, float32, ``reward_names``):

    ===========  ======================================================  ==============
    channel      value                                                   default weight
    ===========  ======================================================  ==============
    goal         1 on success (goal reached / flag brought home);          1.0
                 ``flag_reward`` (default 0) on picking up the flag
    bump         -1 on moving into a wall                                  0.05
    step_cost    -1 every step                                             0.01
    ===========  ======================================================  ==============

    Scalar reward ``weights · vector`` (so a bump costs 0.06 in all, a step 0.01).

    **Start state.** The agent on the home cell of the episode's maze.

    **Episode end.** Terminated on success; truncated after ``max_steps`` steps.
    ``info["is_success"]`` at the end.

    **Info** (reset and every step): ``shortest_path`` — length of the optimal solution found by
    BFS (start -> goal, or start -> flag -> start) — and, on steps, ``vector_reward``.
    Attributes: ``maze`` (``size × size`` cell types, flag shown while not carried),
    ``agent_cell``, ``start_cell``, ``goal_cell``, ``flag_cell`` (``(x, y)`` or None),
    ``carrying_flag``, ``shortest_path``.

    **Kwargs**

    ===============  =====================  =================================================
    kwarg            default                meaning (allowed values)
    ===============  =====================  =================================================
    ``size``         9                      grid side incl. walls (odd, 5..101; 9 = 4×4 cells)
    ``view_size``    3                      side of the view window (odd, 1..11)
    ``task``         "goal"                 ``"goal"`` or ``"flag"``
    ``fixed_maze``   False                  same maze (and start/goal/flag) every episode
    ``maze_seed``    0                      seed of the fixed maze (int >= 0)
    ``flag_reward``  0.0                    goal-channel value for picking up the flag (0..1)
    ``max_steps``    None -> 4 * size²      truncation (1..10^7); 324 for size 9
    ``weights``      (1.0, 0.05, 0.01)      weights of ``(goal, bump, step_cost)``
    ``render_mode``  None                   ``"human"`` or ``"rgb_array"``
    ===============  =====================  =================================================

    **Seed section**: Sec. 11 — "Reinforcement learning in Markovian and non-Markovian
    environments" (NIPS 1991): C and a recurrent M in a partially observable maze, the flag task.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 10}

    def __init__(
        self,
        size: int = 9,
        view_size: int = 3,
        task: str = "goal",
        fixed_maze: bool = False,
        maze_seed: int = 0,
        flag_reward: float = 0.0,
        max_steps: int | None = None,
        weights=None,
        render_mode: str | None = None,
    ):
        self.size = check_int("size", size, 5, 101)
        if self.size % 2 == 0:
            raise ValueError(f"size must be odd in [5, 101] (walls between cells), got {size}")
        self.view_size = check_int("view_size", view_size, 1, 11)
        if self.view_size % 2 == 0:
            raise ValueError(f"view_size must be odd in [1, 11], got {view_size}")
        self.task = check_choice("task", task, TASKS)
        self.fixed_maze = bool(check_choice("fixed_maze", fixed_maze, (True, False)))
        self.maze_seed = check_int("maze_seed", maze_seed, 0, 2**63 - 1)
        self.flag_reward = check_float("flag_reward", flag_reward, 0.0, 1.0)
        if max_steps is None:
            max_steps = 4 * self.size * self.size
        self.max_steps = check_int("max_steps", max_steps, 1, 10_000_000)
        self.render_mode = check_render_mode(render_mode, self.metadata)

        self._init_vector_reward(
            ("goal", "bump", "step_cost"), (1.0, 0.05, 0.01), weights, low=(0.0, -1.0, -1.0), high=(1.0, 0.0, 0.0)
        )
        self._vecs, self._rews = reward_vectors(
            {
                "step": (0, 0, -1),
                "bump": (0, -1, -1),
                "goal": (1, 0, -1),
                "flag": (self.flag_reward, 0, -1),
            },
            self.weights,
        )
        self._cells_per_side = (self.size - 1) // 2
        self._moves = flat_moves(self.size)
        self._coords = [(i % self.size, i // self.size) for i in range(self.size * self.size)]
        n_obs = self.view_size * self.view_size * len(CELL_TYPES)
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(n_obs,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(4)

        self._fixed = None
        if self.fixed_maze:
            self._fixed = self._generate(np.random.default_rng(self.maze_seed))
        # state of the current episode (reset() fills it properly)
        self._install(self._fixed or self._generate(np.random.default_rng(0)))
        self._t = 0
        self._canvas: Canvas | None = None
        self._font = None

    # ------------------------------------------------------------------ maze

    def _generate(self, rng: np.random.Generator):
        """(types grid, start, target) of a fresh maze; flat indices."""
        c = self._cells_per_side
        grid = perfect_maze(c, c, rng).astype(np.int8)
        a, b = rng.choice(c * c, size=2, replace=False)
        start = (2 * (a // c) + 1) * self.size + 2 * (a % c) + 1
        target = (2 * (b // c) + 1) * self.size + 2 * (b % c) + 1
        grid.flat[start] = HOME
        grid.flat[target] = GOAL if self.task == "goal" else FLAG
        return grid, int(start), int(target)

    def _install(self, maze) -> None:
        grid, start, target = maze
        self._grid = grid
        self._free = bytearray((grid.reshape(-1) != WALL).tolist())
        self._start, self._target0 = start, target
        dist = bfs_distances(self._free, start, self.size)
        self.shortest_path = dist[target] * (2 if self.task == "flag" else 1)
        if self._fixed is not None and hasattr(self, "_view"):
            self._view.set_cell(*self._coords[target], int(grid.flat[target]))  # flag back in place
        else:
            self._view = WindowObserver(grid, self.view_size, len(CELL_TYPES), WALL)
        self._pos = start
        self._target = target
        self.carrying_flag = False

    @property
    def maze(self) -> np.ndarray:
        """The current ``size × size`` cell types (the flag removed while carried)."""
        grid = self._grid.copy()
        if self.carrying_flag:
            grid.flat[self._target0] = FLOOR
        return grid

    @property
    def agent_cell(self) -> tuple[int, int]:
        return self._coords[self._pos]

    @property
    def start_cell(self) -> tuple[int, int]:
        return self._coords[self._start]

    @property
    def goal_cell(self) -> tuple[int, int] | None:
        return self._coords[self._target0] if self.task == "goal" else None

    @property
    def flag_cell(self) -> tuple[int, int] | None:
        return self._coords[self._target0] if self.task == "flag" else None

    # ------------------------------------------------------------------ dynamics

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._install(self._fixed or self._generate(self.np_random))
        self._t = 0
        if self.render_mode == "human":
            self._render_frame()
        return self._view.observe(self._pos), {"shortest_path": self.shortest_path}

    def step(self, action):
        a = int(action)
        if not 0 <= a <= 3:
            raise ValueError(f"action must be in [0, 3], got {action!r}")
        self._t += 1
        q = self._pos + self._moves[a]
        terminated = False
        if self._free[q]:
            self._pos = q
            case = "step"
            if q == self._target:
                if self.task == "flag" and not self.carrying_flag:
                    self.carrying_flag = True
                    self._target = self._start
                    self._view.set_cell(*self._coords[q], FLOOR)
                    case = "flag"
                else:
                    case = "goal"
                    terminated = True
        else:
            case = "bump"
        view = self._view
        obs = view.table[self._pos].copy() if view.table is not None else view.observe(self._pos)
        truncated = self._t >= self.max_steps
        info = {"vector_reward": self._vecs[case].copy(), "shortest_path": self.shortest_path}
        if terminated or truncated:
            info["is_success"] = terminated
        if self.render_mode == "human":
            self._render_frame()
        return obs, self._rews[case], terminated, truncated, info

    # ------------------------------------------------------------------ rendering

    def _render_frame(self):
        import pygame

        n = self.size
        cell = int(np.clip(440 // n, 6, 40))
        margin = 14
        gw = n * cell
        width, height = frame_size(max(gw + 2 * margin, 320), gw + 2 * margin + 58)
        if self._canvas is None:
            self._canvas = Canvas(width, height, self.render_mode, self.metadata["render_fps"], "POMaze")
            self._font = get_font(20)
        surf, font = self._canvas.surface, self._font
        surf.fill(PALETTE["background"])
        ox, oy = (width - gw) // 2, margin
        grid = self.maze
        for p, (x, y) in enumerate(self._coords):
            t = grid.flat[p]
            rect = pygame.Rect(ox + x * cell, oy + y * cell, cell, cell)
            surf.fill(PALETTE["wall"] if t == WALL else PALETTE["floor"], rect)
            inner = rect.inflate(-max(2, cell // 5), -max(2, cell // 5))
            if t == GOAL:
                pygame.draw.rect(surf, PALETTE["goal"], inner, border_radius=4)
            elif t == HOME:
                pygame.draw.rect(surf, PALETTE["home"], inner, width=max(2, cell // 8), border_radius=4)
            elif t == FLAG:
                draw_flag(surf, x, y, cell, ox, oy)
        # dim what the agent cannot see
        ax, ay = self.agent_cell
        r = self.view_size // 2
        shade = pygame.Surface((gw, gw), pygame.SRCALPHA)
        shade.fill((10, 12, 20, 80))
        shade.fill((0, 0, 0, 0), pygame.Rect((ax - r) * cell, (ay - r) * cell, (2 * r + 1) * cell, (2 * r + 1) * cell))
        surf.blit(shade, (ox, oy))
        carrying = self.carrying_flag
        draw_agent(surf, ax, ay, cell, ox, oy, PALETTE["flag"] if carrying else None)
        if carrying:
            draw_flag(surf, ax, ay, cell, ox, oy, scale=0.6)
        draw_view_outline(surf, ax, ay, r, cell, ox, oy, n, n)
        text = f"task: {self.task}"
        if self.task == "flag":
            text += "   flag: " + ("CARRIED" if carrying else "not carried")
        surf.blit(font.render(text, True, PALETTE["text"]), (margin, oy + gw + 10))
        status = f"step {self._t}/{self.max_steps}   shortest path {self.shortest_path}"
        surf.blit(font.render(status, True, PALETTE["muted"]), (margin, oy + gw + 32))
        return self._canvas.present()

    def close(self):
        if self._canvas is not None:
            self._canvas.close()
            self._canvas = None
