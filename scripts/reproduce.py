#!/usr/bin/env python
"""Run one experiment end to end and write ``results/NAME/`` (README.md, metrics.json, plots).

    python scripts/reproduce.py --list
    python scripts/reproduce.py noisy_tv                 # the full experiment -> results/noisy_tv/
    python scripts/reproduce.py noisy_tv --quick         # toy budget, into a temporary folder (CI)
    python scripts/reproduce.py noisy_tv --resume        # after an interruption: reuse finished runs

Seeds run in parallel on the machine's cores (``--workers``), one torch thread each. Each
finished run is also saved as ``runs/<label>_seed<N>.json`` in the output folder; ``--resume``
reuses those whose settings (label, agent, env, seed, steps, kwargs, hyperparameters) are
unchanged, so an interrupted experiment continues where it stopped.
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing as mp
import os
import pkgutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from experiments.common import REPO, ExperimentResult, write_metrics  # noqa: E402


def available() -> dict[str, str]:
    out = {}
    for info in pkgutil.iter_modules([str(HERE / "experiments")]):
        if info.name == "common":
            continue
        module = importlib.import_module(f"experiments.{info.name}")
        out[info.name] = getattr(module, "DESCRIPTION", "")
    return out


def _run_file(out_dir: Path, spec) -> Path:
    from experiments.common import slug

    return Path(out_dir) / "runs" / f"{slug(spec.label)}_seed{spec.seed}.json"


def _same_settings(run: dict, spec) -> bool:
    return all(run.get(k) == getattr(spec, k) for k in ("label", "agent", "env", "seed", "total_steps", "env_kwargs",
                                                         "hyperparams"))


def _worker(args):
    name, spec, out_dir = args
    import torch

    torch.set_num_threads(1)
    module = importlib.import_module(f"experiments.{name}")
    start = time.perf_counter()
    try:
        metrics = module.run(spec, Path(out_dir))
        error = None
    except Exception as exc:  # one failed run is reported, not fatal to the others
        metrics, error = {}, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"
    run = {
        "label": spec.label, "agent": spec.agent, "env": spec.env, "seed": spec.seed,
        "total_steps": spec.total_steps, "env_kwargs": spec.env_kwargs, "hyperparams": spec.hyperparams,
        "wall_time_s": round(time.perf_counter() - start, 2), "metrics": metrics, "error": error,
    }
    if error is None:  # keep finished runs, so that --resume can reuse them
        path = _run_file(Path(out_dir), spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(run, default=float))
        os.replace(tmp, path)
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", help="experiment name (see --list)")
    parser.add_argument("--quick", action="store_true", help="toy budget, written to a temporary folder")
    parser.add_argument("--out", help="output folder (default results/NAME, or a temporary folder with --quick)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="parallel runs (default: cores)")
    parser.add_argument("--resume", action="store_true", help="reuse finished runs saved in the output folder")
    parser.add_argument("--list", action="store_true", help="list the experiments")
    args = parser.parse_args(argv)
    experiments = available()
    if args.list or not args.name:
        for name, description in experiments.items():
            print(f"{name:<16} {description}")
        return 0 if args.list else 2
    if args.name not in experiments:
        from agents.errors import closest

        guess = closest(args.name, experiments)
        print(f"reproduce.py: error: unknown experiment {args.name!r}"
              f"{f'; did you mean {guess!r}?' if guess else ''} (see --list)", file=sys.stderr)
        return 2
    module = importlib.import_module(f"experiments.{args.name}")
    if args.out:
        out_dir = Path(args.out)
    elif args.quick:
        out_dir = Path(tempfile.mkdtemp(prefix=f"mirabilis-{args.name}-quick-"))
    else:
        out_dir = REPO / "results" / args.name
    out_dir.mkdir(parents=True, exist_ok=True)
    sb3_logs = None  # SB3's learn() without a logger of its own makes an empty SB3-<time> folder in the temp dir
    if "SB3_LOGDIR" not in os.environ:  # every time; put them in one that goes when this command ends
        sb3_logs = tempfile.TemporaryDirectory(prefix="mirabilis-sb3-")
        os.environ["SB3_LOGDIR"] = sb3_logs.name
    specs = module.plan(args.quick)
    command = "python scripts/reproduce.py " + args.name + (" --quick" if args.quick else "")
    print(f"{args.name}: {len(specs)} runs on {args.workers} workers -> {out_dir}", flush=True)

    from tqdm import tqdm

    start = time.perf_counter()
    runs, jobs = [], []
    for spec in specs:
        cached = _run_file(out_dir, spec)
        if args.resume and cached.exists():
            run = json.loads(cached.read_text())
            if _same_settings(run, spec):
                runs.append(run)
                continue
        jobs.append((args.name, spec, str(out_dir)))
    reused = len(runs)
    if reused:
        print(f"reusing {reused} finished runs from {out_dir / 'runs'}", flush=True)
    if args.workers > 1:
        with mp.get_context("spawn").Pool(args.workers, maxtasksperchild=1) as pool:
            for run in tqdm(pool.imap_unordered(_worker, jobs), total=len(jobs), desc=args.name, unit="run"):
                runs.append(run)
    else:
        for job in tqdm(jobs, desc=args.name, unit="run"):
            runs.append(_worker(job))
    order = {(s.label, s.seed): i for i, s in enumerate(specs)}
    runs.sort(key=lambda r: order[(r["label"], r["seed"])])
    failed = [r for r in runs if r["error"]]
    for run in failed:
        print(f"run {run['label']} seed {run['seed']} failed: {run['error']}", file=sys.stderr)
    result = ExperimentResult(args.name, command, args.quick, time.perf_counter() - start, runs, reused)
    write_metrics(result, out_dir)
    module.report(result, out_dir)
    print(f"wrote {out_dir / 'README.md'} and {out_dir / 'metrics.json'} in {result.wall_time_s:.0f} s", flush=True)
    if sb3_logs is not None:
        sb3_logs.cleanup()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
