"""World models M and what is built on them (seed Sec. 5, 6, 11).

* :mod:`world_models.recurrent` — the recurrent world model M ("Making the world
  differentiable", 1990) and the ``[T, B]`` sequence batches it learns from.
* :mod:`world_models.curiosity` — the curiosity interface, ``adversarial`` (1990) and ``none``
  signals and the factory :func:`make_curiosity`.
* :mod:`world_models.progress` — learning-progress curiosity (1991), gamma-Progress estimator.
* :mod:`world_models.rnd` — random network distillation, the baseline.
* :mod:`world_models.retina` — spatial read-outs of a fovea's glimpse for M (reward where a saccade
  lands) and C (a soft-argmax saccade) (Sec. 9, 12).
"""

from world_models.curiosity import (
    CURIOSITY_SIGNALS,
    AdversarialCuriosity,
    CuriositySignal,
    NoCuriosity,
    RunningMeanStd,
    make_curiosity,
)
from world_models.progress import ProgressCuriosity
from world_models.recurrent import (
    Prediction,
    RecurrentWorldModel,
    SequenceBatch,
    State,
    transition_targets,
)
from world_models.retina import RetinaGeometry, RetinaReadout, SaccadeHead
from world_models.rnd import RNDCuriosity

__all__ = [
    "CURIOSITY_SIGNALS",
    "AdversarialCuriosity",
    "CuriositySignal",
    "NoCuriosity",
    "Prediction",
    "ProgressCuriosity",
    "RNDCuriosity",
    "RecurrentWorldModel",
    "RetinaGeometry",
    "RetinaReadout",
    "RunningMeanStd",
    "SaccadeHead",
    "SequenceBatch",
    "State",
    "make_curiosity",
    "transition_targets",
]
