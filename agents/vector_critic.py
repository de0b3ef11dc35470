"""Vector-valued critics: one value per reward channel, several critics fused into one network.

Seed Sec. 13: the 1990 critics predicted the cumulative value of *every* reward and pain
signal, not one scalar. A :class:`VectorQ` maps ``(features, action)`` to ``[E, B, C]``:
``E`` critics (1, or 2 for TD3's clipped double-Q), batch ``B``, ``C`` reward channels. The
``E`` critics are one module whose layers are batched matrix products (``baddbmm``), so twin
critics cost one kernel per layer rather than two networks' worth of Python and kernel calls.

:func:`vector_td_target` is the per-channel TD target: each channel has its own discount and
its own episodic flag (a non-episodic channel — e.g. curiosity — bootstraps across episode ends),
and clipped double-Q picks, per sample, the critic with the lower *weighted* value, so that
``w · target`` is exactly TD3's scalar target while every channel stays consistent.
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch
from torch import nn


class VectorQ(nn.Module):
    """``E`` MLP critics ``Q_e(x) ∈ R^C`` (ReLU hidden layers) evaluated with batched matmuls.

    Layer ``i`` is a weight ``[E, in, out]`` and a bias ``[E, 1, out]``; activations stay
    ``[E, B, width]`` and contiguous, so every layer is one ``baddbmm`` for all members. Each
    member is initialised like ``nn.Linear`` (uniform ±1/√fan_in), independently.
    """

    def __init__(self, in_dim: int, hidden: list[int] | tuple[int, ...], n_channels: int, n_members: int = 2):
        super().__init__()
        if not hidden:
            raise ValueError("critic needs at least one hidden layer")
        self.in_dim, self.n_channels, self.n_members = int(in_dim), int(n_channels), int(n_members)
        sizes = [self.in_dim, *map(int, hidden), self.n_channels]
        self.weights = nn.ParameterList(nn.Parameter(torch.empty(n_members, i, o)) for i, o in pairwise(sizes))
        self.biases = nn.ParameterList(nn.Parameter(torch.empty(n_members, 1, o)) for o in sizes[1:])
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            for w, b in zip(self.weights, self.biases):
                bound = 1.0 / math.sqrt(w.shape[1])
                w.uniform_(-bound, bound)
                b.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """All members: ``x`` ``[B, in]`` -> ``[E, B, C]``."""
        h = x.expand(self.n_members, *x.shape)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = h.relu_()
        return h

    def member(self, x: torch.Tensor, k: int = 0) -> torch.Tensor:
        """Member ``k`` only (the actor's objective uses Q_0, like TD3's ``q1_forward``): ``[B, C]``."""
        h = x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.addmm(b[k], h, w[k])
            if i < last:
                h = h.relu_()
        return h


def vector_td_target(
    rewards: torch.Tensor,
    dones: torch.Tensor,
    next_q: torch.Tensor,
    gammas: torch.Tensor,
    episodic: torch.Tensor,
    weights: torch.Tensor,
) -> torch.Tensor:
    """Per-channel TD targets ``[B, C]``.

    ``rewards`` ``[B, C]``; ``dones`` ``[B, 1]`` (true terminations, not time-outs); ``next_q``
    ``[E, B, C]`` from the target critics; ``gammas``, ``episodic`` (float 0/1) and ``weights``
    ``[C]``. With ``E > 1`` each sample takes the member whose weighted value ``w · Q`` is lowest.
    """
    if next_q.shape[0] == 1:
        q = next_q[0]
    else:
        pick = (next_q @ weights).argmin(dim=0)  # [B]
        q = next_q.gather(0, pick.view(1, -1, 1).expand(1, *next_q.shape[1:]))[0]
    continues = 1.0 - dones * episodic  # [B, C]
    return rewards + continues * gammas * q
