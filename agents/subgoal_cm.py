"""``subgoal-c-m``: a learned evaluator E, a subgoal generator trained through E, a controller C.

Seed Sec. 10 and 12 (Schmidhuber 1991, FKI-129-90, "Learning to generate sub-goals for action
sequences"). An RL machine gets two extra command inputs, *start* and *goal*. An evaluator
network E learns to predict the cost of getting from a start to a goal. A subgoal generator,
seeing (start, goal), learns by gradient descent — through frozen copies of E — a sequence of
intermediate subgoals ``s_1 … s_k`` that minimises the summed predicted cost

    E(start, s_1) + E(s_1, s_2) + … + E(s_k, goal),

and the controller then reaches the goal subgoal by subgoal. The algorithm, top to bottom
(states, starts, goals and subgoals all live in the env's *goal space*: a goal-conditioned
Gymnasium env with ``observation`` / ``achieved_goal`` / ``desired_goal`` and ``compute_reward``):

1. **Executor C.** A goal-conditioned low-level controller: an internal :class:`agents.dpg.DPG`
   (vector critic, TD3's fixes, hindsight relabelling). It learns on the env's own episodes;
   hindsight relabelling (HER, "future" strategy) turns every stretch of its experience into
   practice at reaching *achieved positions*, which is what a subgoal is. When acting, C sees
   the observation with ``desired_goal`` replaced by its current subgoal.
2. **Evaluator E(start, goal) ≥ 0**, the expected number of steps from ``start`` to ``goal``,
   learned from C's own experience, never from the env's geometry: goal-conditioned TD on the
   step cost over the *hindsight-relabelled* replay samples (their goals were achieved later in the
   same episode, so every TD chain ends at a reached goal; the real samples' commanded goals, often
   never reached, would only drag E towards ``cost_cap``),

       E(a, g) ← min(cost_cap, 1 + (1 − reached(a′, g)) · E′(a′, g)),

   with ``a``/``a′`` the achieved goals before/after a stored transition and ``E′`` a
   Polyak-averaged target copy. The regression is *expectile* (``evaluator_expectile`` < 0.5
   weighs targets below the prediction more, as IQL does for values): in a deterministic world
   it tracks the cheapest way the replayed actions found, not the average of exploring ones
   (with 0.3, E came out 3-10× too high on short hops in a StartGoalNav trial; with 0.1, about right).
   A share ``evaluator_random_goals`` of the samples gets goals drawn uniformly from the goal
   space's box: goals that are never achieved (inside obstacles, say) are never "reached", so
   their TD targets climb to ``cost_cap`` — E learns that they are unreachable.

   ``evaluator_target="attempts"`` learns E as the 1991 paper did, from what C's own attempts
   cost (:class:`AttemptLog`): every pursuit of a subgoal, and every ``subgoal_budget`` steps of
   pursuing the goal itself, is one attempt, and E(p, target) regresses on ``T − i`` steps from
   each point ``p_i`` of an attempt that reached its target at step ``T``, on ``cost_cap`` from
   the points of one whose budget ran out. E then predicts what going *directly* costs C —
   ``cost_cap`` behind a wall C cannot get around on its own — which is what a subgoal chain
   must avoid; the TD target above predicts the cheapest way round, which a chain cannot beat.
   (Against the shortest-path cost, ``evaluator_corr``, it therefore correlates less.)
3. **Subgoal generator** (``generator="feedforward"``: one MLP per chain length
   ``m = 1 … n_subgoals``, each mapping (start, goal) to ``m`` subgoals at once;
   ``"recurrent"``: a GRU that emits the chain one subgoal at a time, fed the previous point,
   the goal and how many subgoals remain). It is trained on (start, goal) pairs from the replay
   (real starts; real, hindsight and random goals) by Adam on the summed cost of every chain
   length, through a frozen copy of E (``requires_grad_(False)`` on a deep copy: gradients
   flow *through* E into the generator, E's weights never change). **Valid subgoals:** every
   subgoal is ``low + (high − low) · sigmoid(z)`` for the goal-space box shrunk by
   ``subgoal_margin`` of its width, so it lies inside the box by construction; ``z`` starts
   at the logit of the evenly spaced point on the straight start→goal line, and the network adds
   to it. The box is all the generator is *guaranteed* to respect: obstacles are avoided only as
   far as E has learned them — goals never achieved are pushed towards ``cost_cap`` by the
   random-goal TD of step 2, and segments through an obstacle cost what going around cost in C's
   experience.
   **Several hypotheses** (``generator_hypotheses`` H > 1; an extension, the 1991 generator is H = 1):
   behind an obstacle E reads ``cost_cap`` almost everywhere, a plateau with no gradient, so a chain
   that starts on a straight line through a wall stays there. The generator then emits H chains per
   (start, goal): chain 0 starts on the straight line, chain h on the route start → anchor h → goal
   (H − 1 anchors spread evenly over the box, a Halton sequence), each is trained by gradient descent
   through E on its own summed cost, and the plan is the chain with the least summed E. (The GRU gets
   the hypothesis' index as a one-hot input.)
4. **Execution.** With chain ``s_1 … s_m`` (``m`` subgoals still to go), C pursues ``s_1``
   for at most ``subgoal_budget`` steps. When it is reached (the env's own success test on
   ``(achieved_goal, s_1)``), ``m`` falls by one and a new chain of ``m`` subgoals is generated
   from where the agent now is; when the budget runs out, a fresh chain of ``m`` subgoals is
   generated from there (replanning). With ``m = 0`` C pursues the goal itself;
   ``n_subgoals = 0`` is the flat executor. During training, episodes after ``subgoal_starts``
   env steps are pursued the same way (plus C's exploration noise; with ``mixed_chains`` each
   episode's chain length is drawn from ``0 … n_subgoals``, so E sees every kind of segment) — what C stores is the real
   transition with the env's goal, so HER and the critics stay off-policy-correct.

   Three options (extensions; off by default) make execution robust where a deterministic C gets
   stuck — a stopped move repeated until the budget ends — and plain replanning keeps sending it
   back to the same spot: ``keep_remaining_chain`` (after a subgoal is reached, the rest of the
   chain moves up and is kept where E rates it cheaper than the fresh chain, so plans do not
   oscillate between routes of similar cost), ``avoid_failed_subgoal`` (when a budget runs out,
   the fresh chain is chosen among the hypotheses whose first subgoal is not the one that failed,
   unless all of them are), and ``replan_goal_leg`` (at ``m = 0`` the goal itself gets
   ``subgoal_budget`` steps too; then a fresh chain of ``n_subgoals`` is planned from where C is,
   and that pursuit counts as a failed attempt for ``evaluator_target="attempts"``).
   A fourth, ``stuck_escape``, acts on C itself and so on the flat executor too: in :meth:`SubgoalCM.predict`,
   after a move the env stopped (the achieved goal did not change), C's action is replaced by one drawn
   uniformly from the action space. A deterministic C, given the same observation and command, would
   otherwise repeat the stopped move until the budget (or, flat, the episode) ends; in training C's
   exploration noise moves it on, so training episodes are not changed. A stopped move on the step
   C's target changes (a subgoal reached, a budget spent, a fresh chain) is not followed by one: the
   new command is a new input, so C's next move is not a repeat of the stopped one.
   A fifth, ``replan_full_chain``, also only when acting outside training: when a subgoal's budget runs
   out, the fresh chain has ``n_subgoals`` subgoals again rather than the ``m`` still to go (as
   ``replan_goal_leg`` does at ``m = 0``). A leg fails most often late in the chain, with ``m = 1`` left,
   where one subgoal cannot both lead C round the corner it stuck at and on to the goal (on ``doors``,
   C below a doorway's edge was sent straight at the far strip again instead of up into the doorway
   first). Training episodes are not changed by it, so its effect is measured on the same training runs.

Per-env execution state lives in the ``state`` array that :meth:`SubgoalCM.predict` returns and
takes back, ``[m, steps on the current subgoal, m subgoals …, stopped moves in a row towards the
current target, previous achieved goal]``, reset at ``episode_start``, so
SB3's ``evaluate_policy`` drives it like a recurrent policy.

Logged: ``hrl/evaluator_loss``, ``hrl/generator_cost`` (mean summed E of the generated chains),
``hrl/evaluator_error`` (mean |E − true cost| on random pairs of free points, where the env
offers ``shortest_path`` and ``max_speed`` as StartGoalNav does — true costs are used *only*
for this log), ``hrl/evaluator_corr``, plus the executor's ``train/*``, ``critic/*``,
``rollout/*`` and ``time/*``.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from torch import nn

from agents.base import MirabilisAlgorithm
from agents.dpg import DPG, GOAL_KEYS, mlp

GENERATORS = ("feedforward", "recurrent")
EVALUATOR_TARGETS = ("td", "critic", "attempts")


# --------------------------------------------------------------------------- 2. E


class Evaluator(nn.Module):
    """E(start, goal) ≥ 0 in env steps; inputs scaled to [-1, 1] by the goal box: [a, g, g − a]."""

    def __init__(self, goal_dim: int, hidden: list[int], cost_scale: float):
        super().__init__()
        self.net = mlp(3 * goal_dim, hidden, 1, squash=False)
        self.cost_scale = float(cost_scale)

    def forward(self, start: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        x = torch.cat([start, goal, goal - start], dim=-1)
        return self.cost_scale * nn.functional.softplus(self.net(x)).squeeze(-1)


class AttemptLog:
    """C's own attempts at the targets it was commanded, as (start, target, observed cost) rows for E.

    ``evaluator_target="attempts"`` (the 1991 set-up: E predicts what the controller's action sequence
    from start to goal costs). Every pursuit of a subgoal, and every ``budget`` steps of pursuing the
    goal itself, is one attempt: from each point ``p_i`` it passed through, the target cost ``T − i``
    steps if it was reached at step ``T`` and ``cap`` if the budget ran out (only the points with at
    least half the budget still ahead). A reached attempt also gives ``n`` hindsight rows
    ``(p_i, p_j, j − i)``. Attempts cut short by the episode's end are dropped (their cost is unknown).
    """

    def __init__(self, goal_dim: int, capacity: int, budget: int, cap: float, rng: np.random.Generator):
        self.start = np.zeros((capacity, goal_dim), np.float32)
        self.target = np.zeros((capacity, goal_dim), np.float32)
        self.cost = np.zeros(capacity, np.float32)
        self.capacity, self.budget, self.cap, self.rng = capacity, budget, float(cap), rng
        self.size = self.pos = 0
        self.open: dict[int, tuple[np.ndarray, list[np.ndarray]]] = {}  # env -> (target, points so far)
        self.reached = self.failed = 0

    def __len__(self) -> int:
        return self.size

    def _add(self, start: np.ndarray, target: np.ndarray, cost: np.ndarray) -> None:
        for a, b, c in zip(start, target, cost):
            self.start[self.pos], self.target[self.pos], self.cost[self.pos] = a, b, c
            self.pos = (self.pos + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)

    def follow(self, env: int, point: np.ndarray, target: np.ndarray) -> None:
        """``env`` is at ``point`` pursuing ``target``: extend its attempt, or open one for a new target."""
        current = self.open.get(env)
        if current is not None and np.array_equal(current[0], target):
            current[1].append(np.array(point, np.float32))
            if len(current[1]) > self.budget:  # pursuing the goal itself: a budget's worth is one attempt
                self.close(env, reached=False)
                self.open[env] = (np.array(target, np.float32), [np.array(point, np.float32)])
        else:
            self.drop(env)
            self.open[env] = (np.array(target, np.float32), [np.array(point, np.float32)])

    def close(self, env: int, reached: bool, point: np.ndarray | None = None) -> None:
        """End ``env``'s attempt (``point``: where it ended, if not yet followed)."""
        if env not in self.open:
            return
        target, points = self.open.pop(env)
        if point is not None:
            points.append(np.array(point, np.float32))
        pts, steps = np.stack(points), len(points) - 1
        if reached:
            self.reached += 1
            if steps == 0:
                return
            self._add(pts[:-1], np.repeat(target[None], steps, 0), np.arange(steps, 0, -1, dtype=np.float32))
            i = self.rng.integers(0, steps, steps)
            j = i + 1 + self.rng.integers(0, steps - i)  # a later point of the same attempt
            self._add(pts[i], pts[j], (j - i).astype(np.float32))
        else:
            self.failed += 1
            keep = pts[: max(1, (self.budget + 1) // 2)]
            self._add(keep, np.repeat(target[None], len(keep), 0), np.full(len(keep), self.cap, np.float32))

    def drop(self, env: int) -> None:
        self.open.pop(env, None)

    def sample(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        idx = self.rng.integers(0, self.size, n)
        return self.start[idx], self.target[idx], self.cost[idx]

    def latest(self, share: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The most recently added ``share`` of the rows (the log is a ring: row ``pos - 1`` is the newest)."""
        n = max(1, int(round(self.size * share))) if self.size else 0
        idx = (self.pos - n + np.arange(n)) % self.capacity
        return self.start[idx], self.target[idx], self.cost[idx]


# --------------------------------------------------------------------------- 3. the generators


class FeedforwardGenerator(nn.Module):
    """One MLP per chain length m: (start, goal) -> m subgoal logits at once (offsets to each hypothesis' route)."""

    def __init__(self, goal_dim: int, k: int, hidden: list[int], hypotheses: int = 1):
        super().__init__()
        self.goal_dim, self.k, self.hypotheses = goal_dim, k, hypotheses
        self.heads = nn.ModuleList([mlp(2 * goal_dim, hidden, hypotheses * m * goal_dim, squash=False)
                                    for m in range(1, k + 1)])
        for head in self.heads:  # start on the initial routes
            nn.init.zeros_(head[-1].weight)
            nn.init.zeros_(head[-1].bias)

    def forward(self, start: torch.Tensor, goal: torch.Tensor, m: int) -> torch.Tensor:
        """Offsets ``[B, hypotheses, m, goal_dim]`` (in logit space) for chains of ``m`` subgoals."""
        out = self.heads[m - 1](torch.cat([start, goal], -1))
        return out.view(-1, self.hypotheses, m, self.goal_dim)


class RecurrentGenerator(nn.Module):
    """A GRU emitting a chain one subgoal at a time: input (previous point, goal, remaining / k), plus a
    one-hot hypothesis index when there are several hypotheses."""

    def __init__(self, goal_dim: int, k: int, hidden: list[int], hypotheses: int = 1):
        super().__init__()
        self.goal_dim, self.k, self.hypotheses, size = goal_dim, k, hypotheses, hidden[-1]
        extra = hypotheses if hypotheses > 1 else 0  # (one hypothesis: exactly the original network)
        self.init = mlp(2 * goal_dim + extra, hidden[:-1] or [size], size, squash=True)
        self.cell = nn.GRUCell(2 * goal_dim + 1 + extra, size)
        self.head = nn.Linear(size, goal_dim)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, start: torch.Tensor, goal: torch.Tensor, m: int, place=None) -> torch.Tensor:
        """Offsets ``[B, hypotheses, m, goal_dim]``; ``place(j, offset, prev)`` turns the offsets ``[B · hypotheses,
        goal_dim]`` of step ``j`` into the points fed back (rows hypothesis-major within each pair)."""
        H = self.hypotheses
        start, goal = start.repeat_interleave(H, 0), goal.repeat_interleave(H, 0)
        tag = [torch.eye(H).repeat(len(start) // H, 1)] if H > 1 else []
        h = self.init(torch.cat([start, goal, *tag], -1))
        prev, out = start, []
        for j in range(m):
            remaining = torch.full_like(start[:, :1], (m - j) / self.k)
            h = self.cell(torch.cat([prev, goal, remaining, *tag], -1), h)
            offset = self.head(h)
            out.append(offset)
            if place is not None:
                prev = place(j, offset, prev)
        return torch.stack(out, 1).view(-1, H, m, self.goal_dim)


def halton(n: int, dim: int) -> np.ndarray:
    """The first ``n`` points of the Halton sequence in ``[0, 1)^dim`` (bases 2, 3, 5, ...): evenly spread anchors."""
    primes, p = [], 2
    while len(primes) < dim:
        if all(p % q for q in primes):
            primes.append(p)
        p += 1
    out = np.zeros((n, dim))
    for d, base in enumerate(primes):
        for i in range(n):
            f, r, k = 1.0, 0.0, i + 1
            while k:
                f /= base
                r += f * (k % base)
                k //= base
            out[i, d] = r
    return out


# --------------------------------------------------------------------------- 1. C


class _Executor(DPG):
    """The DPG executor; while training, it acts towards the owner's current subgoals."""

    owner: SubgoalCM | None = None

    def _act(self, obs):
        if self.owner is not None and self.num_timesteps >= self.learning_starts:
            obs = self.owner._command_training(obs)
        return super()._act(obs)


class _Bridge(BaseCallback):
    """Runs inside the executor's ``learn``: keeps the owner's counters, trains E and the generator,
    marks episode starts, and forwards every event to the user's callback (bound to the owner)."""

    def __init__(self, owner: SubgoalCM, outer: BaseCallback):
        super().__init__()
        self.owner, self.outer = owner, outer

    def _on_training_start(self) -> None:
        self.outer.on_training_start(self.locals, self.globals)

    def _on_rollout_start(self) -> None:
        self.outer.on_rollout_start()

    def update_locals(self, locals_: dict[str, Any]) -> None:
        super().update_locals(locals_)
        self.outer.update_locals(locals_)

    def _on_step(self) -> bool:
        owner = self.owner
        owner.num_timesteps = owner.executor.num_timesteps
        owner._episode_num = owner.executor._episode_num
        dones = self.locals.get("dones")
        if dones is not None and owner._train_state is not None:
            owner._train_state[np.asarray(dones, bool)] = np.nan  # a new episode: plan afresh
            if owner._attempts is not None:
                owner._end_attempts(np.asarray(dones, bool), self.locals.get("infos") or [])
        owner._maybe_train_hrl()
        return self.outer.on_step()

    def _on_rollout_end(self) -> None:
        self.outer.on_rollout_end()

    def _on_training_end(self) -> None:
        self.outer.on_training_end()


# --------------------------------------------------------------------------- the agent


class SubgoalCM(MirabilisAlgorithm):
    """Evaluator E, subgoal generator trained through copies of E, goal-conditioned executor C (module doc).

    Hyperparameters (``agents/hyperparams/subgoal-c-m.yml`` per env). *Subgoals:* ``n_subgoals``
    (k; 0 = flat) · ``generator`` (``feedforward`` | ``recurrent``) · ``subgoal_budget`` (steps per
    subgoal before replanning) · ``subgoal_starts`` (env steps before training episodes use
    subgoals) · ``subgoal_margin`` (share of the goal box kept free at each side) ·
    ``subgoal_radius`` (None: the env's success test decides that a subgoal is reached) ·
    ``mixed_chains`` (training episodes draw their chain length from ``0 … n_subgoals``) ·
    ``keep_remaining_chain`` · ``avoid_failed_subgoal`` · ``replan_goal_leg`` · ``stuck_escape`` ·
    ``replan_full_chain`` (execution options, module doc, step 4; all off by default, as in 1991).
    *Executor* (passed to :class:`agents.dpg.DPG`, which validates them): ``learning_rate``,
    ``buffer_size``, ``learning_starts``, ``batch_size``, ``gamma``, ``tau``, ``train_freq``,
    ``gradient_steps``, ``action_noise_std``, ``net_arch``, ``her_n_sampled_goal``,
    ``her_terminal_channel``, ``relative_goal`` (C also sees ``desired − achieved``), ``action_l2``
    (HER's penalty on the actor's squared actions). *Evaluator:* ``evaluator_net_arch``, ``evaluator_lr``,
    ``evaluator_batch_size``, ``evaluator_expectile``, ``evaluator_tau`` (target copy),
    ``evaluator_random_goals`` (share of uniform goals), ``evaluator_target`` (``td``: its own
    expectile TD, step 2; ``critic``: regression on the executor's critic read as a step count,
    see :meth:`critic_cost`; ``attempts``: regression on C's observed costs, :class:`AttemptLog`),
    ``evaluator_hindsight_only`` (``td``: train on relabelled samples
    only), ``cost_channel`` (``critic``: the channel counting steps), ``cost_cap``, ``cost_scale``
    (E's output unit). *Generator:* ``generator_net_arch``, ``generator_lr``,
    ``generator_batch_size``, ``generator_hypotheses`` (chains per (start, goal), each from its own initial
    route; E picks the cheapest: module doc, step 3). *Schedule:* every ``hrl_train_freq`` env steps, ``evaluator_updates``
    E steps and ``generator_updates`` generator steps; ``log_interval`` such rounds per log.
    """

    agent_id = "subgoal-c-m"
    supported_observation_spaces = (spaces.Dict,)
    supported_action_spaces = (spaces.Box,)

    def __init__(
        self,
        env,
        # 4. subgoals and their execution
        n_subgoals: int = 2,
        generator: str = "feedforward",
        subgoal_budget: int = 30,
        subgoal_starts: int = 5000,
        subgoal_margin: float = 0.01,
        subgoal_radius: float | None = None,
        mixed_chains: bool = False,
        keep_remaining_chain: bool = False,
        avoid_failed_subgoal: bool = False,
        replan_goal_leg: bool = False,
        stuck_escape: bool = False,
        replan_full_chain: bool = False,
        # 1. the executor C (DPG with HER)
        learning_rate: float = 1e-3,
        buffer_size: int = 200_000,
        learning_starts: int = 1000,
        batch_size: int = 256,
        gamma: float = 0.98,
        tau: float = 0.005,
        train_freq: int = 1,
        gradient_steps: int = 1,
        action_noise_std: float = 0.2,
        net_arch: list = [128, 128],  # noqa: B006 (read, never mutated)
        her_n_sampled_goal: int = 4,
        her_terminal_channel: str | None = None,
        relative_goal: bool = False,
        action_l2: float = 0.0,
        # 2. the evaluator E
        evaluator_net_arch: list = [128, 128],  # noqa: B006
        evaluator_lr: float = 1e-3,
        evaluator_batch_size: int = 256,
        evaluator_expectile: float = 0.1,
        evaluator_tau: float = 0.02,
        evaluator_random_goals: float = 0.2,
        evaluator_target: str = "td",
        evaluator_hindsight_only: bool = True,
        cost_channel: str | None = None,
        cost_cap: float = 60.0,
        cost_scale: float = 10.0,
        # 3. the generator
        generator_net_arch: list = [128, 128],  # noqa: B006
        generator_lr: float = 1e-3,
        generator_batch_size: int = 256,
        generator_hypotheses: int = 1,
        # schedule of E's and the generator's training (env steps)
        hrl_train_freq: int = 50,
        evaluator_updates: int = 50,
        generator_updates: int = 10,
        log_interval: int = 4,
        seed: int | None = None,
        tensorboard_log: str | None = None,
        verbose: int = 0,
        device: str = "cpu",
    ):
        self._record_hyperparams(locals())
        self.check_spaces(env.observation_space, env.action_space)
        for name, value in (("subgoal_budget", subgoal_budget), ("hrl_train_freq", hrl_train_freq),
                            ("evaluator_batch_size", evaluator_batch_size),
                            ("generator_batch_size", generator_batch_size), ("log_interval", log_interval),
                            ("generator_hypotheses", generator_hypotheses)):
            _check(_is_int(value) and value >= 1, name, "must be an int >= 1", value)
        for name, value in (("n_subgoals", n_subgoals), ("subgoal_starts", subgoal_starts),
                            ("evaluator_updates", evaluator_updates), ("generator_updates", generator_updates)):
            _check(_is_int(value) and value >= 0, name, "must be an int >= 0", value)
        _check(n_subgoals <= 8, "n_subgoals", "must be <= 8", n_subgoals)
        _check(generator_hypotheses <= 64, "generator_hypotheses", "must be <= 64", generator_hypotheses)
        _check(generator in GENERATORS, "generator", f"must be one of {list(GENERATORS)}", generator)
        _check(0 <= subgoal_margin < 0.5, "subgoal_margin", "must be in [0, 0.5)", subgoal_margin)
        _check(subgoal_radius is None or subgoal_radius > 0, "subgoal_radius", "must be > 0 or None", subgoal_radius)
        _check(isinstance(mixed_chains, bool), "mixed_chains", "must be true or false", mixed_chains)
        for name, value in (("keep_remaining_chain", keep_remaining_chain),
                            ("avoid_failed_subgoal", avoid_failed_subgoal), ("replan_goal_leg", replan_goal_leg),
                            ("stuck_escape", stuck_escape), ("replan_full_chain", replan_full_chain)):
            _check(isinstance(value, bool), name, "must be true or false", value)
        _check(0 < evaluator_expectile < 1, "evaluator_expectile", "must be in (0, 1)", evaluator_expectile)
        _check(0 < evaluator_tau <= 1, "evaluator_tau", "must be in (0, 1]", evaluator_tau)
        _check(evaluator_target in EVALUATOR_TARGETS, "evaluator_target", f"must be one of {list(EVALUATOR_TARGETS)}",
               evaluator_target)
        _check(0 <= evaluator_random_goals <= 1, "evaluator_random_goals", "must be in [0, 1]", evaluator_random_goals)
        for name, value in (("evaluator_lr", evaluator_lr), ("generator_lr", generator_lr), ("cost_cap", cost_cap),
                            ("cost_scale", cost_scale)):
            _check(value > 0, name, "must be > 0", value)
        self.evaluator_net_arch = _layer_sizes("evaluator_net_arch", evaluator_net_arch)
        self.generator_net_arch = _layer_sizes("generator_net_arch", generator_net_arch)

        super().__init__(None, env, learning_rate, tensorboard_log=tensorboard_log, verbose=verbose, device=device,
                         support_multi_env=True, seed=seed, supported_action_spaces=(spaces.Box,))
        # The executor checks (and names) its own hyperparameters.
        self.executor = _Executor(
            self.env, learning_rate=learning_rate, buffer_size=buffer_size, learning_starts=learning_starts,
            batch_size=batch_size, tau=tau, gamma=gamma, train_freq=train_freq, gradient_steps=gradient_steps,
            action_noise_std=action_noise_std, net_arch=net_arch, her=True, her_n_sampled_goal=her_n_sampled_goal,
            her_terminal_channel=her_terminal_channel, relative_goal=relative_goal, action_l2=action_l2, seed=seed,
            verbose=verbose, device=device)
        if not self.executor.use_her:
            raise ValueError("subgoal-c-m needs a goal-conditioned env with compute_reward "
                             "(Dict observation with observation / achieved_goal / desired_goal)")
        self.executor.owner = self
        self.replay_buffer = self.executor.replay_buffer
        self.policy = self.executor.policy
        self.n_subgoals, self.generator_kind, self.subgoal_budget = n_subgoals, generator, subgoal_budget
        self.subgoal_starts, self.subgoal_margin, self.subgoal_radius = subgoal_starts, subgoal_margin, subgoal_radius
        self.mixed_chains = mixed_chains
        self.keep_remaining_chain = keep_remaining_chain
        self.avoid_failed_subgoal = avoid_failed_subgoal
        self.replan_goal_leg = replan_goal_leg
        self.stuck_escape = stuck_escape
        self.replan_full_chain = replan_full_chain
        self._escape_rng = np.random.default_rng(seed)
        self.learning_starts, self.her_terminal_channel = learning_starts, her_terminal_channel
        self.evaluator_lr, self.evaluator_batch_size = evaluator_lr, evaluator_batch_size
        self.evaluator_expectile, self.evaluator_tau = evaluator_expectile, evaluator_tau
        self.evaluator_random_goals, self.cost_cap, self.cost_scale = evaluator_random_goals, cost_cap, cost_scale
        self.evaluator_target_kind, self.cost_channel = evaluator_target, cost_channel
        self.evaluator_hindsight_only = evaluator_hindsight_only
        self.generator_lr, self.generator_batch_size = generator_lr, generator_batch_size
        self.generator_hypotheses = generator_hypotheses
        self.hrl_train_freq, self.evaluator_updates, self.generator_updates = hrl_train_freq, evaluator_updates, \
            generator_updates
        self.log_interval = log_interval
        self._setup_model()

    @classmethod
    def check_spaces(cls, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        if not (isinstance(observation_space, spaces.Dict) and all(k in observation_space.spaces for k in GOAL_KEYS)):
            raise ValueError("subgoal-c-m needs a goal-conditioned Dict observation space with keys "
                             f"{list(GOAL_KEYS)}, got {observation_space}")
        goal = observation_space.spaces["desired_goal"]
        if not (isinstance(goal, spaces.Box) and np.all(np.isfinite(goal.low)) and np.all(np.isfinite(goal.high))):
            raise ValueError(f"subgoal-c-m needs a bounded Box goal space (subgoals live in it), got {goal}")
        DPG.check_spaces(observation_space, action_space)

    # ------------------------------------------------------------------ set-up

    def _setup_model(self) -> None:
        self.set_random_seed(self.seed)
        self._rng = np.random.default_rng(self.seed)
        box = self.observation_space.spaces["desired_goal"]
        self.goal_dim = int(np.prod(box.shape))
        low, high = box.low.reshape(-1).astype(np.float64), box.high.reshape(-1).astype(np.float64)
        self._goal_low, self._goal_high = low, high
        self._g_off = torch.as_tensor((high + low) / 2, dtype=torch.float32)
        self._g_scale = torch.as_tensor((high - low) / 2, dtype=torch.float32)
        width = high - low
        self._sub_low = torch.as_tensor(low + self.subgoal_margin * width, dtype=torch.float32)
        self._sub_width = torch.as_tensor((1 - 2 * self.subgoal_margin) * width, dtype=torch.float32)
        self._set_anchors()
        self.evaluator = Evaluator(self.goal_dim, self.evaluator_net_arch, self.cost_scale).to(self.device)
        self.evaluator_target = copy.deepcopy(self.evaluator).requires_grad_(False)
        self.evaluator_optimizer = torch.optim.Adam(self.evaluator.parameters(), lr=self.evaluator_lr)
        self._build_generator()
        names = self.executor.channels.names
        self._terminal_index = names.index(self.her_terminal_channel) if self.her_terminal_channel else None
        if self.cost_channel is not None and self.cost_channel not in names:
            raise ValueError(f"cost_channel: unknown channel {self.cost_channel!r}; channels are {names}")
        self._cost_index = None if self.cost_channel is None else names.index(self.cost_channel)
        self._has_terminated = bool(self.env.has_attr("compute_terminated"))
        self._has_true_cost = all(self.env.has_attr(a) for a in ("shortest_path", "max_speed", "goal_radius"))
        self._train_state: np.ndarray | None = None
        self._attempts = AttemptLog(self.goal_dim, self.executor.buffer_size, self.subgoal_budget, self.cost_cap,
                                    self._rng) if self.evaluator_target_kind == "attempts" else None
        self._stats: dict[str, list[float]] = {}
        self._hrl_updates = 0
        self._last_hrl_step = 0

    def _set_anchors(self) -> None:
        """Hypothesis h >= 1 starts on the route start -> anchor h -> goal; the anchors are spread evenly (a Halton
        sequence) over the inner 80% of the subgoal box."""
        spread = halton(self.generator_hypotheses - 1, self.goal_dim)
        self._anchors = self._sub_low + self._sub_width * torch.as_tensor(0.1 + 0.8 * spread, dtype=torch.float32)

    def _build_generator(self) -> None:
        k = max(self.n_subgoals, 1)  # (a flat agent keeps a 1-subgoal generator for the checkpoint's shape)
        cls = FeedforwardGenerator if self.generator_kind == "feedforward" else RecurrentGenerator
        self.generator = cls(self.goal_dim, k, self.generator_net_arch, self.generator_hypotheses).to(self.device)
        self.generator_optimizer = torch.optim.Adam(self.generator.parameters(), lr=self.generator_lr)

    def set_generator(self, n_subgoals: int, generator: str | None = None, hypotheses: int | None = None) -> None:
        """A fresh generator for ``n_subgoals`` (0: flat) of kind ``generator`` with ``hypotheses`` chains per pair
        (None: unchanged); train it with :meth:`train_generator`."""
        _check(_is_int(n_subgoals) and 0 <= n_subgoals <= 8, "n_subgoals", "must be an int in [0, 8]", n_subgoals)
        generator = generator or self.generator_kind
        _check(generator in GENERATORS, "generator", f"must be one of {list(GENERATORS)}", generator)
        hypotheses = self.generator_hypotheses if hypotheses is None else hypotheses
        _check(_is_int(hypotheses) and 1 <= hypotheses <= 64, "generator_hypotheses", "must be an int in [1, 64]",
               hypotheses)
        self.n_subgoals, self.generator_kind, self.generator_hypotheses = int(n_subgoals), generator, int(hypotheses)
        self.hyperparams.update(n_subgoals=self.n_subgoals, generator=generator,
                                generator_hypotheses=self.generator_hypotheses)
        self._set_anchors()
        self._build_generator()

    # ------------------------------------------------------------------ goal space

    def _scaled(self, goal: torch.Tensor) -> torch.Tensor:
        return (goal - self._g_off) / self._g_scale

    def _reached(self, achieved: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """The env's own success test on batches of (achieved goal, goal)."""
        if len(achieved) == 0:
            return np.zeros(0, bool)
        if self._has_terminated:
            out = self.env.env_method("compute_terminated", achieved, goal, None, indices=[0])[0]
        elif self._terminal_index is not None:
            out = self.env.env_method("compute_vector_reward", achieved, goal, None, indices=[0])[0][
                :, self._terminal_index] != 0
        else:  # the sparse -1 / 0 convention of HER envs
            out = np.asarray(self.env.env_method("compute_reward", achieved, goal, [{}] * len(goal),
                                                 indices=[0])[0]) >= 0
        return np.asarray(out, bool).reshape(-1)

    def _subgoal_reached(self, achieved: np.ndarray, subgoal: np.ndarray) -> np.ndarray:
        """The env's success test, or (``subgoal_radius``) being within that distance of the subgoal."""
        if self.subgoal_radius is None:
            return self._reached(achieved, subgoal)
        return np.linalg.norm(achieved - subgoal, axis=-1) <= self.subgoal_radius

    # ------------------------------------------------------------------ 3. generating chains

    def routes(self, start: torch.Tensor, goal: torch.Tensor, m: int) -> torch.Tensor:
        """The initial chains ``[B, hypotheses, m, goal_dim]`` the generator's offsets start from: ``m`` points
        evenly spaced on the straight start -> goal line (hypothesis 0), and on start -> anchor h -> goal
        (hypothesis h; the route's first half runs to the anchor, so one subgoal starts on the anchor)."""
        fracs = torch.arange(1, m + 1, dtype=torch.float32) / (m + 1)
        line = start[:, None] + fracs[None, :, None] * (goal - start)[:, None]
        routes = [line]
        for anchor in self._anchors:
            t = fracs[None, :, None]
            first = start[:, None] + (2 * t).clamp(max=1) * (anchor - start)[:, None]
            routes.append(torch.where(t <= 0.5, first, anchor + (2 * t - 1) * (goal[:, None] - anchor)))
        return torch.stack(routes, 1)

    def candidate_chains(self, start: torch.Tensor, goal: torch.Tensor, m: int,
                         generator: nn.Module | None = None) -> torch.Tensor:
        """The generator's ``hypotheses`` chains of ``m`` subgoals ``[B, hypotheses, m, goal_dim]`` from ``start``
        to ``goal`` (env units), inside the shrunk goal box: ``low + width · sigmoid(route logit + offset)``."""
        gen = self.generator if generator is None else generator
        lo, width = self._sub_low, self._sub_width
        base = torch.logit(((self.routes(start, goal, m) - lo) / width).clamp(1e-3, 1 - 1e-3))
        s, g = self._scaled(start), self._scaled(goal)
        if isinstance(gen, RecurrentGenerator):
            flat = base.flatten(0, 1)  # [B * hypotheses, m, d], the order of the GRU's rows

            def place(j, offset, _prev):
                return self._scaled(lo + width * torch.sigmoid(flat[:, j] + offset))

            offsets = gen(s, g, m, place)
        else:
            offsets = gen(s, g, m)
        return lo + width * torch.sigmoid(base + offsets)

    def chain(self, start: torch.Tensor, goal: torch.Tensor, m: int, generator: nn.Module | None = None,
              avoid: np.ndarray | None = None) -> torch.Tensor:
        """``m`` subgoals ``[B, m, goal_dim]`` from ``start`` to ``goal``: of the generator's hypotheses, the chain
        with the least summed E. ``avoid`` ``[B, goal_dim]``: hypotheses whose first subgoal counts as reaching that
        point (a subgoal just failed) are passed over, unless every hypothesis would be."""
        chains = self.candidate_chains(start, goal, m, generator)
        if chains.shape[1] == 1:
            return chains[:, 0]
        with torch.no_grad():
            cost = self.chain_cost(start, goal, chains)
        if avoid is not None:
            B, H = cost.shape
            first = chains[:, :, 0].detach().numpy().reshape(B * H, -1)
            same = self._subgoal_reached(first, np.repeat(np.asarray(avoid, np.float32), H, 0)).reshape(B, H)
            same &= ~same.all(1, keepdims=True)
            cost = cost.masked_fill(torch.as_tensor(same), float("inf"))
        return chains[torch.arange(len(chains)), cost.argmin(1)]

    def chain_cost(self, start: torch.Tensor, goal: torch.Tensor, subgoals: torch.Tensor,
                   evaluator: nn.Module | None = None) -> torch.Tensor:
        """Summed E over the chain start -> s_1 -> ... -> s_m -> goal: ``[B]`` for ``subgoals [B, m, d]``, ``[B, H]``
        for the hypotheses ``[B, H, m, d]`` of :meth:`candidate_chains`."""
        ev = self.evaluator if evaluator is None else evaluator
        lead = subgoals.shape[:-2]  # (B,) or (B, H)
        ends = [p.reshape(len(p), *[1] * len(lead), p.shape[-1]).expand(*lead, 1, -1) for p in (start, goal)]
        points = torch.cat([ends[0], subgoals, ends[1]], -2)
        return ev(self._scaled(points[..., :-1, :]), self._scaled(points[..., 1:, :])).sum(-1)

    @torch.no_grad()
    def evaluate_cost(self, start, goal) -> np.ndarray:
        """E(start, goal) for batches of points (env units)."""
        s = torch.as_tensor(np.asarray(start, np.float32)).reshape(-1, self.goal_dim)
        g = torch.as_tensor(np.asarray(goal, np.float32)).reshape(-1, self.goal_dim)
        return self.evaluator(self._scaled(s), self._scaled(g)).numpy()

    @torch.no_grad()
    def plan(self, start, goal, m: int | None = None, avoid: np.ndarray | None = None) -> np.ndarray:
        """The generator's chain of ``m`` (default ``n_subgoals``) subgoals for each (start, goal): ``[B, m, d]``
        (``avoid``: see :meth:`chain`)."""
        m = self.n_subgoals if m is None else m
        s = torch.as_tensor(np.asarray(start, np.float32)).reshape(-1, self.goal_dim)
        g = torch.as_tensor(np.asarray(goal, np.float32)).reshape(-1, self.goal_dim)
        if m == 0:
            return np.zeros((len(s), 0, self.goal_dim), np.float32)
        return self.chain(s, g, m, avoid=avoid).numpy()

    # ------------------------------------------------------------------ 2. training E

    def _random_goals(self, n: int) -> np.ndarray:
        return self._rng.uniform(self._goal_low, self._goal_high, (n, self.goal_dim)).astype(np.float32)

    def train_evaluator(self, updates: int) -> float:
        if self.evaluator_target_kind == "critic":
            return self._distill_evaluator(updates)
        if self.evaluator_target_kind == "attempts":
            return self._fit_attempts(updates)
        losses = []
        for _ in range(updates):
            # hindsight samples only (they come first): their goals were achieved later in the same episode
            n_virtual = int(self.replay_buffer.her_ratio * self.evaluator_batch_size)
            data = self.replay_buffer.sample(self.evaluator_batch_size)
            keep = slice(0, n_virtual) if n_virtual > 0 and self.evaluator_hindsight_only else slice(None)
            a = data.observations["achieved_goal"][keep].float()
            a_next = data.next_observations["achieved_goal"][keep].float()
            g = data.observations["desired_goal"][keep].float().clone()
            done = data.dones[keep, 0].clone()
            n_rand = round(self.evaluator_random_goals * len(g))
            if n_rand:  # uniform goals: the never-achieved ones are learned as unreachable
                rand = self._random_goals(n_rand)
                g[-n_rand:] = torch.as_tensor(rand)
                done[-n_rand:] = torch.as_tensor(self._reached(a_next[-n_rand:].numpy(), rand), dtype=torch.float32)
            s, s_next, gs = self._scaled(a), self._scaled(a_next), self._scaled(g)
            with torch.no_grad():
                target = (1.0 + (1.0 - done) * self.evaluator_target(s_next, gs)).clamp(max=self.cost_cap)
            diff = target - self.evaluator(s, gs)
            weight = torch.where(diff < 0, 1.0 - self.evaluator_expectile, self.evaluator_expectile)
            loss = (weight * diff.square()).mean()
            self.evaluator_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.evaluator_optimizer.step()
            with torch.no_grad():
                for p, p_t in zip(self.evaluator.parameters(), self.evaluator_target.parameters()):
                    p_t.lerp_(p, self.evaluator_tau)
            losses.append(loss.item())
        return float(np.mean(losses)) if losses else float("nan")

    @torch.no_grad()
    def critic_cost(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """C's own predicted cost (env steps) of reaching each ``desired_goal`` from each observation.

        The executor's TD-learned (HER) critic at C's action, the lower twin: the value ``V`` of the
        cost channel (``cost_channel``; None: the weighted value, read as −1 per step) is a discounted
        count of steps, ``V = −(1 − γ^T) / (1 − γ)``, so ``T = log(1 + (1 − γ) V) / log γ`` (≤ ``cost_cap``).
        """
        ex = self.executor
        x = ex.policy.features(obs)
        q = ex.policy.critic(torch.cat([x, ex.policy.actor(x)], dim=1))  # [E, B, C]
        if self._cost_index is None:
            v, gamma = (q @ ex._critic_w).min(0).values, float(ex.gamma)
        else:
            v, gamma = q[..., self._cost_index].min(0).values, float(ex.channels.gammas[self._cost_index])
        inside = (1.0 + (1.0 - gamma) * v).clamp(min=gamma ** self.cost_cap, max=1.0)
        return (torch.log(inside) / np.log(gamma)).clamp(0.0, self.cost_cap)

    def _distill_evaluator(self, updates: int) -> float:
        """``evaluator_target="critic"``: E(achieved, g) regresses on :meth:`critic_cost` of replayed states."""
        losses = []
        for _ in range(updates):
            data = self.replay_buffer.sample(self.evaluator_batch_size)
            obs = {k: v.float().clone() for k, v in data.observations.items()}
            n_rand = round(self.evaluator_random_goals * len(obs["desired_goal"]))
            if n_rand:
                obs["desired_goal"][-n_rand:] = torch.as_tensor(self._random_goals(n_rand))
            target = self.critic_cost(obs)
            diff = target - self.evaluator(self._scaled(obs["achieved_goal"]), self._scaled(obs["desired_goal"]))
            loss = diff.square().mean()
            self.evaluator_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.evaluator_optimizer.step()
            losses.append(loss.item())
        return float(np.mean(losses)) if losses else float("nan")

    def _fit_attempts(self, updates: int) -> float:
        """``evaluator_target="attempts"``: E(start, target) regresses (squared error) on C's observed costs."""
        log = self._attempts
        if len(log) < self.evaluator_batch_size:
            return float("nan")
        losses = []
        for _ in range(updates):
            a, g, cost = (torch.as_tensor(x) for x in log.sample(self.evaluator_batch_size))
            loss = (self.evaluator(self._scaled(a), self._scaled(g)) - cost).square().mean()
            self.evaluator_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.evaluator_optimizer.step()
            losses.append(loss.item())
        return float(np.mean(losses))

    def refit_evaluator(self, share: float = 0.5, updates: int = 2000) -> float:
        """``evaluator_target="attempts"``, after training: ``updates`` more regression steps of E (fresh Adam at
        ``evaluator_lr``) on only the latest ``share`` of C's attempts, with no env steps; the mean loss of the last
        100. Over a run the log keeps the failures of a C that could not yet do what it does at the end, and E fit
        on all of them rates what C learned late as if it still failed (on ``doors``, seed 4 of ``results/subgoals``
        at a509ef5: moving up the middle strip, which the final C did on 40 of 40 pairs, read 38 steps, and the
        chains went round it, through a closed wall that E rated no dearer)."""
        if self.evaluator_target_kind != "attempts":
            raise ValueError(f"refit_evaluator needs evaluator_target='attempts', not {self.evaluator_target_kind!r}")
        _check(isinstance(share, (int, float)) and 0 < share <= 1, "share", "must be in (0, 1]", share)
        _check(_is_int(updates) and updates >= 1, "updates", "must be an int >= 1", updates)
        start, target, cost = (torch.as_tensor(x) for x in self._attempts.latest(share))
        if len(cost) < self.evaluator_batch_size:
            raise ValueError(f"refit_evaluator: {len(cost)} attempts in the latest share {share} of C's log, fewer "
                             f"than evaluator_batch_size ({self.evaluator_batch_size}); train longer first")
        optimizer = torch.optim.Adam(self.evaluator.parameters(), lr=self.evaluator_lr)
        losses = []
        for _ in range(updates):
            idx = torch.as_tensor(self._rng.integers(0, len(cost), self.evaluator_batch_size))
            loss = (self.evaluator(self._scaled(start[idx]), self._scaled(target[idx])) - cost[idx]).square().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return float(np.mean(losses[-100:]))

    def _end_attempts(self, dones: np.ndarray, infos: list[dict]) -> None:
        """Episodes that ended: an attempt at the goal that reached it is complete, any other is cut short."""
        for i in np.flatnonzero(dones):
            info = infos[i] if i < len(infos) else {}
            last = info.get("terminal_observation")
            target = self._attempts.open.get(int(i), (None,))[0]
            if info.get("is_success") and last is not None and target is not None and \
                    np.array_equal(target, np.asarray(last["desired_goal"], np.float32).reshape(-1)):
                self._attempts.close(int(i), reached=True, point=np.asarray(last["achieved_goal"]).reshape(-1))
            else:
                self._attempts.drop(int(i))

    # ------------------------------------------------------------------ 3. training the generator through E

    def _generator_pairs(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        data = self.replay_buffer.sample(n)
        start = data.observations["achieved_goal"].float()
        goal = data.observations["desired_goal"].float().clone()  # real and hindsight goals ...
        third = n // 3
        goal[:third] = start[torch.randperm(n)[:third]]  # ... achieved states of other episodes ...
        goal[third:2 * third] = torch.as_tensor(self._random_goals(third))  # ... and uniform points
        return start, goal

    def generator_loss(self, start: torch.Tensor, goal: torch.Tensor, evaluator: nn.Module) -> torch.Tensor:
        """Mean over the batch of the summed E of the chains of every length m = 1 .. n_subgoals."""
        total = start.new_zeros(())
        for m in range(1, self.n_subgoals + 1):
            chains = self.candidate_chains(start, goal, m)  # every hypothesis descends its own cost
            total = total + self.chain_cost(start, goal, chains, evaluator).mean()
        return total

    def frozen_evaluator(self) -> nn.Module:
        """A copy of E with ``requires_grad_(False)``: gradients pass through it, its weights never move."""
        return copy.deepcopy(self.evaluator).requires_grad_(False)

    def train_generator(self, updates: int, pairs: tuple[torch.Tensor, torch.Tensor] | None = None) -> float:
        """``updates`` Adam steps on the summed chain cost through a frozen copy of E; mean cost per chain.

        ``pairs`` (start, goal) tensors in env units replace the (start, goal) pairs drawn from the replay.
        """
        if self.n_subgoals == 0 or updates == 0:
            return float("nan")
        frozen = self.frozen_evaluator()
        costs = []
        for _ in range(updates):
            start, goal = pairs if pairs is not None else self._generator_pairs(self.generator_batch_size)
            loss = self.generator_loss(start, goal, frozen)
            self.generator_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.generator_optimizer.step()
            costs.append(loss.item() / self.n_subgoals)
        return float(np.mean(costs))

    def _maybe_train_hrl(self) -> None:
        steps = self.executor.num_timesteps
        if steps <= self.learning_starts or steps - self._last_hrl_step < self.hrl_train_freq:
            return
        if not self.executor._replay_ready():  # no finished episode in the replay yet
            return
        self._last_hrl_step = steps
        self._stats.setdefault("hrl/evaluator_loss", []).append(self.train_evaluator(self.evaluator_updates))
        cost = self.train_generator(self.generator_updates)
        if np.isfinite(cost):
            self._stats.setdefault("hrl/generator_cost", []).append(cost)
        self._hrl_updates += 1
        if self._hrl_updates % self.log_interval == 0:
            self._record_hrl()

    # ------------------------------------------------------------------ logging E against the truth

    def true_cost(self, start: np.ndarray, goal: np.ndarray) -> np.ndarray | None:
        """Reference costs (env steps) from the env's exact shortest paths, for logs and evaluation only.

        Steps a point moving ``max_speed`` per axis needs along the shortest path to come within
        ``goal_radius`` of the goal: the path's per-segment max(|dx|, |dy|), scaled by
        ``(L − goal_radius) / L``, over ``max_speed``. None where the env offers no shortest paths.
        """
        if not self._has_true_cost:
            return None
        env = self.env.envs[0].unwrapped if hasattr(self.env, "envs") else None
        if env is None:
            return None
        return true_costs(env, start, goal)

    def evaluator_report(self, n: int = 128, seed: int = 0) -> dict[str, float]:
        """E against the true costs of ``n`` random pairs of free points: mean absolute error and correlation."""
        env = self.env.envs[0].unwrapped if hasattr(self.env, "envs") else None
        if not self._has_true_cost or env is None or not hasattr(env, "sample_free_point"):
            return {}
        rng = np.random.default_rng(seed)
        a = env.sample_free_point(rng, n).astype(np.float32)
        b = env.sample_free_point(rng, n).astype(np.float32)
        true = true_costs(env, a, b)
        pred = self.evaluate_cost(a, b)
        ok = np.isfinite(true)
        corr = float(np.corrcoef(pred[ok], true[ok])[0, 1]) if ok.sum() > 2 and np.std(pred[ok]) > 0 else float("nan")
        return {"evaluator_error": float(np.mean(np.abs(pred[ok] - true[ok]))), "evaluator_corr": corr}

    def _record_hrl(self) -> None:
        for key, values in self._stats.items():
            self.logger.record(key, float(np.mean(values)))
        self._stats = {}
        for key, value in self.evaluator_report(64, seed=self._hrl_updates).items():
            self.logger.record(f"hrl/{key}", value)

    # ------------------------------------------------------------------ 4. execution

    def _state_width(self) -> int:
        # [m, steps on the current target, subgoals ..., stopped steps in a row, the previous achieved goal]
        return 2 + max(self.n_subgoals, 1) * self.goal_dim + 1 + self.goal_dim

    def _advance(self, obs: dict[str, np.ndarray], state: np.ndarray, active: bool,
                 log: AttemptLog | None = None, mixed: bool = False, training: bool = False) -> np.ndarray:
        """Update the per-env execution state in place for observations ``obs``; return the commanded goals.

        ``log`` (training) records C's attempts; ``mixed`` draws each new episode's chain length
        uniformly from ``0 … n_subgoals`` instead of always ``n_subgoals``; ``training`` turns off the options
        that act only outside training (``replan_full_chain``)."""
        achieved = np.asarray(obs["achieved_goal"], np.float32).reshape(len(state), -1)
        goal = np.asarray(obs["desired_goal"], np.float32).reshape(len(state), -1)
        d = self.goal_dim
        stopped_col = -(d + 1)  # then the previous achieved goal: a move was stopped where it did not change
        stopped = np.all(achieved == state[:, stopped_col + 1:], axis=1)  # False for fresh rows (NaN)
        state[:, stopped_col] = np.where(stopped, state[:, stopped_col] + 1, 0)
        state[:, stopped_col + 1:] = achieved
        fresh = np.isnan(state[:, 0])
        if fresh.any():
            if active and mixed:
                state[fresh, 0] = self._rng.integers(0, self.n_subgoals + 1, int(fresh.sum()))
            else:
                state[fresh, 0] = self.n_subgoals if active else 0
            state[fresh, 1] = 0
            self._replan(state, fresh, achieved, goal)
        for _ in range(self.n_subgoals + 1):  # a replanned chain's first subgoal may be reached already
            pursuing = state[:, 0] > 0
            if not pursuing.any():
                break
            idx = np.flatnonzero(pursuing)
            hit = np.zeros(len(state), bool)
            hit[idx] = self._subgoal_reached(achieved[idx], state[idx, 2:2 + d])
            if not hit.any():
                break
            if log is not None:
                for i in np.flatnonzero(hit):
                    log.close(int(i), reached=True, point=achieved[i])
            for i in np.flatnonzero(hit) if self.keep_remaining_chain else ():  # the rest moves up: s_2 ... s_m
                m = int(state[i, 0])
                state[i, 2:2 + (m - 1) * d] = state[i, 2 + d:2 + m * d]
            state[hit, 0] -= 1
            state[hit, 1] = state[hit, stopped_col] = 0  # a new target: C's next move is not a repeat (step 4)
            self._replan(state, hit & (state[:, 0] > 0), achieved, goal, keep=self.keep_remaining_chain)
        out = state[:, 1] >= self.subgoal_budget  # budget spent: a fresh chain from here
        out &= state[:, 0] > 0
        if out.any():
            if log is not None:
                for i in np.flatnonzero(out):
                    log.close(int(i), reached=False, point=achieved[i])
            state[out, 1] = state[out, stopped_col] = 0
            if self.replan_full_chain and not training:  # a fresh chain of n_subgoals (module doc, step 4)
                state[out, 0] = self.n_subgoals
            self._replan(state, out, achieved, goal, avoid_failed=self.avoid_failed_subgoal)
        if active and self.replan_goal_leg and self.n_subgoals > 0:  # the goal itself gets a budget too
            stalled = (state[:, 0] == 0) & (state[:, 1] >= self.subgoal_budget)
            if stalled.any():
                if log is not None:
                    for i in np.flatnonzero(stalled):
                        log.close(int(i), reached=False, point=achieved[i])
                state[stalled, 0], state[stalled, 1], state[stalled, stopped_col] = self.n_subgoals, 0, 0
                state[stalled, 2:2 + d] = goal[stalled]  # the target that failed, for avoid_failed_subgoal
                self._replan(state, stalled, achieved, goal, avoid_failed=self.avoid_failed_subgoal)
        commanded = np.where((state[:, 0] > 0)[:, None], state[:, 2:2 + d], goal)
        if log is not None:
            for i in range(len(state)):
                log.follow(i, achieved[i], commanded[i])
        state[:, 1] += 1
        return commanded.astype(np.float32)

    def _replan(self, state: np.ndarray, which: np.ndarray, achieved: np.ndarray, goal: np.ndarray,
                keep: bool = False, avoid_failed: bool = False) -> None:
        """A fresh chain for the rows ``which``; with ``keep``, the chain they hold stays where E rates it cheaper;
        with ``avoid_failed``, no hypothesis whose first subgoal is the one they hold (its budget ran out)."""
        d = self.goal_dim
        for m in np.unique(state[which, 0]).astype(int):
            rows = np.flatnonzero(which & (state[:, 0] == m))
            if m <= 0 or len(rows) == 0:
                continue
            new = self.plan(achieved[rows], goal[rows], m, avoid=state[rows, 2:2 + d] if avoid_failed else None)
            if keep:
                old = state[rows, 2:2 + m * d].reshape(len(rows), m, d)
                with torch.no_grad():
                    s, g = (torch.as_tensor(np.asarray(x, np.float32)) for x in (achieved[rows], goal[rows]))
                    cheaper = self.chain_cost(s, g, torch.as_tensor(old)) < self.chain_cost(s, g, torch.as_tensor(new))
                new = np.where(cheaper.numpy()[:, None, None], old, new)
            state[rows, 2:2 + m * d] = new.reshape(len(rows), -1)

    def _with_goal(self, obs: dict[str, np.ndarray], commanded: np.ndarray) -> dict[str, np.ndarray]:
        out = dict(obs)
        out["desired_goal"] = commanded.reshape(np.asarray(obs["desired_goal"]).shape).astype(
            np.asarray(obs["desired_goal"]).dtype)
        return out

    def _command_training(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Training episodes: pursue subgoals once E and the generator have trained ``subgoal_starts`` steps."""
        n = len(obs["desired_goal"])
        if self._train_state is None or self._train_state.shape != (n, self._state_width()):
            self._train_state = np.full((n, self._state_width()), np.nan, np.float32)
        active = self.n_subgoals > 0 and self.executor.num_timesteps >= self.subgoal_starts and self._hrl_updates > 0
        commanded = self._advance(obs, self._train_state, active, log=self._attempts, mixed=self.mixed_chains,
                                  training=True)
        return self._with_goal(obs, commanded)

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = False):
        """C's action towards the current subgoal; ``state`` ``[n_envs, 2 + k·d]`` carries the execution state."""
        obs = {k: np.asarray(v) for k, v in observation.items()}
        single = obs["desired_goal"].ndim == 1
        if single:
            obs = {k: v[None] for k, v in obs.items()}
        n = len(obs["desired_goal"])
        width = self._state_width()
        state = np.full((n, width), np.nan, np.float32) if state is None or np.shape(state) != (n, width) \
            else np.array(state, np.float32)
        if episode_start is not None:
            state[np.asarray(episode_start, bool).reshape(n)] = np.nan
        commanded = self._advance(obs, state, active=self.n_subgoals > 0)
        actions, _ = self.executor.predict(self._with_goal(obs, commanded), deterministic=deterministic)
        if self.stuck_escape:  # the last move was stopped: C, unchanged, would repeat it (module doc, step 4)
            stuck = state[:, -(self.goal_dim + 1)] > 0
            if stuck.any():
                low, high = self.action_space.low, self.action_space.high
                actions = np.array(actions, copy=True)
                actions[stuck] = self._escape_rng.uniform(low, high, (int(stuck.sum()), *low.shape))
        return (actions[0] if single else actions), state

    @staticmethod
    def subgoals_of(state: np.ndarray, goal_dim: int) -> list[np.ndarray]:
        """The subgoals still to go in each row of a ``predict`` state (for drawing)."""
        out = []
        for row in np.asarray(state):
            m = 0 if np.isnan(row[0]) else int(row[0])
            out.append(row[2:2 + m * goal_dim].reshape(m, goal_dim))
        return out

    # ------------------------------------------------------------------ the loop

    def learn(self, total_timesteps: int, callback=None, log_interval: int = 4, tb_log_name: str = "",
              reset_num_timesteps: bool = True, progress_bar: bool = False):
        """The executor's loop (its env steps and updates); E and the generator train every ``hrl_train_freq`` steps."""
        self.executor.num_timesteps, self.executor._episode_num = self.num_timesteps, self._episode_num
        _, callback = self._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar)
        self.executor.set_logger(self.logger)
        if reset_num_timesteps:
            self._last_hrl_step = 0
        self._train_state = None  # the env (re)starts its episodes
        self.executor.learn(total_timesteps, callback=_Bridge(self, callback), log_interval=log_interval,
                            reset_num_timesteps=reset_num_timesteps)
        self.num_timesteps, self._episode_num = self.executor.num_timesteps, self.executor._episode_num
        return self

    # ------------------------------------------------------------------ checkpoints, envs

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        return ["executor.policy", "executor.actor_optimizer", "executor.critic_optimizer", "evaluator",
                "evaluator_target", "evaluator_optimizer", "generator", "generator_optimizer"], []

    def extra_checkpoint_state(self) -> dict[str, Any]:
        return {"hrl_updates": self._hrl_updates, "executor_updates": self.executor._n_updates,
                "n_subgoals": self.n_subgoals, "generator": self.generator_kind}

    def load_extra_checkpoint_state(self, state: dict[str, Any]) -> None:
        self._hrl_updates = int(state.get("hrl_updates", 0))
        self.executor._n_updates = int(state.get("executor_updates", 0))
        self.executor.num_timesteps, self.executor._episode_num = self.num_timesteps, self._episode_num

    def set_env(self, env, force_reset: bool = True) -> None:
        super().set_env(env, force_reset)
        self.executor.set_env(self.env, force_reset)


# --------------------------------------------------------------------------- helpers


def true_costs(env, start: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """See :meth:`SubgoalCM.true_cost` (``env``: an unwrapped StartGoalNav-like env)."""
    out = np.empty(len(start))
    r, speed = float(env.goal_radius), float(env.max_speed)
    for i, (a, b) in enumerate(zip(np.asarray(start, np.float64), np.asarray(goal, np.float64))):
        path = env.shortest_path(a, b)
        if path is None:
            out[i] = np.inf
            continue
        p = np.asarray(path)
        seg = np.diff(p, axis=0)
        length = float(np.linalg.norm(seg, axis=1).sum())
        cheb = float(np.abs(seg).max(axis=1).sum()) if len(seg) else 0.0
        out[i] = 0.0 if length <= r else cheb * (length - r) / length / speed
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check(ok: bool, name: str, rule: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"{name} {rule}, got {value!r}")


def _layer_sizes(name: str, value: Any) -> list[int]:
    sizes = list(value) if isinstance(value, (list, tuple)) else None
    if not sizes or not all(_is_int(s) and s > 0 for s in sizes):
        raise ValueError(f"{name} must be a non-empty list of positive layer sizes, got {value!r}")
    return [int(s) for s in sizes]
