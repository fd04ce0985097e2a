"""SOFO step-size and damping sweep per task at the CPU size, trained through `nd.fit`.

For each task, starting from the task's default SOFO hyperparameters
(`task.hyperparameters("sofo")`, `n_iters` scaled by `--iters-scale`):

1. η sweep: every η of the task's grid (≥ 4 values around the reference η converted to our
   GGN convention, see `GRIDS` and docs/concepts/sofo-conventions.md) with the first damping
   of the grid, seed 0;
2. damping sweep: the best η of step 1 with the other damping value(s), seed 0;
3. seeds: the best (η, λ) of steps 1–2 with the further seeds (`--seeds`, 3 in all).

"Best" is the task's success metric (`task.success_criterion()`) at the end of the run,
among runs that did not blow up. A run *blew up* when nd.fit raised a `FitError`, when a step
was rejected (non-finite loss or update, retried by nd.fit with more damping), or when its
training loss rose above `BLOWUP_RATIO` (10) × its first loss. Each run prints a line; the
table (Markdown) and every run's record (JSON) go to `benchmarks/results/sofo_sweep.md` and
`.json` (merged with the tasks already there, so tasks can be run one at a time).

    python benchmarks/sofo_sweep.py --tasks flipflop-reservoir digits flipflop oneshot lorenz
    python benchmarks/sofo_sweep.py --tasks kalman --iters-scale 0.5
    python benchmarks/sofo_sweep.py --quick          # a smoke test: 2 tiny runs (tests use it)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import jax.random as jr
import numpy as np

import neurodyn as nd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BLOWUP_RATIO = 10.0

# η grid (around the converted reference η: docs/concepts/sofo-conventions.md) and damping
# values per task; the first damping is the one the η sweep uses.
GRIDS = {
    "lorenz": {"lrs": [0.01, 0.03, 0.1, 0.2], "dampings": [1e-5, 1e-3]},
    "kalman": {"lrs": [0.025, 0.05, 0.1, 0.3], "dampings": [1e-5, 1e-3]},
    "flipflop": {"lrs": [0.03, 0.1, 0.2, 0.3], "dampings": [1e-5, 1e-4]},
    "flipflop-reservoir": {"lrs": [0.03, 0.1, 0.3, 1.0], "dampings": [1e-5, 1e-3]},
    "oneshot": {"lrs": [0.02, 0.05, 0.08, 0.15], "dampings": [1e-5, 1e-3]},
    "digits": {"lrs": [0.03, 0.1, 0.3, 1.0], "dampings": [1e-3, 1e-5]},
}


def run_one(task, hp, *, lr, damping, seed):
    """Train once through `nd.fit`; returns the run's record."""
    metric, threshold, direction = task.success_criterion()
    hp = {**hp, "learning_rate": lr, "damping": damping}
    opt = nd.optim.from_config("sofo", **hp)
    model = task.default_model(key=jr.fold_in(jr.PRNGKey(seed), 0))
    t0 = time.perf_counter()
    error = None
    try:
        res = nd.fit(
            model,
            task,
            opt,
            n_iters=hp["n_iters"],
            batch_size=hp["batch_size"],
            key=jr.PRNGKey(seed),
            progress=False,
        )
        hist = res.history
        losses = np.asarray(hist["loss"].values, float)
        retries = int(np.sum(hist["retries"].values))
        final = res.final_metrics.get(metric, math.nan)
    except nd.training.FitError as err:
        losses, retries, final, error = np.array([math.inf]), -1, math.nan, str(err)[:200]
    seconds = time.perf_counter() - t0
    first = losses[0] if losses.size else math.nan
    finite = losses[np.isfinite(losses)]
    peak = float(finite.max()) if finite.size else math.inf
    blew_up = bool(
        error is not None
        or retries > 0
        or not np.all(np.isfinite(losses))
        or peak > BLOWUP_RATIO * first
    )
    solved = math.isfinite(final) and (
        final >= threshold if direction == "above" else final <= threshold
    )
    return {
        "learning_rate": lr,
        "damping": damping,
        "seed": seed,
        "n_iters": hp["n_iters"],
        "final": final,
        "solved": bool(solved),
        "blew_up": blew_up,
        "peak_loss_ratio": peak / first if first and math.isfinite(first) else math.nan,
        "final_loss": float(losses[-1]),
        "retries": retries,
        "error": error,
        "seconds": seconds,
    }


def _score(rec, direction):
    """Sort key: stable runs first, then the best final metric."""
    value = rec["final"]
    if rec["blew_up"] or not math.isfinite(value):
        return (1, 0.0)
    return (0, -value if direction == "above" else value)


