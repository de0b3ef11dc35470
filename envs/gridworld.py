"""Shared machinery of the grid-world environments (NoisyTVRoom, TMaze, POMaze).

* cell-type codes and a colour palette,
* :class:`WindowObserver` — flattened one-hot ``v×v`` view windows, precomputed once per layout
  so that an observation is one row copy (the environments must run at > 50k steps/s),
* :func:`bfs_distances` / :func:`bfs_path` on flat cell indices, :func:`perfect_maze`
  (iterative recursive backtracker driven by a ``numpy.random.Generator``),
* pygame drawing helpers used by the ``rgb_array`` and ``human`` render modes.

Flat cell indices are ``y * width + x`` with ``y`` growing downwards (screen convention);
the four moves ``up, right, down, left`` are :data:`DIRECTIONS`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

#: (dx, dy) of the actions up, right, down, left (y grows downwards).
DIRECTIONS: tuple[tuple[int, int], ...] = ((0, -1), (1, 0), (0, 1), (-1, 0))

#: A view table larger than this many float32 entries is not precomputed (windows are sliced
#: from the padded one-hot grid on demand instead): ~16 MB.
MAX_TABLE_ENTRIES = 4_000_000


def flat_moves(width: int) -> tuple[int, int, int, int]:
    """Flat-index offsets of up, right, down, left on a grid ``width`` cells wide."""
    return (-width, 1, width, -1)


def reward_vectors(cases: dict[str, Sequence[float]], weights: np.ndarray):
    """Constant per-case reward vectors (read-only float32) and their scalarisations.

    The environment copies a vector before putting it into ``info`` (Gymnasium's checker
    rejects infos that share arrays between steps); the scalar is computed exactly as
    ``float(np.dot(weights, vector))``.
    """
    vecs, scalars = {}, {}
    for name, values in cases.items():
        vec = np.asarray(values, dtype=np.float32)
        vec.flags.writeable = False
        vecs[name] = vec
        scalars[name] = float(np.dot(weights, vec))
    return vecs, scalars


# --------------------------------------------------------------------------- observation windows


class WindowObserver:
    """Flattened one-hot view windows centred on every cell of a grid of cell types.

    Row ``y * W + x`` of :attr:`table` is ``[one_hot(window around (x, y)).ravel(), static[y*W+x],
    zeros(dynamic)]`` — window rows top to bottom, columns left to right, types innermost; cells
    outside the grid count as ``pad_type``. :meth:`observe` returns a fresh copy of that row; the
    environment then writes its ``dynamic`` trailing entries (e.g. a screen) in place.
    """

    def __init__(
        self,
        types: np.ndarray,
        view_size: int,
        n_types: int,
        pad_type: int,
        static: np.ndarray | None = None,
        dynamic: int = 0,
    ):
        self.height, self.width = types.shape
        self.view_size = view_size
        self.radius = view_size // 2
        self.n_types = n_types
        self.window_len = view_size * view_size * n_types
        self.static = None if static is None else np.asarray(static, dtype=np.float32)
        n_static = 0 if static is None else self.static.shape[1]
        self.size = self.window_len + n_static + dynamic
        r, h, w = self.radius, self.height, self.width
        padded = np.full((h + 2 * r, w + 2 * r), pad_type, dtype=np.intp)
        padded[r : r + h, r : r + w] = types
        self.onehot = np.eye(n_types, dtype=np.float32)[padded]  # (H+2r, W+2r, K)
        self.table: np.ndarray | None = None
        if h * w * self.size <= MAX_TABLE_ENTRIES:
            table = np.zeros((h * w, self.size), dtype=np.float32)
            windows = sliding_window_view(self.onehot, (view_size, view_size), axis=(0, 1))
            table[:, : self.window_len] = windows.transpose(0, 1, 3, 4, 2).reshape(h * w, -1)
            if n_static:
                table[:, self.window_len : self.window_len + n_static] = self.static
            self.table = table

    def observe(self, pos: int) -> np.ndarray:
        """A fresh float32 observation row for the agent at flat cell ``pos``."""
        if self.table is not None:
            return self.table[pos].copy()
        return self._row(pos)

    def _row(self, pos: int) -> np.ndarray:
        y, x = divmod(pos, self.width)
        v = self.view_size
        out = np.zeros(self.size, dtype=np.float32)
        out[: self.window_len] = self.onehot[y : y + v, x : x + v].reshape(-1)
        if self.static is not None:
            out[self.window_len : self.window_len + self.static.shape[1]] = self.static[pos]
        return out

    def set_cell(self, x: int, y: int, cell_type: int) -> None:
        """Change one cell's type and refresh every precomputed window that shows it."""
        r = self.radius
        self.onehot[y + r, x + r] = 0.0
        self.onehot[y + r, x + r, cell_type] = 1.0
        if self.table is None:
            return
        for cy in range(max(0, y - r), min(self.height, y + r + 1)):
            for cx in range(max(0, x - r), min(self.width, x + r + 1)):
                pos = cy * self.width + cx
                self.table[pos, : self.window_len] = self._row(pos)[: self.window_len]


