"""``mirabilis/FoveaSearch-v0``: find the object a goal input names, with saccades of a fovea.

Seed Sec. 9 and 12: Schmidhuber & Huber (1990), "Learning to generate focus trajectories for
attentive vision" — a controller that never sees the whole scene moves a multi-resolution
fovea; a constant goal-defining input says what to look for.
"""

from __future__ import annotations

import math
from typing import Any

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

#: Names of the four shapes and four colours; kind ``k`` is shape ``k % 4`` in colour
#: ``(k + k // 4) % 4`` — kinds 0..3 differ in both shape and colour, all 16 kinds are distinct.
SHAPES: tuple[str, ...] = ("square", "disc", "cross", "triangle")
COLOUR_NAMES: tuple[str, ...] = ("red", "green", "blue", "yellow")
COLOURS_U8: np.ndarray = np.array(
    [[230, 60, 50], [60, 200, 80], [70, 120, 255], [240, 215, 50]], dtype=np.int16
)
COLOURS_CF: np.ndarray = COLOURS_U8.astype(np.float32)[:, :, None]  # (colour, rgb, 1)
MAX_KINDS = len(SHAPES) * len(COLOUR_NAMES)
#: Background grey level (0..255) before clutter noise.
BACKGROUND = 40


def kind_shape(kind: int) -> int:
    return kind % len(SHAPES)