def sweep_task(name, *, lrs, dampings, seeds, iters_scale, log, overrides=None):
    task = nd.tasks.get(name)
    metric, threshold, direction = task.success_criterion()
    hp = dict(task.hyperparameters("sofo"))
    hp.update(overrides or {})
    hp["n_iters"] = max(1, int(round(hp["n_iters"] * iters_scale)))
    runs = []

    def go(lr, damping, seed, stage):
        rec = run_one(task, hp, lr=lr, damping=damping, seed=seed)
        rec["stage"] = stage
        runs.append(rec)
        log(
            f"  {name} {stage:7s} η {lr:<6g} λ {damping:<6g} seed {seed}: {metric} "
            f"{rec['final']:.4g}{' BLEW UP' if rec['blew_up'] else ''} "
            f"(peak loss ×{rec['peak_loss_ratio']:.3g}, {rec['seconds']:.0f} s)"
        )
        return rec

    for lr in lrs:
        go(lr, dampings[0], 0, "eta")
    best = min(runs, key=lambda r: _score(r, direction))
    for damping in dampings[1:]:
        go(best["learning_rate"], damping, 0, "damping")
    best = min(runs, key=lambda r: _score(r, direction))
    for seed in range(1, seeds):
        go(best["learning_rate"], best["damping"], seed, "seeds")
    at_best = [
        r
        for r in runs
        if r["learning_rate"] == best["learning_rate"] and r["damping"] == best["damping"]
    ]
    return {
        "task": name,
        "criterion": [metric, threshold, direction],
        "defaults": {k: v for k, v in task.hyperparameters("sofo").items()},
        "hyperparameters": hp,
        "best": {"learning_rate": best["learning_rate"], "damping": best["damping"]},
        "best_seeds_solved": f"{sum(r['solved'] and not r['blew_up'] for r in at_best)}"
        f"/{len(at_best)}",
        "runs": runs,
    }


def seeds_only(name, *, lr, damping, seeds, iters_scale, overrides, log):
    """One (η, λ) on the given seeds, recorded like a sweep whose best is that setting."""
    task = nd.tasks.get(name)
    metric, threshold, direction = task.success_criterion()
    hp = {**task.hyperparameters("sofo"), **(overrides or {})}
    hp["n_iters"] = max(1, int(round(hp["n_iters"] * iters_scale)))
    runs = []
    for seed in seeds:
        rec = run_one(task, hp, lr=lr, damping=damping, seed=seed)
        rec["stage"] = "seeds"
        runs.append(rec)
        log(
            f"  {name} seeds   η {lr:<6g} λ {damping:<6g} seed {seed}: {metric} "
            f"{rec['final']:.4g}{' BLEW UP' if rec['blew_up'] else ''} "
            f"(peak loss ×{rec['peak_loss_ratio']:.3g}, {rec['seconds']:.0f} s)"
        )
    return {
        "task": name,
        "criterion": [metric, threshold, direction],
        "defaults": dict(task.hyperparameters("sofo")),
        "hyperparameters": hp,
        "best": {"learning_rate": lr, "damping": damping},
        "best_seeds_solved": f"{sum(r['solved'] and not r['blew_up'] for r in runs)}/{len(runs)}",
        "runs": runs,
    }


def merge_results(saved: list[dict]) -> dict:
    """Pool the runs of several result files (e.g. seeds run in parallel) task by task.

    A task's best setting is its last file's; the seeds solved are counted over every pooled
    run at that setting."""
    by_task: dict[str, dict] = {}
    commands: dict[str, list] = {}
    for blob in saved:
        for res in blob["results"]:
            name = res["task"]
            commands.setdefault(name, []).append(res.get("command", ""))
            if name in by_task:
                old = by_task[name]
                res = {**res, "runs": old["runs"] + res["runs"]}
            by_task[name] = res
    for name, res in by_task.items():
        best = res["best"]
        at_best = [
            r
            for r in res["runs"]
            if r["learning_rate"] == best["learning_rate"] and r["damping"] == best["damping"]
        ]
        solved = sum(r["solved"] and not r["blew_up"] for r in at_best)
        res["best_seeds_solved"] = f"{solved}/{len(at_best)}"
        res["command"] = " ; ".join(dict.fromkeys(c for c in commands[name] if c))
    machines = list(dict.fromkeys(b["machine"] for b in saved))
    return {"machine": " / ".join(machines), "results": list(by_task.values())}


