"""Train every task's default network with SOFO at the CPU defaults, and BPTT + Adam on the same
wall-clock budget; print and save the results table.

    python benchmarks/task_results.py                       # all tasks, CPU defaults
    python benchmarks/task_results.py --tasks flipflop kalman
    python benchmarks/task_results.py --tasks kalman --set sofo.n_tangents=128
    python benchmarks/task_results.py --no-adam --out /tmp/x.md

For each task: SOFO with `task.hyperparameters("sofo")` (overridable with `--set`) for its
`n_iters` iterations, timed on the host (compilation excluded and reported separately); then
BPTT + Adam with `task.hyperparameters("adam")` run until the same training wall-clock is
spent. Both are evaluated with `task.evaluate` on the same key. The table is written to
`benchmarks/results/task_results.md` (or `--out`); `--jsonl FILE` also appends JSON lines.

Both train through `neurodyn.fit`, the loop users run (its retries and step checks, its key
streams); the Adam arm uses `fit`'s `time_budget`, which like the reported wall-clock starts
after the first, compiling, iteration.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax.random as jr
import numpy as np

import neurodyn as nd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
HEADLINE = {
    "lorenz": "test_mse",
    "kalman": "mse",
    "flipflop": "percent_correct",
    "oneshot": "accuracy",
    "digits": "test_accuracy",
}
OPT_KEYS = ("n_iters", "batch_size")


def build_optimizer(name: str, hp: dict):
    hp = {k: v for k, v in hp.items() if k not in OPT_KEYS}
    if name == "sofo":
        return nd.optim.sofo(**hp)
    if name == "adam":
        return nd.optim.adam(hp.pop("learning_rate"), **hp)
    raise ValueError(f"unknown optimizer {name!r}")


def train(task, model, opt, *, n_iters, batch_size, key, time_budget=None, log_every=50):
    """Train through `nd.fit` (the loop users run: retries, step checks, the same key
    streams); returns (model, history dict). Wall-clock excludes the first (compiling)
    iteration, which is reported separately, and `time_budget` counts the same way."""

    def show(it, records, model):
        if it % log_every == 0 or it == n_iters:
            print(f"    it {it:6d}  loss {records[-1]['loss']:.5f}", flush=True)

    result = nd.fit(
        model,
        task,
        opt,
        n_iters=n_iters,
        batch_size=batch_size,
        key=key,
        eval_every=0,
        log_every=log_every,
        time_budget=time_budget,
        progress=False,
        callbacks=[show],
    )
    h = result.history
    wall = h["wall_time"].values
    losses = [(int(i), float(v)) for i, v in zip(h["iteration"].values, h["loss"].values)]
    hist = {
        "iters": int(result.iterations),
        "wall_s": float(wall[-1] - wall[0]),
        "compile_s": float(wall[0]),
        "losses": losses[::log_every] + losses[-1:],
        "retries": int(h["retries"].values.sum()),
    }
    return result.model, hist


def run_task(name, overrides, *, adam=True, seed=0):
    task = nd.tasks.get(name, **overrides.get("task", {}))
    k_model, k_sofo, k_adam, k_eval = jr.split(jr.PRNGKey(seed), 4)
    rows = []
    hp = task.hyperparameters("sofo")
    hp.update(overrides.get("sofo", {}))
    print(f"== {name}: SOFO {hp}", flush=True)
    model = task.default_model(key=k_model)
    trained, hist = train(
        task,
        model,
        build_optimizer("sofo", hp),
        n_iters=hp["n_iters"],
        batch_size=hp["batch_size"],
        key=k_sofo,
    )
    metrics = task.evaluate(trained, key=k_eval)
    print(f"   SOFO {hist['iters']} it, {hist['wall_s']:.1f} s: {metrics}", flush=True)
    rows.append(
        {
            "task": name,
            "optimizer": "sofo",
            "hyperparameters": hp,
            **hist,
            "metrics": metrics,
            "n_params": int(model.n_params),
        }
    )
    if adam:
        hp_a = task.hyperparameters("adam")
        hp_a.update(overrides.get("adam", {}))
        budget = hist["wall_s"]
        print(f"== {name}: Adam {hp_a}, budget {budget:.1f} s", flush=True)
        trained, hist_a = train(
            task,
            model,
            build_optimizer("adam", hp_a),
            n_iters=10**7,
            batch_size=hp_a["batch_size"],
            key=k_adam,
            time_budget=budget,
            log_every=200,
        )
        metrics_a = task.evaluate(trained, key=k_eval)
        print(f"   Adam {hist_a['iters']} it, {hist_a['wall_s']:.1f} s: {metrics_a}", flush=True)
        rows.append(
            {
                "task": name,
                "optimizer": "adam",
                "hyperparameters": hp_a,
                **hist_a,
                "metrics": metrics_a,
                "n_params": int(model.n_params),
            }
        )
    return rows


def parse_overrides(items):
    out: dict = {}
    for item in items or []:
        key, value = item.split("=", 1)
        opt, param = key.split(".", 1)
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
        out.setdefault(opt, {})[param] = value
    return out


def fmt_metrics(name, m):
    keys = {
        "lorenz": [
            "test_mse",
            "r2",
            "attractor_mean_error",
            "attractor_std_error",
            "zmax_ks",
            "on_attractor",
        ],
        "kalman": [
            "mse",
            "oracle_mse",
            "random_filter_mse",
            "copy_mse",
            "mse_since_switch_0_9",
            "mse_since_switch_100_plus",
        ],
        "flipflop": ["percent_correct", "percent_correct_settled", "mse", "percent_trials_correct"],
        "oneshot": ["accuracy", "chance", "loss"],
        "digits": ["test_accuracy", "train_accuracy", "test_loss"],
    }[name]
    return ", ".join(f"{k} {m[k]:.4g}" for k in keys if k in m)


def write_table(rows, path, command):
    lines = [
        "# Task results (CPU defaults)",
        "",
        f"Machine: {machine()}. Other jobs shared the 2 cores during some runs, so the "
        "wall-clock numbers are upper bounds.",
        "",
        f"Command: `{command}`",
        "",
        "Adam (BPTT) runs for the same training wall-clock as SOFO on the same task "
        "(compilation excluded for both). Metrics from `task.evaluate` on the same key.",
        "",
        "| task | optimizer | P | hyperparameters | iterations | wall-clock (s) | metrics |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        hp = ", ".join(f"{k}={v}" for k, v in r["hyperparameters"].items() if k != "n_iters")
        lines.append(
            f"| {r['task']} | {r['optimizer']} | {r['n_params']} | {hp} | {r['iters']} | "
            f"{r['wall_s']:.0f} | {fmt_metrics(r['task'], r['metrics'])} |"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(HEADLINE))
    parser.add_argument(
        "--set",
        action="append",
        help="override, e.g. sofo.learning_rate=0.3, adam.learning_rate=1e-3, task.n_classes=3",
    )
    parser.add_argument("--no-adam", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "task_results.md")
    parser.add_argument("--jsonl", type=Path, default=None, help="also append JSON lines here")
    args = parser.parse_args(argv)
    overrides = parse_overrides(args.set)
    rows = []
    for name in args.tasks:
        new = run_task(name, overrides, adam=not args.no_adam, seed=args.seed)
        rows.extend(new)
        if args.jsonl is not None:
            args.jsonl.parent.mkdir(parents=True, exist_ok=True)
            with open(args.jsonl, "a") as f:
                for r in new:
                    f.write(json.dumps({**r, "losses": r["losses"][-5:]}, default=float) + "\n")
        command = "python benchmarks/task_results.py " + " ".join(
            argv if argv is not None else __import__("sys").argv[1:]
        )
        write_table(rows, args.out, command.strip())
    for r in rows:
        print(
            f"{r['task']:9s} {r['optimizer']:5s} {r['iters']:6d} it {r['wall_s']:7.1f} s  "
            f"{fmt_metrics(r['task'], r['metrics'])}"
        )
    return rows


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
