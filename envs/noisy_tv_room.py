"""``mirabilis/NoisyTVRoom-v0``: rooms to explore, one of them with a TV of fresh random noise.

Seed Sec. 5 and 6: a curious agent rewarded by its world model's *error* (adversarial curiosity,
1990) is trapped by the TV — fresh noise is unpredictable forever — while one rewarded by
*learning progress* (1991) loses interest in it once it has learned that nothing can be learned
there, and explores the rooms instead (or plays with the learnable display).
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
    check_int,
    check_render_mode,
    get_font,
)
from envs.gridworld import (
    PALETTE,
    WindowObserver,
    bfs_distances,
    draw_agent,
    draw_screen,
    draw_view_outline,
    flat_moves,
    frame_size,
    reward_vectors,
)

WALL, FLOOR, TV, DISPLAY, GOAL = range(5)
CELL_TYPES = ("wall", "floor", "tv", "display", "goal")
TV_MODES = ("remote", "passive", "off")
UP, RIGHT, DOWN, LEFT, INTERACT = range(5)


class NoisyTVRoomEnv(VectorRewardMixin, RenderMixin, gym.Env):
    """Rooms to explore; in one of them a TV that shows fresh random noise.

    **Layout.** ``n_rooms_x × n_rooms_y`` square rooms of ``room_size × room_size`` floor cells,
    separated by one-cell walls; every pair of side-by-side rooms is joined by a doorway in the
    middle of their shared wall. Rooms are numbered row by row from the top-left corner
    (room ``i`` is column ``i % n_rooms_x``, row ``i // n_rooms_x``). The TV stands in the centre
    cell of room ``tv_room``; the optional learnable display in the centre of ``display_room``;
    the optional goal in the centre of ``goal_room``. TV and display are solid (walking into them
    is a bump). The layout never changes; only the start cell and the noise are random. With
    the defaults the grid is 19 × 19 and 236 cells are reachable.

    **Observation** — ``Box(0, 1, (n,), float32)``, the concatenation of

    =====================================  =====================================================
    index                                  meaning
    =====================================  =====================================================
    ``[0, v*v*5)``                         one-hot cell types of the ``v × v`` window centred on
                                           the agent (``v = view_size``; not rotated; rows top to
                                           bottom, columns left to right, then the 5 types
                                           ``wall, floor, tv, display, goal``; outside = wall)
    ``[v*v*5, v*v*5 + 2)``                 normalised position ``x / (W-1), y / (H-1)`` — only
                                           when ``observe_position=True``
    last ``screen_pixels`` entries         the *screen*: grey values in [0, 1] of a
                                           ``s × s`` image (``s² = screen_pixels``), row-major —
                                           fresh uniform noise while the TV is on, the display's
                                           pattern while the display is in view, else all 0
    =====================================  =====================================================

    With the defaults ``n = 5*5*5 + 2 + 16 = 143``. "In view" means inside the agent's window.

    **Actions** — ``Discrete(5)``:

    ===  ===========================================================================
    0    up (y - 1)
    1    right (x + 1)
    2    down (y + 1)
    3    left (x - 1)
    4    interact: the TV's remote (``tv_mode="remote"``) or the display's button, when
         the agent stands next to it (4-neighbourhood); otherwise nothing happens
    ===  ===========================================================================

    **The TV** (``tv_mode``): ``"remote"`` — ``interact`` next to the TV puts a *fresh*
    uniform-random image on the screen for that step (no model can learn it); otherwise the screen
    shows a constant blank (zeros). ``"passive"`` — fresh noise on the screen every step the TV is
    in view. ``"off"`` — the TV is just a dark object (control condition).

    **The learnable display** (``display=True``): a moving bar over the screen. Its phase starts
    at 0 each episode and advances by one (mod ``2s``; columns ``0..s-1`` lit in turn, then rows
    ``0..s-1``) each time ``interact`` is pressed next to it; while it is in view the screen shows
    the bar (1.0) on a dim background (0.2). The TV's noise takes precedence if both are in view.

    **Reward channels** (``info["vector_reward"]``, float32, ``reward_names``):

    ========  ===================================================  ==============
    channel   value                                                default weight
    ========  ===================================================  ==============
    goal      1 on the step that reaches the goal (``goal=True``)   1.0
    bump      -1 when moving into a wall, the TV or the display      0.0
    ========  ===================================================  ==============

    The scalar reward is ``weights · vector``; with the default weights and ``goal=False`` it is
    always 0, so curiosity alone drives the agent (pass e.g. ``weights=(1.0, 0.01)`` to make
    bumping hurt).

    **Start state.** A uniformly random free cell of room ``start_room`` (the top-left corner).

    **Episode end.** Terminated when the goal is reached (only with ``goal=True``); truncated
    after ``max_steps`` steps. ``info["is_success"]`` at the end: goal reached (always False
    without a goal).

    **Info** every step: ``vector_reward``, ``tv_on`` (bool: fresh noise on the screen this step),
    ``cell`` (``(x, y)`` ints). Reset's info has ``tv_on`` and ``cell``.

    **Attributes for metrics**: ``reachable_cells`` (int, cells reachable from the start room),
    ``grid_shape`` ``(H, W)``, ``cell_index((x, y)) = y * W + x`` (flat index for heat-maps of
    shape ``grid_shape``), ``reachable_mask`` (``H × W`` bool), ``grid`` (``H × W`` cell types),
    ``tv_cell``, ``display_cell``, ``goal_cell`` (``(x, y)`` or None), ``episode_coverage()``.

    **Kwargs**

    ====================  ==========  ===================================================
    kwarg                 default     meaning (allowed values)
    ====================  ==========  ===================================================
    ``n_rooms_x``         3           rooms per row (1..8)
    ``n_rooms_y``         3           rooms per column (1..8); at least 2 rooms in all
    ``room_size``         5           floor cells per room side (3..11)
    ``view_size``         5           side of the view window (odd, 1..11)
    ``observe_position``  True        append the normalised (x, y)
    ``screen_pixels``     16          pixels of the screen (a perfect square, 1..256)
    ``tv_mode``           "remote"    ``"remote"``, ``"passive"`` or ``"off"``
    ``tv_room``           None        room of the TV; None: the room right of the start
                                      room (below it if there is none)
    ``display``           False       add the learnable display
    ``display_room``      None        room of the display; None: the start room's other
                                      neighbour (or any room but the TV's)
    ``goal``              False       add a goal cell that ends the episode
    ``goal_room``         None        room of the goal; None: the room farthest from the start
    ``start_room``        0           room the agent starts in
    ``max_steps``         300         truncation (1..1e6)
    ``weights``           (1.0, 0.0)  weights of ``(goal, bump)``; a sequence or a dict
    ``render_mode``       None        ``"human"`` or ``"rgb_array"``
    ====================  ==========  ===================================================

    **Seed section**: Sec. 5 (adversarial curiosity: reward = M's error) and Sec. 6 (curiosity
    from learning progress) — the noisy TV is the classic trap separating the two.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 10}

    def __init__(
        self,
        n_rooms_x: int = 3,
        n_rooms_y: int = 3,
        room_size: int = 5,
        view_size: int = 5,
        observe_position: bool = True,
        screen_pixels: int = 16,
        tv_mode: str = "remote",
        tv_room: int | None = None,
        display: bool = False,
        display_room: int | None = None,
        goal: bool = False,
        goal_room: int | None = None,
        start_room: int = 0,
        max_steps: int = 300,
        weights=None,
        render_mode: str | None = None,
    ):
        self.n_rooms_x = check_int("n_rooms_x", n_rooms_x, 1, 8)
        self.n_rooms_y = check_int("n_rooms_y", n_rooms_y, 1, 8)
        n_rooms = self.n_rooms_x * self.n_rooms_y
        if n_rooms < 2:
            raise ValueError(
                f"n_rooms_x * n_rooms_y must be >= 2 (a start room and a TV room), got {n_rooms}"
            )
        self.room_size = check_int("room_size", room_size, 3, 11)
        self.view_size = check_int("view_size", view_size, 1, 11)
        if self.view_size % 2 == 0:
            raise ValueError(f"view_size must be odd in [1, 11], got {view_size}")
        self.observe_position = bool(check_choice("observe_position", observe_position, (True, False)))
        self.screen_pixels = check_int("screen_pixels", screen_pixels, 1, 256)
        self.screen_side = int(round(np.sqrt(self.screen_pixels)))
        if self.screen_side**2 != self.screen_pixels:
            raise ValueError(
                f"screen_pixels must be a perfect square in [1, 256] (e.g. 16 = 4x4), got {screen_pixels}"
            )
        self.tv_mode = check_choice("tv_mode", tv_mode, TV_MODES)
        self.display = bool(check_choice("display", display, (True, False)))
        self.goal = bool(check_choice("goal", goal, (True, False)))
        self.start_room = check_int("start_room", start_room, 0, n_rooms - 1)
        self.max_steps = check_int("max_steps", max_steps, 1, 1_000_000)
        self.render_mode = check_render_mode(render_mode, self.metadata)

        neighbours = self._room_neighbours(self.start_room)
        if tv_room is None:
            tv_room = neighbours[0]
        self.tv_room = check_int("tv_room", tv_room, 0, n_rooms - 1)
        self.display_room = None
        if self.display:
            if display_room is None:
                others = [r for r in neighbours if r != self.tv_room] + [
                    r for r in range(n_rooms) if r not in (self.tv_room, self.start_room)
                ]
                display_room = others[0] if others else self.start_room
            self.display_room = check_int("display_room", display_room, 0, n_rooms - 1)
            if self.display_room == self.tv_room:
                raise ValueError(f"display_room must differ from tv_room ({self.tv_room}), got {display_room}")
        self.goal_room = None
        if self.goal:
            if goal_room is None:
                sx, sy = self.start_room % self.n_rooms_x, self.start_room // self.n_rooms_x
                far = sorted(
                    (-(abs(r % self.n_rooms_x - sx) + abs(r // self.n_rooms_x - sy)), r)
                    for r in range(n_rooms)
                    if r not in (self.tv_room, self.display_room)
                )
                if not far:
                    raise ValueError(
                        "goal_room: no room left for the goal (it must differ from tv_room and "
                        "display_room); use more rooms"
                    )
                goal_room = far[0][1]
            self.goal_room = check_int("goal_room", goal_room, 0, n_rooms - 1)
            if self.goal_room in (self.tv_room, self.display_room):
                raise ValueError(
                    f"goal_room must differ from tv_room and display_room, got {goal_room}"
                )

        self._init_vector_reward(("goal", "bump"), (1.0, 0.0), weights, low=(0.0, -1.0), high=(1.0, 0.0))
        self._vecs, self._rews = reward_vectors(
            {"step": (0.0, 0.0), "bump": (0.0, -1.0), "goal": (1.0, 0.0)}, self.weights
        )

        self._build_layout()

        self.action_space = gym.spaces.Discrete(5)
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(self._view.size,), dtype=np.float32)

        self._pos = self._start_cells[0]
        self._t = 0
        self._phase = 0
        self._screen_img = np.zeros(self.screen_pixels, dtype=np.float32)
        self._tv_on = False
        self._visited = bytearray(self._width * self._height)
        self._canvas: Canvas | None = None
        self._font = None

    # ------------------------------------------------------------------ layout

    def _room_neighbours(self, room: int) -> list[int]:
        rx, ry = room % self.n_rooms_x, room // self.n_rooms_x
        out = []
        for dx, dy in ((1, 0), (0, 1), (-1, 0), (0, -1)):
            nx, ny = rx + dx, ry + dy
            if 0 <= nx < self.n_rooms_x and 0 <= ny < self.n_rooms_y:
                out.append(ny * self.n_rooms_x + nx)
        return out

    def _room_origin(self, room: int) -> tuple[int, int]:
        """Grid (x, y) of the top-left floor cell of ``room``."""
        s = self.room_size + 1
        return (room % self.n_rooms_x) * s + 1, (room // self.n_rooms_x) * s + 1

    def _room_centre(self, room: int) -> tuple[int, int]:
        x0, y0 = self._room_origin(room)
        return x0 + self.room_size // 2, y0 + self.room_size // 2

    def _build_layout(self) -> None:
        rs, s = self.room_size, self.room_size + 1
        width, height = self.n_rooms_x * s + 1, self.n_rooms_y * s + 1
        self._width, self._height = width, height
        grid = np.full((height, width), WALL, dtype=np.int8)
        for room in range(self.n_rooms_x * self.n_rooms_y):
            x0, y0 = self._room_origin(room)
            grid[y0 : y0 + rs, x0 : x0 + rs] = FLOOR
        mid = rs // 2
        for ry in range(self.n_rooms_y):
            for rx in range(self.n_rooms_x):
                if rx + 1 < self.n_rooms_x:  # door in the wall to the right
                    grid[ry * s + 1 + mid, (rx + 1) * s] = FLOOR
                if ry + 1 < self.n_rooms_y:  # door in the wall below
                    grid[(ry + 1) * s, rx * s + 1 + mid] = FLOOR
        self.tv_cell = self._room_centre(self.tv_room)
        grid[self.tv_cell[1], self.tv_cell[0]] = TV
        self.display_cell = None
        if self.display:
            self.display_cell = self._room_centre(self.display_room)
            grid[self.display_cell[1], self.display_cell[0]] = DISPLAY
        self.goal_cell = None
        if self.goal:
            self.goal_cell = self._room_centre(self.goal_room)
            grid[self.goal_cell[1], self.goal_cell[0]] = GOAL
        grid.flags.writeable = False
        self.grid = grid
        self.grid_shape = (height, width)

        flat = grid.reshape(-1).tolist()
        self._free = bytearray(t in (FLOOR, GOAL) for t in flat)
        self._moves = flat_moves(width)
        self._cells = [(i % width, i // width) for i in range(width * height)]
        self._goal_pos = -1 if self.goal_cell is None else self.cell_index(self.goal_cell)

        x0, y0 = self._room_origin(self.start_room)
        self._start_cells = [
            (y0 + j) * width + x0 + i
            for j in range(rs)
            for i in range(rs)
            if grid[y0 + j, x0 + i] == FLOOR
        ]
        dist = bfs_distances(self._free, self._start_cells[0], width)
        reach = np.array([d >= 0 for d in dist], dtype=bool).reshape(height, width)
        reach.flags.writeable = False
        self.reachable_mask = reach
        self.reachable_cells = int(reach.sum())

        r = self.view_size // 2

        def near(cell, radius, manhattan):
            out = bytearray(width * height)
            if cell is None:
                return out
            cx, cy = cell
            for p, (x, y) in enumerate(self._cells):
                dx, dy = abs(x - cx), abs(y - cy)
                out[p] = (dx + dy == 1) if manhattan else (max(dx, dy) <= radius)
            return out

        self._tv_adj = near(self.tv_cell, 1, True)
        # "in view": inside the window, or next to it (so that view_size=1 still shows the screen)
        self._tv_seen = near(self.tv_cell, max(r, 1), False)
        self._disp_adj = near(self.display_cell, 1, True)
        self._disp_seen = near(self.display_cell, max(r, 1), False)
        self._seen_any = bytearray(a or b for a, b in zip(self._tv_seen, self._disp_seen))
        self._tv_code = TV_MODES.index(self.tv_mode)  # 0 remote, 1 passive, 2 off

        side = self.screen_side
        patterns = []
        if side == 1:
            patterns = [np.ones(1, np.float32), np.full(1, 0.2, np.float32)]
        else:
            for p in range(2 * side):
                img = np.full((side, side), 0.2, dtype=np.float32)
                if p < side:
                    img[:, p] = 1.0
                else:
                    img[p - side, :] = 1.0
                patterns.append(img.reshape(-1))
        self._patterns = patterns

        static = None
        if self.observe_position:
            xs = np.arange(width * height) % width
            ys = np.arange(width * height) // width
            static = np.stack([xs / (width - 1), ys / (height - 1)], axis=1)
        self._view = WindowObserver(grid, self.view_size, len(CELL_TYPES), WALL, static, self.screen_pixels)
        self._screen_at = self._view.size - self.screen_pixels

    def cell_index(self, cell) -> int:
        """Flat index ``y * W + x`` of cell ``(x, y)`` into an array of shape ``grid_shape``."""
        x, y = cell
        return int(y) * self._width + int(x)

    def episode_coverage(self) -> float:
        """Fraction of the reachable cells visited so far in this episode."""
        return sum(self._visited) / self.reachable_cells

    # ------------------------------------------------------------------ dynamics

    def _screen(self, obs: np.ndarray, pos: int, interact: bool) -> bool:
        """Write the screen block of ``obs``; returns whether the TV's noise is on."""
        code = self._tv_code
        tv_on = (interact and self._tv_adj[pos]) if code == 0 else (code == 1 and self._tv_seen[pos])
        if self.display:
            if interact and self._disp_adj[pos]:
                self._phase = (self._phase + 1) % len(self._patterns)
            if not tv_on and self._disp_seen[pos]:
                obs[self._screen_at :] = self._patterns[self._phase]
        if tv_on:
            self.np_random.random(dtype=np.float32, out=obs[self._screen_at :])
        if self.render_mode is not None:
            self._screen_img = obs[self._screen_at :].copy()
        self._tv_on = bool(tv_on)
        return self._tv_on

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        cells = self._start_cells
        self._pos = pos = cells[int(self.np_random.integers(len(cells)))]
        self._t = 0
        self._phase = 0
        self._visited = bytearray(self._width * self._height)
        self._visited[pos] = 1
        obs = self._view.observe(pos)
        tv_on = self._screen(obs, pos, False)
        if self.render_mode == "human":
            self._render_frame()
        return obs, {"tv_on": tv_on, "cell": self._cells[pos]}

    def step(self, action):
        a = int(action)
        if not 0 <= a <= 4:
            raise ValueError(f"action must be in [0, 4], got {action!r}")
        self._t += 1
        pos = self._pos
        case = "step"
        if a != INTERACT:
            q = pos + self._moves[a]
            if self._free[q]:
                self._pos = pos = q
                self._visited[q] = 1
                if q == self._goal_pos:
                    case = "goal"
            else:
                case = "bump"
        view = self._view
        obs = view.table[pos].copy() if view.table is not None else view.observe(pos)
        if self._seen_any[pos]:
            tv_on = self._screen(obs, pos, a == INTERACT)
        else:  # nothing in view: the screen block stays zero
            tv_on = self._tv_on = False
            if self.render_mode is not None:
                self._screen_img = obs[self._screen_at :].copy()
        terminated = case == "goal"
        truncated = self._t >= self.max_steps
        info = {"vector_reward": self._vecs[case].copy(), "tv_on": tv_on, "cell": self._cells[pos]}
        if terminated or truncated:
            info["is_success"] = terminated
        if self.render_mode == "human":
            self._render_frame()
        return obs, self._rews[case], terminated, truncated, info

    # ------------------------------------------------------------------ rendering

    def _render_frame(self):
        import pygame

        cell = int(np.clip(480 // max(self._width, self._height), 8, 24))
        margin, panel = 12, 200
        gw, gh = self._width * cell, self._height * cell
        if self._canvas is None:
            width, height = frame_size(margin * 3 + gw + panel, max(gh + 2 * margin, 340))
            self._canvas = Canvas(width, height, self.render_mode, self.metadata["render_fps"], "NoisyTVRoom")
            self._font = get_font(20)
        surf = self._canvas.surface
        surf.fill(PALETTE["background"])
        ox, oy = margin, margin
        s = self.room_size + 1
        for p, (x, y) in enumerate(self._cells):
            t = int(self.grid[y, x])
            rect = pygame.Rect(ox + x * cell, oy + y * cell, cell, cell)
            if t == WALL:
                surf.fill(PALETTE["wall"], rect)
                continue
            room_parity = ((x - 1) // s + (y - 1) // s) % 2
            colour = PALETTE["floor_alt"] if room_parity else PALETTE["floor"]
            if self._visited[p]:
                colour = PALETTE["visited"]
            surf.fill(colour, rect)
            inner = rect.inflate(-max(2, cell // 6), -max(2, cell // 6))
            if t == TV:
                surf.fill(PALETTE["tv"], rect)
                if self._tv_on:
                    draw_screen(surf, self._screen_img, inner)
                pygame.draw.rect(surf, (120, 120, 130), rect, width=2)
            elif t == DISPLAY:
                surf.fill(PALETTE["display"], rect)
                draw_screen(surf, self._patterns[self._phase], inner)
            elif t == GOAL:
                pygame.draw.rect(surf, PALETTE["goal"], inner, border_radius=3)
        ax, ay = self._cells[self._pos]
        draw_agent(surf, ax, ay, cell, ox, oy)
        draw_view_outline(surf, ax, ay, self.view_size // 2, cell, ox, oy, self._width, self._height)
        if self._tv_on:  # a bright frame around the TV while its noise is on
            tx, ty = self.tv_cell
            pygame.draw.rect(surf, (255, 80, 200), (ox + tx * cell - 3, oy + ty * cell - 3, cell + 6, cell + 6), 3)

        # side panel: the screen as the agent sees it, and a few counters
        px = margin * 2 + gw
        font, text = self._font, PALETTE["text"]
        surf.blit(font.render("NoisyTVRoom", True, text), (px, margin))
        surf.blit(font.render(f"step {self._t}/{self.max_steps}", True, PALETTE["muted"]), (px, margin + 24))
        surf.blit(font.render(f"tv: {self.tv_mode}", True, PALETTE["muted"]), (px, margin + 46))
        cov = self.episode_coverage()
        surf.blit(font.render(f"coverage {cov:.0%}", True, PALETTE["muted"]), (px, margin + 68))
        label = "screen: TV NOISE" if self._tv_on else "screen"
        surf.blit(font.render(label, True, (255, 110, 210) if self._tv_on else text), (px, margin + 100))
        screen_rect = pygame.Rect(px, margin + 124, panel - 16, panel - 16)
        draw_screen(surf, self._screen_img, screen_rect, border=PALETTE["muted"])
        return self._canvas.present()

    def close(self):
        if self._canvas is not None:
            self._canvas.close()
            self._canvas = None
