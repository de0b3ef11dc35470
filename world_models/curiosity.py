"""Artificial curiosity: intrinsic rewards for C computed from a world model (seed Sec. 5, 6).

One interface, four signals (CLI ``--curiosity adversarial|progress|rnd|none``):

* ``adversarial`` (1990, Sec. 5): C is paid for M's prediction error on each transition,
  measured *before* M trains on it. C and M play a game: C seeks what M cannot yet predict.
  Known failure: a TV showing fresh random noise stays unpredictable, so it pays forever.
* ``progress`` (1991, Sec. 6): C is paid for M's *improvement* on that kind of experience,
  so that both the mastered and the fundamentally unpredictable become boring
  (:class:`~world_models.progress.ProgressCuriosity`, gamma-Progress).
* ``rnd``: random network distillation (Burda et al. 2018), the baseline users would pick
  instead (:class:`~world_models.rnd.RNDCuriosity`). Trapped by fresh noise like ``adversarial``.
* ``none``: zeros.

Protocol for a freshly collected ``[T, B]`` :class:`~world_models.recurrent.SequenceBatch`::

    r_int = signal.rewards(batch)   # np.ndarray [T, B], before anything trains on the batch
    logs = signal.update(batch)     # trains what the signal trains; {"curiosity/...": float, ...}

Signals built on M (``adversarial``, ``progress``) train M in ``update`` (their
``trains_world_model`` is true: the agent must not train M a second time on the batch) and
return M's ``world_model/*`` losses too. They carry M's recurrent state from one batch to the
next, so consecutive batches must continue each other (as an agent's rollouts do; the
``episode_starts`` reset it); call ``reset()`` before an unrelated stream.

Scaling the intrinsic reward (e.g. by a running estimate of its return's spread) is the
agent's job; :class:`RunningMeanStd` (SB3's) is re-exported for that.
"""

from __future__ import annotations

import abc
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.running_mean_std import RunningMeanStd

from world_models.recurrent import RecurrentWorldModel, SequenceBatch, State

__all__ = [
    "CURIOSITY_SIGNALS",
    "AdversarialCuriosity",
    "CuriositySignal",
    "NoCuriosity",
    "RunningMeanStd",
    "make_curiosity",
]

CURIOSITY_SIGNALS = ("adversarial", "progress", "rnd", "none")


class CuriositySignal(abc.ABC):
    """Common interface of the intrinsic-reward signals."""

    name: str = "base"
    trains_world_model: bool = False

    @abc.abstractmethod
    def rewards(self, batch: SequenceBatch) -> np.ndarray:
        """Intrinsic rewards ``[T, B]`` (float32) for a fresh batch, before anything trains on it."""

    @abc.abstractmethod
    def update(self, batch: SequenceBatch) -> dict[str, float]:
        """Train what the signal trains on ``batch``; return log scalars (``curiosity/*``, ...)."""

    def reset(self) -> None:
        """Forget carried recurrent states (the next batch starts from zero states)."""

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors the signal owns besides M (for safetensors checkpoints); empty by default."""
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`state_dict` returned."""


class _CarriedStates:
    """Recurrent states of models carried from one batch to the next.

    ``start(key, batch)`` gives a model's state at the start of ``batch`` (the state where the
    previous batch ended, or ``None`` = zeros) and remembers it, so that ``rewards`` and
    ``update`` of one batch start from the same state.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._end: dict[str, State | None] = {}
        self._start: dict[str, State | None] = {}
        self._batch: dict[str, SequenceBatch] = {}  # a reference, not an id: ids get reused

    def seen(self, key: str, batch: SequenceBatch) -> bool:
        return self._batch.get(key) is batch

    def start(self, key: str, batch: SequenceBatch) -> State | None:
        if not self.seen(key, batch):
            state = self._end.get(key)
            if state is not None and RecurrentWorldModel.hidden_of(state).shape[0] != batch.B:
                state = None
            self._start[key], self._batch[key] = state, batch
        return self._start[key]

    def finish(self, key: str, state: State) -> None:
        self._end[key] = state


class NoCuriosity(CuriositySignal):
    """``none``: zero intrinsic reward."""

    name = "none"

    def rewards(self, batch: SequenceBatch) -> np.ndarray:
        return np.zeros((batch.T, batch.B), dtype=np.float32)

    def update(self, batch: SequenceBatch) -> dict[str, float]:
        return {}


class AdversarialCuriosity(CuriositySignal):
    """``adversarial`` (1990, Sec. 5): r_int = M's error on the transition, before M trains on it.

    :param world_model: M; trained by :meth:`update`.
    :param reward_coef: weight of M's reward-prediction error in r_int (default: observation error only).
    :param termination_coef: weight of M's termination error in r_int.
    :param epochs: passes of M over each batch in :meth:`update`.
    """

    name = "adversarial"
    trains_world_model = True

    def __init__(
        self,
        world_model: RecurrentWorldModel,
        reward_coef: float = 0.0,
        termination_coef: float = 0.0,
        epochs: int = 1,
    ):
        self.model = world_model
        self.reward_coef = reward_coef
        self.termination_coef = termination_coef
        self.epochs = epochs
        self._states = _CarriedStates()
        self._last: dict[str, float] = {}

    def reset(self) -> None:
        self._states.reset()

    def rewards(self, batch: SequenceBatch) -> np.ndarray:
        err, end = self.model.errors(
            batch,
            self._states.start("model", batch),
            reward_coef=self.reward_coef,
            termination_coef=self.termination_coef,
            return_state=True,
        )
        self._states.finish("model", end)
        r = err.cpu().numpy().astype(np.float32)
        self._last = {"curiosity/reward_mean": float(r.mean()), "curiosity/reward_max": float(r.max())}
        return r

    def update(self, batch: SequenceBatch) -> dict[str, float]:
        if not self._states.seen("model", batch):
            self.rewards(batch)  # advances the carried state past this batch
        logs = self.model.train_on_sequences(batch, self._states.start("model", batch), epochs=self.epochs)
        return {**logs, **self._last}


def make_curiosity(
    name: str,
    world_model: RecurrentWorldModel | None = None,
    observation_space: gym.Space | None = None,
    action_space: gym.Space | None = None,
    **kwargs: Any,
) -> CuriositySignal:
    """Build the signal called ``name`` (one of :data:`CURIOSITY_SIGNALS`).

    ``adversarial`` and ``progress`` need ``world_model``; ``rnd`` needs ``observation_space``
    (taken from ``world_model`` if not given). ``kwargs`` go to the signal's constructor.
    """
    if name not in CURIOSITY_SIGNALS:
        raise ValueError(f"unknown curiosity {name!r}; valid: {', '.join(CURIOSITY_SIGNALS)}")
    if name == "none":
        return NoCuriosity()
    if name == "rnd":
        from world_models.rnd import RNDCuriosity

        if observation_space is None and world_model is not None:
            observation_space = world_model.observation_space
        if observation_space is None:
            raise ValueError("curiosity 'rnd' needs observation_space")
        device = kwargs.pop("device", world_model.device if world_model is not None else "cpu")
        return RNDCuriosity(observation_space, device=device, **kwargs)
    if world_model is None:
        raise ValueError(f"curiosity {name!r} needs a world_model")
    if name == "adversarial":
        return AdversarialCuriosity(world_model, **kwargs)
    from world_models.progress import ProgressCuriosity

    return ProgressCuriosity(world_model, **kwargs)
