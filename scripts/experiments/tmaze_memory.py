"""tmaze_memory: why `lstm-rl` does not learn corridors of 50 and more — the memory problem without RL.

Seed Sec. 4. ``results/tmaze`` shows `lstm-rl` solving Bakker's T-maze on every seed up to N = 20, on
some from N = 50 on, and the target N = 100 on fewer than all; with PyTorch's LSTM initialisation
it stayed at chance from N = 50 on, with a memory probe at 0.5: nothing of the start signal left in
C's state at the junction. This experiment takes RL's exploration and credit assignment
out and asks how hard the *memory* alone is for the very network `lstm-rl` builds for the T-maze
(its encoder, LSTM and policy head, `agents/hyperparams/lstm-rl.yml`), in three steps per corridor
length N and seed:

1. **trace** — the untrained network walks the corridor straight (east N times) once with each
   signal; ``trace`` is the distance between its two LSTM outputs at the junction, ``‖h_up − h_down‖``.
   A trace near 0 means no gradient can reach the start from the junction either (the same Jacobian).
   It also scales with how much the input gate lets in: ``long-memory`` starts with it nearly shut.
2. **supervised** — the policy head's *north* and *south* logits are trained by cross-entropy to
   name the signal at the junction, on batches of 32 fresh episodes of a scripted walker (east, with
   10% random actions, so bumps and steps back perturb the inputs as exploration does), Adam at
   `lstm-rl`'s learning rate, gradient norm clipped at its ``max_grad_norm``. ``episodes_to_learn``:
   episodes seen until 200 held-out episodes are named with ≥ 95% accuracy (checked every 10
   updates), or null within ``MAX_UPDATES``. This is the easiest form of the problem: a label at
   every junction.
3. **reinforce** — the same, but as a decision: north or south is *sampled* from the head and
   rewarded +1 if right, −1 if wrong (REINFORCE with the exact baseline 0, batches of 8 episodes):
   the credit an RL learner gets at the junction, with none of the noise of the other steps.

Settings (``init``):

* ``torch-default`` — PyTorch's LSTM initialisation;
* ``forget-bias-2`` — forget-gate bias 2, `lstm-rl`'s T-maze setting until the long-memory one;
* ``long-memory`` — forget-gate bias 6 (a memory of ~400 steps), input-gate bias −5 (the cell does
  not fill up with the corridor's constant input and saturate its tanh) and the policy head
  initialised at gain 1 instead of 0.01 (so the junction's gradient reaches the LSTM at all):
  `lstm-rl`'s options ``forget_bias``, ``input_bias``, ``policy_gain``.

and ``inputs``: ``obs+action+reward`` (`lstm-rl`'s default, Sec. 13) or ``obs`` only.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from experiments.common import (
    ExperimentResult,
    RunSpec,
    header_lines,
    markdown_table,
    mean_std,
)

DESCRIPTION = "T-maze memory without RL: trace, supervised and REINFORCE learning of the start signal (Sec. 4)"
ENV = "mirabilis/TMaze-v0"
LENGTHS = (20, 50, 100)
SEEDS = range(3)
#: lstm-rl's initialisation options per setting
INIT_OPTIONS = {
    "torch-default": {"forget_bias": None, "input_bias": None, "policy_gain": 0.01},
    "forget-bias-2": {"forget_bias": 2.0, "input_bias": None, "policy_gain": 0.01},
    "long-memory": {"forget_bias": 6.0, "input_bias": -5.0, "policy_gain": 1.0},
}
INITS = tuple(INIT_OPTIONS)
INPUTS = ("obs+action+reward", "obs")
#: gradient updates at most (supervised: 32 episodes each; reinforce: 8)
MAX_UPDATES = {"supervised": 300, "reinforce": 600}
BATCH = {"supervised": 32, "reinforce": 8}
EPSILON = 0.1  # the walker's share of random actions
CHECK_EVERY = 10
HELD_OUT = 200
QUICK = {"lengths": (5,), "max_updates": 60}


def plan(quick: bool) -> list[RunSpec]:
    specs = []
    lengths = QUICK["lengths"] if quick else LENGTHS
    for length in lengths:
        for seed in (range(1) if quick else SEEDS):
            for init in INITS:
                for inputs in (INPUTS[:1] if quick else INPUTS):
                    methods = ("supervised", "reinforce") if init == "long-memory" or quick else ("supervised",)
                    for method in methods:
                        specs.append(RunSpec(f"{method} {init} {inputs} N={length}", "lstm-rl", ENV, seed, 0,
                                             {"length": length}, {},
                                             {"init": init, "inputs": inputs, "method": method,
                                              "max_updates": QUICK["max_updates"] if quick else
                                              MAX_UPDATES[method]}))
    return sorted(specs, key=lambda s: -s.env_kwargs["length"])  # the longest first: the pool ends sooner


# --------------------------------------------------------------------------- one run


def build_network(length: int, init: str, inputs: str, seed: int):
    """`lstm-rl`'s network for the T-maze of ``length`` with ``init``; returns (network, hyperparams, wrapper)."""
    import torch

    from agents.recurrent_pg import RecurrentActorCritic
    from agents.registry import get_agent
    from agents.runner import make_vec_env
    from experiments.tmaze import horizon, resolved

    overrides = {**horizon(length), **INIT_OPTIONS[init]}
    if inputs == "obs":
        overrides.update(reward_inputs=False, persistence=0.0)
    hp = resolved("lstm-rl", overrides)
    agent = get_agent("lstm-rl")
    wrapper = agent.env_wrapper(hp)
    env = make_vec_env(ENV, {"length": length}, 1, seed, wrapper=wrapper)
    torch.manual_seed(seed)
    model = agent.build(env, seed, None, hp)
    env.close()
    net = model.policy
    assert isinstance(net, RecurrentActorCritic)
    return net, hp, wrapper


