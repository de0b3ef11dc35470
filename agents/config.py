"""Hyperparameters: declared types, YAML defaults per agent and env, typed ``--set`` overrides.

Every agent declares its hyperparameters through its constructor's signature (name, type
annotation, default), like stable-baselines3's algorithms do. Defaults that differ from the
signature live in ``agents/hyperparams/<agent-id>.yml`` (RL Zoo's layout): a ``default:``
section, then one section per env id that overrides it. A run resolves, in order:

    signature defaults < yml ``default`` < yml ``<env id>`` < ``--config FILE`` < ``--set k=v``

and writes the result to the run's ``config.yaml``.
"""

from __future__ import annotations

import inspect
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agents.errors import UsageError, closest

HYPERPARAMS_DIR = Path(__file__).resolve().parent / "hyperparams"

# Constructor arguments that are not hyperparameters: the run sets them.
NOT_HYPERPARAMS = {"self", "env", "tensorboard_log", "verbose", "seed", "device", "_init_setup_model"}


@dataclass(frozen=True)
class HyperParam:
    """One declared hyperparameter: ``kind`` is int, float, float|str, bool, str, dict, list or any."""

    name: str
    kind: str
    default: Any
    nullable: bool = False
    choices: tuple | None = None

    def describe(self) -> str:
        kind = self.kind + (" or null" if self.nullable else "")
        if self.choices:
            kind += f" in {list(self.choices)}"
        return kind


def _kind_of(annotation: Any, default: Any) -> tuple[str, bool]:
    """Map a type annotation (and default) to (kind, nullable)."""
    if annotation is inspect.Parameter.empty:
        if default is None or default is inspect.Parameter.empty:
            return "any", True
        return _kind_of(type(default), default)
    nullable = default is None
    args = typing.get_args(annotation) if isinstance(annotation, (types.UnionType, typing._UnionGenericAlias)) else ()
    members = list(args) if args else [annotation]
    if type(None) in members:
        nullable = True
        members = [m for m in members if m is not type(None)]
    origins = [typing.get_origin(m) or m for m in members]
    if bool in origins:
        return "bool", nullable
    if float in origins and str in origins:  # e.g. SAC's ent_coef: 0.1 or "auto"
        return "float|str", nullable
    if float in origins:  # float | Schedule -> float (schedules are not configurable from YAML)
        return "float", nullable
    if int in origins and len(origins) == 1:
        return "int", nullable
    if str in origins and len(origins) == 1:
        return "str", nullable
    if dict in origins and len(origins) == 1:
        return "dict", nullable
    if origins and all(o in (list, tuple) for o in origins):
        return "list", nullable
    return "any", nullable


def schema_from_signature(cls: type, skip: set[str] = frozenset()) -> dict[str, HyperParam]:
    """The hyperparameters ``cls.__init__`` declares, with their kinds and defaults.

    A constructor that forwards ``**kwargs`` to its parent class also accepts the parent's
    hyperparameters; its own declarations (e.g. a different default) take precedence.
    """
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # forward references that cannot be resolved: fall back to raw annotations
        hints = {}
    parameters = inspect.signature(cls.__init__).parameters
    schema = {}
    if any(p.kind == p.VAR_KEYWORD for p in parameters.values()):
        for base in cls.__mro__[1:]:
            if "__init__" in vars(base) and base is not object:
                schema = schema_from_signature(base, skip)
                break
    for name, param in parameters.items():
        if name in NOT_HYPERPARAMS or name in skip or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        default = None if param.default is inspect.Parameter.empty else param.default
        kind, nullable = _kind_of(hints.get(name, param.annotation), default)
        schema[name] = HyperParam(name, kind, default, nullable)
    return schema


