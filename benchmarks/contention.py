"""How much a run slows down when the machine's other core is busy: seconds per iteration of
SOFO and BPTT + Adam (the tasks' CPU defaults) on one pinned core, with the other core idle
and with it running the same iteration in a second process.

The time-to-solution and sweep benchmarks run two jobs at once on a 2-core machine, one per
core; this measures what that costs each optimizer, so a wall-clock comparison made that way
can be read against one made on an idle machine. Run it on an otherwise idle machine:

    python benchmarks/contention.py                    # flip-flop and Kalman, ≈ 3 min
    python benchmarks/contention.py --tasks digits --iters 20
    python benchmarks/contention.py --quick --out /tmp/c     # smoke test (the tests run it)

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


def _busy(task_name: str, opt_name: str, core: int | None) -> subprocess.Popen:
    """The same iteration looping in a second process pinned to `core` (None: not pinned)."""
    here = str(Path(__file__).resolve().parent)
    code = (
        f"import sys; sys.path.insert(0, {here!r}); import contention as c\n"
        f"while True: c.seconds_per_iteration({task_name!r}, {opt_name!r}, 50)\n"
    )
    cmd = [sys.executable, "-c", code]
    if core is not None:
        cmd = ["taskset", "-c", str(core), *cmd]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _measure(args, busy_core) -> list[dict]:
    rows = []
    for task_name in args.tasks:
        for opt_name in args.optimizers:
            alone = seconds_per_iteration(task_name, opt_name, args.iters, args.blocks)
            busy = _busy(task_name, opt_name, busy_core)
            try:
                time.sleep(args.warmup)  # let the second process compile and start looping
                loaded = seconds_per_iteration(task_name, opt_name, args.iters, args.blocks)
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
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["flipflop", "kalman"])
    parser.add_argument("--optimizers", nargs="+", default=["sofo", "adam"])
    parser.add_argument("--iters", type=int, default=10, help="iterations per timed block")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds for the busy core")
    parser.add_argument("--blocks", type=int, default=3, help="timed blocks (median taken)")
    parser.add_argument("--out", default=str(RESULTS / "contention"))
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: digits, 2 iterations, 1 s warm-up"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.iters, args.warmup, args.blocks = ["digits"], 2, 1.0, 1
    # This process on the first core it may use, the busy one on the second (unpinned where
    # there is one core or no affinity control); the affinity is restored on the way out.
    saved = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    cores = sorted(saved) if saved else []
    busy_core = cores[1] if len(cores) > 1 else None
    if busy_core is not None:
        os.sched_setaffinity(0, {cores[0]})
    try:
        rows = _measure(args, busy_core)
    finally:
        if busy_core is not None:
            os.sched_setaffinity(0, saved)
    where = (
        f"this process pinned to core {cores[0]}, the busy one to core {busy_core}"
        if busy_core is not None
        else "one core: neither process pinned"
    )
    lines = [
        "# Contention: one run with the other core idle and with it busy",
        "",
        f"Machine: {machine()} ({where}; the busy core runs the same iteration in a second "
        f"process). Command: `python benchmarks/contention.py"
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
