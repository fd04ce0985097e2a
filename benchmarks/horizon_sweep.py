"""Horizon sweep: the Kalman task trained at T ∈ {100, …, 5000} by SOFO, BPTT + Adam,
checkpointed BPTT + Adam and first-order SOFO at an equal wall-clock budget per T (the
paper's long-horizon claim), then the memory wall of each method.

**Protocol** (the same for every method; all runs through `nd.fit` with `time_budget`,
compilation excluded from the clock):

1. *Sweep* at each T on seed 0: every setting of the method's grid (`GRIDS`: 4 runs each —
   SOFO η × damping, Adam learning rate × gradient clipping, first-order SOFO η) for the
   budget; the best normalised MSE (below) wins. The step sizes go first, by the rule every
   benchmark shares (`_common.sweep_step_size`: when the best is at an edge of those tried,
   the sweep goes on past it, ×3 or ÷3, up to 2 more runs, while that improves); then the
   grid's damping or clipping settings at the best step size.
2. *Seeds:* the best setting again on seeds 1 and 2 (3 seeds in all).
3. *Checkpointed BPTT* (`adam(remat=True)`: `jax.checkpoint` over chunks of ⌈√T⌉ steps of
   the scan, the memory-lean option) computes Adam's exact gradient, so it takes Adam's best
   setting at that T without a sweep of its own and runs its 3 seeds.

**Reported** per T and method: the test MSE on the same fresh trials for every method
(`--eval-trials` trials at that T, one key), normalised as
(MSE − oracle) / (random-parameter filter − oracle): 0 is the Kalman filter that knows the
contexts, 1 the filter with random parameters (`random_filter_mse`, the reference's
anchor; docs/api/tasks.md); median and range over seeds, iterations done, and the step's
compiled memory (XLA's memory analysis of one `nd.fit` iteration: temporaries + arguments +
outputs, batch sampling included).

**Memory wall** (`--wall`): for SOFO, BPTT and checkpointed BPTT at the CPU size of the
task (N = 100, B = K = 32), the step's compiled memory is measured at two horizons, fitted
as a + b·T, and the longest T with a + b·T ≤ `--wall-gib` (24 GiB) is checked by compiling
the step there (nothing is allocated); seconds per iteration are measured at T = 1000 on
this machine and scaled by T (the step is a loop over T), so that column is extrapolated.

Sizes: `--size cpu` (default) reduces the network to N = 32 units, B = 16 trials and
K = 16 tangents so that T = 5000 does a few hundred iterations in the budget on one core;
`--size paper` is the paper's (N = 100, B = 256, K = 128) with the paper's step sizes and
no sweep (one setting per method, `PAPER`), for a GPU.

    python benchmarks/horizon_sweep.py --jobs 2           # CPU size, 5 horizons, 3 seeds
    python benchmarks/horizon_sweep.py --size paper --horizons 5000 --seeds 1 --budget 60
    python benchmarks/horizon_sweep.py --wall             # the memory wall only
    python benchmarks/horizon_sweep.py --merge-wall W.json  # a wall measured apart, redrawn
    python benchmarks/horizon_sweep.py --quick --out /tmp/hs   # smoke test (tests use it)

Writes `benchmarks/results/horizon_sweep.md`, `.json` and `.png` (or `--out PREFIX`).
Each horizon runs in a process of its own, `--jobs J` of them at a time, each pinned to one
core (`taskset`); a horizon's runs are kept in `OUT.T<T>.<digest of the arguments>.json` as
soon as it ends, so the same command run again after a stop (a crash, a kill) starts from the
horizons that had not finished.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, make_step, median_range_figure, sweep_step_size  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
HORIZONS = (100, 500, 1000, 2000, 5000)
GiB = 2**30

# Each method's sweep: the same number of runs (4) for every method.
GRIDS = {
    "sofo": [
        {"learning_rate": 0.03, "damping": 1e-5},
        {"learning_rate": 0.1, "damping": 1e-5},
        {"learning_rate": 0.3, "damping": 1e-5},
        {"learning_rate": "best", "damping": 1e-3},
    ],
    "adam": [
        {"learning_rate": 1e-3, "clip_norm": 1.0},
        {"learning_rate": 3e-3, "clip_norm": 1.0},
        {"learning_rate": 1e-2, "clip_norm": 1.0},
        {"learning_rate": "best", "clip_norm": None},
    ],
    "first-order-sofo": [
        {"learning_rate": 0.01},
        {"learning_rate": 0.03},
        {"learning_rate": 0.1},
        {"learning_rate": 0.3},
    ],
}
# The paper's sizes and step sizes (docs/concepts/sofo-conventions.md: the reference η = 0.1
# is 0.05 in our convention), one setting per method.
PAPER = {
    "sofo": {"learning_rate": 0.05, "damping": 1e-3},
    "adam": {"learning_rate": 1e-3, "clip_norm": 1.0},
    "first-order-sofo": {"learning_rate": 0.1},
}
SIZES = {
    "cpu": {"n_neurons": 32, "batch_size": 16, "n_tangents": 16},
    "paper": {"n_neurons": 100, "batch_size": 256, "n_tangents": 128},
    "quick": {"n_neurons": 8, "batch_size": 4, "n_tangents": 4},
}
METHODS = ("sofo", "adam", "adam-remat", "first-order-sofo")


def optimizer(method: str, setting: dict, size: dict):
    import neurodyn as nd

    if method in ("adam", "adam-remat"):
        return nd.optim.adam(
            setting["learning_rate"],
            clip_norm=setting.get("clip_norm"),
            remat=method == "adam-remat",
        )
    return nd.optim.from_config(method, n_tangents=size["n_tangents"], **setting)


def step_memory(task, model, opt, batch_size: int) -> int:
    """Compiled bytes (temporaries + arguments + outputs) of one `nd.fit` iteration."""
    import equinox as eqx
    import jax.random as jr

    trainable = model.trainable()
    state = opt.init(model, trainable)
    step = make_step(task, opt, batch_size, trainable)
    compiled = eqx.filter_jit(step).lower(model, state, jr.PRNGKey(0)).compile()
    mem = compiled.compiled.memory_analysis()
    return int(mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes)


def train(horizon, method, setting, seed, args, size) -> dict:
    """One run through `nd.fit` for the budget; the record of the run."""
    import jax.random as jr

    import neurodyn as nd

    task = nd.tasks.get("kalman", n_steps=horizon, n_neurons=size["n_neurons"])
    model = task.default_model(key=jr.fold_in(jr.PRNGKey(seed), 0))
    opt = optimizer(method, setting, size)
    t0 = time.perf_counter()
    error = None
    try:
        res = nd.fit(
            model,
            task,
            opt,
            n_iters=args.max_iters,
            batch_size=size["batch_size"],
            key=jr.PRNGKey(seed),
            eval_every=0,
            progress=False,
            time_budget=args.budget,
        )
        iterations = res.iterations
        trained = res.model
        wall = float(res.history["wall_time"].values[-1])
        losses = res.history["loss"].values
        final_loss = float(losses[-1])
    except nd.training.FitError as err:
        iterations, trained, wall, final_loss = 0, None, math.nan, math.nan
        error = str(err)[:200]
    seconds = time.perf_counter() - t0
    metrics = {"mse": math.nan, "oracle_mse": math.nan, "random_filter_mse": math.nan}
    if trained is not None:
        metrics = task.evaluate(trained, key=jr.PRNGKey(1234), n_trials=args.eval_trials)
    span = metrics["random_filter_mse"] - metrics["oracle_mse"]
    normalised = (metrics["mse"] - metrics["oracle_mse"]) / span
    return {
        "T": horizon,
        "method": method,
        "setting": setting,
        "seed": seed,
        "iterations": int(iterations),
        "train_seconds": wall,
        "seconds": seconds,
        "final_loss": final_loss,
        "mse": metrics["mse"],
        "mse_se": metrics.get("mse_se", math.nan),
        "oracle_mse": metrics["oracle_mse"],
        "random_filter_mse": metrics["random_filter_mse"],
        "normalised_mse": normalised if math.isfinite(normalised) else math.inf,
        "error": error,
    }


def _resolve(setting: dict, best: dict | None) -> dict:
    """A grid entry with `"best"` takes the best run's learning rate."""
    out = dict(setting)
    if out.get("learning_rate") == "best":
        out["learning_rate"] = best["learning_rate"]
    return out


