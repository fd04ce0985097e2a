"""Lorenz race: SOFO against BPTT + Adam on learning the Lorenz attractor from sparse
supervision, at equal iterations and at equal wall clock, 3 seeds, with the attractor figure.

The task is `nd.tasks.get("lorenz")` at the CPU size (the paper's two-layer map, 400 hidden
units, supervised only on the state after 32 free steps). Three arms, each trained through
`nd.fit` (the loop users run) on one process:

1. **SOFO**, `--iters` iterations (default: the task's SOFO default, 2000);
2. **Adam, equal iterations**: the same number of iterations;
3. **Adam, equal wall clock**: as many iterations as fit in SOFO's median training time.

Each arm's step size is tuned by the same protocol: a sweep over ×1/3, ×1, ×3 the task's
default rate on seed 0 (extended ×3 or ÷3 past an edge of the grid while it improves, at
most twice, `_common.sweep_step_size`), scored by the task's metric (test MSE of the state
after 32 free steps, on the shipped test set); then seeds 1 and 2 at the best. SOFO's damping
is the task default (the damping sweep is `benchmarks/sofo_sweep.py`'s). Reported per arm:
the step size, iterations, training seconds (compilation and evaluation excluded), test MSE
(median and range), R² of the first 30 free steps, and how many seeds' 10,000-step free runs
stay on the attractor (`task.evaluate`'s `on_attractor`). Figures: training loss against
iterations and against seconds (every run), and the attractor figure
(`nd.analysis.plot_lorenz_attractor`) of the median seed of SOFO and of Adam at equal wall
clock.

    taskset -c 1 python benchmarks/lorenz_race.py        # ≈ 15 min on one core
    python benchmarks/lorenz_race.py --quick --out /tmp/lr   # smoke test (tests use it)

Writes `benchmarks/results/lorenz_race.md`, `.json`, `lorenz_race.png` and
`lorenz_race_attractor_{sofo,adam}.png`.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

import jax.random as jr

import neurodyn as nd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, sweep_step_size  # noqa: E402
from time_to_solution import train  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
FACTORS = (1 / 3, 1.0, 3.0)
EVAL_KEY = jr.PRNGKey(12345)


def run_arm(task, name, opt, hp, *, n_iters, budget, seeds, log):
    """Sweep `opt`'s step size on seed 0, then run seeds 1.. at the best; returns the runs."""
    metric, _, direction = task.success_criterion()

    def go(rate, seed, stage):
        rec = train(
            task,
            opt,
            {**hp, "learning_rate": rate},
            budget=budget,
            key=jr.PRNGKey(seed),
            eval_key=EVAL_KEY,
            n_iters=n_iters,
        )
        rec.update(arm=name, optimizer=opt, learning_rate=rate, seed=seed, stage=stage)
        model = rec.pop("model")
        rec["metrics"] = task.evaluate(model, key=EVAL_KEY) if model is not None else {}
        rec["_model"] = model
        log(
            f"{name:22s} {stage:5s} seed {seed} lr {rate:g}: {rec['iterations']} it in "
            f"{rec['train_seconds']:.1f} s, {metric} {rec['final']:.4g}, on attractor "
            f"{rec['metrics'].get('on_attractor', math.nan):g}"
        )
        return rec

    base = hp["learning_rate"]
    rates = [float(f"{base * f:.3g}") for f in FACTORS]
    best, tried = sweep_step_size(lambda r: go(r, 0, "sweep"), rates, direction)
    for rec in tried:
        if rec is not best:
            rec.pop("_model")  # keep only the models the figures may use
    runs = [best, *(go(best["learning_rate"], s, "seed") for s in range(1, seeds))]
    return tried, runs


