"""Scale-out: seconds per training iteration against the number of devices (issue 21).

Each configuration runs in its own process, because a CPU's host device count must be set
before JAX starts (`--xla_force_host_platform_device_count`). The step timed is `nd.fit`'s own
jitted iteration (fresh flip-flop batch, noise and tangents; SOFO or BPTT + Adam), on a mesh
of d devices with the trials (`batch`) or SOFO's tangents (`tangents`) split over them;
`batch-xla` is the batch layout without neurodyn's `shard_map` (XLA partitions the step from
the layout of the batch, reducing at every time step), for comparison.

Rows:

- `devices`, `cores`: host devices, and CPU cores the process may use (`taskset`); the row
  `devices = 1, cores = 1` is one device pinned to one core, the row `devices = 1, cores = c`
  is one device that may use every core through XLA's intra-op threads (the alternative to
  more devices).
- `s/iter`: median seconds per iteration over `--repeats` calls after a compiling call.
- `speedup`: the time of one device on all cores over this row's time; `vs 1 core`: the
  time of one device on one core over this row's; `efficiency`: `vs 1 core` / cores.
- `CPU s`: the process's CPU time per iteration (all its threads): the work done, less
  sensitive than wall time to other processes on a shared machine.
- `MiB/device`: XLA's compiled memory per device (arguments + outputs + temporaries,
  `compiled.memory_analysis()`).

    python benchmarks/scale_out.py                  # K = 128, T = 1000, B = 32, 1 and 2 devices
    python benchmarks/scale_out.py --layouts batch batch-xla tangents --methods sofo adam
    python benchmarks/scale_out.py --quick          # tiny sizes: checks the script runs

Writes `benchmarks/results/scale_out.md` and `.json` (or `--out PREFIX`).
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

RESULTS = Path(__file__).resolve().parent / "results"
MiB = 2**20


def worker(args) -> list[dict]:
    """Runs inside a process whose host device count was set: time every method × layout."""
    import equinox as eqx
    import jax
    import jax.random as jr

    import neurodyn as nd
    from neurodyn.training._fit import make_train_step
    from neurodyn.training._sharding import make_mesh, replicate

    task = nd.tasks.get("flipflop", n_steps=args.horizon)
    rows = []
    for method in args.methods:
        for layout in args.layouts if args.n_devices > 1 else ["batch"]:
            if method != "sofo" and layout == "tangents":
                continue
            model = task.default_model(key=jr.PRNGKey(0))
            if method == "sofo":
                opt = nd.optim.sofo(learning_rate=0.1, n_tangents=args.tangents, damping=1e-5)
            else:
                opt = nd.optim.adam(1e-3)
            trainable = model.trainable()
            state = opt.init(model, trainable)
            xla = layout == "batch-xla"
            mesh = None
            if args.n_devices > 1:
                mesh = make_mesh(args.n_devices, "batch" if xla else layout)
            reduction = "xla" if xla else "once"
            step = make_train_step(
                task, opt, args.batch, trainable, 0, 10.0, mesh=mesh, reduction=reduction
            )
            key = jr.PRNGKey(1)
            tsk = task
            if mesh is not None:
                model, state, key, tsk = replicate((model, state, key, tsk), mesh)
            compiled = step.lower(model, state, key, tsk).compile()
            mem = compiled.compiled.memory_analysis()
            hlo = compiled.compiled.as_text()
            per_device = None
            if mem is not None:
                per_device = (
                    mem.argument_size_in_bytes
                    + mem.output_size_in_bytes
                    + mem.temp_size_in_bytes
                    - mem.alias_size_in_bytes
                ) / MiB
            t0 = time.perf_counter()
            jax.block_until_ready(eqx.filter(compiled(model, state, key, tsk), eqx.is_array))
            warm = time.perf_counter() - t0
            times, cpu = [], []
            for i in range(args.repeats):
                k = jr.fold_in(key, i)
                t0, c0 = time.perf_counter(), time.process_time()
                jax.block_until_ready(eqx.filter(compiled(model, state, k, tsk), eqx.is_array))
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            rows.append(
                {
                    "method": method,
                    "layout": layout,
                    "devices": args.n_devices,
                    "cores": len(os.sched_getaffinity(0)),
                    "seconds": statistics.median(times),
                    "min_seconds": min(times),
                    "cpu_seconds": statistics.median(cpu),
                    "compile_seconds": warm,
                    "mib_per_device": per_device,
                    "collectives": {
                        op: hlo.count(f" {op}(") + hlo.count(f" {op}-start(")
                        for op in ("all-reduce", "all-gather", "reduce-scatter", "all-to-all")
                    },
                    "K": args.tangents if method == "sofo" else None,
                    "T": args.horizon,
                    "B": args.batch,
                }
            )
    return rows


def spawn(n_devices: int, cores: list[int] | None, args) -> list[dict]:
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={n_devices}"
    )
    env.setdefault("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        str(n_devices),
        "--tangents",
        str(args.tangents),
        "--horizon",
        str(args.horizon),
        "--batch",
        str(args.batch),
        "--repeats",
        str(args.repeats),
        "--methods",
        *args.methods,
        "--layouts",
        *args.layouts,
    ]
    if cores is not None:
        cmd = ["taskset", "-c", ",".join(map(str, cores)), *cmd]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"worker {cmd} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    base = {
        (r["method"], r["cores"]): r["seconds"] for r in rows if r["devices"] == 1
    }  # one device, by cores
    all_cores = max(r["cores"] for r in rows)
    lines = [
        "| method | layout | devices | cores | s/iter | speedup | vs 1 core | efficiency "
        "| CPU s | MiB/device |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ref = base.get((r["method"], all_cores))
        one = base.get((r["method"], 1))
        speed = f"{ref / r['seconds']:.2f}×" if ref else "–"
        vs1 = f"{one / r['seconds']:.2f}×" if one else "–"
        eff = f"{one / r['seconds'] / r['cores']:.0%}" if one else "–"
        cpu = f"{r['cpu_seconds']:.4g}" if r.get("cpu_seconds") is not None else "–"
        mem = f"{r['mib_per_device']:.1f}" if r["mib_per_device"] is not None else "–"
        lines.append(
            f"| {r['method']} | {r['layout']} | {r['devices']} | {r['cores']} | "
            f"{r['seconds']:.4g} | {speed} | {vs1} | {eff} | {cpu} | {mem} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--devices", type=int, nargs="+", default=[1, 2])
    p.add_argument(
        "--layouts", nargs="+", default=["batch"], choices=["batch", "batch-xla", "tangents"]
    )
    p.add_argument("--methods", nargs="+", default=["sofo"], choices=["sofo", "adam"])
    p.add_argument("--tangents", type=int, default=128, help="K")
    p.add_argument("--horizon", type=int, default=1000, help="T")
    p.add_argument("--batch", type=int, default=32, help="B")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-pin", action="store_true", help="do not add the 1-core row")
    p.add_argument("--quick", action="store_true", help="K = 8, T = 20, B = 8, 2 repeats")
    p.add_argument("--out", default=None, help="output prefix (default results/scale_out)")
    args = p.parse_args(argv)
    if args.worker is not None:
        args.n_devices = args.worker
        print(json.dumps(worker(args)))
        return 0
    if args.quick:
        args.tangents, args.horizon, args.batch, args.repeats = 8, 20, 8, 2
        args.out = args.out or str(RESULTS / "scale_out_quick")
    cores = sorted(os.sched_getaffinity(0))
    rows = []
    if not args.no_pin and len(cores) > 1:
        rows += spawn(1, cores[:1], args)
    for d in args.devices:
        rows += spawn(d, None, args)
    text = table(rows)
    import jax  # only for the versions in the header (this process keeps one device)

    header = (
        f"Scale-out, flip-flop task (N = 64), K = {args.tangents}, T = {args.horizon}, "
        f"B = {args.batch}, median of {args.repeats}; {len(cores)} of {os.cpu_count()} cores "
        f"available, jax {jax.__version__}, float32."
    )
    print(header)
    print(text)
    prefix = Path(args.out or RESULTS / "scale_out")
    prefix.parent.mkdir(parents=True, exist_ok=True)
    prefix.with_suffix(".md").write_text(header + "\n\n" + text + "\n")
    prefix.with_suffix(".json").write_text(json.dumps({"header": header, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
