"""One training run, end to end: resolve the config, make envs, build the agent, train, save.

``scripts/train.py`` is a thin command line over this module; ``scripts/reproduce.py`` and
``scripts/bench.py`` call it directly. A run directory holds:

=====================  ==========================================================================
``config.yaml``        every resolved setting (``--config`` accepts it back: same file, same run)
``command.txt``        the command line(s) that made and resumed the run
``events.out.*``       TensorBoard event files (SB3's logger writes here directly)
``checkpoints/``       ``latest.safetensors`` (periodic, on Ctrl-C/SIGTERM) and ``final.safetensors``
``videos/``            evaluation episodes recorded with ``--video``
=====================  ==========================================================================
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import yaml
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import configure

from agents import config as cfg
from agents.errors import UsageError, unknown
from agents.persistence import load_agent, read_meta, save_agent
from agents.registry import get_agent

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNS_DIR = REPO_ROOT / "results" / "runs"

#: What ``python scripts/train.py`` runs with no arguments.
DEFAULT_AGENT = "curious-c-m"
DEFAULT_ENV = "mirabilis/NoisyTVRoom-v0"
DEFAULT_TOTAL_STEPS = 100_000
RUN_KEYS = ("agent", "env", "env_kwargs", "seed", "total_steps", "n_envs", "checkpoint_freq", "hyperparams")


@dataclasses.dataclass
class RunConfig:
    """Everything that defines a run; ``config.yaml`` is this, as YAML."""

    agent: str
    env: str
    env_kwargs: dict[str, Any]
    seed: int
    total_steps: int
    n_envs: int
    checkpoint_freq: int
    hyperparams: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- environments


def resolve_env_id(env_id: str) -> str:
    """Check that ``env_id`` names a registered env (importing ``module`` for ``module:EnvId``)."""
    import envs  # noqa: F401  (registers mirabilis/*)

    if ":" in env_id:
        module, _, name = env_id.partition(":")
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise UsageError(f"--env {env_id!r}: cannot import module {module!r} ({exc})") from None
        if name not in gym.registry:
            raise unknown(f"environment (after importing {module!r})", name, gym.registry,
                          "see `python scripts/train.py --help`")
        return env_id
    if env_id not in gym.registry:
        raise unknown("environment", env_id, gym.registry, "see `python scripts/train.py --help` for the list")
    return env_id


def make_env(env_id: str, env_kwargs: dict[str, Any], render_mode: str | None = None, wrapper=None) -> gym.Env:
    """``gymnasium.make`` (plus an agent's ``wrapper``), constructor errors as one-line ``UsageError``s."""
    resolve_env_id(env_id)
    try:
        env = gym.make(env_id, render_mode=render_mode, **env_kwargs) if render_mode else gym.make(env_id, **env_kwargs)
        return wrapper(env) if wrapper is not None else env
    except (TypeError, ValueError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"bad env kwargs for {env_id}: {message}") from None
    except gym.error.Error as exc:
        raise UsageError(f"cannot make {env_id}: {exc}") from None


def make_vec_env(env_id: str, env_kwargs: dict[str, Any], n_envs: int, seed: int | None, wrapper=None):
    """SB3's ``make_vec_env`` (DummyVecEnv + Monitor [+ wrapper]), after checking id and kwargs once."""
    from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env

    make_env(env_id, env_kwargs, wrapper=wrapper).close()  # fail fast and readably on a bad id or kwargs
    return sb3_make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs, wrapper_class=wrapper)


def list_envs() -> list[tuple[str, str]]:
    """(id, one-line description) for every registered env, mirabilis first."""
    from envs import ENVIRONMENTS

    out = [(env_id, description) for env_id, (_, description) in ENVIRONMENTS.items()]
    for env_id, spec in sorted(gym.registry.items()):
        if env_id in ENVIRONMENTS:
            continue
        entry = spec.entry_point if isinstance(spec.entry_point, str) else getattr(spec.entry_point, "__name__", "")
        out.append((env_id, f"Gymnasium ({entry})"))
    return out


# --------------------------------------------------------------------------- configuration


