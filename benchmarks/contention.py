"""How much a run slows down when the machine's other core is busy: seconds per iteration of
SOFO and BPTT + Adam (the tasks' CPU defaults) on one pinned core, with the other core idle
and with it running the same iteration in a second process.

The time-to-solution and sweep benchmarks run two jobs at once on a 2-core machine, one per
core; this measures what that costs each optimizer, so a wall-clock comparison made that way
can be read against one made on an idle machine. Run it on an otherwise idle machine:

    python benchmarks/contention.py                    # flip-flop and Kalman, ≈ 3 min
    python benchmarks/contention.py --tasks digits --iters 20

Prints a Markdown table (median of 3 timed blocks of `--iters` iterations each, after one
compiling iteration) and writes `benchmarks/results/contention.md` and `.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.random as jr

import neurodyn as nd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, make_step  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def seconds_per_iteration(task_name: str, opt_name: str, iters: int, blocks: int = 3) -> float:
    task = nd.tasks.get(task_name)
    hp = task.hyperparameters(opt_name)
    opt = nd.optim.from_config(opt_name, **hp)
    model = task.default_model(key=jr.PRNGKey(0))
    trainable = model.trainable()
    step = make_step(task, opt, hp["batch_size"], trainable)
    state = opt.init(model, trainable)
    key = jr.PRNGKey(1)
    model, state = step(model, state, key)[:2]  # compile
    jax.block_until_ready(model)
    times = []
    for b in range(blocks):
        t0 = time.perf_counter()
        for i in range(iters):
            model, state = step(model, state, jr.fold_in(key, b * iters + i))[:2]
        jax.block_until_ready(model)
        times.append((time.perf_counter() - t0) / iters)
    return statistics.median(times)


def _busy(task_name: str, opt_name: str, core: int) -> subprocess.Popen:
    """The same iteration looping in a second process pinned to `core`."""
    here = str(Path(__file__).resolve().parent)
    code = (
        f"import sys; sys.path.insert(0, {here!r}); import contention as c\n"
        f"while True: c.seconds_per_iteration({task_name!r}, {opt_name!r}, 50)\n"
    )
    cmd = [sys.executable, "-c", code]
    if hasattr(os, "sched_setaffinity"):
        cmd = ["taskset", "-c", str(core), *cmd]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["flipflop", "kalman"])
    parser.add_argument("--optimizers", nargs="+", default=["sofo", "adam"])
    parser.add_argument("--iters", type=int, default=10, help="iterations per timed block")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds for the busy core")
    parser.add_argument("--out", default=str(RESULTS / "contention"))
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    rows = []
    for task_name in args.tasks:
        for opt_name in args.optimizers:
            alone = seconds_per_iteration(task_name, opt_name, args.iters)
            busy = _busy(task_name, opt_name, core=1)
            try:
                time.sleep(args.warmup)  # let the second process compile and start looping
                loaded = seconds_per_iteration(task_name, opt_name, args.iters)
            finally:
                busy.kill()
                busy.wait()
            rows.append(
                {
                    "task": task_name,
                    "optimizer": opt_name,
                    "alone_s": alone,
                    "other_core_busy_s": loaded,
                    "slowdown": loaded / alone,
                }
            )
            print(rows[-1], flush=True)
    lines = [
        "# Contention: one run with the other core idle and with it busy",
        "",
        f"Machine: {machine()} (this process pinned to core 0; the busy core runs the same "
        f"iteration in a second process). Command: `python benchmarks/contention.py"
        f"{' ' + ' '.join(argv) if argv else ''}`.",
        "",
        "| task | optimizer | s/iteration, other core idle | other core busy | slowdown |",
        "|---|---|---|---|---|",
        *(
            f"| {r['task']} | {r['optimizer']} | {r['alone_s']:.4f} | "
            f"{r['other_core_busy_s']:.4f} | {r['slowdown']:.2f}× |"
            for r in rows
        ),
    ]
    text = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"machine": machine(), "rows": rows}) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
