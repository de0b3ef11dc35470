"""``lstm-rl``: LSTM controllers trained by reinforcement learning (seed Sec. 4 and 13).

Bakker (2002) trained LSTM controllers by RL to remember, over long corridors, a signal seen
only at the start of a T-maze; Wierstra et al. (2007) gave them recurrent policy gradients.
In 1990 the controller's inputs also included its reward/pain signals and previous output
(Sec. 13). ``lstm-rl`` is exactly that: the shared sequence-batched recurrent policy gradient
with a vector critic (:mod:`agents.recurrent_pg`) with ``reward_inputs=True`` by default — C
sees the observation, its previous action and the previous reward vector.
"""

from __future__ import annotations

from agents.recurrent_pg import RecurrentVectorPG


class LSTMRL(RecurrentVectorPG):
    """LSTM-RL: recurrent policy gradient, vector critic, previous action and reward as inputs."""

    agent_id = "lstm-rl"

    def __init__(self, env, reward_inputs: bool = True, **kwargs):
        super().__init__(env, reward_inputs=reward_inputs, **kwargs)
