"""Curiosity signals unit-tested without RL (seed Sec. 5, 6; DESIGN.md "Curiosity, done right").

The stream is the 1991 world: 100 states, 4 actions; in states 0-49 the next state is a fixed
function of (state, action), in states 50-99 it is uniformly random over all 100 states. Random
actions walk it in 16 parallel chains (episodes of 20 steps); each update sees a fresh
``[32, 16]`` batch through ``rewards()`` (before training) and then ``update()``.

What must hold: M's error (adversarial) falls to ~0 on the learnable half and stays at the
noise floor log(100) on the random half; learning progress is clearly positive while the
learnable half is being learned and ~0 on both the mastered half and the noise. The naive
progress estimator (loss before minus after a gradient step on the same batch) is run too, to
show the noise assertion has teeth: it keeps paying for noise.

The same holds on a continuous (Box, MSE) stream in noisy-MNIST style: 8 fixed vectors whose
successor the action decides, and a TV whose next frame is fresh Gaussian noise. RND is tested
on a continuous stream too (8 repeated observations vs fresh Gaussian noise).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from gymnasium import spaces

from world_models import (
    CURIOSITY_SIGNALS,
    AdversarialCuriosity,
    NoCuriosity,
    ProgressCuriosity,
    RecurrentWorldModel,
    RNDCuriosity,
    SequenceBatch,
    make_curiosity,
)

torch.set_num_threads(1)

N_STATES, N_ACTIONS, HALF = 100, 4, 50
N_UPDATES, WINDOW = 200, 20
LATE = slice(N_UPDATES - 40, N_UPDATES)  # the last 40 updates: learnable half mastered by then


class World1991:
    """States 0-49 react deterministically to (state, action), states 50-99 at random."""

    def __init__(self, seed: int, n_envs: int = 16, episode_length: int = 20):
        self.rng = np.random.default_rng(seed)
        self.table = self.rng.integers(0, N_STATES, (HALF, N_ACTIONS))
        self.n_envs, self.episode_length = n_envs, episode_length
        self.state = self.rng.integers(0, N_STATES, n_envs)
        self.age = np.zeros(n_envs, dtype=int)

    def batch(self, T: int = 32) -> tuple[SequenceBatch, np.ndarray]:
        """A fresh [T, B] batch and the mask of its transitions from learnable states."""
        B = self.n_envs
        obs = np.zeros((T, B), np.int64)
        next_obs = np.zeros((T, B), np.int64)
        starts = np.zeros((T, B), np.float32)
        actions = self.rng.integers(0, N_ACTIONS, (T, B))
        for t in range(T):
            starts[t] = self.age == 0
            obs[t] = self.state
            random_next = self.rng.integers(0, N_STATES, B)
            fixed_next = self.table[np.minimum(self.state, HALF - 1), actions[t]]
            next_obs[t] = np.where(self.state < HALF, fixed_next, random_next)
            self.age += 1
            ended = self.age >= self.episode_length
            self.state = np.where(ended, self.rng.integers(0, N_STATES, B), next_obs[t])
            self.age[ended] = 0
        batch = SequenceBatch.from_numpy(obs, actions, np.zeros((T, B)), next_obs, None, starts)
        return batch, obs < HALF


def world_model() -> RecurrentWorldModel:
    torch.manual_seed(0)
    return RecurrentWorldModel(
        spaces.Discrete(N_STATES), spaces.Discrete(N_ACTIONS), 1, hidden_size=64, embed_size=64, lr=1e-2
    )


@functools.cache  # each stream runs once per (xdist) worker, and only where a test needs it
def run_stream(name: str) -> dict[str, np.ndarray]:
    """Per update: mean intrinsic reward on learnable / noise transitions, and M's error."""
    world, model = World1991(seed=1), world_model()
    signal = make_curiosity(name, model, tau=0.05) if name == "progress" else make_curiosity(name, model)
    learn_r, noise_r = [], []
    for _ in range(N_UPDATES):
        batch, learnable = world.batch()
        r = signal.rewards(batch)
        assert r.shape == (batch.T, batch.B) and r.dtype == np.float32
        logs = signal.update(batch)
        assert "world_model/obs_loss" in logs and "curiosity/reward_mean" in logs
        learn_r.append(r[learnable].mean())
        noise_r.append(r[~learnable].mean())
    return {"learnable": np.array(learn_r), "noise": np.array(noise_r)}