class Walker:
    """Episodes of a scripted walk to the junction: east, or a random action with probability ``epsilon``."""

    def __init__(self, length: int, wrapper, seed: int, epsilon: float = EPSILON):
        from agents.runner import make_env

        self.env = make_env(ENV, {"length": length}, wrapper=wrapper)
        self.length, self.epsilon = length, epsilon
        self.rng = np.random.default_rng(seed)

    def episode(self, signal: int | None = None, epsilon: float | None = None) -> tuple[np.ndarray, int]:
        """The controller inputs from the start to the first arrival at the junction, and the signal."""
        epsilon = self.epsilon if epsilon is None else epsilon
        maze = self.env.unwrapped
        while True:
            obs, _ = self.env.reset(seed=int(self.rng.integers(2**31)))
            if signal is None or maze.signal == signal:
                break
        inputs = [obs]
        while maze.position < self.length:
            action = int(self.rng.integers(4)) if self.rng.random() < epsilon else 1
            obs, *_ = self.env.step(action)
            inputs.append(obs)
        return np.asarray(inputs, dtype=np.float32), int(maze.signal)

    def batch(self, n: int):
        import torch

        episodes = [self.episode() for _ in range(n)]
        lengths = np.array([len(x) for x, _ in episodes])
        x = np.zeros((lengths.max(), n, episodes[0][0].shape[1]), dtype=np.float32)
        for j, (inputs, _) in enumerate(episodes):
            x[: len(inputs), j] = inputs
        return torch.as_tensor(x), lengths, torch.as_tensor([s for _, s in episodes])


def junction_logits(net, x, lengths):
    """The policy head's (north, south) logits at each episode's last input (the junction)."""
    import torch

    out, _ = net.lstm(net.encoder(x))
    last = out[torch.as_tensor(lengths - 1), torch.arange(x.shape[1])]
    return net.policy_head(last)[:, [0, 2]]


def trace(net, walker: Walker) -> float:
    import torch

    with torch.no_grad():
        outs = []
        for signal in (0, 1):
            x = torch.as_tensor(walker.episode(signal, epsilon=0.0)[0])[:, None]
            outs.append(net.lstm(net.encoder(x))[0][-1, 0])
    return float((outs[0] - outs[1]).norm())


def run(spec: RunSpec, out_dir: Path) -> dict:
    import torch
    import torch.nn.functional as F

    opts, length = spec.options, spec.env_kwargs["length"]
    net, hp, wrapper = build_network(length, opts["init"], opts["inputs"], spec.seed)
    walker = Walker(length, wrapper, seed=spec.seed)
    start_trace = trace(net, walker)
    held_out = Walker(length, wrapper, seed=10_000 + spec.seed).batch(HELD_OUT)
    optimiser = torch.optim.Adam(net.parameters(), lr=hp["learning_rate"], eps=1e-5)
    batch = BATCH[opts["method"]]
    start = time.perf_counter()
    episodes = steps = 0
    learned_at = learned_steps = None
    accuracy = 0.5
    curve = []
    for update in range(1, opts["max_updates"] + 1):
        x, lengths, signals = walker.batch(batch)
        logits = junction_logits(net, x, lengths)
        if opts["method"] == "supervised":
            loss = F.cross_entropy(logits, signals)
        else:
            choice = torch.distributions.Categorical(logits=logits).sample()
            reward = (choice == signals).float() * 2 - 1
            loss = -(torch.log_softmax(logits, -1).gather(1, choice[:, None])[:, 0] * reward).mean()
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), hp["max_grad_norm"])
        optimiser.step()
        episodes += batch
        steps += int(lengths.sum())
        if update % CHECK_EVERY == 0 or update == opts["max_updates"]:
            with torch.no_grad():
                accuracy = float((junction_logits(net, *held_out[:2]).argmax(-1) == held_out[2]).float().mean())
            curve.append((episodes, round(accuracy, 3)))
            if accuracy >= 0.95:
                learned_at, learned_steps = episodes, steps
                break
    return {
        "trace": round(start_trace, 8),
        "episodes_to_learn": learned_at,
        "steps_to_learn": learned_steps,
        "final_accuracy": round(accuracy, 3),
        "episodes_seen": episodes,
        "curve": curve,
        "seconds": round(time.perf_counter() - start, 1),
    }