def sweep_horizon(horizon, args, log) -> list[dict]:
    """Every method at one horizon: sweep (or the paper's setting), then the seeds."""
    import neurodyn as nd

    size = SIZES[args.size]
    runs: list[dict] = []

    def go(method, setting, seed, stage):
        rec = train(horizon, method, setting, seed, args, size)
        rec["stage"] = stage
        runs.append(rec)
        log(
            f"T={horizon} {method:17s} {stage:6s} seed {seed} {_fmt(setting)}: normalised "
            f"{rec['normalised_mse']:.3f} (MSE {rec['mse']:.4f}), {rec['iterations']} it "
            f"in {rec['train_seconds']:.0f} s"
        )
        return rec

    task = nd.tasks.get("kalman", n_steps=horizon, n_neurons=size["n_neurons"])
    import jax.random as jr

    model = task.default_model(key=jr.PRNGKey(0))
    memory = {}
    for method in METHODS:
        if args.size == "paper" or args.no_sweep:
            source = "adam" if method == "adam-remat" else method
            best = PAPER[source]
        elif method == "adam-remat":
            best = _best(runs, "adam")
        else:
            best = tune(method, lambda setting, stage, m=method: go(m, setting, 0, stage))
        seeds = range(args.seeds)
        if args.size != "paper" and not args.no_sweep and method != "adam-remat":
            seeds = range(1, args.seeds)
        for seed in seeds:
            go(method, best, seed, "seeds")
        memory[method] = step_memory(task, model, optimizer(method, best, size), size["batch_size"])
    for rec in runs:
        rec["step_bytes"] = memory[rec["method"]]
    return runs


