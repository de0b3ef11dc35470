"""The one exception type the command-line tools turn into a one-line message and exit status 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UsageError(Exception):
    """Bad user input (unknown id, bad hyperparameter, bad checkpoint...): shown as one line."""


class CheckpointError(UsageError):
    """A checkpoint that is missing, truncated, corrupt, or belongs to another agent/env."""


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The valid choice closest to ``name`` (case-insensitive), or ``None``."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.5)
    return lowered[match[0]] if match else None


def unknown(kind: str, name: str, choices: Iterable[str], how_to_list: str) -> UsageError:
    """``UsageError`` for an unknown name, suggesting the closest valid one."""
    guess = closest(name, choices)
    hint = f"; did you mean {guess!r}?" if guess else ""
    return UsageError(f"unknown {kind} {name!r}{hint} ({how_to_list})")