@functools.cache
def run_naive_progress() -> dict[str, np.ndarray]:
    """The WRONG estimator: M's loss on the batch before minus after a training step on it."""
    world, model = World1991(seed=1), world_model()
    learn_r, noise_r = [], []
    for _ in range(N_UPDATES):
        batch, learnable = world.batch()
        before = model.errors(batch)
        model.train_on_sequences(batch)
        r = (before - model.errors(batch)).numpy()
        learn_r.append(r[learnable].mean())
        noise_r.append(r[~learnable].mean())
    return {"learnable": np.array(learn_r), "noise": np.array(noise_r)}


def windowed(x: np.ndarray) -> np.ndarray:
    """Means over consecutive windows of WINDOW updates."""
    return x.reshape(-1, WINDOW).mean(1)


def progress_criteria(run: dict[str, np.ndarray]) -> dict[str, float]:
    peak = windowed(run["learnable"]).max()
    return {
        "peak": float(peak),
        "learnable_late": float(np.abs(run["learnable"][LATE].mean()) / peak),
        "noise_late": float(np.abs(run["noise"][LATE].mean()) / peak),
        "noise_all": float(np.abs(windowed(run["noise"])).mean() / peak),
    }


def test_adversarial_error_falls_on_learnable_but_not_on_noise():
    adv = run_stream("adversarial")
    start = adv["learnable"][:WINDOW].mean()
    late_learn, late_noise = adv["learnable"][LATE].mean(), adv["noise"][LATE].mean()
    print(f"adversarial: learnable {start:.3f} -> {late_learn:.4f}, noise late {late_noise:.3f}")
    assert start > 4.0  # ~log(100) at first
    assert late_learn < 0.02 * start  # mastered
    assert late_noise > 0.95 * np.log(N_STATES)  # noise stays at the floor: the TV pays forever


def test_progress_is_positive_while_learning_then_zero_on_mastered_and_noise():
    run = run_stream("progress")
    c = progress_criteria(run)
    print("progress:", {k: round(v, 4) for k, v in c.items()})
    print("progress windows learnable", np.round(windowed(run["learnable"]), 3))
    print("progress windows noise    ", np.round(windowed(run["noise"]), 3))
    assert c["peak"] > 0.5  # clearly positive while the learnable half is being learned
    assert c["learnable_late"] < 0.03  # mastered: boring
    assert c["noise_late"] < 0.15  # noise: boring
    assert c["noise_all"] < 0.15  # ... and never paid like the learnable half


def test_naive_progress_would_fail_the_noise_assertion():
    """Teeth: before-minus-after on the same sample keeps paying for noise."""
    naive = run_naive_progress()
    c = progress_criteria(naive)
    print("naive:", {k: round(v, 4) for k, v in c.items()})
    assert naive["noise"][LATE].mean() > 0  # always positive on noise ...
    assert c["noise_late"] > 0.15  # ... so it fails progress's noise assertion
    # and it pays more for noise than for the mastered half: the ordering is backwards
    assert naive["noise"][LATE].mean() > 10 * naive["learnable"][LATE].mean()


# --------------------------------------------------------------------------- continuous, MSE


class NoisyTVStream:
    """Noisy-MNIST style, Box observations (M's MSE path): i.i.d. one-step transitions.

    Half: obs is one of 8 fixed vectors, the action (2) picks which fixed vector comes next.
    Other half: obs is a fixed "TV" vector and the next obs is fresh N(0, 1) noise (M can
    learn its mean, 0, and then no more: MSE floor 1).
    """

    D = 16

    def __init__(self, seed: int = 0, T: int = 32, B: int = 8):
        self.rng = np.random.default_rng(seed)
        self.vectors = self.rng.normal(size=(9, self.D)).astype(np.float32)  # 8 states + the TV
        self.table = self.rng.integers(0, 8, (8, 2))
        self.T, self.B = T, B
        self.space = spaces.Box(-np.inf, np.inf, (self.D,), np.float32)

    def batch(self) -> tuple[SequenceBatch, np.ndarray]:
        shape = (self.T, self.B)
        tv = self.rng.random(shape) < 0.5
        k, actions = self.rng.integers(0, 8, shape), self.rng.integers(0, 2, shape)
        obs, next_obs = self.vectors[k], self.vectors[self.table[k, actions]]
        obs[tv] = self.vectors[8]
        next_obs[tv] = self.rng.normal(size=(int(tv.sum()), self.D))
        batch = SequenceBatch.from_numpy(obs, actions, np.zeros(shape), next_obs, None, np.ones(shape))
        return batch, ~tv


