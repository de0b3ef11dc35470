"""Learning-progress curiosity (seed Sec. 6: Schmidhuber 1991, "curious model-building control
systems"): C is paid for M's *improvement*, not for M's error.

Estimator: gamma-Progress (Kim et al. 2020, "Active world model learning with progress
curiosity"). Next to M we keep an old copy M_old whose weights trail M's as a Polyak
(exponential moving) average, ``theta_old <- (1 - tau) theta_old + tau theta`` after every
:meth:`ProgressCuriosity.update`. On a freshly collected batch — transitions that *neither*
model has trained on — the intrinsic reward of each transition is::

    r_int = err_old(transition) - err_M(transition)

i.e. how much M's error on this kind of experience fell over the last ~1/tau updates.

* Learnable, being learned: M is better than its lagging copy: r_int > 0.
* Mastered: M and M_old both predict it (the weights have stopped moving there): r_int -> 0.
* Unpredictable noise (a TV showing fresh noise): neither model can beat the noise; both sit at
  the same floor, so r_int averages ~0 (slightly *below* 0 on average in practice: M chases
  the latest noise samples while the averaged M_old does not, so the TV even becomes
  mildly aversive, which is what we want).

Why gamma-Progress: it is generic (any M, any observation space, recurrent state included, no
hand-made partition of the state space as in R-IAC, no second network to train as in an error
predictor), costs one extra forward pass of M per batch, and evaluating both models on
*fresh* data is exactly what keeps noise from paying.

Why not the naive estimator "M's loss on a sample before minus after a gradient step on that
same sample": a gradient step on a sample lowers the loss *on that sample* whether or not
there is anything to learn. On noise M just memorises the latest draw (and forgets it at the
next), so before-minus-after stays > 0 forever and "progress" keeps paying for the TV —
the failure the 1991 idea was meant to fix. ``tests/test_curiosity_signals.py`` shows it.

Choices: r_int is per transition, neither clipped nor smoothed: negatives are kept so that
noise averages ~0 rather than being biased upwards (clipping at 0 turns zero-mean jitter into a
positive reward); per-sample jitter is left to the agent's advantage estimation and reward
normalisation. ``tau`` is per :meth:`update` call (one call per collected batch): the
progress window is ~1/tau batches.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from world_models.curiosity import CuriositySignal, _CarriedStates
from world_models.recurrent import RecurrentWorldModel, SequenceBatch


class ProgressCuriosity(CuriositySignal):
    """``progress``: r_int = err_old - err_M on fresh transitions (gamma-Progress).

    :param world_model: M; trained by :meth:`update`.
    :param tau: Polyak rate of the old copy per update (window ~1/tau updates).
    :param reward_coef: weight of the reward-prediction error in the errors compared.
    :param termination_coef: weight of the termination error in the errors compared.
    :param epochs: passes of M over each batch in :meth:`update`.
    """

    name = "progress"
    trains_world_model = True

    def __init__(
        self,
        world_model: RecurrentWorldModel,
        tau: float = 0.05,
        reward_coef: float = 0.0,
        termination_coef: float = 0.0,
        epochs: int = 1,
    ):
        if not 0.0 < tau <= 1.0:
            raise ValueError(f"tau must be in (0, 1], got {tau}")
        self.model = world_model
        self.old_model = copy.deepcopy(world_model)
        self.old_model.optimizer = None  # never trained: it only trails M
        self.old_model.requires_grad_(False)
        self.tau = tau
        self.reward_coef = reward_coef
        self.termination_coef = termination_coef
        self.epochs = epochs
        self._states = _CarriedStates()
        self._last: dict[str, float] = {}

    def reset(self) -> None:
        self._states.reset()

    def _errors(self, key: str, model: RecurrentWorldModel, batch: SequenceBatch) -> torch.Tensor:
        err, end = model.errors(
            batch,
            self._states.start(key, batch),
            reward_coef=self.reward_coef,
            termination_coef=self.termination_coef,
            return_state=True,
        )
        self._states.finish(key, end)
        return err

    def rewards(self, batch: SequenceBatch) -> np.ndarray:
        err_new = self._errors("model", self.model, batch)
        err_old = self._errors("old", self.old_model, batch)
        r = (err_old - err_new).cpu().numpy().astype(np.float32)
        self._last = {
            "curiosity/reward_mean": float(r.mean()),
            "curiosity/reward_max": float(r.max()),
            "curiosity/error_mean": float(err_new.mean()),
            "curiosity/old_error_mean": float(err_old.mean()),
        }
        return r

    def update(self, batch: SequenceBatch) -> dict[str, float]:
        if not self._states.seen("model", batch):
            self.rewards(batch)  # advances the carried states past this batch
        logs = self.model.train_on_sequences(batch, self._states.start("model", batch), epochs=self.epochs)
        self.track()
        return {**logs, **self._last}

    @torch.no_grad()
    def track(self) -> None:
        """Move the old copy a step ``tau`` towards M (Polyak averaging)."""
        for p_old, p in zip(self.old_model.parameters(), self.model.parameters()):
            p_old.lerp_(p, self.tau)
        for b_old, b in zip(self.old_model.buffers(), self.model.buffers()):
            b_old.copy_(b)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"old_model.{k}": v for k, v in self.old_model.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.old_model.load_state_dict({k[10:]: v for k, v in state.items() if k.startswith("old_model.")})
