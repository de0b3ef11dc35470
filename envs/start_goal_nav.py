"""``mirabilis/StartGoalNav-v0``: reach a commanded goal on a 2-D plane with obstacles.

Seed Sec. 10 and 12: Schmidhuber (1991), "Learning to generate sub-goals for action sequences"
— start/goal commands as inputs, an evaluator of start–goal costs, subgoals in between. The
environment follows the goal-conditioned convention (``Dict`` observation with ``observation``,
``achieved_goal``, ``desired_goal`` and a vectorised ``compute_reward``), so stable-baselines3's
HER works unchanged.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
from gymnasium import spaces

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
from envs.geometry import (
    VisibilityPlanner,
    as_rects,
    inflate,
    points_inside,
    segment_hits_rect,
    segments_hit,
)

#: Obstacles ``(x0, y0, x1, y1)`` of each layout on the unit square (y grows upwards).
LAYOUTS: dict[str, tuple[tuple[float, float, float, float], ...]] = {
    "open": (),
    # one wall from the bottom edge, a gap of 0.28 at the top
    "wall": ((0.48, 0.0, 0.52, 0.72),),
    # a U open at the top: bottom bar and two arms
    "u": ((0.25, 0.25, 0.75, 0.29), (0.25, 0.25, 0.29, 0.75), (0.71, 0.25, 0.75, 0.75)),
    # four rooms, each wall segment with a doorway 0.12 wide
    "rooms": (
        (0.48, 0.00, 0.52, 0.18), (0.48, 0.30, 0.52, 0.70), (0.48, 0.82, 0.52, 1.00),
        (0.00, 0.48, 0.18, 0.52), (0.30, 0.48, 0.70, 0.52), (0.82, 0.48, 1.00, 0.52),
    ),
    # two walls, one from the bottom edge and one from the top, each leaving a gap of 0.2: an S-shaped corridor
    "zigzag": ((0.31, 0.0, 0.35, 0.8), (0.65, 0.2, 0.69, 1.0)),
    # two full-height walls, each with one doorway 0.12 wide: low in the left one, high in the right one
    "doors": (
        (0.31, 0.00, 0.35, 0.18), (0.31, 0.30, 0.35, 1.00),
        (0.65, 0.00, 0.69, 0.70), (0.65, 0.82, 0.69, 1.00),
    ),
}

#: Extra clearance (beyond ``agent_radius``) of planned paths and of sampled start/goal points.
PLAN_MARGIN = 0.005


class StartGoalNavEnv(VectorRewardMixin, RenderMixin, gym.Env):
    """Move a point agent from a start to a commanded goal on ``[0, 1]²`` around obstacles.

    ## Description

    The plane holds the axis-aligned rectangular obstacles of ``layout`` (fixed per layout; y
    grows upwards):

    | layout | obstacles |
    |---|---|
    | ``"open"`` | none |
    | ``"wall"`` (default) | a wall ``x ∈ [0.48, 0.52]`` from the bottom edge up to ``y = 0.72`` |
    | ``"u"`` | a U open at the top: bar ``y ∈ [0.25, 0.29]`` and arms ``x ∈ [0.25, 0.29]``, ``[0.71, 0.75]`` up to ``y = 0.75`` |
    | ``"rooms"`` | four rooms: walls along ``x = 0.5`` and ``y = 0.5`` (0.04 thick), one doorway 0.12 wide in each half-wall |
    | ``"zigzag"`` | an S-shaped corridor: walls ``x ∈ [0.31, 0.35]`` from the bottom edge up to ``y = 0.8`` and ``x ∈ [0.65, 0.69]`` from the top edge down to ``y = 0.2`` |
    | ``"doors"`` | three strips: full-height walls ``x ∈ [0.31, 0.35]`` with a doorway at ``y ∈ [0.18, 0.30]`` and ``x ∈ [0.65, 0.69]`` with one at ``y ∈ [0.70, 0.82]`` |

    The agent is a square of half-width ``agent_radius``: its centre may not enter an obstacle
    grown by ``agent_radius`` nor leave ``[agent_radius, 1 − agent_radius]²``.
    ``env.unwrapped.obstacles`` lists the raw rectangles ``(x0, y0, x1, y1)``.

    ## Action space

    ``Box(-1, 1, (2,), float32)``: a velocity; the agent moves by ``action · max_speed`` (per
    axis). A move whose straight segment would enter an obstacle or leave the plane is
    *stopped*: the agent stays where it is for that step ("collision").

    ## Observation space

    ``Dict`` of ``Box(0, 1, (2,), float32)``:

    | key | content |
    |---|---|
    | ``observation`` | agent position ``(x, y)`` (the layout is fixed, so this is the full state) |
    | ``achieved_goal`` | agent position ``(x, y)`` |
    | ``desired_goal`` | goal position ``(x, y)``, constant through the episode |

    ## Rewards

    A vector (``info["vector_reward"]``, float32) with signs folded in; scalar = ``weights · vector``:

    | channel | value | default weight |
    |---|---|---|
    | ``reached`` | 1 when ``‖achieved_goal − desired_goal‖ ≤ goal_radius``, else 0 | 1.0 |
    | ``step_cost`` | −1 every step | 1.0 |
    | ``collision`` | −1 when the move was stopped, else 0 | 0.0 |

    The default weights give the standard sparse goal-conditioned reward used with HER:
    −1 per step until the goal is reached, 0 on reaching it. ``compute_reward(achieved_goal,
    desired_goal, info)`` computes the same scalar for batches (``(N, 2)`` goals with a list or
    array of info dicts, or one dict), ``compute_vector_reward`` the vectors. A nonzero
    ``collision`` weight reads ``info["collision"]``: give SB3's ``HerReplayBuffer``
    ``copy_info_dict=True`` then, or relabelled rewards ignore collisions.

    ## Starting state

    Start and goal are drawn uniformly from free space with ``PLAN_MARGIN`` (0.005) extra clearance,
    at least ``2 · goal_radius`` apart. With ``far_pairs=True`` only pairs whose straight segment is
    blocked by an obstacle and whose shortest path is at least ``2 · goal_radius`` longer than
    that segment are kept, so going straight fails (not possible for ``"open"``); with a share
    ``far_pairs=p`` each reset draws a far pair with probability ``p``, else a plain one.
    ``reset(options={"start": (x, y), "goal": (x, y)})`` commands a pair instead (either key may
    be left out and is then drawn from free space; a point in an obstacle raises ``ValueError``).

    ## Episode end

    *Terminated* when the goal is reached (``info["is_success"] = True``); *truncated* after
    ``max_steps`` steps.

    ## Info

    ``vector_reward``, ``is_success`` (bool, every step), ``collision`` (bool: this step's move
    was stopped), ``path_length`` (distance travelled so far), ``shortest_path`` (length of the
    shortest obstacle-free path start → goal keeping the agent's clearance, computed at reset).

    ## Helpers on ``env.unwrapped``

    ``obstacles`` (list of rects), ``start``, ``goal``, ``position`` (arrays), ``is_free(point)``,
    ``sample_free_point()``, ``shortest_path_length(a, b)`` and ``shortest_path(a, b)``
    (waypoints). Paths are exact Euclidean shortest paths (visibility graph over obstacle
    corners, see :mod:`envs.geometry`), not a grid approximation. Set ``env.unwrapped.subgoals``
    (a list of points) after ``reset`` and the renderer draws them, numbered; reset clears it.

    ## Arguments

    | kwarg | default | allowed |
    |---|---|---|
    | ``layout`` | ``"wall"`` | ``"open"``, ``"wall"``, ``"u"``, ``"rooms"``, ``"zigzag"``, ``"doors"`` |
    | ``far_pairs`` | False | bool, or the share of resets that draw a far pair (a float in [0, 1]); not with ``"open"`` |
    | ``max_speed`` | 0.05 | [0.001, 0.25] (displacement per step and axis) |
    | ``goal_radius`` | 0.05 | [0.005, 0.25] |
    | ``agent_radius`` | 0.01 | [0, 0.03] |
    | ``max_steps`` | 100 | [1, 100000] |
    | ``weights`` | ``(1.0, 1.0, 0.0)`` | 3 numbers or a dict by channel name |
    | ``render_mode`` | None | ``"human"``, ``"rgb_array"`` |

    ## Seed

    Sec. 10 and 12 of the seed: start/goal commands, subgoal generation, learned evaluators.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 20}

    def __init__(
        self,
        render_mode: str | None = None,
        layout: str = "wall",
        far_pairs: bool = False,
        max_speed: float = 0.05,
        goal_radius: float = 0.05,
        agent_radius: float = 0.01,
        max_steps: int = 100,
        weights=None,
    ):
        self.render_mode = check_render_mode(render_mode, self.metadata)
        self.layout = check_choice("layout", layout, list(LAYOUTS))
        if isinstance(far_pairs, (bool, np.bool_)):
            self.far_share = 1.0 if far_pairs else 0.0
        elif isinstance(far_pairs, (int, float, np.integer, np.floating)) and 0 <= far_pairs <= 1:
            self.far_share = float(far_pairs)
        else:
            raise ValueError(f"far_pairs must be true, false or a share in [0, 1], got {far_pairs!r}")
        self.far_pairs = far_pairs if isinstance(far_pairs, bool) else self.far_share
        if self.far_share > 0 and self.layout == "open":
            raise ValueError("far_pairs must be False for layout='open' (no obstacle can block a pair)")
        self._episode_far = False
        self.max_speed = check_float("max_speed", max_speed, 0.001, 0.25)
        self.goal_radius = check_float("goal_radius", goal_radius, 0.005, 0.25)
        self.agent_radius = check_float("agent_radius", agent_radius, 0.0, 0.03)
        self.max_steps = check_int("max_steps", max_steps, 1, 100_000)
        self._init_vector_reward(
            ("reached", "step_cost", "collision"), (1.0, 1.0, 0.0), weights, low=(0, -1, -1), high=(1, 0, 0)
        )
        self._w = [float(w) for w in self.weights]
        self._min_detour = 2.0 * self.goal_radius  # of far pairs

        r = self.agent_radius
        self.obstacles: list[tuple[float, float, float, float]] = [tuple(o) for o in LAYOUTS[self.layout]]
        self._rects = inflate(as_rects(self.obstacles), r)  # what the agent's centre may not enter
        self._lo, self._hi = r, 1.0 - r
        self.planner = VisibilityPlanner(self._rects, self._lo, self._hi, PLAN_MARGIN)
        self._sample_rects = self.planner.plan_rects
        # Broad phase for the per-step collision test: rectangles near each cell of a grid.
        n = max(1, min(64, int(1.0 / self.max_speed)))
        self._grid_n = n
        c, reach = 1.0 / n, self.max_speed + 1e-6
        self._cell_rects: list[list[tuple[float, ...]]] = []
        for cy in range(n):
            for cx in range(n):
                x0, y0, x1, y1 = cx * c - reach, cy * c - reach, (cx + 1) * c + reach, (cy + 1) * c + reach
                near = [rr for rr in self._rects.tolist() if rr[0] < x1 and rr[2] > x0 and rr[1] < y1 and rr[3] > y0]
                self._cell_rects.append([tuple(rr) for rr in near])

        box = spaces.Box(0.0, 1.0, (2,), dtype=np.float32)
        self.observation_space = spaces.Dict({"observation": box, "achieved_goal": box, "desired_goal": box})
        self.action_space = spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)

        self._x = self._y = 0.5
        self._gx = self._gy = 0.5  # goal as float32-rounded Python floats
        self.start = np.zeros(2)
        self.goal = np.zeros(2, dtype=np.float32)
        self.steps = 0
        self.path_length = 0.0
        self.shortest_path_len = 0.0
        self.planned_path: list[tuple[float, float]] | None = None
        self.subgoals: list | None = None
        self.trail: list[tuple[float, float]] = []
        self.collisions: list[tuple[float, float]] = []
        self._success = False
        self._return = 0.0
        self._canvas: Canvas | None = None

    # ------------------------------------------------------------------ helpers for agents

    @property
    def position(self) -> np.ndarray:
        """The agent's position ``(x, y)`` (float64)."""
        return np.array([self._x, self._y])

    def is_free(self, point) -> bool:
        """Whether the agent's centre may be at ``point`` (inside the plane, clear of obstacles)."""
        return self.planner.is_free(point)

    def sample_free_point(self, rng: np.random.Generator | None = None, n: int | None = None):
        """Uniform point(s) of free space with ``PLAN_MARGIN`` extra clearance.

        ``rng`` defaults to ``self.np_random``; ``n=None`` gives one ``(2,)`` point, else ``(n, 2)``.
        """
        rng = self.np_random if rng is None else rng
        want = 1 if n is None else int(n)
        out = np.empty((0, 2))
        while len(out) < want:
            pts = self._uniform(rng, max(16, 2 * want))
            out = np.concatenate([out, pts[self._free_mask(pts)]])
        return out[0] if n is None else out[:want]

    def shortest_path_length(self, a, b) -> float:
        """Length of the shortest obstacle-free path from ``a`` to ``b`` (``inf`` if none)."""
        return self.planner.distance(a, b)

    def shortest_path(self, a, b) -> list[tuple[float, float]] | None:
        """Waypoints ``[a, ..., b]`` of the shortest obstacle-free path, or None."""
        return self.planner.path(a, b)

    def _first_good_pair(self, s: np.ndarray, g: np.ndarray, cand: np.ndarray, far: bool):
        """First candidate pair that is connected (and, for far pairs, needs a detour)."""
        chunk = 4 if far else 1  # plain pairs are nearly always connected
        for k in range(0, len(cand), chunk):
            c = cand[k : k + chunk]
            lengths = self.planner.solve(s[c], g[c])[0]
            good = np.isfinite(lengths)
            if far:
                good &= lengths - np.linalg.norm(s[c] - g[c], axis=1) >= self._min_detour
            if good.any():
                j = int(np.argmax(good))
                return int(c[j]), float(lengths[j])
        return None

    def _sample_pair(self, rng):
        """A random start/goal pair (see "Starting state"): ``(starts, goals, index, length)``."""
        # (a share strictly between 0 and 1 draws once per reset; True and False draw nothing, as before)
        far = self.far_share >= 1 or (self.far_share > 0 and bool(rng.random() < self.far_share))
        self._episode_far = far
        min_dist2 = (2.0 * self.goal_radius) ** 2
        for _ in range(1000):
            # float32-representable points, so observations hold them exactly
            s = self._uniform(rng, 32).astype(np.float32).astype(np.float64)
            g = self._uniform(rng, 32).astype(np.float32).astype(np.float64)
            ok = self._free_mask(s) & self._free_mask(g) & (np.sum((s - g) ** 2, axis=1) > min_dist2)
            if far:
                ok &= segments_hit(s, g, self._rects).any(axis=1)
            found = self._first_good_pair(s, g, np.flatnonzero(ok), far)
            if found is not None:
                return s, g, found[0], found[1]
        raise RuntimeError(f"could not sample a start/goal pair in layout {self.layout!r}")  # pragma: no cover

    def _commanded_pair(self, opts: dict):
        """Start and goal commanded by ``reset(options={"start": (x, y), "goal": (x, y)})``.

        Either may be left out (it is then drawn from free space); both must be free points.
        """
        pts = []
        for key in ("start", "goal"):
            if key in opts:
                p = np.asarray(opts[key], dtype=np.float32).astype(np.float64).reshape(-1)
                if p.shape != (2,) or not self.is_free(p):
                    raise ValueError(f"options[{key!r}] must be a free point (x, y), got {opts[key]!r}")
            else:
                p = self.sample_free_point().astype(np.float32).astype(np.float64)
            pts.append(p)
        length = self.planner.distance(pts[0], pts[1])
        if not np.isfinite(length):
            raise ValueError(f"options: no free path from start {pts[0]} to goal {pts[1]}")
        return pts[0][None], pts[1][None], 0, length

    def _uniform(self, rng, k: int) -> np.ndarray:
        lo, hi = self._lo + PLAN_MARGIN, self._hi - PLAN_MARGIN
        return rng.uniform(lo, hi, size=(k, 2))

    def _free_mask(self, pts: np.ndarray) -> np.ndarray:
        if len(self._sample_rects) == 0:
            return np.ones(len(pts), dtype=bool)
        return ~points_inside(pts, self._sample_rects).any(axis=1)

    # ------------------------------------------------------------------ goal-env rewards

    def _collision_flags(self, info, shape) -> np.ndarray:
        if info is None:
            return np.zeros(shape, dtype=bool)
        if isinstance(info, dict):
            return np.full(shape, bool(info.get("collision", False)))
        infos = np.ravel(np.asarray(info, dtype=object))
        flags = [isinstance(i, dict) and bool(i.get("collision", False)) for i in infos]
        return np.asarray(flags, dtype=bool).reshape(shape)

    def _reached(self, achieved_goal, desired_goal) -> np.ndarray:
        # float32 goals, as observed, compared in float64: exactly what `step` computes
        ag = np.asarray(achieved_goal, dtype=np.float32).astype(np.float64)
        d = ag - np.asarray(desired_goal, dtype=np.float32).astype(np.float64)
        return d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1] <= self.goal_radius * self.goal_radius

    def compute_vector_reward(self, achieved_goal, desired_goal, info) -> np.ndarray:
        """Reward vectors ``(..., 3)`` float32 for (batches of) goals, as ``step`` gives them."""
        reached = self._reached(achieved_goal, desired_goal)
        coll = self._collision_flags(info, reached.shape)
        vec = np.stack([reached, -np.ones(reached.shape), -coll.astype(np.float64)], axis=-1)
        return vec.astype(np.float32)

    def compute_reward(self, achieved_goal, desired_goal, info):
        """Scalar ``weights · vector`` for (batches of) goals; a float for one goal, else an array."""
        reached = self._reached(achieved_goal, desired_goal)
        w = self._w
        coll = self._collision_flags(info, reached.shape) if w[2] != 0.0 else np.zeros(reached.shape, dtype=bool)
        reward = np.where(reached, w[0], 0.0) - w[1] - np.where(coll, w[2], 0.0)
        return float(reward) if reward.ndim == 0 else reward

    # ------------------------------------------------------------------ gymnasium API

    def _obs(self) -> dict[str, np.ndarray]:
        pos = np.array([self._x, self._y], dtype=np.float32)
        return {"observation": pos, "achieved_goal": pos.copy(), "desired_goal": self.goal.copy()}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        opts = options or {}
        if "start" in opts or "goal" in opts:
            s, g, i, length = self._commanded_pair(opts)
            self._episode_far = False
        else:
            s, g, i, length = self._sample_pair(rng)
        self.start = s[i].copy()
        self._x, self._y = float(s[i, 0]), float(s[i, 1])
        self.goal = g[i].astype(np.float32)
        self._gx, self._gy = float(self.goal[0]), float(self.goal[1])
        self.shortest_path_len = float(length)
        self.planned_path = None
        self.subgoals = None
        self.steps = 0
        self.path_length = 0.0
        self.trail = [(self._x, self._y)]
        self.collisions = []
        self._success = False
        self._return = 0.0
        info = {"collision": False, "path_length": 0.0, "shortest_path": self.shortest_path_len}
        if self.render_mode == "human":
            self.render()
        return self._obs(), info

    def step(self, action):
        ms = self.max_speed
        x, y = self._x, self._y
        nx = x + min(max(float(action[0]), -1.0), 1.0) * ms
        ny = y + min(max(float(action[1]), -1.0), 1.0) * ms
        collision = not (self._lo <= nx <= self._hi and self._lo <= ny <= self._hi)
        if not collision:
            n = self._grid_n
            cell = min(int(y * n), n - 1) * n + min(int(x * n), n - 1)
            for x0, y0, x1, y1 in self._cell_rects[cell]:
                if segment_hits_rect(x, y, nx, ny, x0, y0, x1, y1):
                    collision = True
                    break
        if collision:
            self.collisions.append((x, y))
        else:
            self.path_length += math.hypot(nx - x, ny - y)
            self._x, self._y = nx, ny
        self.steps += 1
        obs = self._obs()
        ax, ay = obs["achieved_goal"].tolist()
        dx, dy = ax - self._gx, ay - self._gy
        reached = dx * dx + dy * dy <= self.goal_radius * self.goal_radius
        w = self._w
        reward = (w[0] if reached else 0.0) - w[1] - (w[2] if collision else 0.0)
        self._return += reward
        self._success = reached
        self.trail.append((self._x, self._y))
        info = {
            "vector_reward": np.array(
                [1.0 if reached else 0.0, -1.0, -1.0 if collision else 0.0], dtype=np.float32
            ),
            "collision": collision,
            "is_success": reached,
            "path_length": self.path_length,
            "shortest_path": self.shortest_path_len,
        }
        truncated = (not reached) and self.steps >= self.max_steps
        if self.render_mode == "human":
            self.render()
        return obs, reward, reached, truncated, info

    # ------------------------------------------------------------------ rendering

    def _render_frame(self):
        import pygame

        W, top, left = 520, 56, 20
        if self._canvas is None:
            fps = self.metadata["render_fps"]
            self._canvas = Canvas(W + 2 * left, W + top + 20, self.render_mode, fps, "StartGoalNav")
        surf = self._canvas.surface
        surf.fill((28, 30, 38))

        def px(p):
            return (left + float(p[0]) * W, top + (1.0 - float(p[1])) * W)

        pygame.draw.rect(surf, (236, 234, 226), pygame.Rect(left, top, W, W))
        surf.set_clip(pygame.Rect(left, top, W, W))
        r = self.agent_radius
        for x0, y0, x1, y1 in self.obstacles:  # clearance halo, then the obstacle
            a, b = px((x0 - r, y1 + r)), px((x1 + r, y0 - r))
            pygame.draw.rect(surf, (214, 210, 200), pygame.Rect(a[0], a[1], b[0] - a[0], b[1] - a[1]))
        for x0, y0, x1, y1 in self.obstacles:
            a, b = px((x0, y1)), px((x1, y0))
            pygame.draw.rect(surf, (62, 66, 84), pygame.Rect(a[0], a[1], b[0] - a[0], b[1] - a[1]))

        # goal region, planned shortest path (faint), start
        g = px(self.goal)
        gr = max(3, int(round(self.goal_radius * W)))
        pygame.draw.circle(surf, (170, 225, 170) if not self._success else (110, 220, 120), g, gr)
        pygame.draw.circle(surf, (40, 150, 60), g, gr, 2)
        pygame.draw.line(surf, (40, 150, 60), (g[0] - 5, g[1]), (g[0] + 5, g[1]), 2)
        pygame.draw.line(surf, (40, 150, 60), (g[0], g[1] - 5), (g[0], g[1] + 5), 2)
        if self.planned_path is None:
            self.planned_path = self.shortest_path(self.start, self.goal) or []
        if len(self.planned_path) > 1:
            _dashed(surf, (150, 150, 160), [px(p) for p in self.planned_path])
        s = px(self.start)
        pygame.draw.rect(surf, (60, 110, 220), pygame.Rect(s[0] - 6, s[1] - 6, 12, 12), 2)

        # subgoals an agent has set: numbered diamonds joined agent -> subgoals -> goal
        if self.subgoals is not None and len(self.subgoals):
            pts = [px(self.position)] + [px(p) for p in self.subgoals] + [g]
            _dashed(surf, (170, 90, 200), pts, dash=6)
            f = get_font(16)
            for k, (x, y) in enumerate(pts[1:-1], start=1):
                pygame.draw.polygon(surf, (170, 90, 200), [(x, y - 9), (x + 9, y), (x, y + 9), (x - 9, y)])
                if f is not None:
                    label = f.render(str(k), True, (255, 255, 255))
                    surf.blit(label, label.get_rect(center=(x, y)))

        # trail, collisions, agent
        if len(self.trail) > 1:
            pygame.draw.lines(surf, (235, 130, 40), False, [px(p) for p in self.trail], 3)
        for c in self.collisions:
            cx, cy = px(c)
            pygame.draw.line(surf, (220, 40, 40), (cx - 5, cy - 5), (cx + 5, cy + 5), 2)
            pygame.draw.line(surf, (220, 40, 40), (cx - 5, cy + 5), (cx + 5, cy - 5), 2)
        a = px(self.position)
        pygame.draw.circle(surf, (235, 130, 40), a, max(5, int(round(r * W))))
        pygame.draw.circle(surf, (90, 40, 0), a, max(5, int(round(r * W))), 2)

        surf.set_clip(None)
        f = get_font(20)
        if f is not None:
            status = "REACHED" if self._success else ("time out" if self.steps >= self.max_steps else "")
            far = "  far pair" if self._episode_far else ""
            line1 = f"{self.layout}{far}   step {self.steps}/{self.max_steps}   return {self._return:+.1f}"
            line2 = (
                f"path {self.path_length:.2f}   shortest {self.shortest_path_len:.2f}   "
                f"collisions {len(self.collisions)}"
            )
            surf.blit(f.render(line1, True, (230, 230, 230)), (left, 8))
            surf.blit(f.render(line2, True, (230, 230, 230)), (left, 30))
            if status:
                col = (110, 230, 120) if self._success else (230, 180, 90)
                t = f.render(status, True, col)
                surf.blit(t, (left + W - t.get_width(), 8))
        return self._canvas.present()

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_canvas"}  # pygame surfaces don't pickle

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._canvas = None

    def close(self):
        if self._canvas is not None:
            self._canvas.close()
            self._canvas = None


def _dashed(surf, colour, pts, dash: int = 8, width: int = 2) -> None:
    import pygame

    for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:]):
        length = math.hypot(x1 - x0, y1 - y0)
        n = max(1, int(length // dash))
        for k in range(0, n, 2):
            t0, t1 = k / n, min(1.0, (k + 1) / n)
            a = (x0 + (x1 - x0) * t0, y0 + (y1 - y0) * t0)
            b = (x0 + (x1 - x0) * t1, y0 + (y1 - y0) * t1)
            pygame.draw.line(surf, colour, a, b, width)