# --------------------------------------------------------------------------- search and mazes


def bfs_distances(free: Sequence[int], start: int, width: int) -> list[int]:
    """Shortest-path lengths (4-neighbourhood) from flat cell ``start``; -1 where unreachable.

    ``free[i]`` is truthy where cell ``i`` can be entered; the grid's border must be blocked.
    """
    dist = [-1] * len(free)
    dist[start] = 0
    queue = deque([start])
    moves = flat_moves(width)
    while queue:
        p = queue.popleft()
        d = dist[p] + 1
        for m in moves:
            q = p + m
            if free[q] and dist[q] < 0:
                dist[q] = d
                queue.append(q)
    return dist


def bfs_path(free: Sequence[int], start: int, goals, width: int) -> list[int] | None:
    """Actions (0 up, 1 right, 2 down, 3 left) of a shortest path from ``start`` to the nearest
    cell in ``goals`` (a set or a predicate on flat indices); ``None`` if none is reachable."""
    is_goal = goals if callable(goals) else goals.__contains__
    if is_goal(start):
        return []
    moves = flat_moves(width)
    parent = {start: None}
    queue = deque([start])
    while queue:
        p = queue.popleft()
        for a, m in enumerate(moves):
            q = p + m
            if free[q] and q not in parent:
                parent[q] = (p, a)
                if is_goal(q):
                    actions = []
                    while parent[q] is not None:
                        q, a2 = parent[q]
                        actions.append(a2)
                    return actions[::-1]
                queue.append(q)
    return None


