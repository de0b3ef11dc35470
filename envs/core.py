"""Shared machinery of the mirabilis environments: vector rewards, kwarg checks, pygame canvas.

Every mirabilis env emits a *vector* of reward channels each step (seed Sec. 13: "reward
signals" are many, not one), following MO-Gymnasium's conventions:

* ``info["vector_reward"]`` — ``float32`` array, one entry per channel,
* ``env.unwrapped.reward_space`` — a ``Box`` bounding that vector,
* ``env.unwrapped.reward_names`` — the channel names,
* the scalar reward Gymnasium returns is ``weights · vector`` (``weights`` a constructor kwarg).

:class:`MOWrapper` turns such an env into MO-Gymnasium form (the vector *is* the reward);
:class:`ScalarizeWrapper` turns it back with any weights.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")


# --------------------------------------------------------------------------- kwarg validation


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """Return ``value`` as int or raise ``ValueError`` naming the kwarg and the allowed range."""
    allowed = f"[{low}, {high}]" if high is not None else f">= {low}"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer in {allowed}, got {value!r}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be in {allowed}, got {value}")
    return int(value)


def check_float(name: str, value: Any, low: float, high: float | None = None) -> float:
    """Return ``value`` as float or raise ``ValueError`` naming the kwarg and the allowed range."""
    allowed = f"[{low}, {high}]" if high is not None else f">= {low}"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number in {allowed}, got {value!r}")
    if not np.isfinite(value) or value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be in {allowed}, got {value}")
    return float(value)


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise ``ValueError`` listing them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_render_mode(render_mode: str | None, metadata: dict) -> str | None:
    if render_mode is not None and render_mode not in metadata["render_modes"]:
        raise ValueError(
            f"render_mode must be None or one of {metadata['render_modes']}, got {render_mode!r}"
        )
    return render_mode


# --------------------------------------------------------------------------- vector rewards


class VectorRewardMixin:
    """Gives an env named reward channels, a ``reward_space`` and weighted scalarisation.

    Call :meth:`_init_vector_reward` in ``__init__``; build each step's vector with
    :meth:`_vector` and return ``self._scalarize(vec)`` as the reward and ``vec`` as
    ``info["vector_reward"]``.
    """

    reward_names: tuple[str, ...]
    reward_space: gym.spaces.Box
    weights: np.ndarray

    def _init_vector_reward(
        self,
        names: Sequence[str],
        default_weights: Sequence[float],
        weights: Sequence[float] | dict[str, float] | None,
        low: Sequence[float] | float = -np.inf,
        high: Sequence[float] | float = np.inf,
    ) -> None:
        self.reward_names = tuple(names)
        n = len(self.reward_names)
        self.reward_space = gym.spaces.Box(
            low=np.broadcast_to(np.asarray(low, dtype=np.float32), (n,)).copy(),
            high=np.broadcast_to(np.asarray(high, dtype=np.float32), (n,)).copy(),
            shape=(n,),
            dtype=np.float32,
        )
        self.weights = parse_weights(weights, self.reward_names, default_weights)

    def _vector(self, **channels: float) -> np.ndarray:
        vec = np.zeros(len(self.reward_names), dtype=np.float32)
        for name, value in channels.items():
            vec[self.reward_names.index(name)] = value
        return vec

    def _scalarize(self, vec: np.ndarray) -> float:
        return float(np.dot(self.weights, vec))


def parse_weights(
    weights: Sequence[float] | dict[str, float] | None,
    names: Sequence[str],
    default: Sequence[float],
) -> np.ndarray:
    """Weights as a float32 array; accepts a sequence (one per channel) or a dict by channel name."""
    names = tuple(names)
    out = np.asarray(default, dtype=np.float32).copy()
    if weights is None:
        return out
    if isinstance(weights, dict):
        for key, value in weights.items():
            if key not in names:
                raise ValueError(f"weights: unknown reward channel {key!r}; channels are {list(names)}")
            out[names.index(key)] = check_float(f"weights[{key!r}]", value, -1e6, 1e6)
        return out
    arr = np.asarray(weights, dtype=np.float64).reshape(-1)
    if arr.shape != (len(names),) or not np.all(np.isfinite(arr)):
        raise ValueError(
            f"weights must be {len(names)} finite numbers (one per channel {list(names)}), got {weights!r}"
        )
    return arr.astype(np.float32)


class MOWrapper(gym.Wrapper):
    """MO-Gymnasium form: ``step`` returns the reward *vector* (float32) instead of the scalar."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        if not hasattr(env.unwrapped, "reward_space"):
            raise ValueError(f"{env} has no reward_space: it does not emit vector rewards")
        self.reward_space = env.unwrapped.reward_space
        self.reward_names = env.unwrapped.reward_names

    def step(self, action):
        obs, _, terminated, truncated, info = self.env.step(action)
        return obs, np.asarray(info["vector_reward"], dtype=np.float32), terminated, truncated, info


