"""Sequence batching for recurrent learners: cut ``[T, B]`` rollouts into padded segments.

A rollout of T steps from B envs is cut, per env, wherever an episode starts and every
``max_len`` steps. Each segment starts either at an episode start (recurrent state zero) or in
the middle of an episode (the recurrent state stored during the rollout, detached: truncated
BPTT). Segments are gathered into a padded ``[L, N]`` batch with a mask and their lengths, so a
single ``nn.LSTM`` call over the padded batch processes them all (padding after a segment's end cannot
change its outputs, and is masked out of the losses), with the time loop in C++ rather than a Python
loop over steps that zeroes the state at each episode start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Segments:
    """Index arrays of N segments padded to length L: ``x[t_index, b_index]`` gathers them."""

    t_index: np.ndarray  # [L, N] int: time index into the rollout (padding repeats the last step)
    b_index: np.ndarray  # [L, N] int: env index
    mask: np.ndarray  # [L, N] bool: real steps
    lengths: np.ndarray  # [N] int
    starts: np.ndarray  # [N] int: time index of each segment's first step

    @property
    def n(self) -> int:
        return len(self.lengths)

    def select(self, which: np.ndarray) -> Segments:
        """The sub-batch of segments ``which``, trimmed to its own longest segment."""
        lengths = self.lengths[which]
        L = int(lengths.max())
        return Segments(self.t_index[:L, which], self.b_index[:L, which], self.mask[:L, which], lengths,
                        self.starts[which])


def split_segments(episode_starts: np.ndarray, max_len: int) -> Segments:
    """Segments of a ``[T, B]`` rollout, cut at episode starts and every ``max_len`` steps."""
    T, B = episode_starts.shape
    cuts = episode_starts.astype(bool).copy()
    cuts[0, :] = True
    cuts[np.arange(0, T, max_len), :] = True
    starts_t, starts_b, lengths = [], [], []
    for b in range(B):
        t_starts = np.flatnonzero(cuts[:, b])
        ends = np.append(t_starts[1:], T)
        starts_t.append(t_starts)
        starts_b.append(np.full(len(t_starts), b))
        lengths.append(ends - t_starts)
    starts = np.concatenate(starts_t)
    envs = np.concatenate(starts_b)
    lengths = np.concatenate(lengths)
    L = int(lengths.max())
    offsets = np.arange(L)[:, None]
    t_index = starts[None, :] + np.minimum(offsets, lengths[None, :] - 1)
    mask = offsets < lengths[None, :]
    b_index = np.broadcast_to(envs[None, :], (L, len(envs))).copy()
    return Segments(t_index, b_index, mask, lengths, starts)


def minibatches(segments: Segments, n_minibatches: int, rng: np.random.Generator) -> list[Segments]:
    """Shuffle segments and split them into about ``n_minibatches`` groups of similar step counts."""
    order = rng.permutation(segments.n)
    steps = np.cumsum(segments.lengths[order])
    total = steps[-1]
    groups = np.minimum((steps - 1) * n_minibatches // total, n_minibatches - 1)
    return [segments.select(order[groups == g]) for g in range(n_minibatches) if np.any(groups == g)]
