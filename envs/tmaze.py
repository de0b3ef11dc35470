"""``mirabilis/TMaze-v0``: Bakker's T-maze — remember the start signal over a corridor of length N.

Seed Sec. 4 (recurrent controllers that must carry information over time); the task is the one of
Bakker (2002), "Reinforcement Learning with Long Short-Term Memory", NIPS 14.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from envs.core import (
    Canvas,
    RenderMixin,
    VectorRewardMixin,
    check_int,
    check_render_mode,
    get_font,
)
from envs.gridworld import PALETTE, draw_agent, frame_size, reward_vectors

NORTH, EAST, SOUTH, WEST = range(4)
SIGNAL_COLOURS = ((40, 170, 210), (206, 82, 172))  # up, down
SIGNAL_NAMES = ("up", "down")
#: how many corridor cells the frame shows at most (longer corridors scroll with the agent)
MAX_VISIBLE_CELLS = 41


def _const(values) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float32)
    arr.flags.writeable = False
    return arr


OBS_START = (_const([1, 1, 0]), _const([0, 1, 1]))  # signal up, signal down
OBS_CORRIDOR = _const([1, 0, 1])
OBS_JUNCTION = _const([0, 1, 0])
OBS_ARM = _const([0, 0, 0])


class TMazeEnv(VectorRewardMixin, RenderMixin, gym.Env):
    """Bakker's T-maze: a signal at the start says which arm of the T at the far end pays.

    **Layout.** A corridor of cells ``x = 0 .. length``: the start at ``x = 0``, the T-junction at
    ``x = length`` (so ``length = 1`` has no plain corridor cell), one arm cell above and one below
    the junction. The start shows a signal, *up* or *down* (uniformly at random each episode),
    naming the arm that holds the reward. Nowhere else is the signal visible: a policy must
    remember it for ``length`` steps. The shortest solution takes ``length + 1`` steps.

    **Observation** — ``Box(0, 1, (3,), float32)``, as in the LSTM-RL literature:

    ==========================  ===============
    where                       observation
    ==========================  ===============
    start, signal *up*          ``[1, 1, 0]``
    start, signal *down*        ``[0, 1, 1]``
    corridor (``0 < x < N``)    ``[1, 0, 1]``
    junction (``x = N``)        ``[0, 1, 0]``
    an arm (terminal)           ``[0, 0, 0]``
    ==========================  ===============

    **Actions** — ``Discrete(4)``: ``0`` north, ``1`` east, ``2`` south, ``3`` west. Moving into a
    wall (north/south in the corridor, west at the start, east at the junction) leaves the agent
    where it is (a *bump*). North/south at the junction enters the up/down arm.

    **Reward channels** (``info["vector_reward"]``, float32, ``reward_names``):

    ===========  ============================================  ==============
    channel      value                                         default weight
    ===========  ============================================  ==============
    goal         1 on entering the arm the signal named         4.0
    wrong_arm    -1 on entering the other arm                   0.1
    bump         -1 on moving into a wall (standing still)      0.1
    step_cost    -1 every step                                  0.0
    ===========  ============================================  ==============

    The defaults give Bakker's rewards: +4 at the correct end, -0.1 at the wrong end, -0.1 for
    standing still. The scalar reward is ``weights · vector``.

    **Start state.** ``x = 0``, signal drawn from ``self.np_random``.

    **Episode end.** Terminated on entering either arm; truncated after ``max_steps`` steps.
    ``info["is_success"]`` at the end: the correct arm was entered. A memory-less policy that
    always turns the same way succeeds in ~50% of episodes.

    **Info**: ``vector_reward`` each step (``is_success`` at the end); reset's info is empty.

    **Kwargs**

    ===============  ========================  ==============================================
    kwarg            default                   meaning (allowed values)
    ===============  ========================  ==============================================
    ``length``       10                        corridor length N (1..100000)
    ``max_steps``    None -> ``10 * (N + 1)``  truncation (1..10^7)
    ``weights``      (4.0, 0.1, 0.1, 0.0)      weights of ``(goal, wrong_arm, bump,
                                               step_cost)``; a sequence or a dict
    ``render_mode``  None                      ``"human"`` or ``"rgb_array"``
    ===============  ========================  ==============================================

    **Seed section**: Sec. 4 — recurrent networks as controllers that must remember; the benchmark
    of Bakker (2002) for LSTM policies, where memory-less policies stay at chance.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 10}

    def __init__(
        self,
        length: int = 10,
        max_steps: int | None = None,
        weights=None,
        render_mode: str | None = None,
    ):
        self.length = check_int("length", length, 1, 100_000)
        if max_steps is None:
            max_steps = 10 * (self.length + 1)
        self.max_steps = check_int("max_steps", max_steps, 1, 10_000_000)
        self.render_mode = check_render_mode(render_mode, self.metadata)
        self._init_vector_reward(
            ("goal", "wrong_arm", "bump", "step_cost"),
            (4.0, 0.1, 0.1, 0.0),
            weights,
            low=(0.0, -1.0, -1.0, -1.0),
            high=(1.0, 0.0, 0.0, 0.0),
        )
        self._vecs, self._rews = reward_vectors(
            {
                "step": (0, 0, 0, -1),
                "bump": (0, 0, -1, -1),
                "goal": (1, 0, 0, -1),
                "wrong": (0, -1, 0, -1),
            },
            self.weights,
        )
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(3,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(4)
        self.signal = 0  # 0: up, 1: down
        self.position = 0
        self.arm: int | None = None  # arm entered (0 up, 1 down) once the episode is over
        self._t = 0
        self._canvas: Canvas | None = None
        self._font = None

    @property
    def shortest_path(self) -> int:
        """Length of the optimal episode: ``length`` steps east, one into the arm."""
        return self.length + 1

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.signal = int(self.np_random.integers(2))
        self.position = 0
        self.arm = None
        self._t = 0
        if self.render_mode == "human":
            self._render_frame()
        return OBS_START[self.signal].copy(), {}

    def step(self, action):
        a = int(action)
        if not 0 <= a <= 3:
            raise ValueError(f"action must be in [0, 3], got {action!r}")
        self._t += 1
        x, n = self.position, self.length
        terminated = False
        if a == EAST:
            case = "step" if x < n else "bump"
            x = min(x + 1, n)
        elif a == WEST:
            case = "step" if x > 0 else "bump"
            x = max(x - 1, 0)
        elif x == n:
            self.arm = 0 if a == NORTH else 1
            case = "goal" if self.arm == self.signal else "wrong"
            terminated = True
        else:
            case = "bump"
        self.position = x
        if terminated:
            obs = OBS_ARM.copy()
        elif x == 0:
            obs = OBS_START[self.signal].copy()
        elif x == n:
            obs = OBS_JUNCTION.copy()
        else:
            obs = OBS_CORRIDOR.copy()
        truncated = self._t >= self.max_steps
        info = {"vector_reward": self._vecs[case].copy()}
        if terminated or truncated:
            info["is_success"] = case == "goal"
        if self.render_mode == "human":
            self._render_frame()
        return obs, self._rews[case], terminated, truncated, info

    # ------------------------------------------------------------------ rendering

    def _render_frame(self):
        import pygame

        n = self.length
        visible = min(n + 1, MAX_VISIBLE_CELLS)
        cell = int(np.clip(960 // visible, 16, 40))
        margin = 20
        width, height = frame_size(max(visible * cell + 2 * margin, 420), 3 * cell + 2 * margin + 86)
        if self._canvas is None:
            self._canvas = Canvas(width, height, self.render_mode, self.metadata["render_fps"], "TMaze")
            self._font = get_font(20)
        surf, font = self._canvas.surface, self._font
        surf.fill(PALETTE["background"])

        # window of corridor cells shown: all of them, or MAX_VISIBLE_CELLS around the agent
        first = int(np.clip(self.position - visible // 2, 0, n + 1 - visible))
        ox = (width - visible * cell) // 2 - first * cell
        oy = margin + 30
        sig_col = SIGNAL_COLOURS[self.signal]
        for x in range(first, first + visible):
            rect = pygame.Rect(ox + x * cell, oy + cell, cell, cell)
            surf.fill(PALETTE["floor"], rect)
            pygame.draw.rect(surf, PALETTE["wall_edge"], rect, width=1)
            if x == 0:
                surf.fill(sig_col, rect.inflate(-4, -4))
        if first + visible - 1 == n:  # the junction and its arms are in the window
            for arm, row in ((0, 0), (1, 2)):
                rect = pygame.Rect(ox + n * cell, oy + row * cell, cell, cell)
                surf.fill(PALETTE["floor"], rect)
                pygame.draw.rect(surf, SIGNAL_COLOURS[arm], rect, width=max(2, cell // 8))
                if arm == self.signal:
                    pygame.draw.rect(surf, PALETTE["goal"], rect.inflate(-cell // 3, -cell // 3), border_radius=3)
        ay = 1 if self.arm is None else (0 if self.arm == 0 else 2)
        colour = None
        if self.arm is not None:
            colour = PALETTE["goal"] if self.arm == self.signal else PALETTE["flag"]
        draw_agent(surf, self.position, ay, cell, ox, oy, colour)

        # header and a map of the whole corridor
        surf.blit(font.render(f"T-maze  N={n}", True, PALETTE["text"]), (margin, 10))
        label = f"signal: {SIGNAL_NAMES[self.signal]}"
        img = font.render(label, True, sig_col)
        surf.blit(img, (width - margin - img.get_width(), 10))
        status = f"step {self._t}/{self.max_steps}   x={self.position}"
        if self.arm is not None:
            status += "   correct arm!" if self.arm == self.signal else "   wrong arm"
        surf.blit(font.render(status, True, PALETTE["muted"]), (margin, oy + 3 * cell + 14))
        bar = pygame.Rect(margin, oy + 3 * cell + 44, width - 2 * margin, 10)
        pygame.draw.rect(surf, PALETTE["wall"], bar, border_radius=5)
        frac = self.position / n
        pygame.draw.rect(surf, sig_col, (bar.x, bar.y, 8, bar.h), border_radius=3)
        pygame.draw.rect(surf, PALETTE["goal"], (bar.right - 8, bar.y, 8, bar.h), border_radius=3)
        pygame.draw.circle(surf, PALETTE["agent"], (bar.x + int(frac * (bar.w - 1)), bar.centery), 8)
        return self._canvas.present()

    def close(self):
        if self._canvas is not None:
            self._canvas.close()
            self._canvas = None