def tune(method: str, run) -> dict:
    """The sweep of one method on seed 0 (`run(setting, stage)` trains and returns the record):
    its step sizes by the shared rule (`_common.sweep_step_size`: the grid, then past an edge
    while it improves), then the grid's other settings (damping, clipping) at the best step
    size. Returns the best setting."""
    grid = GRIDS[method]
    rates = [e["learning_rate"] for e in grid if e["learning_rate"] != "best"]
    base = {k: v for k, v in grid[0].items() if k != "learning_rate"}

    def trial(rate):
        rec = run({**base, "learning_rate": rate}, "sweep" if rate in rates else "edge")
        return {"final": rec["normalised_mse"], "learning_rate": rate, "setting": rec["setting"]}

    best, tried = sweep_step_size(trial, rates, "below")
    for entry in grid:
        if entry["learning_rate"] == "best":
            rec = run(_resolve(entry, best["setting"]), "sweep")
            tried.append({"final": rec["normalised_mse"], "setting": rec["setting"]})
    return min(tried, key=lambda r: (not math.isfinite(r["final"]), r["final"]))["setting"]


def _best(runs: list[dict], method: str) -> dict:
    mine = [r for r in runs if r["method"] == method]
    return min(mine, key=lambda r: r["normalised_mse"])["setting"]


def _fmt(setting: dict) -> str:
    return ", ".join(
        f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in setting.items()
    )


# -- the memory wall ---------------------------------------------------------------------------