# --------------------------------------------------------------------------- report


def _cell(runs: list[dict]) -> str:
    learned = [r["metrics"] for r in runs if r["metrics"].get("episodes_to_learn")]
    if not learned:
        cap = max((r["metrics"].get("episodes_seen") or 0) for r in runs) if runs else 0
        return f"— (0/{len(runs)}; > {cap:,} episodes)"
    episodes = np.median([m["episodes_to_learn"] for m in learned])
    steps = np.median([m["steps_to_learn"] for m in learned])
    return f"{episodes:,.0f} ep., {steps / 1000:,.0f}k steps ({len(learned)}/{len(runs)})"


def report(result: ExperimentResult, out_dir: Path) -> None:
    runs = [r for r in result.runs if r.get("metrics")]
    lengths = sorted({r["env_kwargs"]["length"] for r in runs})

    def select(method=None, init=None, inputs=None, length=None):
        return [r for r in runs if (method is None or r["label"].startswith(method + " "))
                and (init is None or f" {init} " in r["label"])
                and (inputs is None or f" {inputs} " in r["label"])
                and (length is None or r["env_kwargs"]["length"] == length)]

    lines = header_lines(result, "T-maze memory without RL: what the LSTM of lstm-rl can learn, and from how much")
    lines += [__doc__.split("\n\n", 1)[1].strip(), ""]
    lines += ["## Trace of the start signal at the junction, untrained network (mean ± sd over seeds)", ""]
    rows = []
    for init in INITS:
        for inputs in INPUTS:
            cells = []
            for length in lengths:
                values = [r["metrics"]["trace"] for r in select("supervised", init, inputs, length)]
                m, s = mean_std(values)
                cells.append("—" if not values else f"{m:.1e} ± {s:.0e}")
            rows.append([f"`{init}`", inputs] + cells)
    lines += [markdown_table(["init", "inputs"] + [f"N = {n}" for n in lengths], rows), ""]
    lines += ["## Episodes until 95% held-out accuracy (median over the seeds that got there; in brackets how many did)",
              "", f"Supervised: batches of {BATCH['supervised']} episodes, at most {MAX_UPDATES['supervised']} "
              f"updates; REINFORCE: batches of {BATCH['reinforce']}, at most {MAX_UPDATES['reinforce']} updates. "
              "Steps: the env steps of those episodes (from the start to the junction).", ""]
    rows = []
    for method in ("supervised", "reinforce"):
        for init in INITS:
            for inputs in INPUTS:
                if not select(method, init, inputs):
                    continue
                rows.append([method, f"`{init}`", inputs] + [_cell(select(method, init, inputs, n)) for n in lengths])
    lines += [markdown_table(["method", "init", "inputs"] + [f"N = {n}" for n in lengths], rows), ""]
    if not result.quick:
        lines += ["## What it says", ""]
        lines += _findings(select, lengths)
    lines += ["## Per-run numbers", "", "See `metrics.json` (one entry per method, init, inputs, N and seed; "
              "`curve` holds (episodes, held-out accuracy) of every check)."]
    (Path(out_dir) / "README.md").write_text("\n".join(lines) + "\n")


def _findings(select, lengths) -> list[str]:
    """Sentences computed from the numbers (so that they stay true when the numbers change)."""
    out = []

    def solved(method, init, inputs, length):
        runs = select(method, init, inputs, length)
        return sum(1 for r in runs if r["metrics"].get("episodes_to_learn")), len(runs)

    for init in INITS:
        got = [f"N = {n}: {'/'.join(map(str, solved('supervised', init, 'obs+action+reward', n)))}" for n in lengths]
        out.append(f"- Supervised, `{init}` init with lstm-rl's inputs, seeds that learned the signal: {', '.join(got)}.")
    for n in lengths:
        learned = [r["metrics"]["episodes_to_learn"] for r in select("reinforce", "long-memory", None, n)
                   if r["metrics"].get("episodes_to_learn")]
        if learned:
            out.append(f"- REINFORCE on the junction choice alone, `long-memory` init, N = {n}: "
                       f"{min(learned):,}–{max(learned):,} episodes where it learned "
                       f"({len(learned)}/{len(select('reinforce', 'long-memory', None, n))} runs).")
    from experiments.tmaze import BUDGET

    budgets = [f"{BUDGET[n] // 1000}k env steps at N = {n} (at most {BUDGET[n] // (n + 1):,} episodes)"
               for n in lengths if n in BUDGET]
    out.append(f"- `results/tmaze` gives every label {', '.join(budgets)}; in a PPO update of `lstm-rl` the "
               "junction is one step of each episode's N + 1 or more.")
    out.append("")
    return out
