"""K/P sweep: the task metric after a fixed number of SOFO iterations against the fraction of
parameter directions K/P explored per step, on digits and flip-flop (CPU defaults otherwise).

Every K runs the same number of iterations (`--iters`, default: digits 150, flip-flop 300) from
the same initial network, with each seed; the training seconds (compilation excluded) are
reported beside the metric, so the table shows both what a larger subspace buys per iteration
and what it costs per second.

    python benchmarks/kp_sweep.py                          # both tasks, 3 seeds
    python benchmarks/kp_sweep.py --tasks digits --tangents 16 64 256 --seeds 1

Writes `benchmarks/results/kp_sweep.md`, `.json` and `.png`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import jax.random as jr

import neurodyn as nd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_TANGENTS = {"digits": [8, 16, 32, 64, 128, 256], "flipflop": [8, 16, 32, 64, 128]}
DEFAULT_ITERS = {"digits": 150, "flipflop": 300}


def run(task_name, k, n_iters, seed):
    task = nd.tasks.get(task_name)
    hp = {**task.hyperparameters("sofo"), "n_tangents": k}
    model = task.default_model(key=jr.PRNGKey(seed))
    result = nd.fit(
        model,
        task,
        nd.optim.from_config("sofo", **hp),
        n_iters=n_iters,
        batch_size=hp["batch_size"],
        key=jr.PRNGKey(100 + seed),
        progress=False,
    )
    metric = task.success_criterion()[0]
    value = task.evaluate(result.model, key=jr.PRNGKey(12345))[metric]
    wall = result.history["wall_time"].values
    # fit's clock starts before the first (compiling) step: report the time after it
    seconds = float(wall[-1] - wall[0])
    return {
        "task": task_name,
        "K": k,
        "P": int(model.n_params),
        "seed": seed,
        "metric": metric,
        "value": float(value),
        "seconds": seconds,
        "iterations": n_iters,
    }


def table(rows) -> str:
    lines = [
        "# K/P sweep (SOFO)",
        "",
        f"Machine: {machine()}.",
        "",
        "Same iterations for every K; the metric from `task.evaluate` (mean ± sd over seeds); "
        "seconds: training time after the first (compiling) step, median over seeds.",
        "",
        "| task | P | K | K/P | iterations | metric | mean ± sd | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    keys = dict.fromkeys((r["task"], r["K"]) for r in rows)
    for task_name, k in keys:
        sel = [r for r in rows if r["task"] == task_name and r["K"] == k]
        vals = [r["value"] for r in sel]
        sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
        p = sel[0]["P"]
        lines.append(
            f"| {task_name} | {p} | {k} | {100 * k / p:.2f} % | {sel[0]['iterations']} | "
            f"{sel[0]['metric']} | {statistics.mean(vals):.4g} ± {sd:.2g} | "
            f"{statistics.median(r['seconds'] for r in sel):.1f} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.8), squeeze=False)
    for ax, name in zip(axes[0], tasks):
        sel = [r for r in rows if r["task"] == name]
        ax.plot([r["K"] / r["P"] for r in sel], [r["value"] for r in sel], "o", alpha=0.6)
        ks = sorted({r["K"] for r in sel})
        means = [statistics.mean(r["value"] for r in sel if r["K"] == k) for k in ks]
        ax.plot([k / sel[0]["P"] for k in ks], means, "-", color="C0")
        ax.set_xscale("log")
        ax.set_xticks([k / sel[0]["P"] for k in ks], [f"{100 * k / sel[0]['P']:.2g} %" for k in ks])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set(
            xlabel="K / P",
            ylabel=sel[0]["metric"],
            title=f"{name}: {sel[0]['iterations']} SOFO iterations",
        )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tasks", nargs="+", default=list(DEFAULT_TANGENTS), choices=list(DEFAULT_TANGENTS)
    )
    parser.add_argument("--tangents", type=int, nargs="+", default=None)
    parser.add_argument("--iters", type=int, default=None)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS / "kp_sweep"), help="output prefix")
    args = parser.parse_args(argv)
    rows = []
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.tasks:
        for k in args.tangents or DEFAULT_TANGENTS[name]:
            for seed in range(args.seeds):
                r = run(name, k, args.iters or DEFAULT_ITERS[name], seed)
                rows.append(r)
                print(
                    f"{name} K={k} seed {seed}: {r['metric']} {r['value']:.4g}, "
                    f"{r['seconds']:.1f} s",
                    flush=True,
                )
        out.with_suffix(".md").write_text(table(rows))
        out.with_suffix(".json").write_text(json.dumps({"machine": machine(), "rows": rows}))
        plot(rows, out.with_suffix(".png"))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
