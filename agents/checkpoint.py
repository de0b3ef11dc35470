"""Checkpoints: one ``.safetensors`` file, written atomically, loaded without unpickling.

A checkpoint holds every torch tensor of an agent (network weights, optimiser moments,
learnable scalars such as SAC's entropy coefficient, optionally the replay buffer's arrays) as
safetensors, and everything else — agent id, env id and kwargs, resolved hyperparameters,
step counters, optimiser settings — as JSON in the safetensors header's metadata. Nothing is
ever unpickled, so a checkpoint from an untrusted source cannot run code.

It is written to a temporary file in the same folder, flushed, fsync'ed and renamed over the
target (``os.replace`` is atomic on POSIX): a crash in the middle of a save leaves the previous
checkpoint intact. Works for any stable-baselines3 ``BaseAlgorithm`` (they name their torch
state in ``_get_torch_save_params``) and for the mirabilis agents, which subclass it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from agents.errors import CheckpointError

FORMAT = "mirabilis-checkpoint"
VERSION = 1


# --------------------------------------------------------------------------- nested state <-> (json, tensors)


def _plain(obj: Any, path: str) -> Any:
    """JSON form of one element of an object array (SB3's HER keeps the envs' ``info`` dicts so)."""
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise TypeError(f"cannot store a nested object array at {path} in a checkpoint")
        return {"__nd__": obj.tolist(), "dtype": obj.dtype.str, "shape": list(obj.shape)}
    if isinstance(obj, dict):
        return {"__dict__": [[_plain(k, path), _plain(v, path)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_plain(v, path) for v in obj]
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} inside the object array at {path} in a checkpoint")


def _unplain(obj: Any) -> Any:
    if isinstance(obj, dict):
        if "__nd__" in obj:
            return np.asarray(obj["__nd__"], dtype=np.dtype(obj["dtype"])).reshape(obj["shape"])
        return {_unplain(k): _unplain(v) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [_unplain(v) for v in obj]
    return obj


def encode(obj: Any, tensors: dict[str, torch.Tensor], path: str) -> Any:
    """JSON-able form of a nested state; tensors and numpy arrays go to ``tensors`` by path.

    Object arrays (e.g. the ``info`` dicts SB3's ``HerReplayBuffer`` keeps per transition) become one
    JSON text stored as a byte tensor: plain data only (dicts, lists, arrays, numbers, strings)."""
    if isinstance(obj, np.ndarray) and obj.dtype == object:
        text = json.dumps([_plain(v, path) for v in obj.ravel()]).encode()
        tensors[path] = torch.frombuffer(bytearray(text), dtype=torch.uint8).clone()
        return {"__objects__": path, "shape": list(obj.shape)}
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().cpu().clone().contiguous()
        return {"__tensor__": path}
    if isinstance(obj, np.ndarray):
        tensors[path] = torch.from_numpy(np.ascontiguousarray(obj).copy())
        return {"__ndarray__": path}
    if isinstance(obj, dict):
        return {"__dict__": [[encode(k, tensors, f"{path}.k{i}"), encode(v, tensors, f"{path}.{i}")]
                             for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, tuple):
        return {"__tuple__": [encode(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {path} in a checkpoint")


def decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`encode`."""
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__ndarray__" in obj:
            return tensors[obj["__ndarray__"]].numpy()
        if "__objects__" in obj:
            items = json.loads(tensors[obj["__objects__"]].numpy().tobytes().decode())
            out = np.empty(len(items), dtype=object)
            for i, item in enumerate(items):
                out[i] = _unplain(item)
            return out.reshape(obj["shape"])
        if "__dict__" in obj:
            return {decode(k, tensors): decode(v, tensors) for k, v in obj["__dict__"]}
        if "__tuple__" in obj:
            return tuple(decode(v, tensors) for v in obj["__tuple__"])
        raise ValueError("unknown encoded object")
    if isinstance(obj, list):
        return [decode(v, tensors) for v in obj]
    return obj


# --------------------------------------------------------------------------- file level


def write(path: str | Path, meta: dict[str, Any], state: dict[str, Any]) -> Path:
    """Atomically write ``meta`` (JSON-able) and ``state`` (nested, with tensors) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    structure = encode(state, tensors, "s")
    header = {"mirabilis": json.dumps({**meta, "format": FORMAT, "version": VERSION, "state": structure})}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=header)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path


def read(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return ``(meta, state)`` of a checkpoint, or raise :class:`CheckpointError` in one line."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupt?): {exc}") from None
    if "mirabilis" not in header:
        raise CheckpointError(f"{path} is a safetensors file but not a mirabilis checkpoint")
    try:
        meta = json.loads(header["mirabilis"])
        state = decode(meta.pop("state"), tensors)
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path} has a corrupt checkpoint header: {exc}") from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise CheckpointError(f"{path}: unsupported checkpoint format {meta.get('format')} v{meta.get('version')}")
    return meta, state


# --------------------------------------------------------------------------- algorithms


def _get_attr(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


BUFFER_SCALARS = ("pos", "full", "_current_ep_start")


def algorithm_state(model, include_buffer: bool = False) -> dict[str, Any]:
    """Everything needed to continue training ``model`` (an SB3 ``BaseAlgorithm``)."""
    state_dicts, tensor_names = model._get_torch_save_params()
    state: dict[str, Any] = {
        "state_dicts": {name: _get_attr(model, name).state_dict() for name in state_dicts},
        "tensors": {name: _get_attr(model, name) for name in tensor_names or []},
        "counters": {
            "num_timesteps": int(model.num_timesteps),
            "_n_updates": int(getattr(model, "_n_updates", 0)),
            "_episode_num": int(getattr(model, "_episode_num", 0)),
        },
    }
    extra = getattr(model, "extra_checkpoint_state", None)
    if callable(extra):
        state["extra"] = extra()
    buffer = getattr(model, "replay_buffer", None)
    if include_buffer and buffer is not None:
        # Only the filled rows: a fresh 1M-step buffer is mostly zeros.
        size = buffer.buffer_size
        filled = size if buffer.full else buffer.pos
        arrays = {}
        for key, value in vars(buffer).items():
            if isinstance(value, np.ndarray) and value.shape[:1] == (size,):
                arrays[key] = value[:filled]
            elif isinstance(value, dict) and value and all(
                isinstance(v, np.ndarray) and v.shape[:1] == (size,) for v in value.values()
            ):
                arrays[key] = {k: v[:filled] for k, v in value.items()}
            elif key in BUFFER_SCALARS:
                arrays[key] = value
        state["replay_buffer"] = arrays
    return state


def restore_algorithm_state(model, state: dict[str, Any], source: str) -> None:
    """Load :func:`algorithm_state` output into a freshly built ``model`` of the same shape."""
    try:
        for name, sd in state["state_dicts"].items():
            _get_attr(model, name).load_state_dict(sd)
        for name, tensor in state["tensors"].items():
            target = _get_attr(model, name)
            with torch.no_grad():
                target.data.copy_(tensor)
        for key, value in state["counters"].items():
            setattr(model, key, value)
        if "extra" in state and hasattr(model, "load_extra_checkpoint_state"):
            model.load_extra_checkpoint_state(state["extra"])
        buffer = getattr(model, "replay_buffer", None)
        if "replay_buffer" in state and buffer is not None:
            for key, value in state["replay_buffer"].items():
                current = getattr(buffer, key, None)
                if isinstance(value, dict):
                    for sub, rows in value.items():
                        _fill_rows(current[sub], rows, f"{key}.{sub}")
                elif isinstance(value, np.ndarray):
                    _fill_rows(current, value, key)
                else:
                    setattr(buffer, key, value)
    except (RuntimeError, KeyError, ValueError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{source} does not fit this agent's networks: {first}") from None


def _fill_rows(target: np.ndarray, rows: np.ndarray, name: str) -> None:
    if not isinstance(target, np.ndarray) or target.shape[1:] != rows.shape[1:] or len(rows) > len(target):
        raise ValueError(f"replay buffer {name} has shape {rows.shape}, which does not fit {getattr(target, 'shape', None)}")
    target[: len(rows)] = rows