def memory_wall(args, log) -> list[dict]:
    """Longest horizon per method within `--wall-gib` at the task's CPU size."""
    import equinox as eqx
    import jax
    import jax.random as jr

    import neurodyn as nd

    batch, k = 32, 32
    limit = args.wall_gib * GiB
    rows = []
    for method in ("sofo", "adam", "adam-remat"):
        setting = PAPER["adam" if method == "adam-remat" else method]
        opt = optimizer(method, setting, {"n_tangents": k})

        def bytes_at(t, opt=opt):
            task = nd.tasks.get("kalman", n_steps=int(t))
            model = task.default_model(key=jr.PRNGKey(0))
            return step_memory(task, model, opt, batch)

        t1, t2 = 1000, 4000
        b1, b2 = bytes_at(t1), bytes_at(t2)
        slope = (b2 - b1) / (t2 - t1)
        # start from the linear estimate (checkpointed BPTT grows slower than linearly), then
        # bracket and bisect on the compiled figure to 1 %
        lo, hi = t2, max(2 * t2, int((limit - b1) / max(slope, 1e-9) + t1))
        while bytes_at(hi) <= limit:
            lo, hi = hi, hi * 2
        while hi - lo > max(1000, lo // 100):
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if bytes_at(mid) <= limit else (lo, mid)
        t_max = lo
        checked = bytes_at(t_max)

        task = nd.tasks.get("kalman", n_steps=1000)
        model = task.default_model(key=jr.PRNGKey(0))
        trainable = model.trainable()
        state = opt.init(model, trainable)
        step = eqx.filter_jit(make_step(task, opt, batch, trainable))
        jax.block_until_ready(step(model, state, jr.PRNGKey(1)))
        times = []
        for i in range(3):
            t0 = time.perf_counter()
            jax.block_until_ready(step(model, state, jr.PRNGKey(2 + i)))
            times.append(time.perf_counter() - t0)
        per_1000 = statistics.median(times)
        row = {
            "method": method,
            "bytes_T1000": b1,
            "bytes_per_step": slope,
            "T_max": t_max,
            "bytes_at_T_max": checked,
            "s_per_iter_T1000": per_1000,
            "s_per_iter_at_T_max": per_1000 * t_max / 1000,
        }
        log(
            f"wall {method}: {b1 / 2**20:.1f} MiB at T=1000, {slope / 1024:.2f} KiB/step, "
            f"T_max {t_max:,} ({checked / GiB:.2f} GiB), {per_1000:.3f} s/it at T=1000"
        )
        rows.append(row)
    return rows


# -- report ---------------------------------------------------------------------------------


def summarise(runs: list[dict]) -> list[dict]:
    """Median and range over the seeds of each method's final setting, per T."""
    out = []
    for horizon in sorted({r["T"] for r in runs}):
        for method in METHODS:
            seeds = [r for r in runs if r["T"] == horizon and r["method"] == method]
            if not seeds:
                continue
            swept = [r for r in seeds if r["stage"] in ("sweep", "edge")]
            best = (min(swept, key=lambda r: r["normalised_mse"]) if swept else seeds[-1])[
                "setting"
            ]
            final = [r for r in seeds if r["setting"] == best]  # seed 0's sweep run too
            values = [r["normalised_mse"] for r in final]
            out.append(
                {
                    "T": horizon,
                    "method": method,
                    "setting": best,
                    "n_seeds": len(final),
                    "median": statistics.median(values),
                    "min": min(values),
                    "max": max(values),
                    "mse_median": statistics.median(r["mse"] for r in final),
                    "iterations": statistics.median(r["iterations"] for r in final),
                    "step_mib": final[0].get("step_bytes", 0) / 2**20,
                }
            )
    return out


def table(summary, runs, wall, meta) -> str:
    lines = [
        "# Horizon sweep: the Kalman task at equal wall clock per T",
        "",
        f"Machine: {meta['machine']}. Size `{meta['size']}` ({meta['sizes']}); "
        f"{meta['budget']:g} s of training per run (compilation excluded), "
        f"{meta['eval_trials']} fresh test trials per T (the same for every method). "
        f"Command: `{meta['command']}`.",
        "",
        "Normalised MSE: 0 = the oracle Kalman filter, 1 = the random-parameter filter "
        "(median [min, max] over seeds, at each method's best setting of the sweep).",
        "",
        "| T | method | setting | seeds | normalised MSE | MSE (median) | iterations | "
        "step memory (MiB) |",
        "|---:|---|---|---:|---|---:|---:|---:|",
    ]
    for s in summary:
        lines.append(
            f"| {s['T']} | {s['method']} | {_fmt(s['setting'])} | {s['n_seeds']} | "
            f"{s['median']:.3f} [{s['min']:.3f}, {s['max']:.3f}] | {s['mse_median']:.4f} | "
            f"{s['iterations']:.0f} | {s['step_mib']:.1f} |"
        )
    if wall:
        lines += [
            "",
            f"## The memory wall ({meta['wall_gib']:g} GiB; N = 100, B = K = 32)",
            "",
            "| method | MiB at T = 1000 | KiB per step | longest T | GiB there (compiled) | "
            "s/iter at T = 1000 (measured) | s/iter there (extrapolated) |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for w in wall:
            lines.append(
                f"| {w['method']} | {w['bytes_T1000'] / 2**20:.1f} | "
                f"{w['bytes_per_step'] / 1024:.2f} | {w['T_max']:,} | "
                f"{w['bytes_at_T_max'] / GiB:.2f} | {w['s_per_iter_T1000']:.3f} | "
                f"{w['s_per_iter_at_T_max']:.0f} |"
            )
    lines += [
        "",
        "Every run:",
        "",
        "| T | method | stage | seed | setting | normalised MSE | iterations | error |",
        "|---:|---|---|---:|---|---:|---:|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['T']} | {r['method']} | {r['stage']} | {r['seed']} | {_fmt(r['setting'])} | "
            f"{r['normalised_mse']:.3f} | {r['iterations']} | {r['error'] or ''} |"
        )
    return "\n".join(lines) + "\n"


def figure(summary, path: Path) -> None:
    median_range_figure(
        {m: [s for s in summary if s["method"] == m] for m in METHODS},
        path,
        x="T",
        xlabel="horizon T (steps)",
        ylabel="normalised test MSE\n(0 = oracle, 1 = random-parameter filter)",
        title="Kalman task, equal wall clock per T",
        hlines=((0, "k", None), (1, "grey", None)),
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizons", type=int, nargs="+", default=list(HORIZONS))
    parser.add_argument("--size", choices=["cpu", "paper"], default="cpu")
    parser.add_argument("--budget", type=float, default=30.0, help="training seconds per run")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--eval-trials", type=int, default=256)
    parser.add_argument("--max-iters", type=int, default=1_000_000)
    parser.add_argument("--no-sweep", action="store_true", help="the paper's setting per method")
    parser.add_argument("--wall", action="store_true", help="the memory wall only")
    parser.add_argument("--wall-gib", type=float, default=24.0)
    parser.add_argument(
        "--merge-wall",
        default=None,
        metavar="JSON",
        help="no runs: take the memory wall of this result file into --out and redraw",
    )
    parser.add_argument("--jobs", type=int, default=1, help="processes, one core each")
    parser.add_argument("--out", default=str(RESULTS / "horizon_sweep"), help="output prefix")
    parser.add_argument("--part", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny sizes, 1 s runs")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.budget <= 0 or args.jobs < 1:
        parser.error("--seeds and --jobs must be >= 1 and --budget > 0")
    if args.quick:
        SIZES["cpu"] = SIZES["quick"]
        args.budget, args.seeds, args.eval_trials = 0.5, 1, 16
        for method in GRIDS:  # two settings each (first-order SOFO's smallest two)
            GRIDS[method] = GRIDS[method][:2]
        if args.part is None:
            args.horizons = [30]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def log(text):
        print(text, flush=True)

    if args.part is not None:  # a worker: its horizons, its JSON part
        runs = [r for t in args.horizons for r in sweep_horizon(t, args, log)]
        part = Path(args.part)  # whole or absent: a later attempt takes any part it finds
        part.with_suffix(".tmp").write_text(json.dumps(runs, default=str) + "\n")
        os.replace(part.with_suffix(".tmp"), part)
        return 0

    command = "python benchmarks/horizon_sweep.py" + (" " + " ".join(argv) if argv else "")
    previous = (
        json.loads(out.with_suffix(".json").read_text())
        if out.with_suffix(".json").exists()
        else {}
    )
    wall = previous.get("wall", []) if not args.quick else []
    runs = previous.get("runs", []) if args.wall else []
    if args.merge_wall:
        runs = previous.get("runs", [])
        wall = json.loads(Path(args.merge_wall).read_text())["wall"]
    elif args.wall:
        wall = memory_wall(args, log)
    else:
        if args.quick:  # one process: the smoke test stays in the caller
            runs = [r for t in args.horizons for r in sweep_horizon(t, args, log)]
        else:
            runs = _in_processes(argv or [], args, out)
    summary = summarise(runs)
    size = SIZES[args.size]
    meta = {
        "machine": machine(),
        "size": args.size,
        "sizes": f"N = {size['n_neurons']}, B = {size['batch_size']}, K = {size['n_tangents']}",
        "budget": args.budget,
        "eval_trials": args.eval_trials,
        "command": command,
        "wall_gib": args.wall_gib,
    }
    if (args.wall or args.merge_wall) and "meta" in previous:
        meta = {**previous["meta"], "wall_gib": args.wall_gib}
    out.with_suffix(".json").write_text(
        json.dumps(
            {"meta": meta, "summary": summary, "runs": runs, "wall": wall}, default=str, indent=1
        )
        + "\n"
    )
    text = table(summary, runs, wall, meta)
    out.with_suffix(".md").write_text(text)
    if summary:
        figure(summary, out.with_suffix(".png"))
    print(text)
    if not (args.quick or args.wall or args.merge_wall):
        remove_parts(out, args.horizons, worker_argv(argv or []))
    return 0


def worker_argv(argv: list[str]) -> list[str]:
    """The command line minus `--horizons ...` and `--jobs N` (a worker gets its own)."""
    kept, skip = [], False
    for a in argv:
        if a.startswith("--"):
            skip = a in ("--horizons", "--jobs") or a.startswith(("--horizons=", "--jobs="))
        if not skip:
            kept.append(a)
    return kept


def _in_processes(argv, args, out) -> list[dict]:
    """One process per horizon (longest first), at most `--jobs` at a time, each pinned to a
    core of its own. Each horizon's runs are written to `part_path` when it ends, and a
    later run of the same command takes the parts it finds instead of training them again
    (delete them to start over); they are removed once the results are written. A process
    per horizon also keeps one process from piling up JIT compilations: on the 2-core VM a
    single process running all five horizons ran out of executable memory mappings (LLVM
    "Cannot allocate memory") after about a hundred compiled steps, losing every run."""
    strip = worker_argv(argv)
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    free = list(range(args.jobs))
    pending = sorted(args.horizons, reverse=True)
    parts = {t: part_path(out, t, strip) for t in pending}
    running = []  # (process, slot, horizon)
    for t in [t for t in pending if parts[t].exists()]:
        print(f"T={t}: taking the runs of {parts[t]} (an earlier attempt)", flush=True)
        pending.remove(t)
    while pending or running:
        while pending and free:
            t, slot = pending.pop(0), free.pop(0)
            cmd = [sys.executable, __file__, *strip, "--horizons", str(t), "--part", str(parts[t])]
            if cores:
                cmd = ["taskset", "-c", str(cores[slot % len(cores)]), *cmd]
            running.append((subprocess.Popen(cmd), slot, t))
        time.sleep(0.2)
        for entry in [e for e in running if e[0].poll() is not None]:
            proc, slot, t = entry
            running.remove(entry)
            free.append(slot)
            if proc.returncode != 0:
                for other, _, _ in running:
                    other.wait()
                raise SystemExit(
                    f"the worker of T={t} failed (exit {proc.returncode}); the horizons "
                    "that finished are kept for the next attempt"
                )
    runs = [r for t in sorted(parts) for r in json.loads(parts[t].read_text())]
    return runs


def part_path(out, horizon: int, worker_args: list[str]) -> Path:
    """Where the worker of `horizon` keeps its runs: `OUT.T<T>.<h>.json`, `h` a digest of the
    worker's arguments, so that an attempt with other settings (budget, seeds, size) never
    takes another's parts."""
    digest = hashlib.sha1(" ".join(worker_args).encode()).hexdigest()[:8]
    return Path(f"{out}.T{horizon}.{digest}.json")


def remove_parts(out, horizons, worker_args: list[str]) -> None:
    """Delete the per-horizon parts once the results they went into are written."""
    for t in horizons:
        part_path(out, t, worker_args).unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
