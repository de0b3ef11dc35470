"""Spatial read-outs of a multi-resolution glimpse: where a saccade lands, what lies there.

Seed Sec. 9 and 12 (Schmidhuber & Huber 1990, "Learning to generate focus trajectories for
attentive vision"): C moves a fovea, M predicts what the move brings, and C learns its saccades
by gradients back-propagated through M. For that gradient to say *where* to look, M must predict
the reward of a saccade as a function of its landing point. A plain MLP over the flattened glimpse
and the action did not learn this from sparse finds (``results/fovea/`` at commit 9b64aec: M's
predicted *found* reward stayed flat over the saccades of a scene). These modules give M and C
the geometry of the retina instead, the way a convolution gives a net the geometry of an image:

* :class:`RetinaGeometry` — where each glimpse pixel lies relative to the fovea, read from an env
  with the layout of ``mirabilis/FoveaSearch-v0`` (``glimpse_shape``, ``scale_ratio``,
  ``obs_slices``, ``scene_size``, ``max_jump``);
* :class:`RetinaReadout` — M's spatial term: every glimpse pixel gets scores (one per output) from
  a small net shared by all pixels, of its colour and the goal input; the output for a saccade is
  the sum of the scores weighted by a Gaussian of the distance between the pixel's centre and the
  saccade's landing point (one learned width per scale and output). It is differentiable in the
  landing point, so C gets a gradient towards high-scoring places even from far away;
* :class:`SaccadeHead` — C's spatial term: a softmax over the glimpse pixels (scores from a
  shared per-pixel net of colour and goal) and the saccade to the softmax-weighted mean of their
  centres (the spatial soft-argmax of Levine et al. 2016, "End-to-end training of deep
  visuomotor policies").

Both take flat observations in env units. ``agents/planner_cm.py`` uses them with
``spatial_readout=True``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

REQUIRED_ATTRIBUTES = ("glimpse_shape", "scale_ratio", "obs_slices", "scene_size", "max_jump")


@dataclasses.dataclass(frozen=True)
class RetinaGeometry:
    """The layout of a retina observation (flat) and of a continuous saccade action.

    ``offsets`` ``[n_scales, G*G, 2]``: each glimpse pixel's centre ``(x, y)`` relative to the
    fovea in scene pixels; ``pixel_widths`` ``[n_scales]``. A saccade action ``a`` in ``[-1, 1]^2``
    moves the fovea by ``a * max_jump`` pixels, clipped to the scene ``[0, scene_size]``.
    """

    n_scales: int
    glimpse_size: int
    scale_ratio: int
    scene_size: int
    max_jump: float
    glimpse: slice
    goal: slice | None
    fovea: slice

    @classmethod
    def from_env(cls, env: Any) -> RetinaGeometry:
        """Read the geometry from a VecEnv (``get_attr``) or an env; a clear error if it has none."""

        def attr(name: str):
            if hasattr(env, "get_attr"):
                return env.get_attr(name, indices=[0])[0]
            return getattr(env.unwrapped, name)

        try:
            values = {name: attr(name) for name in REQUIRED_ATTRIBUTES}
        except AttributeError as err:
            raise ValueError(
                f"spatial_readout needs an env with a retina observation (like mirabilis/FoveaSearch-v0: the "
                f"attributes {', '.join(REQUIRED_ATTRIBUTES)}); this env has not: {err}") from None
        n_scales, channels, g, g2 = values["glimpse_shape"]
        slices = values["obs_slices"]
        if channels != 3 or g != g2 or "glimpse" not in slices or "fovea" not in slices:
            raise ValueError(f"spatial_readout: unsupported retina layout {values['glimpse_shape']} / {slices}")
        return cls(int(n_scales), int(g), int(values["scale_ratio"]), int(values["scene_size"]),
                   float(values["max_jump"]), slices["glimpse"], slices.get("goal"), slices["fovea"])

    @property
    def n_goal(self) -> int:
        return 0 if self.goal is None else self.goal.stop - self.goal.start

    @property
    def pixel_widths(self) -> torch.Tensor:
        return torch.tensor([float(self.scale_ratio**s) for s in range(self.n_scales)])

    @property
    def offsets(self) -> torch.Tensor:
        out = []
        for s in range(self.n_scales):
            width = self.glimpse_size * self.scale_ratio**s
            centres = (torch.arange(self.glimpse_size) + 0.5) * (width / self.glimpse_size) - width / 2
            yy, xx = torch.meshgrid(centres, centres, indexing="ij")
            out.append(torch.stack([xx, yy], -1).reshape(-1, 2))
        return torch.stack(out)

    def pixel_features(self, obs: torch.Tensor) -> torch.Tensor:
        """``[..., obs_dim]`` -> ``[..., n_scales, G*G, F]``: RGB, goal, RGB x goal of each glimpse pixel."""
        lead = obs.shape[:-1]
        n, g2 = self.n_scales, self.glimpse_size**2
        rgb = obs[..., self.glimpse].reshape(*lead, n, 3, g2).transpose(-1, -2)
        if self.goal is None:
            return rgb
        goal = obs[..., self.goal][..., None, None, :].expand(*lead, n, g2, self.n_goal)
        return torch.cat([rgb, goal, (rgb[..., :, None] * goal[..., None, :]).flatten(-2)], -1)

    @property
    def n_features(self) -> int:
        return 3 + self.n_goal * 4

    def fovea_pixels(self, obs: torch.Tensor) -> torch.Tensor:
        """The fovea position ``[..., 2]`` in scene pixels (the observation holds ``2 p / S - 1``)."""
        return (obs[..., self.fovea] + 1.0) * (self.scene_size / 2.0)

    def saccade_offset(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Where the saccade ``action`` lands, relative to the fovea, in pixels ``[..., 2]``."""
        return self.landing(self.fovea_pixels(obs), action)

    def landing(self, fovea: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Where a saccade of ``action`` (units of ``max_jump``) from ``fovea`` (scene pixels) lands, relative to
        ``fovea``; per axis (the clip to the scene is), so it also takes one axis's coordinates."""
        return (fovea + action * self.max_jump).clamp(0.0, float(self.scene_size)) - fovea


# The read-out's Gaussian weights below e^-50 are set to exactly 0: they are far below the float32 resolution of the
# sums they enter, and, left as they are, many of them are subnormal floats, which slow every CPU op that touches them
# (M's updates were measurably slower).
KERNEL_CUTOFF = -50.0


class _PixelScores(nn.Module):
    """A net shared by every glimpse pixel: its features (:meth:`RetinaGeometry.pixel_features`) -> ``n_out``
    scores, one output layer per scale.

    :meth:`forward` never builds the features: the goal input is the same for all the pixels of an
    observation, so the first layer on ``[rgb, goal, rgb x goal]`` is, per observation, an affine map of the
    pixel's RGB alone (:meth:`first_layer`); and each scale's pixels go through their own output layer only.
    """

    def __init__(self, geometry: RetinaGeometry, n_out: int, hidden: int):
        super().__init__()
        self.geometry, self.n_scales, self.n_out = geometry, geometry.n_scales, n_out
        self.net = nn.Sequential(nn.Linear(geometry.n_features, hidden), nn.ELU(),
                                 nn.Linear(hidden, geometry.n_scales * n_out))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """``[..., obs_dim]`` -> every glimpse pixel's scores ``[..., S, G*G, n_out]``."""
        geometry, (_, activation, last) = self.geometry, self.net
        lead = obs.shape[:-1]
        rgb = obs[..., geometry.glimpse].reshape(*lead, self.n_scales, 3, geometry.glimpse_size**2)
        weight, bias = self.first_layer(obs)  # [..., H, 3], [..., H]
        hidden = activation(torch.einsum("...scp,...hc->...sph", rgb, weight) + bias[..., None, None, :])
        out_weight = last.weight.view(self.n_scales, self.n_out, -1)  # [S, n_out, H]
        return torch.einsum("...sph,soh->...spo", hidden, out_weight) + last.bias.view(self.n_scales, 1, self.n_out)

    def first_layer(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The first layer as an affine map of a pixel's RGB, per observation: weight ``[..., H, 3]``, bias ``[..., H]``
        (``W [rgb; goal; rgb x goal] + b = (W_rgb + sum_g goal_g W_g) rgb + (W_goal goal + b)``)."""
        linear, n_goal = self.net[0], self.geometry.n_goal
        weight, bias = linear.weight[:, :3], linear.bias
        if not n_goal:
            return weight.expand(*obs.shape[:-1], -1, -1), bias.expand(*obs.shape[:-1], -1)
        goal = obs[..., self.geometry.goal]
        cross = linear.weight[:, 3 + n_goal:].view(-1, 3, n_goal)  # [H, 3, n_goal]: column c * n_goal + g
        return (weight + torch.einsum("hcg,...g->...hc", cross, goal),
                bias + goal @ linear.weight[:, 3:3 + n_goal].T)


class RetinaReadout(nn.Module):
    """M's spatial term: ``[..., n_out]`` for an observation and a saccade (see the module doc).

    ``out_o = sum_s sum_p score_{s,p,o} * exp(-|landing - centre_{s,p}|^2 / (2 sigma_{s,o}^2))``,
    with ``sigma_{s,o}`` initialised to the pixel width of scale ``s``.
    """

    def __init__(self, geometry: RetinaGeometry, n_out: int, hidden: int = 32):
        super().__init__()
        self.geometry = geometry
        self.scores = _PixelScores(geometry, n_out, hidden)
        self.register_buffer("offsets", geometry.offsets)
        self.log_sigma = nn.Parameter(geometry.pixel_widths.log()[:, None].repeat(1, n_out))

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.at_landings(obs, self.geometry.saccade_offset(obs, action)[..., None, :])[..., 0, :]

    def at_actions(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The outputs ``[..., K, n_out]`` of ``K`` saccades ``[..., K, 2]`` per observation."""
        return self.at_landings(obs, self.geometry.saccade_offset(obs[..., None, :], actions))

    def at_landings(self, obs: torch.Tensor, landings: torch.Tensor) -> torch.Tensor:
        """The outputs ``[..., K, n_out]`` at ``K`` landing points ``[..., K, 2]`` (pixels from the fovea) at once:
        the pixel scores are computed once per observation."""
        scores = self._scores(obs)
        # the Gaussian is separable and the pixels a grid: kernel = k_y(row) * k_x(column)
        kx, ky = self._kernel(landings[..., 0]), self._kernel(landings[..., 1])
        return torch.einsum("...syxo,...ksyo,...ksxo->...ko", scores, ky, kx)

    def on_action_grid(self, obs: torch.Tensor, actions_x: torch.Tensor, actions_y: torch.Tensor) -> torch.Tensor:
        """The outputs ``[..., J, I, n_out]`` of the ``J x I`` saccades ``(actions_x[i], actions_y[j])`` per
        observation (``actions_x`` ``[I]``, ``actions_y`` ``[J]``, in action units): what :meth:`at_actions` gives
        for the same saccades listed one by one, for a fraction of the cost, since the kernels are computed per
        coordinate, not per saccade, and the sums run axis by axis."""
        fovea = self.geometry.fovea_pixels(obs)[..., None, :]  # [..., 1, 2]
        kx = self._kernel(self.geometry.landing(fovea[..., 0], actions_x))  # [..., I, S, X, O]
        ky = self._kernel(self.geometry.landing(fovea[..., 1], actions_y))  # [..., J, S, Y, O]
        rows = torch.einsum("...syxo,...isxo->...syio", self._scores(obs), kx)
        return torch.einsum("...jsyo,...syio->...jio", ky, rows)

    def _scores(self, obs: torch.Tensor) -> torch.Tensor:
        """Every glimpse pixel's scores ``[..., S, G(y), G(x), n_out]``."""
        g = self.geometry.glimpse_size
        return self.scores(obs).unflatten(-2, (g, g))

    def _kernel(self, coordinates: torch.Tensor) -> torch.Tensor:
        """The Gaussian along one axis ``[..., K, S, G, n_out]`` between landing coordinates ``[..., K]`` (pixels
        from the fovea) and the glimpse pixels' centres on that axis."""
        centres = self.offsets[:, :self.geometry.glimpse_size, 0]  # [S, G]: the columns' x (= the rows' y)
        inv_var = torch.exp(-2.0 * self.log_sigma)[:, None, :]  # [S, 1, n_out]
        exponent = -0.5 * (coordinates[..., None, None, None] - centres[..., None]).pow(2) * inv_var
        return torch.exp(exponent).masked_fill(exponent < KERNEL_CUTOFF, 0.0)


class SaccadeHead(nn.Module):
    """C's spatial term: the saccade ``[..., 2]`` (in action units) to the soft-argmax of pixel scores."""

    def __init__(self, geometry: RetinaGeometry, hidden: int = 32):
        super().__init__()
        self.geometry = geometry
        self.scores = _PixelScores(geometry, 1, hidden)
        self.register_buffer("offsets", geometry.offsets.reshape(-1, 2))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.saccade(self.logits(obs))

    def saccade(self, logits: torch.Tensor) -> torch.Tensor:
        """The saccade ``[..., 2]`` for the pixel logits ``[..., S*P]`` of :meth:`logits`."""
        return torch.softmax(logits, -1) @ self.candidates

    def argmax(self, logits: torch.Tensor) -> torch.Tensor:
        """The saccade ``[..., 2]`` to the most probable candidate (the softmax's mode, not its mean)."""
        return self.candidates[logits.argmax(-1)]

    def logits(self, obs: torch.Tensor) -> torch.Tensor:
        """``[..., S*P]``: the softmax's logits, one per glimpse pixel."""
        return self.scores(obs).flatten(-3)

    @property
    def candidates(self) -> torch.Tensor:
        """``[S*P, 2]``: the saccade (action units) to each glimpse pixel's centre."""
        return self.offsets / self.geometry.max_jump

    @property
    def candidate_axis(self) -> torch.Tensor:
        """``[S*G]``: the candidates' coordinates along one axis (the same for x and y), scale by scale: the
        candidates are the blocks ``s == s'`` of the grid ``candidate_axis x candidate_axis`` (:meth:`from_grid`)."""
        g = self.geometry.glimpse_size
        return self.offsets.view(self.geometry.n_scales, g, g, 2)[:, 0, :, 0].reshape(-1) / self.geometry.max_jump

    def from_grid(self, values: torch.Tensor) -> torch.Tensor:
        """Values ``[..., S*G(y), S*G(x), D]`` on the grid of :attr:`candidate_axis` -> ``[..., S*P, D]``, the
        candidates' values in the order of :attr:`candidates`."""
        n, g = self.geometry.n_scales, self.geometry.glimpse_size
        blocks = values.unflatten(-2, (n, g)).unflatten(-4, (n, g))  # [..., S, G(y), S', G(x), D]
        index = torch.arange(n, device=values.device)
        return blocks[..., index, :, index, :, :].movedim(0, -4).flatten(-4, -2)


def atanh_clipped(x: torch.Tensor, bound: float = 1.0 - 1e-3) -> torch.Tensor:
    """``atanh`` of ``x`` clipped to ``(-bound, bound)``: the pre-squash value of a unit action."""
    return torch.atanh(x.clamp(-bound, bound))