def table(results, machine_text) -> str:
    lines = [
        "# SOFO step-size sweep (CPU size)",
        "",
        f"Machine: {machine_text}. Script: `benchmarks/sofo_sweep.py` (trains through "
        "`nd.fit`). 'blew up': a FitError, a rejected step, or a training loss above "
        f"{BLOWUP_RATIO:g}× the first loss.",
        "",
        "Commands:",
        "",
        *(f"- {r['task']}: `{r.get('command', '')}`" for r in results),
        "",
        "| task | iterations | success level | stage | η | λ | seed | final metric | solved "
        "| blew up (peak loss / first) | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        metric, threshold, direction = res["criterion"]
        level = f"{metric} {'≥' if direction == 'above' else '≤'} {threshold:g}"
        for r in res["runs"]:
            blew = f"yes ({r['peak_loss_ratio']:.3g})" if r["blew_up"] else "no"
            lines.append(
                f"| {res['task']} | {r['n_iters']} | {level} | {r['stage']} | "
                f"{r['learning_rate']:g} | {r['damping']:g} | {r['seed']} | {r['final']:.4g} | "
                f"{'yes' if r['solved'] else 'no'} | {blew} | {r['seconds']:.0f} |"
            )
    lines += ["", "Best setting per task (seeds solved at it, without blowing up):", ""]
    for res in results:
        b = res["best"]
        lines.append(
            f"- {res['task']}: η = {b['learning_rate']:g}, λ = {b['damping']:g} — "
            f"{res['best_seeds_solved']} seeds solved"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(GRIDS), choices=list(GRIDS))
    parser.add_argument("--lrs", type=float, nargs="+", default=None, help="override the η grid")
    parser.add_argument("--dampings", type=float, nargs="+", default=None)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--iters-scale", type=float, default=1.0)
    parser.add_argument(
        "--n-iters", type=int, default=None, help="iterations per run (overrides the default)"
    )
    parser.add_argument(
        "--only-seeds",
        type=int,
        nargs="+",
        default=None,
        help="no sweep: run the first η and λ given on these seeds (to run seeds in parallel)",
    )
    parser.add_argument("--out", default=str(RESULTS / "sofo_sweep"), help="output prefix")
    parser.add_argument(
        "--merge",
        nargs="+",
        default=None,
        metavar="JSON",
        help="merge these result files (runs of the same task are pooled) into --out and stop",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: digits, 2 η, 1 λ, 1 seed, 3 iterations"
    )
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.iters_scale <= 0:
        parser.error("--seeds must be >= 1 and --iters-scale > 0")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.merge:
        merged = merge_results([json.loads(Path(f).read_text()) for f in args.merge])
        text = table(merged["results"], merged["machine"])
        out.with_suffix(".md").write_text(text)
        out.with_suffix(".json").write_text(json.dumps(merged, default=str, indent=1) + "\n")
        print(text)
        return 0
    results = []
    if out.with_suffix(".json").exists() and not args.quick:
        results = json.loads(out.with_suffix(".json").read_text())["results"]
    tasks = ["digits"] if args.quick else args.tasks
    command = "python benchmarks/sofo_sweep.py" + (" " + " ".join(argv) if argv else "")
    for name in tasks:
        grid = GRIDS[name]
        lrs = args.lrs or grid["lrs"]
        dampings = args.dampings or grid["dampings"]
        seeds, scale = args.seeds, args.iters_scale
        overrides = None if args.n_iters is None else {"n_iters": args.n_iters}
        if args.quick:
            lrs, dampings, seeds, scale = lrs[:2], dampings[:1], 1, 1.0
            overrides = {"n_iters": 3, "batch_size": 16, "n_tangents": 8}
        print(f"== {name}", flush=True)
        if args.only_seeds is not None:
            res = seeds_only(
                name,
                lr=lrs[0],
                damping=dampings[0],
                seeds=args.only_seeds,
                iters_scale=scale,
                overrides=overrides,
                log=lambda s: print(s, flush=True),
            )
        else:
            res = sweep_task(
                name,
                lrs=lrs,
                dampings=dampings,
                seeds=seeds,
                iters_scale=scale,
                log=lambda s: print(s, flush=True),
                overrides=overrides,
            )
        res["command"] = command
        results = [r for r in results if r["task"] != name] + [res]
        text = table(results, machine())
        out.with_suffix(".md").write_text(text)
        out.with_suffix(".json").write_text(
            json.dumps({"machine": machine(), "results": results}, default=str, indent=1) + "\n"
        )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