def kind_colour(kind: int) -> int:
    return (kind + kind // len(SHAPES)) % len(COLOUR_NAMES)


def kind_name(kind: int) -> str:
    """Human-readable name of object kind ``kind``, e.g. ``"red square"``."""
    return f"{COLOUR_NAMES[kind_colour(kind)]} {SHAPES[kind_shape(kind)]}"


def shape_masks(size: int) -> np.ndarray:
    """Boolean ``(4, size, size)`` masks of square, disc, cross (plus sign) and triangle."""
    c = size / 2.0
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    inset = max(1, size // 8) if size >= 6 else 0
    square = np.zeros((size, size), dtype=bool)
    square[inset : size - inset, inset : size - inset] = True
    disc = (xx - c) ** 2 + (yy - c) ** 2 <= c * c
    half = max(0.5, size * 0.15)
    cross = (np.abs(xx - c) <= half) | (np.abs(yy - c) <= half)
    triangle = np.abs(xx - c) <= yy / 2.0
    return np.stack([square, disc, cross, triangle])


class Retina:
    """Multi-resolution glimpses of an image, as in RAM's retina (Mnih et al. 2014).

    Patch ``s`` is ``G · ratio**s`` pixels wide, centred on the fovea, averaged down to ``G × G``
    pixels; pixels outside the image are 0. Draw into :attr:`image` (channels first,
    ``(3, S', S')`` with ``S' >= S``: draw only into ``[:, :S, :S]``), call :meth:`update` once
    (block-sum pyramid), then :meth:`glimpse` costs one strided copy per patch.

    How: patch ``s`` (``k = ratio**s``) is made of ``m × m`` blocks of ``q = k / m`` pixels
    (``m = 2`` for even ratios, 3 for ratio 3; ``m = q = 1`` for the sharp patch). ``update``
    sums the image over ``q × q`` blocks and then over sliding ``m × m`` windows of those, so a
    glimpse pixel is one entry of that table. The sharp patch and, for ratios 2 and 3, the first
    coarse patch are exact; wider patches are sampled on a lattice of ``q`` pixels, i.e. their
    centre is rounded by at most ``q / 2 = k / (2m)`` pixels — a quarter of one of their own
    pixels (a sixth for ratio 3). All sums are exact (integers in float32, or float64 if large).
    """

    def __init__(self, size: int, glimpse_size: int, n_scales: int, ratio: int, out: np.ndarray):
        S, G = size, glimpse_size
        m_coarse = 2 if ratio % 2 == 0 else ratio
        qs = [1] + [ratio**s // m_coarse for s in range(1, n_scales)]
        ms = [1] + [m_coarse] * (n_scales - 1)
        q_max = max(qs)
        k_max = ratio ** (n_scales - 1)
        dtype = np.float32 if 255 * k_max * k_max < 2**24 else np.float64  # exact integer sums
        self.dtype = dtype
        Sz = -(-S // q_max) * q_max  # image side rounded up to whole blocks (zeros beyond S)
        self.size, self.glimpse_size = S, G
        out_cf = out.transpose(1, 0, 2, 3)  # (3, n, G, G) view of the (n, 3, G, G) output
        self._levels = []
        self._updates = []  # per coarse level: (source terms, block interior, band terms, sums band)
        for s in range(n_scales):
            k, q, m = ratio**s, qs[s], ms[s]
            nq, pad = Sz // q, (G * m + 1) // 2 + 1
            blocks = np.zeros((3, nq + 2 * pad, nq + 2 * pad), dtype=dtype)  # q x q block sums, zero-padded
            L = nq + 2 * pad - m + 1
            sums = blocks if m == 1 else np.zeros((3, L, L), dtype=dtype)  # sliding m x m sums of blocks
            start = [int(math.floor((p - G * k / 2) / q + 0.5)) + pad for p in range(S + 1)]
            self._levels.append((m, sums, start, 255.0 * k * k, out_cf[:, s]))
            if s == 0:
                self.image = blocks[:, pad : pad + nq, pad : pad + nq]
                prev = (sums, pad, m, q)
                continue
            # blocks of this level from the previous level's sliding sums:
            # B_s[I] = sum_{a < f / m_prev} C_{s-1}[pad_prev + m_prev a + f I],  f = q_s / q_{s-1}
            p_sums, p_pad, p_m, p_q = prev
            f = q // p_q
            offsets = [p_pad + p_m * a for a in range(f // p_m)]
            terms = [p_sums[:, oy : oy + f * nq : f, ox : ox + f * nq : f] for oy in offsets for ox in offsets]
            lo, hi = pad - m + 1, pad + nq  # rows/cols of sums that can be nonzero
            nb = hi - lo
            rows = np.zeros((3, nb, nb + m - 1), dtype=dtype)
            row_terms = [blocks[:, lo + a : hi + a, lo : hi + m - 1] for a in range(m)]
            col_terms = [rows[:, :, b : b + nb] for b in range(m)]
            interior = blocks[:, pad : pad + nq, pad : pad + nq]
            self._updates.append((terms, interior, row_terms, rows, col_terms, sums[:, lo:hi, lo:hi]))
            prev = (sums, pad, m, q)

    def update(self) -> None:
        """Recompute the block-sum tables after drawing into :attr:`image`."""
        for terms, dst, row_terms, rows, col_terms, band in self._updates:
            _sum_into(terms, dst)
            _sum_into(row_terms, rows)
            _sum_into(col_terms, band)

    def glimpse(self, x: int, y: int) -> None:
        """Write the glimpse at fovea pixel ``(x, y)`` (integers in ``[0, S]``) into the output."""
        G = self.glimpse_size
        for m, sums, start, area, out in self._levels:  # (division: exactly 1.0 for full white)
            ty, tx = start[y], start[x]
            np.divide(sums[:, ty : ty + m * G : m, tx : tx + m * G : m], area, out=out)


def _sum_into(terms: list[np.ndarray], out: np.ndarray) -> None:
    if len(terms) == 1:
        np.copyto(out, terms[0])
        return
    np.add(terms[0], terms[1], out=out)
    for t in terms[2:]:
        out += t


class FoveaSearchEnv(VectorRewardMixin, RenderMixin, gym.Env):
    """Move a multi-resolution fovea over a hidden scene until it rests on the named target.

    ## Description

    A procedurally drawn RGB scene (``scene_size``² pixels, dark grey background with grey
    ``clutter`` noise) holds ``n_objects`` objects of ``object_size``² pixels. Each object has a
    *kind*: one of 4 shapes (square, disc, cross, triangle) × 4 colours (red, green, blue,
    yellow); ``n_kinds`` of these 16 kinds are in play (kind ``k`` = shape ``k % 4`` in colour
    ``(k + k // 4) % 4``, so the default three kinds are a red square, a green disc and a blue
    cross). One object is the *target*; its kind is unique in the scene and is named by a constant
    one-hot *goal input*. Distractors are of the other kinds (repeats allowed unless
    ``distinct_kinds=True``). Objects lie on a jittered lattice, never overlapping.

    The controller never sees the scene. It sees a retina-like *glimpse* around the fovea
    (as in RAM, Mnih et al. 2014): ``n_scales`` square patches centred on the fovea, patch ``s``
    ``glimpse_size · scale_ratio**s`` pixels wide and averaged down to ``glimpse_size``² pixels.
    Patch 0 is sharp (full resolution); with the defaults (8 px, ratio 4, 3 scales) the patches
    are 8, 32 and 128 px wide, so the widest one covers the whole 64 px scene from any fovea
    position and the target is always visible, coarsely. Pixels outside the scene are black.
    (The coarse patches are placed on a lattice of half their own pixel — 2 px for the 32 px
    patch, 8 px for the 128 px one — so they are off-centre by at most a quarter of their pixel;
    this makes a glimpse one strided copy per patch, see :class:`Retina`.)

    ## Action space

    ``action_type="continuous"`` (default): ``Box(-1, 1, (2,), float32)``, a saccade
    ``(dx, dy) · max_jump`` pixels (rounded to whole pixels; the fovea is clipped to the scene).
    ``action_type="discrete"``: ``Discrete(5)``, a fixed step of ``discrete_step`` pixels:

    | action | 0 | 1 | 2 | 3 | 4 |
    |---|---|---|---|---|---|
    | move | stay (fixate) | up (−y) | right (+x) | down (+y) | left (−x) |

    ## Observation space

    ``Box(float32)`` of shape ``(n_scales·glimpse_size²·3 + n_kinds + 2,)``; the slices are in
    ``env.unwrapped.obs_slices``:

    | slice | content | range |
    |---|---|---|
    | ``glimpse`` | ``n_scales × 3 × glimpse_size × glimpse_size`` (scale, RGB, row y, column x — channels first, as PyTorch convolutions want them), scale 0 (sharp) first; reshape with ``env.unwrapped.glimpse_shape`` | [0, 1] |
    | ``goal`` | one-hot target kind (``n_kinds``), constant through the episode | {0, 1} |
    | ``fovea`` | fovea position ``(x, y)`` as ``2·p/scene_size − 1`` | [−1, 1] |

    With the defaults the shape is ``(3·8·8·3 + 3 + 2,) = (581,)``.

    ## Rewards

    A vector (``info["vector_reward"]``, float32; ``env.unwrapped.reward_names``) whose signs
    are part of the vector; the scalar reward is ``weights · vector``:

    | channel | value | default weight |
    |---|---|---|
    | ``found`` | +1 on the step the target is found, else 0 | 1.0 |
    | ``saccade_cost`` | −1 every step (each step is one saccade, "stay" included) | 0.05 |
    | ``wrong_object`` | −1 when the saccade lands the fovea centre in a distractor's box, else 0 | 0.1 |

    ## Starting state

    A fresh scene, target and kinds each episode; the fovea starts at the scene centre
    (``fovea_start="center"``) or at a uniformly random pixel (``"random"``). The target is never
    already found at the start.

    ## Episode end

    *Terminated* (``info["is_success"] = True``) when the target's centre lies within the sharp
    patch, i.e. ``|target − fovea| ≤ glimpse_size / 2`` on both axes. *Truncated* after
    ``max_saccades`` steps.

    ## Info

    ``vector_reward``, ``is_success`` (bool, every step), ``saccades`` (steps so far),
    ``target_kind`` (int), ``target_pos`` and ``fovea`` (``(x, y)`` in pixels, floats).
    ``env.unwrapped`` exposes ``target_pos``, ``fovea_pos`` (float arrays), ``target_kind``,
    ``objects`` (list of ``(kind, x_centre, y_centre)``) and ``fixations`` for oracles and plots.

    ## Arguments

    | kwarg | default | allowed |
    |---|---|---|
    | ``scene_size`` | 64 | [32, 256] pixels |
    | ``n_objects`` | 4 | [1, number of lattice cells] (25 at the defaults) |
    | ``n_kinds`` | 3 | [2, 16]; ``>= n_objects`` when ``distinct_kinds`` |
    | ``distinct_kinds`` | False | bool: all objects of different kinds |
    | ``object_size`` | ``scene_size // 8`` | [4, scene_size // 4] pixels |
    | ``clutter`` | 0.05 | [0, 1]: background noise; each pixel's grey level is uniform in ``40 ± 255·clutter`` (of 255, cut to [0, 255]) |
    | ``glimpse_size`` | 8 | [2, scene_size // 4] pixels (the sharp patch's width) |
    | ``n_scales`` | 3 | [1, 5], with the widest patch ``<= 4 · scene_size`` |
    | ``scale_ratio`` | 4 | [2, 4] |
    | ``action_type`` | ``"continuous"`` | ``"continuous"``, ``"discrete"`` |
    | ``max_jump`` | ``scene_size / 2`` | [1, 2·scene_size] pixels (continuous saccades) |
    | ``discrete_step`` | ``glimpse_size`` | [1, scene_size] pixels (discrete moves) |
    | ``fovea_start`` | ``"center"`` | ``"center"``, ``"random"`` |
    | ``max_saccades`` | 10 | [1, 100000] |
    | ``weights`` | ``(1.0, 0.05, 0.1)`` | 3 numbers or a dict by channel name |
    | ``render_mode`` | None | ``"human"``, ``"rgb_array"`` |

    ## Seed

    Sec. 9 and 12 of the seed: learned fovea trajectories with a goal-defining input.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        render_mode: str | None = None,
        scene_size: int = 64,
        n_objects: int = 4,
        n_kinds: int = 3,
        distinct_kinds: bool = False,
        object_size: int | None = None,
        clutter: float = 0.05,
        glimpse_size: int = 8,
        n_scales: int = 3,
        scale_ratio: int = 4,
        action_type: str = "continuous",
        max_jump: float | None = None,
        discrete_step: int | None = None,
        fovea_start: str = "center",
        max_saccades: int = 10,
        weights=None,
    ):
        self.render_mode = check_render_mode(render_mode, self.metadata)
        S = self.scene_size = check_int("scene_size", scene_size, 32, 256)
        self.n_kinds = check_int("n_kinds", n_kinds, 2, MAX_KINDS)
        self.distinct_kinds = bool(check_choice("distinct_kinds", distinct_kinds, [False, True]))
        K = self.object_size = check_int(
            "object_size", S // 8 if object_size is None else object_size, 4, S // 4
        )
        self.clutter = check_float("clutter", clutter, 0.0, 1.0)
        G = self.glimpse_size = check_int("glimpse_size", glimpse_size, 2, S // 4)
        self.n_scales = check_int("n_scales", n_scales, 1, 5)
        self.scale_ratio = check_int("scale_ratio", scale_ratio, 2, 4)
        widest = G * self.scale_ratio ** (self.n_scales - 1)
        if widest > 4 * S:
            raise ValueError(
                f"n_scales: the widest patch glimpse_size*scale_ratio**(n_scales-1) = {widest} px "
                f"must be <= 4*scene_size = {4 * S}; use n_scales <= "
                f"{1 + int(math.floor(math.log(4 * S / G, self.scale_ratio) + 1e-9))}"
            )
        self.action_type = check_choice("action_type", action_type, ["continuous", "discrete"])
        self.max_jump = check_float("max_jump", S / 2 if max_jump is None else max_jump, 1.0, 2.0 * S)
        self.discrete_step = check_int("discrete_step", G if discrete_step is None else discrete_step, 1, S)
        self.fovea_start = check_choice("fovea_start", fovea_start, ["center", "random"])
        self.max_saccades = check_int("max_saccades", max_saccades, 1, 100_000)

        # Object lattice: cells of K + K//2 px, an object jittered by up to K//4 px in its cell.
        cell = K + max(2, K // 2)
        n_side = S // cell
        self._jitter = cell - K - max(2, K // 2) // 2  # keeps >= K//4 px between neighbours
        margin = (S - n_side * cell) // 2
        gx, gy = np.meshgrid(np.arange(n_side), np.arange(n_side))
        self._cell_xy = np.stack([gx.ravel(), gy.ravel()], axis=1) * cell + margin  # top-left px
        n_cells = len(self._cell_xy)
        self.n_objects = check_int("n_objects", n_objects, 1, n_cells)
        if self.distinct_kinds and self.n_objects > self.n_kinds:
            raise ValueError(
                f"n_objects must be in [1, n_kinds={self.n_kinds}] when distinct_kinds=True, got {self.n_objects}"
            )
        self._centre_cells = self._far_cells(np.array([S / 2, S / 2]))
        if len(self._centre_cells) == 0:  # pragma: no cover - impossible with the ranges above
            raise ValueError("glimpse_size: too large for scene_size")

        self._init_vector_reward(
            ("found", "saccade_cost", "wrong_object"), (1.0, 0.05, 0.1), weights, low=(0, -1, -1), high=(1, 0, 0)
        )
        self._w = [float(w) for w in self.weights]

        # Spaces and the observation layout.
        n_glimpse = self.n_scales * G * G * 3
        self.glimpse_shape = (self.n_scales, 3, G, G)
        self.obs_slices = {
            "glimpse": slice(0, n_glimpse),
            "goal": slice(n_glimpse, n_glimpse + self.n_kinds),
            "fovea": slice(n_glimpse + self.n_kinds, n_glimpse + self.n_kinds + 2),
        }
        size = n_glimpse + self.n_kinds + 2
        low = np.zeros(size, dtype=np.float32)
        low[self.obs_slices["fovea"]] = -1.0
        self.observation_space = spaces.Box(low, np.ones(size, dtype=np.float32), dtype=np.float32)
        if self.action_type == "continuous":
            self.action_space = spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
        else:
            self.action_space = spaces.Discrete(5)
            d = self.discrete_step
            self._moves = ((0, 0), (0, -d), (d, 0), (0, d), (-d, 0))

        self._obs = np.zeros(size, dtype=np.float32)
        self._build_retina()
        self._masks = shape_masks(K)
        amp = int(round(self.clutter * 255))
        lo, hi = max(0, BACKGROUND - amp), min(255, BACKGROUND + amp)
        self._n_raw = -(-S * S // 8)  # 64-bit words of noise bytes per scene
        self._noise_lut = (lo + (np.arange(256) * (hi - lo + 1) >> 8)).astype(np.float32)  # byte -> grey

        self.objects: list[tuple[int, float, float]] = []
        self.target_kind = 0
        self._tx = self._ty = 0.0
        self._fx = self._fy = 0
        self._has_scene = False
        self.fixations: list[tuple[int, int]] = []
        self.saccades = 0
        self._return = 0.0
        self._found = False
        self._canvas: Canvas | None = None
        self._scene_surface = None

    # ------------------------------------------------------------------ helpers

    def _build_retina(self) -> None:
        """The retina writes glimpses straight into the observation buffer (views, not copies)."""
        self._glimpse_view = self._obs[: self.obs_slices["glimpse"].stop].reshape(self.glimpse_shape)
        self.retina = Retina(self.scene_size, self.glimpse_size, self.n_scales, self.scale_ratio, self._glimpse_view)
        self._canvas_img = self.retina.image[:, : self.scene_size, : self.scene_size]  # where the scene is drawn

    def __getstate__(self) -> dict:
        # pickle/deepcopy would turn the retina's views into independent copies: rebuild them instead
        state = {k: v for k, v in self.__dict__.items() if k not in _UNPICKLED}
        state["_scene_pixels"] = self._canvas_img.copy()
        return state

    def __setstate__(self, state: dict) -> None:
        pixels = state.pop("_scene_pixels")
        self.__dict__.update(state)
        self._canvas, self._scene_surface = None, None
        self._build_retina()
        self._canvas_img[...] = pixels
        self.retina.update()

    def _far_cells(self, fovea: np.ndarray) -> np.ndarray:
        """Lattice cells whose object, wherever jittered, is not yet found from ``fovea``."""
        K, j, half = self.object_size, self._jitter, self.glimpse_size / 2
        lo = self._cell_xy + K / 2  # object centre range [lo, lo + j]
        gap = np.maximum(np.maximum(lo - fovea, fovea - (lo + j)), 0.0)  # per-axis distance to range
        return np.flatnonzero(np.any(gap > half, axis=1))

    @property
    def scene(self) -> np.ndarray | None:
        """The current scene as an ``(S, S, 3)`` uint8 image (rows = y), or None before reset."""
        if not self._has_scene:
            return None
        return self._canvas_img.transpose(1, 2, 0).astype(np.uint8)

    @property
    def target_pos(self) -> np.ndarray:
        """The target's centre ``(x, y)`` in pixels."""
        return np.array([self._tx, self._ty])

    @property
    def fovea_pos(self) -> np.ndarray:
        """The fovea's centre ``(x, y)`` in pixels (whole pixels in [0, scene_size])."""
        return np.array([float(self._fx), float(self._fy)])

    def _draw_scene(self, tops: list, kinds: list[int]) -> None:
        S, K, img = self.scene_size, self.object_size, self._canvas_img
        if self.clutter > 0:  # one random byte per pixel, mapped to a grey level
            raw = self.np_random.bit_generator.random_raw(self._n_raw).view(np.uint8)[: S * S]
            img[...] = np.take(self._noise_lut, raw.reshape(S, S))
        else:
            img.fill(BACKGROUND)
        for (x, y), kind in zip(tops, kinds):
            img[:, y : y + K, x : x + K][:, self._masks[kind_shape(kind)]] = COLOURS_CF[kind_colour(kind)]
        self.retina.update()
        self._has_scene = True

    def _observe(self) -> np.ndarray:
        self.retina.glimpse(self._fx, self._fy)
        S = self.scene_size
        self._obs[-2] = 2.0 * self._fx / S - 1.0
        self._obs[-1] = 2.0 * self._fy / S - 1.0
        return self._obs.copy()

    def _info(self) -> dict[str, Any]:
        return {
            "saccades": self.saccades,
            "target_kind": self.target_kind,
            "target_pos": (self._tx, self._ty),
            "fovea": (float(self._fx), float(self._fy)),
        }

    # ------------------------------------------------------------------ gymnasium API

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng, S, K, n_cells = self.np_random, self.scene_size, self.object_size, len(self._cell_xy)
        if self.fovea_start == "center":
            fx = fy = S // 2
            far = self._centre_cells
        else:
            fx, fy = rng.integers(0, S + 1, size=2).tolist()
            far = self._far_cells(np.array([fx, fy], dtype=np.float64))
        # one batch of uniforms: [target cell, target kind, cell keys, jitter, distractor kinds]
        n, n_d, nk = self.n_objects, self.n_objects - 1, self.n_kinds
        u = rng.random(2 + n_cells + 2 * n + (nk - 1 if self.distinct_kinds else n_d))
        target_cell = int(far[int(u[0] * len(far))])
        self.target_kind = int(u[1] * nk)
        cells = [target_cell]
        if n_d:  # distinct other cells: those with the n_d smallest random keys
            keys = u[2 : 2 + n_cells]
            keys[target_cell] = 2.0
            cells += np.argpartition(keys, n_d - 1)[:n_d].tolist()
        # (a far cell's object is unfound from the start wherever it is jittered)
        jitter = (u[2 + n_cells : 2 + n_cells + 2 * n] * (self._jitter + 1)).astype(np.intp).reshape(n, 2)
        tops = (self._cell_xy[cells] + jitter).tolist()
        rest = u[2 + n_cells + 2 * n :]
        if not n_d:
            d_kinds = []
        elif self.distinct_kinds:
            d_kinds = np.argpartition(rest, n_d - 1)[:n_d].tolist()
        else:
            d_kinds = (rest * (nk - 1)).astype(np.intp).tolist()
        # distractor kinds are drawn from the kinds other than the target's
        kinds = [self.target_kind] + [k + (k >= self.target_kind) for k in d_kinds]
        self._draw_scene(tops, kinds)

        self.objects = [(k, float(x + K / 2), float(y + K / 2)) for (x, y), k in zip(tops, kinds)]
        self._distractor_boxes = [(x, y, x + K, y + K) for (x, y) in tops[1:]]
        self._tx, self._ty = self.objects[0][1], self.objects[0][2]
        self._fx, self._fy = fx, fy
        self.fixations = [(self._fx, self._fy)]
        self.saccades = 0
        self._return = 0.0
        self._found = False
        self._scene_surface = None
        self._obs[self.obs_slices["goal"]] = 0.0
        self._obs[self.obs_slices["goal"].start + self.target_kind] = 1.0
        obs = self._observe()
        if self.render_mode == "human":
            self.render()
        return obs, self._info()

    def step(self, action):
        S = self.scene_size
        if self.action_type == "continuous":
            ax = min(max(float(action[0]), -1.0), 1.0)
            ay = min(max(float(action[1]), -1.0), 1.0)
            fx = min(max(math.floor(self._fx + ax * self.max_jump + 0.5), 0), S)
            fy = min(max(math.floor(self._fy + ay * self.max_jump + 0.5), 0), S)
        else:
            dx, dy = self._moves[int(action)]
            fx = min(max(self._fx + dx, 0), S)
            fy = min(max(self._fy + dy, 0), S)
        self._fx, self._fy = fx, fy
        self.fixations.append((fx, fy))
        self.saccades += 1

        half = self.glimpse_size / 2
        found = abs(self._tx - fx) <= half and abs(self._ty - fy) <= half
        wrong = False
        if not found:
            for x0, y0, x1, y1 in self._distractor_boxes:
                if x0 <= fx <= x1 and y0 <= fy <= y1:
                    wrong = True
                    break
        vec = np.array([1.0 if found else 0.0, -1.0, -1.0 if wrong else 0.0], dtype=np.float32)
        w = self._w
        reward = (w[0] if found else 0.0) - w[1] - (w[2] if wrong else 0.0)
        self._return += reward
        self._found = found
        terminated = found
        truncated = (not found) and self.saccades >= self.max_saccades
        obs = self._observe()
        info = self._info()
        info["vector_reward"] = vec
        info["is_success"] = found
        if self.render_mode == "human":
            self.render()
        return obs, reward, terminated, truncated, info

    # ------------------------------------------------------------------ rendering

    def _render_frame(self):
        if not self._has_scene:
            raise RuntimeError("call reset() before render()")
        import pygame

        S, G = self.scene_size, self.glimpse_size
        scale = max(2, 512 // S)
        view = S * scale
        panel = 232
        cell = max(1, (96 if self.n_scales <= 3 else 64) // G)  # glimpse inset pixel size
        height = max(view, 130 + self.n_scales * (G * cell + 10) + 70)
        if self._canvas is None:
            self._canvas = Canvas(view + panel, height, self.render_mode, self.metadata["render_fps"], "FoveaSearch")
        surf = self._canvas.surface
        surf.fill((18, 18, 24))
        if self._scene_surface is None:
            small = pygame.surfarray.make_surface(np.ascontiguousarray(self.scene.transpose(1, 0, 2)))
            self._scene_surface = pygame.transform.scale(small, (view, view))
        surf.blit(self._scene_surface, (0, 0))

        # target: subtle corner brackets (bright green once found)
        K = self.object_size
        tx0, ty0 = (self.target_pos - K / 2 - 1.5) * scale
        side = (K + 3) * scale
        col = (90, 255, 120) if self._found else (200, 180, 90)
        arm = max(6, side // 4)
        for sx, sy in ((1, 1), (-1, 1), (1, -1), (-1, -1)):
            cx, cy = (tx0 if sx > 0 else tx0 + side), (ty0 if sy > 0 else ty0 + side)
            pygame.draw.line(surf, col, (cx, cy), (cx + sx * arm, cy), 2)
            pygame.draw.line(surf, col, (cx, cy), (cx, cy + sy * arm), 2)

        # the fixation path
        pts = [((x * scale), (y * scale)) for x, y in self.fixations]
        if len(pts) > 1:
            pygame.draw.lines(surf, (255, 140, 220), False, pts, 2)
        font = get_font(15)
        for i, (px, py) in enumerate(pts):
            pygame.draw.circle(surf, (255, 140, 220), (px, py), 4)
            if font is not None and i < len(pts) - 1:
                surf.blit(font.render(str(i), True, (255, 200, 240)), (px + 5, py - 14))

        # the fovea's nested patches
        fx, fy = self.fovea_pos * scale
        for s in range(self.n_scales):
            w = self.glimpse_size * self.scale_ratio**s * scale
            colour = _SCALE_COLOURS[s % len(_SCALE_COLOURS)]
            pygame.draw.rect(surf, colour, pygame.Rect(fx - w / 2, fy - w / 2, w, w), 3 if s == 0 else 2)
        pygame.draw.line(surf, (255, 255, 255), (fx - 5, fy), (fx + 5, fy), 1)
        pygame.draw.line(surf, (255, 255, 255), (fx, fy - 5), (fx, fy + 5), 1)

        # side panel: goal, what C sees, status
        x0 = view + 14
        pygame.draw.rect(surf, (30, 30, 40), pygame.Rect(view, 0, panel, surf.get_height()))
        y = 10
        if font is not None:
            surf.blit(get_font(20).render("goal", True, (230, 230, 230)), (x0, y))
        icon = 44
        mask = self._masks[kind_shape(self.target_kind)]
        img = np.where(mask[..., None], COLOURS_U8[kind_colour(self.target_kind)], 40).astype(np.uint8)
        icon_surf = pygame.surfarray.make_surface(np.ascontiguousarray(img.transpose(1, 0, 2)))
        surf.blit(pygame.transform.scale(icon_surf, (icon, icon)), (x0, y + 24))
        if font is not None:
            surf.blit(get_font(18).render(kind_name(self.target_kind), True, (230, 230, 230)), (x0 + icon + 10, y + 38))
        y += 24 + icon + 14
        if font is not None:
            surf.blit(get_font(20).render("what C sees", True, (230, 230, 230)), (x0, y))
        y += 22
        glimpses = np.clip(self._glimpse_view * 255.0 + 0.5, 0, 255).astype(np.uint8)
        for s in range(self.n_scales):
            g = pygame.surfarray.make_surface(np.ascontiguousarray(glimpses[s].transpose(2, 1, 0)))
            g = pygame.transform.scale(g, (G * cell, G * cell))
            surf.blit(g, (x0, y))
            c = _SCALE_COLOURS[s % len(_SCALE_COLOURS)]
            pygame.draw.rect(surf, c, pygame.Rect(x0 - 2, y - 2, G * cell + 4, G * cell + 4), 2)
            if font is not None:
                w = G * self.scale_ratio**s
                surf.blit(font.render(f"{w}x{w} px", True, c), (x0 + G * cell + 10, y + 4))
                surf.blit(font.render(f"at 1/{self.scale_ratio**s}", True, c), (x0 + G * cell + 10, y + 20))
            y += G * cell + 10
        if font is not None:
            y = max(y, surf.get_height() - 70)
            status = "FOUND" if self._found else ("gave up" if self.saccades >= self.max_saccades else "searching")
            scol = (90, 255, 120) if self._found else (230, 230, 230)
            big = get_font(20)
            surf.blit(big.render(f"saccade {self.saccades}/{self.max_saccades}", True, (230, 230, 230)), (x0, y))
            surf.blit(big.render(f"return {self._return:+.2f}", True, (230, 230, 230)), (x0, y + 20))
            surf.blit(big.render(status, True, scol), (x0, y + 40))
        return self._canvas.present()

    def close(self):
        if self._canvas is not None:
            self._canvas.close()
            self._canvas = None


_UNPICKLED = ("retina", "_glimpse_view", "_canvas_img", "_canvas", "_scene_surface")
_SCALE_COLOURS = ((80, 240, 255), (80, 170, 255), (150, 120, 255), (200, 110, 220), (230, 110, 160))


