"""What every experiment shares: run specs, parallel seeds, metrics.json, tables and plots.

An experiment module ``scripts/experiments/<name>.py`` defines

* ``DESCRIPTION`` — one line;
* ``plan(quick: bool) -> list[RunSpec]`` — every (label, seed) run, at toy budget when ``quick``;
* ``run(spec: RunSpec, out_dir: Path) -> dict[str, float | list | None]`` — train and evaluate
  one run (in a worker process, one torch thread) and return its metrics;
* ``report(result: ExperimentResult, out_dir: Path) -> None`` — write ``README.md`` (table,
  plots, GIF) from the collected runs.

``scripts/reproduce.py`` runs the plan on all cores, writes ``metrics.json`` (the contract in
shared DESIGN.md) and calls ``report``. Numbers in ``results/`` come only from here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class RunSpec:
    label: str
    agent: str
    env: str
    seed: int
    total_steps: int
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    hyperparams: dict[str, Any] = dataclasses.field(default_factory=dict)
    options: dict[str, Any] = dataclasses.field(default_factory=dict)  # experiment-specific knobs


@dataclasses.dataclass
class ExperimentResult:
    experiment: str
    command: str
    quick: bool
    wall_time_s: float
    runs: list[dict[str, Any]]
    reused_runs: int = 0  # runs taken from an earlier, interrupted invocation (--resume)

    def labels(self) -> list[str]:
        seen = []
        for run in self.runs:
            if run["label"] not in seen:
                seen.append(run["label"])
        return seen

    def values(self, label: str, metric: str) -> list[float]:
        return [r["metrics"].get(metric) for r in self.runs if r["label"] == label
                and r["metrics"].get(metric) is not None]


def slug(label: str) -> str:
    """A file-name-safe form of a run label."""
    import re

    return re.sub(r"[^A-Za-z0-9]+", "_", label).strip("_")


def git_commit() -> str:
    """The checkout's commit (``-dirty`` with uncommitted changes); outside a checkout,
    ``$MIRABILIS_COMMIT`` (set it when running a copy of a commit elsewhere)."""
    if os.environ.get("MIRABILIS_COMMIT"):
        return os.environ["MIRABILIS_COMMIT"]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()
        return sha.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def write_metrics(result: ExperimentResult, out_dir: Path) -> Path:
    data = {
        "experiment": result.experiment,
        "commit": git_commit(),
        "command": result.command,
        "quick": result.quick,
        "wall_time_s": round(result.wall_time_s, 1),
        "reused_runs": result.reused_runs,
        "machine": machine(),
        "runs": result.runs,
    }
    path = out_dir / "metrics.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=float) + "\n")
    os.replace(tmp, path)
    return path


def mean_std(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return float("nan"), float("nan")
    m = sum(values) / len(values)
    var = sum((v - m) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    return m, math.sqrt(var)


def fmt(mean: float, std: float, digits: int = 2) -> str:
    if math.isnan(mean):
        return "—"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def header_lines(result: ExperimentResult, title: str) -> list[str]:
    lines = [f"# {title}", ""]
    if result.quick:
        lines += ["> **Quick mode (toy budget, for CI): these numbers say nothing about the claim.**", ""]
    run_minutes = sum(float(r.get("wall_time_s") or 0.0) for r in result.runs) / 60
    reused = (f"; {result.reused_runs} of the {len(result.runs)} runs were finished by an earlier, interrupted "
              f"invocation and reused with `--resume`, so the time covers only the rest; the runs' own wall times "
              f"add up to {run_minutes:.0f} min") if result.reused_runs else ""
    lines += [
        f"Regenerate with `{result.command}` "
        f"({result.wall_time_s / 60:.1f} min on {machine()}{reused}; commit `{git_commit()[:12]}`).",
        "Every number below comes from `metrics.json` in this folder, written by that command.",
        "",
    ]
    return lines


def plot_learning_curves(result: ExperimentResult, path: Path, values_key: str, ylabel: str,
                         title: str | None = None, ylim: tuple[float, float] | None = None) -> bool:
    """One line per label: the mean over seeds of ``metrics[values_key]`` at ``metrics["curve_steps"]``,
    with a band of ± one standard deviation. Returns whether anything was drawn (and saved)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    drawn = False
    for label in result.labels():
        curves = [r["metrics"] for r in result.runs if r["label"] == label and r["metrics"].get(values_key)]
        if not curves:
            continue
        n = min(len(c[values_key]) for c in curves)
        steps = np.asarray(curves[0]["curve_steps"][:n])
        values = np.asarray([c[values_key][:n] for c in curves], dtype=float)
        mean, std = values.mean(0), values.std(0)
        ax.plot(steps, mean, label=f"{label} ({len(curves)} seeds)")
        ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
        drawn = True
    if drawn:
        ax.set_xlabel("env steps")
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title)
        if ylim:
            ax.set_ylim(*ylim)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return drawn


def success_curve(total: int, n: int = 10):
    """An SB3 callback recording the training success rate (SB3's last-100-episode ``ep_success_buffer``)
    at ``n`` evenly spaced points of a ``total``-step run, in ``.points`` (``None`` before any episode ended)."""
    from stable_baselines3.common.callbacks import BaseCallback

    class SuccessCurve(BaseCallback):
        def __init__(self):
            super().__init__()
            self.marks = [round(total * (i + 1) / n) for i in range(n)]
            self.points: list[float | None] = []

        def _on_step(self) -> bool:
            while self.marks and self.num_timesteps >= self.marks[0]:
                self.marks.pop(0)
                buf = list(self.model.ep_success_buffer)
                self.points.append(round(float(np.mean(buf)), 4) if buf else None)
            return True

    return SuccessCurve()
