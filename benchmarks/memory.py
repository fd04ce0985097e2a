"""Memory against horizon: one SOFO iteration and one BPTT iteration on the Kalman task.

The paper's Fig. 6A. For T ∈ {100, 1000, 10,000, 50,000} (Kalman network N = 100, batch B,
K tangents), each configuration runs in its own process and reports

- XLA's compiled memory analysis of the jitted step: temporary bytes (what the program
  allocates besides its arguments and outputs) and argument bytes (mostly the batch of
  trials itself, sampled by a separate program, which is O(T·B) for both methods);
- the process's peak resident set size after compiling and running the step once
  (`resource.getrusage`, minus the RSS before anything was compiled).

A log–log plot is written to `benchmarks/results/memory.png` and the table to
`benchmarks/results/memory.md`.

    python benchmarks/memory.py                     # B = 32, K = 32
    python benchmarks/memory.py --batch-size 256 --n-tangents 128   # the paper's sizes
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure(method: str, n_steps: int, batch_size: int, n_tangents: int) -> dict:
    """Compile and run one iteration in this process; return the memory figures."""
    import equinox as eqx
    import jax
    import jax.random as jr

    import neurodyn as nd

    rss0 = _rss_mib()
    task = nd.tasks.get("kalman", n_steps=n_steps)
    model = task.default_model(key=jr.PRNGKey(0))
    trainable = model.trainable()
    if method == "sofo":
        opt = nd.optim.sofo(learning_rate=0.1, n_tangents=n_tangents, damping=1e-3)
    else:
        opt = nd.optim.adam(1e-3)
    state = opt.init(model, trainable)

    # The batch is an argument of the step (sampled by its own program), so the step's
    # temporary memory is the optimizer's alone; the batch's own size is `argument_bytes`.
    batch = eqx.filter_jit(task.sample)(key=jr.PRNGKey(2), batch_size=batch_size)

    def step(model, state, batch, key):
        k_noise, k_opt = jr.split(key)
        problem = task.problem(model, batch, key=k_noise)
        return opt.step(model, state, problem, key=k_opt, trainable=trainable)[:2]

    lowered = eqx.filter_jit(step).lower(model, state, batch, jr.PRNGKey(1))
    compiled = lowered.compile()
    analysis = compiled.compiled.memory_analysis()  # the jax Compiled inside equinox's
    out = eqx.filter_jit(step)(model, state, batch, jr.PRNGKey(1))
    jax.block_until_ready(out)
    return {
        "method": method,
        "T": n_steps,
        "temp_bytes": int(analysis.temp_size_in_bytes),
        "argument_bytes": int(analysis.argument_size_in_bytes),
        "output_bytes": int(analysis.output_size_in_bytes),
        "peak_rss_mib": _rss_mib() - rss0,
        "device": f"{jax.default_backend()}: {jax.devices()[0].device_kind}",
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizons", type=int, nargs="*", default=[100, 1000, 10_000, 50_000])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--n-tangents", type=int, default=32)
    parser.add_argument("--methods", nargs="*", default=["sofo", "bptt"])
    parser.add_argument("--out", default=str(RESULTS / "memory"), help="output prefix")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "T"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        method, t = args.child[0], int(args.child[1])
        print(json.dumps(measure(method, t, args.batch_size, args.n_tangents)))
        return 0

    rows = []
    for method in args.methods:
        for t in args.horizons:
            cmd = [
                sys.executable,
                __file__,
                "--child",
                method,
                str(t),
                "--batch-size",
                str(args.batch_size),
                "--n-tangents",
                str(args.n_tangents),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                tail = proc.stderr.strip().splitlines()[-1:] or ["?"]
                rows.append({"method": method, "T": t, "error": tail[0][:120]})
                print(f"{method} T={t}: failed ({tail[0][:120]})", flush=True)
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(
                f"{method} T={t}: temp {row['temp_bytes'] / 2**20:.1f} MiB, peak RSS "
                f"+{row['peak_rss_mib']:.0f} MiB",
                flush=True,
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table = format_table(rows, args)
    out.with_suffix(".md").write_text(table)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    plot(rows, out.with_suffix(".png"), args)
    print(table)
    return 0


def format_table(rows, args) -> str:
    devices = sorted({r["device"] for r in rows if "device" in r})
    device = f", JAX device {' / '.join(devices)}" if devices else ""
    lines = [
        f"Kalman task (N = 100), batch {args.batch_size}, SOFO K = {args.n_tangents}, float32; "
        f"{platform.machine()}, {os.cpu_count()} CPUs{device}. Command: "
        "`python benchmarks/memory.py "
        f"--batch-size {args.batch_size} --n-tangents {args.n_tangents} --horizons "
        f"{' '.join(str(t) for t in args.horizons)}`.",
        "",
        "| method | T | XLA temp (MiB) | arguments (MiB) | peak RSS increase (MiB) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['method']} | {r['T']} | failed: {r['error']} | | |")
            continue
        lines.append(
            f"| {r['method']} | {r['T']} | {r['temp_bytes'] / 2**20:.2f} | "
            f"{r['argument_bytes'] / 2**20:.2f} | {r['peak_rss_mib']:.0f} |"
        )
    ok = {(r["method"], r["T"]): r for r in rows if "error" not in r}
    for method in ("sofo", "bptt"):
        ts = sorted(t for m, t in ok if m == method)
        if len(ts) >= 2:
            lo, hi = ok[(method, ts[0])], ok[(method, ts[-1])]
            lines.append("")
            lines.append(
                f"{method}: XLA temp from T = {ts[0]} to {ts[-1]}: "
                f"{hi['temp_bytes'] / max(lo['temp_bytes'], 1):.2f}×"
            )
            if method == "bptt" and ts[-1] > ts[0]:
                # BPTT stores the trajectory: its temp grows linearly in T
                per_step = (hi["temp_bytes"] - lo["temp_bytes"]) / (ts[-1] - ts[0])
                ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
                lines.append(
                    f"bptt: {per_step / 2**10:.1f} KiB more per step; this machine's "
                    f"{ram / 2**30:.0f} GiB of RAM would be exceeded by the XLA temp alone at "
                    f"T ≈ {ram / per_step:,.0f} (linear extrapolation)."
                )
    return "\n".join(lines) + "\n"


def plot(rows, path, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4), constrained_layout=True)
    for i, method in enumerate(("sofo", "bptt")):
        pts = sorted(
            (r["T"], r["temp_bytes"] / 2**20)
            for r in rows
            if r["method"] == method and "error" not in r
        )
        if pts:
            ax.plot(
                *zip(*pts),
                "o-",
                color=f"C{i}",
                label={"sofo": f"SOFO (K = {args.n_tangents})", "bptt": "BPTT + Adam"}[method],
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("horizon T (steps)")
    ax.set_ylabel("XLA temporary memory of one iteration (MiB)")
    ax.set_title(f"Kalman task, N = 100, batch {args.batch_size}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(frameon=False)
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