def perfect_maze(cells_x: int, cells_y: int, rng: np.random.Generator) -> np.ndarray:
    """A perfect maze (exactly one path between any two cells) by the recursive backtracker.

    Returns a ``(2*cells_y + 1, 2*cells_x + 1)`` uint8 array, 1 = floor, 0 = wall; maze cell
    ``(i, j)`` sits at grid ``(2i + 1, 2j + 1)``. Uses ``2 * cells`` uniform draws from ``rng``.
    """
    width, height = 2 * cells_x + 1, 2 * cells_y + 1
    grid = bytearray(width * height)
    n = cells_x * cells_y
    visited = bytearray(n)
    draws = rng.random(2 * n).tolist()
    k = 0
    start = min(int(draws[-1] * n), n - 1)
    visited[start] = 1
    grid[(2 * (start // cells_x) + 1) * width + 2 * (start % cells_x) + 1] = 1
    stack = [start]
    while stack:
        c = stack[-1]
        cy, cx = divmod(c, cells_x)
        options = []
        if cx > 0 and not visited[c - 1]:
            options.append(c - 1)
        if cx < cells_x - 1 and not visited[c + 1]:
            options.append(c + 1)
        if cy > 0 and not visited[c - cells_x]:
            options.append(c - cells_x)
        if cy < cells_y - 1 and not visited[c + cells_x]:
            options.append(c + cells_x)
        if not options:
            stack.pop()
            continue
        nxt = options[min(int(draws[k] * len(options)), len(options) - 1)]
        k += 1
        visited[nxt] = 1
        ny, nx = divmod(nxt, cells_x)
        gx, gy, hx, hy = 2 * cx + 1, 2 * cy + 1, 2 * nx + 1, 2 * ny + 1
        grid[((gy + hy) // 2) * width + (gx + hx) // 2] = 1
        grid[hy * width + hx] = 1
        stack.append(nxt)
    return np.frombuffer(bytes(grid), dtype=np.uint8).reshape(height, width).copy()


# --------------------------------------------------------------------------- drawing

#: Colours shared by the grid-world renderings.
PALETTE = {
    "background": (24, 27, 35),
    "wall": (58, 64, 82),
    "wall_edge": (44, 48, 62),
    "floor": (236, 232, 222),
    "floor_alt": (222, 232, 226),
    "visited": (188, 212, 246),
    "agent": (238, 112, 44),
    "agent_edge": (120, 50, 14),
    "goal": (64, 178, 98),
    "flag": (214, 48, 60),
    "home": (78, 128, 222),
    "view": (250, 198, 36),
    "tv": (28, 28, 32),
    "display": (48, 86, 160),
    "text": (236, 238, 244),
    "muted": (150, 156, 172),
}


def frame_size(width: int, height: int) -> tuple[int, int]:
    """Frame dimensions rounded up to multiples of 16 (video encoders want even sizes, and
    imageio-ffmpeg's default macro block is 16)."""
    return -(-int(width) // 16) * 16, -(-int(height) // 16) * 16


def draw_view_outline(
    surface, x: int, y: int, radius: int, cell: int, ox: int, oy: int, grid_w: int, grid_h: int
) -> None:
    """Outline of the agent's view window around cell ``(x, y)``, clipped to the grid."""
    import pygame

    side = (2 * radius + 1) * cell
    rect = pygame.Rect(ox + (x - radius) * cell, oy + (y - radius) * cell, side, side)
    rect = rect.clip(pygame.Rect(ox, oy, grid_w * cell, grid_h * cell))
    pygame.draw.rect(surface, PALETTE["view"], rect, width=max(2, cell // 8), border_radius=3)


def draw_agent(surface, x: int, y: int, cell: int, ox: int, oy: int, colour=None) -> None:
    import pygame

    centre = (ox + x * cell + cell // 2, oy + y * cell + cell // 2)
    radius = max(2, int(cell * 0.36))
    pygame.draw.circle(surface, colour or PALETTE["agent"], centre, radius)
    pygame.draw.circle(surface, PALETTE["agent_edge"], centre, radius, width=max(1, cell // 12))


def draw_flag(surface, x: int, y: int, cell: int, ox: int, oy: int, scale: float = 1.0) -> None:
    """A small red pennant on a pole in cell ``(x, y)``."""
    import pygame

    left, top = ox + x * cell, oy + y * cell
    s = cell * scale
    pole_x = left + cell * 0.5 - s * 0.2
    base = top + cell * 0.5 + s * 0.38
    peak = top + cell * 0.5 - s * 0.38
    pygame.draw.line(surface, (60, 40, 30), (pole_x, base), (pole_x, peak), max(1, int(s // 10)))
    pygame.draw.polygon(
        surface,
        PALETTE["flag"],
        [(pole_x, peak), (pole_x + s * 0.5, peak + s * 0.17), (pole_x, peak + s * 0.34)],
    )


def draw_screen(surface, pixels: np.ndarray, rect, border=None) -> None:
    """Grey-value ``pixels`` (flat, values in [0, 1], a perfect square count) drawn into ``rect``."""
    import pygame

    rect = pygame.Rect(rect)
    side = int(round(np.sqrt(pixels.size)))
    values = np.clip(np.asarray(pixels, dtype=np.float32).reshape(side, side), 0.0, 1.0)
    grey = (values * 255).astype(np.uint8)
    img = np.repeat(grey.T[:, :, None], 3, axis=2)  # surfarray is (x, y, rgb)
    small = pygame.surfarray.make_surface(np.ascontiguousarray(img))
    surface.blit(pygame.transform.scale(small, rect.size), rect.topleft)
    if border is not None:
        pygame.draw.rect(surface, border, rect, width=2)