class ScalarizeWrapper(gym.Wrapper):
    """Back from MO form (or re-weight a mirabilis env): scalar reward = ``weights · vector``."""

    def __init__(self, env: gym.Env, weights: Sequence[float] | dict[str, float]):
        super().__init__(env)
        names = getattr(env.unwrapped, "reward_names", None)
        if names is None:
            raise ValueError(f"{env} has no reward_names: it does not emit vector rewards")
        self.weights = parse_weights(weights, names, np.ones(len(names)))

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        vec = np.asarray(info.get("vector_reward", reward), dtype=np.float32)
        return obs, float(np.dot(self.weights, vec)), terminated, truncated, info


# --------------------------------------------------------------------------- rendering


class RenderMixin:
    """Gymnasium's ``render()`` for the mirabilis envs: each env draws in ``_render_frame()``."""

    render_mode: str | None

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array' or 'human' "
                            "to gymnasium.make")
            return None
        return self._render_frame()

    def _render_frame(self):  # pragma: no cover - every env overrides it
        raise NotImplementedError


_FONTS: dict[int, Any] = {}


def get_font(size: int):
    """pygame's bundled default font at ``size`` (cached), or ``None`` where pygame has no fonts."""
    if size not in _FONTS:
        try:
            import pygame.font

            if not pygame.font.get_init():
                pygame.font.init()
            _FONTS[size] = pygame.font.Font(None, size)
        except Exception:  # pragma: no cover - pygame built without SDL_ttf
            _FONTS[size] = None
    return _FONTS[size]


class Canvas:
    """A pygame surface that renders to ``rgb_array`` frames or a ``human`` window.

    Envs draw on :attr:`surface` (a plain off-screen ``pygame.Surface``) and call
    :meth:`present`, which returns an ``H×W×3 uint8`` array in ``rgb_array`` mode or blits to
    a window and waits to keep ``render_fps`` in ``human`` mode.
    """

    def __init__(self, width: int, height: int, render_mode: str | None, fps: int, caption: str):
        import pygame

        self._pygame = pygame
        self.width, self.height = int(width), int(height)
        self.render_mode = render_mode
        self.fps = fps
        self.caption = caption
        self.surface = pygame.Surface((self.width, self.height))
        self._window = None
        self._clock = None

    def present(self) -> np.ndarray | None:
        pygame = self._pygame
        if self.render_mode == "human":
            if self._window is None:
                pygame.display.init()
                pygame.display.set_caption(self.caption)
                self._window = pygame.display.set_mode((self.width, self.height))
                self._clock = pygame.time.Clock()
            pygame.event.pump()
            self._window.blit(self.surface, (0, 0))
            pygame.display.flip()
            self._clock.tick(self.fps)
            return None
        return np.ascontiguousarray(
            np.transpose(pygame.surfarray.pixels3d(self.surface), (1, 0, 2))
        ).astype(np.uint8, copy=True)

    def close(self) -> None:
        if self._window is not None:
            self._pygame.display.quit()
            self._window = None
