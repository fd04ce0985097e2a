"""Flip-flop accuracy against network size, SOFO against BPTT + Adam at equal iterations
(the paper's Fig. 3C–D question: how does performance depend on the number of units?).

Protocol (the same for both optimizers; every run through `nd.fit`):

1. *Sweep* at the task's default size (N = 64 at the CPU size), seed 0: the step size over
   `GRIDS` (3 values each around the task's default; SOFO's damping and K stay the task's
   defaults), `--iters` iterations; the best final percent of correct bit-steps wins.
2. *Sizes:* the best setting of each optimizer at every N in `--sizes` on `--seeds` seeds,
   `--iters` iterations each (equal iterations; a SOFO iteration costs more wall clock — the
   seconds are reported).

Reported: the task's own metric (`percent_correct`, bit-steps within tolerance on the
evaluation trials) and `percent_trials_correct` (trials with every bit-step correct), median
and range over seeds, and the training seconds. Figure: accuracy against N per optimizer.

    python benchmarks/flipflop_size_sweep.py                # N in {8, 16, 32, 64}, 3 seeds
    python benchmarks/flipflop_size_sweep.py --quick --out /tmp/ff   # smoke test (tests use it)

Writes `benchmarks/results/flipflop_size_sweep.md`, `.json` and `.png` (or `--out PREFIX`).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import jax.random as jr

import neurodyn as nd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, median_range_figure  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
GRIDS = {"sofo": [0.03, 0.1, 0.3], "adam": [1e-3, 3e-3, 1e-2]}
METRIC = "percent_correct"


def train(optimizer: str, lr: float, n_neurons: int, seed: int, iters: int, overrides) -> dict:
    task = nd.tasks.get("flipflop", n_neurons=n_neurons)
    hp = {**task.hyperparameters(optimizer), **overrides, "learning_rate": lr}
    opt = nd.optim.from_config(optimizer, **{**hp, "n_iters": iters})
    model = task.default_model(key=jr.fold_in(jr.PRNGKey(seed), 0))
    t0 = time.perf_counter()
    error, metrics, seconds = None, {}, math.nan
    try:
        res = nd.fit(
            model,
            task,
            opt,
            n_iters=iters,
            batch_size=hp["batch_size"],
            key=jr.PRNGKey(seed),
            progress=False,
        )
        metrics = res.final_metrics
        seconds = float(res.history["wall_time"].values[-1])
    except nd.training.FitError as err:
        error = str(err)[:200]
    return {
        "optimizer": optimizer,
        "learning_rate": lr,
        "n_neurons": n_neurons,
        "seed": seed,
        "iterations": iters,
        METRIC: float(metrics.get(METRIC, math.nan)),
        "percent_trials_correct": float(metrics.get("percent_trials_correct", math.nan)),
        "train_seconds": seconds,
        "seconds": time.perf_counter() - t0,
        "error": error,
    }


def _score(rec) -> float:
    value = rec[METRIC]
    return value if math.isfinite(value) else -math.inf


def summarise(runs: list[dict]) -> list[dict]:
    out = []
    for opt in GRIDS:
        for n in sorted({r["n_neurons"] for r in runs}):
            rows = [r for r in runs if r["optimizer"] == opt and r["n_neurons"] == n]
            rows = [r for r in rows if r["stage"] == "size"] or rows
            if not rows:
                continue
            values = [_score(r) for r in rows]
            out.append(
                {
                    "optimizer": opt,
                    "n_neurons": n,
                    "learning_rate": rows[0]["learning_rate"],
                    "n_seeds": len(rows),
                    "median": statistics.median(values),
                    "min": min(values),
                    "max": max(values),
                    "n_diverged": sum(not math.isfinite(v) for v in values),
                    "train_seconds": statistics.median(
                        [r["train_seconds"] for r in rows if math.isfinite(r["train_seconds"])]
                        or [math.nan]
                    ),
                }
            )
    return out


def _fmt(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else "diverged"


def table(summary, runs, meta) -> str:
    lines = [
        "# Flip-flop accuracy against network size (SOFO vs BPTT + Adam, equal iterations)",
        "",
        f"Machine: {meta['machine']}. {meta['iters']} iterations per run; step size swept at "
        f"N = {meta['sweep_size']} on seed 0 ({meta['grids']}), the best used at every N. "
        f"Command: `{meta['command']}`.",
        "",
        "| N | optimizer | step size | seeds | percent of bit-steps correct (median [min, max]) "
        "| training s (median) |",
        "|---:|---|---:|---:|---|---:|",
    ]
    for s in sorted(summary, key=lambda s: (s["n_neurons"], s["optimizer"])):
        lines.append(
            f"| {s['n_neurons']} | {s['optimizer']} | {s['learning_rate']:g} | {s['n_seeds']} | "
            f"{s['median']:.2f} [{_fmt(s['min'])}, {s['max']:.2f}]"
            + (f", {s['n_diverged']} diverged" if s["n_diverged"] else "")
            + f" | {s['train_seconds']:.0f} |"
        )
    lines += [
        "",
        "Every run:",
        "",
        "| stage | optimizer | step size | N | seed | percent correct | trials correct (%) "
        "| training s | error |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['stage']} | {r['optimizer']} | {r['learning_rate']:g} | {r['n_neurons']} | "
            f"{r['seed']} | {r[METRIC]:.2f} | {r['percent_trials_correct']:.1f} | "
            f"{r['train_seconds']:.1f} | {r['error'] or ''} |"
        )
    return "\n".join(lines) + "\n"


def figure(summary, path: Path) -> None:
    median_range_figure(
        {opt: [s for s in summary if s["optimizer"] == opt] for opt in GRIDS},
        path,
        x="n_neurons",
        xlabel="units N",
        ylabel="bit-steps correct (%)",
        title="3-bit flip-flop, equal iterations (diverged runs left out of the bars)",
        log_base=2,
        hlines=((99, "grey", "success level"),),
        figsize=(5, 3.6),
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=1000)
    parser.add_argument("--out", default=str(RESULTS / "flipflop_size_sweep"))
    parser.add_argument("--quick", action="store_true", help="smoke test: 2 tiny sizes, 5 it")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.iters < 1 or min(args.sizes) < 1:
        parser.error("--seeds, --iters and --sizes must be >= 1")
    overrides: dict = {}
    sizes, seeds, iters = args.sizes, args.seeds, args.iters
    if args.quick:
        sizes, seeds, iters = [4, 8], 1, 5
        overrides = {"batch_size": 4, "n_tangents": 4}
        for opt in GRIDS:
            GRIDS[opt] = GRIDS[opt][:2]
    sweep_size = max(sizes)
    runs: list[dict] = []

    def go(opt, lr, n, seed, stage):
        mine = {k: v for k, v in overrides.items() if opt == "sofo" or k == "batch_size"}
        rec = train(opt, lr, n, seed, iters, mine) | {"stage": stage}
        runs.append(rec)
        print(
            f"{stage:5s} {opt:5s} lr {lr:<6g} N {n:3d} seed {seed}: {METRIC} {rec[METRIC]:.2f} "
            f"({rec['train_seconds']:.0f} s)",
            flush=True,
        )
        return rec

    best = {}
    for opt, grid in GRIDS.items():
        tried = [go(opt, lr, sweep_size, 0, "sweep") for lr in grid]
        best[opt] = max(tried, key=_score)["learning_rate"]
    for opt, lr in best.items():
        for n in sizes:
            for seed in range(seeds):
                done = [
                    r
                    for r in runs
                    if r["stage"] == "sweep"
                    and r["optimizer"] == opt
                    and r["learning_rate"] == lr
                    and r["n_neurons"] == n
                    and r["seed"] == seed
                ]
                rec = dict(done[0]) if done else go(opt, lr, n, seed, "size")
                if done:
                    rec["stage"] = "size"
                    runs.append(rec)
    summary = summarise(runs)
    command = "python benchmarks/flipflop_size_sweep.py" + (" " + " ".join(argv) if argv else "")
    meta = {
        "machine": machine(),
        "iters": iters,
        "sweep_size": sweep_size,
        "grids": "; ".join(f"{k}: {', '.join(f'{v:g}' for v in g)}" for k, g in GRIDS.items()),
        "command": command,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(
        json.dumps({"meta": meta, "summary": summary, "runs": runs}, indent=1) + "\n"
    )
    text = table(summary, runs, meta)
    out.with_suffix(".md").write_text(text)
    figure(summary, out.with_suffix(".png"))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