def coerce(param: HyperParam, value: Any) -> Any:
    """Check/convert ``value`` to ``param``'s declared type or raise ``UsageError``."""
    if value is None or (isinstance(value, str) and value.lower() in ("null", "none") and param.kind != "str"):
        if param.nullable:
            return None
        raise UsageError(f"hyperparameter {param.name!r} expects {param.describe()}, got null")
    kind = param.kind
    ok = None
    if kind == "bool":
        if isinstance(value, bool):
            ok = value
        elif isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            ok = value.lower() in ("true", "yes", "1")
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            ok = value
        elif isinstance(value, float) and value.is_integer():
            ok = int(value)
        elif isinstance(value, str):
            try:
                ok = int(value.replace("_", ""))
            except ValueError:
                try:
                    as_float = float(value)
                    ok = int(as_float) if as_float.is_integer() else None
                except ValueError:
                    ok = None
    elif kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            ok = float(value)
        elif isinstance(value, str):
            try:
                ok = float(value)
            except ValueError:
                ok = None
    elif kind == "float|str":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            ok = float(value)
        elif isinstance(value, str):
            try:
                ok = float(value)
            except ValueError:
                ok = value
    elif kind == "str":
        ok = value if isinstance(value, str) else None
    elif kind == "dict":
        ok = value if isinstance(value, dict) else None
    elif kind == "list":
        ok = list(value) if isinstance(value, (list, tuple)) else None
    else:
        ok = value
    if ok is None:
        raise UsageError(f"hyperparameter {param.name!r} expects {param.describe()}, got {value!r}")
    if param.choices is not None and ok not in param.choices:
        raise UsageError(f"hyperparameter {param.name!r} must be one of {list(param.choices)}, got {ok!r}")
    return ok


def parse_assignment(text: str, what: str = "--set") -> tuple[str, Any]:
    """``key=value`` -> (key, YAML-parsed value)."""
    if "=" not in text:
        raise UsageError(f"{what} expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise UsageError(f"{what} expects key=value, got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file; a missing or malformed file is a ``UsageError`` with file and line."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(f"malformed YAML in {where}: {problem}") from None


#: Keys of a hyperparams YAML section that set the run, not the agent.
YAML_RUN_KEYS = ("total_steps", "n_envs", "env_kwargs")


def _yaml_section(agent_id: str, env_id: str) -> dict[str, Any]:
    path = HYPERPARAMS_DIR / f"{agent_id}.yml"
    if not path.exists():
        return {}
    data = load_yaml(path) or {}
    out = dict(data.get("default") or {})
    out.update(data.get(env_id) or {})
    return out


def yaml_defaults(agent_id: str, env_id: str) -> dict[str, Any]:
    """The repo's hyperparameter defaults for ``agent_id``: ``default``, then the env's section."""
    return {k: v for k, v in _yaml_section(agent_id, env_id).items() if k not in YAML_RUN_KEYS}


def yaml_run_defaults(agent_id: str, env_id: str) -> dict[str, Any]:
    """Run-level defaults (``total_steps``, ``n_envs``, ``env_kwargs``) from the same file."""
    return {k: v for k, v in _yaml_section(agent_id, env_id).items() if k in YAML_RUN_KEYS}


def apply_overrides(
    schema: dict[str, HyperParam], base: dict[str, Any], overrides: dict[str, Any], source: str
) -> dict[str, Any]:
    """Return ``base`` updated with type-checked ``overrides`` (unknown keys are an error)."""
    out = dict(base)
    for key, value in overrides.items():
        if key not in schema:
            guess = closest(key, schema)
            hint = f"did you mean {guess!r}? " if guess else ""
            raise UsageError(
                f"unknown hyperparameter {key!r} in {source}; {hint}valid keys: {', '.join(sorted(schema))}"
            )
        out[key] = coerce(schema[key], value)
    return out


def resolve(
    schema: dict[str, HyperParam],
    agent_id: str,
    env_id: str,
    config_overrides: dict[str, Any] | None = None,
    set_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every hyperparameter of ``schema`` with its resolved value (see module docstring)."""
    values = {name: p.default for name, p in schema.items()}
    values = apply_overrides(schema, values, yaml_defaults(agent_id, env_id), f"agents/hyperparams/{agent_id}.yml")
    values = apply_overrides(schema, values, config_overrides or {}, "--config")
    values = apply_overrides(schema, values, set_overrides or {}, "--set")
    return values