def median_run(runs):
    """The run with the median final metric (the lower middle one for an even count)."""
    ordered = sorted(runs, key=lambda r: r["final"] if math.isfinite(r["final"]) else math.inf)
    return ordered[(len(ordered) - 1) // 2]


def summary(arm_runs, threshold) -> dict:
    finals = [r["final"] for r in arm_runs]
    return {
        "learning_rate": arm_runs[0]["learning_rate"],
        "iterations": int(statistics.median(r["iterations"] for r in arm_runs)),
        "train_seconds": statistics.median(r["train_seconds"] for r in arm_runs),
        "test_mse_median": statistics.median(finals),
        "test_mse_min": min(finals),
        "test_mse_max": max(finals),
        "r2_median": statistics.median(r["metrics"].get("r2", math.nan) for r in arm_runs),
        "on_attractor": sum(int(r["metrics"].get("on_attractor", 0) == 1) for r in arm_runs),
        "solved": sum(int(r["final"] <= threshold) for r in arm_runs),
        "seeds": len(arm_runs),
    }


def table(result) -> str:
    lines = [
        "# Lorenz: SOFO against BPTT + Adam (equal iterations, equal wall clock)",
        "",
        f"Machine: {result['machine']}. Command: `{result['command']}`.",
        "",
        f"Task: Lorenz at the CPU size (the two-layer map, {result['n_hidden']} hidden units, "
        f"the state after {result['horizon']} free steps supervised; B = "
        f"{result['batch_size']}, SOFO K = {result['n_tangents']}, λ = {result['damping']:g}). "
        f"Success level: test MSE ≤ {result['threshold']:g}. Step sizes swept on seed 0 "
        "(×1/3, ×1, ×3 the task default, extended past an edge while improving), then seeds "
        "1–2 at the best. Training seconds exclude compilation and evaluation.",
        "",
        "| arm | step size | iterations (median) | training s (median) | test MSE median "
        "[min, max] | R² (30 steps, median) | seeds on the attractor | seeds solved |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in result["summary"].items():
        lines.append(
            f"| {name} | {s['learning_rate']:g} | {s['iterations']} | {s['train_seconds']:.1f} | "
            f"{s['test_mse_median']:.4g} [{s['test_mse_min']:.4g}, {s['test_mse_max']:.4g}] | "
            f"{s['r2_median']:.3f} | {s['on_attractor']}/{s['seeds']} | "
            f"{s['solved']}/{s['seeds']} |"
        )
    lines += ["", "Sweeps (seed 0, final test MSE):", ""]
    for name, entries in result["sweeps"].items():
        parts = [f"lr {e['learning_rate']:g} → {e['final']:.4g}" for e in entries]
        lines.append(f"- {name}: " + "; ".join(parts))
    return "\n".join(lines) + "\n"


def plot_curves(runs, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), constrained_layout=True)
    colours = {}
    for r in runs:
        if r["stage"] == "sweep" and not r.get("best"):
            continue
        c = colours.setdefault(r["arm"], f"C{len(colours)}")
        lab = r["arm"] if r["seed"] == 0 else None
        it, sec, loss = zip(*r["losses"], strict=True) if r["losses"] else ((), (), ())
        axes[0].plot(it, loss, color=c, lw=1, alpha=0.8, label=lab)
        axes[1].plot(sec, loss, color=c, lw=1, alpha=0.8, label=lab)
    for ax, xlabel in zip(axes, ("iteration", "training seconds"), strict=True):
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("training loss")
        ax.grid(alpha=0.25)
    axes[0].legend(frameon=False)
    axes[0].set_title("Lorenz: training loss against iterations (each seed)")
    axes[1].set_title("against wall clock")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_attractor(task, model, title, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ds = nd.analysis.simulate(model, task, key=jr.PRNGKey(7), n_trials=8)
    fig = nd.analysis.plot_lorenz_attractor(ds)
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=None, help="SOFO's iterations")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smoke test at tiny size")
    parser.add_argument("--out", default=str(RESULTS / "lorenz_race"), help="output prefix")
    args = parser.parse_args(argv)
    if args.seeds < 1 or (args.iters is not None and args.iters < 1):
        parser.error("--seeds and --iters must be ≥ 1")
    overrides = {"n_hidden": 32, "long_rollout_steps": 600} if args.quick else {}
    task = nd.tasks.get("lorenz", **overrides)
    sofo_hp = task.hyperparameters("sofo")
    adam_hp = task.hyperparameters("adam")
    if args.quick:
        sofo_hp = {**sofo_hp, "n_iters": 20, "n_tangents": 8, "batch_size": 16}
        adam_hp = {**adam_hp, "batch_size": 16}
        args.seeds = min(args.seeds, 2)
    n_iters = args.iters or sofo_hp["n_iters"]
    _, threshold, _ = task.success_criterion()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def log(s):
        print(s, flush=True)

    arms, sweeps = {}, {}
    common = {"n_iters": n_iters, "budget": math.inf, "seeds": args.seeds, "log": log}
    tried, arms["SOFO"] = run_arm(task, "SOFO", "sofo", sofo_hp, **common)
    sweeps["SOFO"] = tried
    tried, arms["Adam, equal iterations"] = run_arm(
        task, "Adam, equal iterations", "adam", adam_hp, **common
    )
    sweeps["Adam, equal iterations"] = tried
    budget = statistics.median(r["train_seconds"] for r in arms["SOFO"])
    log(f"equal wall clock: {budget:.1f} training seconds (SOFO's median)")
    tried, arms["Adam, equal wall clock"] = run_arm(
        task,
        "Adam, equal wall clock",
        "adam",
        adam_hp,
        n_iters=None,
        budget=budget,
        seeds=args.seeds,
        log=log,
    )
    sweeps["Adam, equal wall clock"] = tried
    for name, title, arm in (
        ("sofo", "SOFO", "SOFO"),
        ("adam", "Adam at SOFO's wall clock", "Adam, equal wall clock"),
    ):
        run = median_run(arms[arm])
        plot_attractor(
            task,
            run["_model"],
            f"{title} (seed {run['seed']}, median of {len(arms[arm])}: test MSE "
            f"{run['final']:.3g})",
            out.parent / f"{out.name}_attractor_{name}.png",
        )
    all_runs = []
    for name in arms:
        best_ids = {id(r) for r in arms[name]}
        for r in sweeps[name] + arms[name][1:]:
            r["best"] = id(r) in best_ids
            r.pop("_model", None)
            all_runs.append(r)
    plot_curves(all_runs, out.parent / f"{out.name}.png")
    result = {
        "machine": machine(),
        "command": "python benchmarks/lorenz_race.py" + (" " + " ".join(argv) if argv else ""),
        "n_hidden": task.n_hidden,
        "horizon": task.horizon,
        "batch_size": sofo_hp["batch_size"],
        "n_tangents": sofo_hp["n_tangents"],
        "damping": sofo_hp["damping"],
        "threshold": threshold,
        "wall_clock_budget_s": budget,
        "summary": {name: summary(runs, threshold) for name, runs in arms.items()},
        "sweeps": {
            name: [{"learning_rate": e["learning_rate"], "final": e["final"]} for e in entries]
            for name, entries in sweeps.items()
        },
        "runs": all_runs,
    }
    text = table(result)
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps(result, default=float) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