def build_config(
    agent: str | None = None,
    env: str | None = None,
    seed: int | None = None,
    total_steps: int | None = None,
    n_envs: int | None = None,
    checkpoint_freq: int | None = None,
    config_file: str | None = None,
    set_args: list[str] | tuple[str, ...] = (),
    env_kwargs_args: list[str] | tuple[str, ...] = (),
) -> RunConfig:
    """Resolve a run's settings from defaults, a config file and command-line overrides."""
    file_values: dict[str, Any] = {}
    if config_file:
        loaded = cfg.load_yaml(config_file)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise UsageError(f"{config_file}: expected a mapping with keys {', '.join(RUN_KEYS)}")
        bad = [k for k in loaded if k not in RUN_KEYS]
        if bad:
            raise UsageError(f"{config_file}: unknown key(s) {', '.join(map(repr, bad))}; valid keys: {', '.join(RUN_KEYS)}")
        file_values = loaded
    agent_id = agent or file_values.get("agent") or DEFAULT_AGENT
    env_id = env or file_values.get("env") or DEFAULT_ENV
    spec = get_agent(agent_id)
    resolve_env_id(env_id)
    run_defaults = cfg.yaml_run_defaults(agent_id, env_id)

    env_kwargs = dict(run_defaults.get("env_kwargs") or {})
    file_kwargs = file_values.get("env_kwargs") or {}
    if not isinstance(file_kwargs, dict):
        raise UsageError(f"{config_file}: env_kwargs must be a mapping")
    env_kwargs.update(file_kwargs)
    for item in env_kwargs_args:
        key, value = cfg.parse_assignment(item, "--env-kwargs")
        env_kwargs[key] = value

    def pick(name, cli_value, default):
        value = cli_value if cli_value is not None else file_values.get(name, run_defaults.get(name, default))
        return cfg.coerce(cfg.HyperParam(name, "int", default), value)

    seed_v = pick("seed", seed, 0)
    total = pick("total_steps", total_steps, DEFAULT_TOTAL_STEPS)
    n_envs_v = pick("n_envs", n_envs, 1)
    if total < 1 or n_envs_v < 1:
        raise UsageError("--total-steps and --n-envs must be >= 1")
    ckpt_freq = pick("checkpoint_freq", checkpoint_freq, max(total // 10, 1000))

    file_hp = file_values.get("hyperparams") or {}
    if not isinstance(file_hp, dict):
        raise UsageError(f"{config_file}: hyperparams must be a mapping")
    set_hp = dict(cfg.parse_assignment(item) for item in set_args)
    hyperparams = cfg.resolve(spec.schema(), agent_id, env_id, file_hp, set_hp)
    return RunConfig(agent_id, env_id, env_kwargs, seed_v, total, n_envs_v, ckpt_freq, hyperparams)


def default_run_dir(config: RunConfig) -> Path:
    safe_env = re.sub(r"[^A-Za-z0-9_.-]+", "_", config.env)
    return RUNS_DIR / safe_env / config.agent / f"seed{config.seed}"


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- callbacks


class StopOnSignal(BaseCallback):
    """Ends ``learn`` at the next env step after SIGINT/SIGTERM (a second signal aborts)."""

    def __init__(self):
        super().__init__()
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame):
        if self.signal_name is not None:  # second signal: stop now
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    def _on_step(self) -> bool:
        return self.signal_name is None


class PeriodicCheckpoint(BaseCallback):
    """Writes ``checkpoints/latest.safetensors`` every ``every`` env steps (atomically)."""

    def __init__(self, save, every: int):
        super().__init__()
        self.save, self.every = save, every
        self._last = 0

    def _on_training_start(self) -> None:
        self._last = self.num_timesteps

    def _on_step(self) -> bool:
        if self.num_timesteps - self._last >= self.every:
            self._last = self.num_timesteps
            self.save("latest")
        return True


# --------------------------------------------------------------------------- the run


@dataclasses.dataclass
class RunResult:
    model: Any
    run_dir: Path
    interrupted: str | None  # signal name, or None when the run completed
    steps: int
    seconds: float


def prepare_run_dir(run_dir: Path, overwrite: bool) -> None:
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise UsageError(
                f"run directory {run_dir} already exists; use --resume {run_dir} to continue it, "
                "--overwrite to replace it, or --run-dir to choose another"
            )
        import shutil

        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)


def latest_checkpoint(run_dir: Path) -> Path:
    """The checkpoint in ``run_dir/checkpoints`` with the most env steps."""
    candidates = sorted((run_dir / "checkpoints").glob("*.safetensors"))
    if not candidates:
        raise UsageError(f"{run_dir} has no checkpoint to resume from")
    return max(candidates, key=lambda p: (read_meta(p).get("num_timesteps", 0), p.name == "final.safetensors"))


def train(
    config: RunConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress_bar: bool = True,
    video: bool = False,
    video_episodes: int = 1,
    command: str | None = None,
    extra_callbacks: list[BaseCallback] | None = None,
    on_start=None,
) -> RunResult:
    """Train ``config`` into ``run_dir`` (or continue it with ``resume=True``)."""
    run_dir = Path(run_dir)
    spec = get_agent(config.agent)
    env = make_vec_env(config.env, config.env_kwargs, config.n_envs, config.seed,
                       wrapper=spec.env_wrapper(config.hyperparams))
    if resume:
        ckpt = latest_checkpoint(run_dir)
        model = load_agent(ckpt, env=env, expected_agent=config.agent)
    else:
        model = spec.build(env, config.seed, None, config.hyperparams)  # validate before touching disk
        prepare_run_dir(run_dir, overwrite)
        write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
    if on_start is not None:
        on_start()
    if command:
        with open(run_dir / "command.txt", "a") as fh:
            fh.write(command + "\n")
    model.set_logger(configure(str(run_dir), ["tensorboard"]))

    def save(name: str) -> Path:
        return save_agent(model, run_dir / "checkpoints" / f"{name}.safetensors", config.agent, config.hyperparams,
                          config.env, config.env_kwargs, config.seed, include_buffer=name == "latest")

    remaining = config.total_steps - model.num_timesteps
    start, steps_before = time.perf_counter(), model.num_timesteps
    stopper = StopOnSignal()
    callbacks = [stopper, PeriodicCheckpoint(save, config.checkpoint_freq), *(extra_callbacks or [])]
    if remaining > 0:
        with stopper:
            model.learn(remaining, callback=CallbackList(callbacks), progress_bar=progress_bar,
                        reset_num_timesteps=not resume, tb_log_name="")
    seconds = time.perf_counter() - start
    if stopper.signal_name:
        save("latest")
    else:
        save("final")
        if video:
            from agents.video import record_training_video

            record_training_video(model, config, run_dir, video_episodes)
    model.logger.close()
    env.close()
    return RunResult(model, run_dir, stopper.signal_name, model.num_timesteps - steps_before, seconds)


def load_run_config(run_dir: Path) -> RunConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise UsageError(f"{run_dir} is not a run directory (no config.yaml)")
    data = cfg.load_yaml(path)
    try:
        return RunConfig(**{k: data[k] for k in RUN_KEYS})
    except (KeyError, TypeError) as exc:
        raise UsageError(f"{path} is missing run settings ({exc})") from None


def command_line() -> str:
    return shlex.join([Path(sys.executable).name, *sys.argv])