def run_box_streams() -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for name in ("adversarial", "progress"):
        stream = NoisyTVStream(seed=0)
        torch.manual_seed(0)
        model = RecurrentWorldModel(stream.space, spaces.Discrete(2), 1, hidden_size=64, embed_size=64, lr=1e-2)
        signal = make_curiosity(name, model, **({"tau": 0.05} if name == "progress" else {}))
        learn_r, noise_r = [], []
        for _ in range(150):
            batch, learnable = stream.batch()
            r = signal.rewards(batch)
            signal.update(batch)
            learn_r.append(r[learnable].mean())
            noise_r.append(r[~learnable].mean())
        out[name] = {"learnable": np.array(learn_r), "noise": np.array(noise_r)}
    return out


def test_box_stream_progress_and_error():
    runs = run_box_streams()
    adv, prog = runs["adversarial"], runs["progress"]
    late = slice(120, 150)
    peak = prog["learnable"].reshape(-1, 10).mean(1).max()
    numbers = {
        "adv_learnable_first": adv["learnable"][:10].mean(),
        "adv_learnable_late": adv["learnable"][late].mean(),
        "adv_noise_late": adv["noise"][late].mean(),
        "progress_peak": peak,
        "progress_learnable_late/peak": abs(prog["learnable"][late].mean()) / peak,
        "progress_noise_late/peak": abs(prog["noise"][late].mean()) / peak,
    }
    print("box stream:", {k: round(float(v), 4) for k, v in numbers.items()})
    assert numbers["adv_learnable_late"] < 0.01 * numbers["adv_learnable_first"]
    assert numbers["adv_noise_late"] > 0.9  # the MSE floor of N(0, 1) noise is 1
    assert peak > 0.3
    assert numbers["progress_learnable_late/peak"] < 0.03
    assert numbers["progress_noise_late/peak"] < 0.05


# --------------------------------------------------------------------------- RND


def test_rnd_error_stays_high_on_fresh_noise():
    torch.manual_seed(0)
    stream = NoisyTVStream(seed=0)  # next obs: 8 repeated vectors, or fresh Gaussian noise
    signal = make_curiosity("rnd", observation_space=stream.space)
    assert isinstance(signal, RNDCuriosity) and not signal.trains_world_model
    first = None
    for _ in range(60):
        batch, repeated = stream.batch()
        r = signal.rewards(batch)
        first = r.mean() if first is None else first
        assert "curiosity/rnd_loss" in signal.update(batch)
    on_repeated, on_noise = r[repeated].mean(), r[~repeated].mean()
    print(f"rnd: first {first:.4f}, repeated {on_repeated:.5f}, fresh noise {on_noise:.4f}")
    assert on_noise > 5 * on_repeated
    assert on_repeated < 0.1 * first


# --------------------------------------------------------------------------- interface


def test_factory_and_none():
    model = world_model()
    assert set(CURIOSITY_SIGNALS) == {"adversarial", "progress", "rnd", "none"}
    assert isinstance(make_curiosity("adversarial", model), AdversarialCuriosity)
    assert isinstance(make_curiosity("progress", model), ProgressCuriosity)
    assert isinstance(make_curiosity("rnd", model), RNDCuriosity)  # space taken from M
    none = make_curiosity("none")
    assert isinstance(none, NoCuriosity)
    batch, _ = World1991(seed=0).batch(T=5)
    assert np.all(none.rewards(batch) == 0) and none.rewards(batch).shape == (5, 16)
    assert none.update(batch) == {}
    for name in ("adversarial", "progress"):  # update() without rewards() first also works
        assert "world_model/loss" in make_curiosity(name, model).update(batch)
    with pytest.raises(ValueError, match="valid: adversarial, progress, rnd, none"):
        make_curiosity("icm", model)
    with pytest.raises(ValueError, match="world_model"):
        make_curiosity("progress")


def test_progress_state_dict_roundtrip_and_old_copy_frozen():
    model = world_model()
    signal = make_curiosity("progress", model, tau=0.5)
    assert all(not p.requires_grad for p in signal.old_model.parameters())
    batch, _ = World1991(seed=0).batch(T=8)
    signal.rewards(batch)
    signal.update(batch)
    state = signal.state_dict()
    other = make_curiosity("progress", world_model())
    other.load_state_dict(state)
    for (k, a), b in zip(signal.old_model.state_dict().items(), other.old_model.state_dict().values()):
        assert torch.equal(a, b), k
