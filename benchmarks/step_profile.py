"""Where the time of one SOFO iteration goes: the JAX profiler's per-op times, op by op.

The network is the side-by-side one of `step_cost.py --reference` (a vanilla rate RNN: N tanh
units, 4 inputs, 2 outputs, batch 32, float32, MSE at every step), trained by
`nd.value_and_sofo_grad_scan` with K tangents over T steps. The script compiles the iteration,
runs it under `jax.profiler.trace` (a Perfetto trace), adds up the time of every compiled op
(XLA's fusions: its matrix products and its element-wise loops) and names each op from the
compiled HLO: the operand shapes of a matrix product and its GFLOP/s, or the output shape of
an element-wise fusion. Times are per time step of the scan (the loop body runs T times);
shares are of all the ops' profiled time.

    taskset -c 1 python benchmarks/step_profile.py --chunk-sizes 1 2 4 16   # the full grid
    taskset -c 1 python benchmarks/step_profile.py --units 128 --tangents 128 --horizon 1000
    python benchmarks/step_profile.py --quick                   # N = 16, K = 4, T = 20

The full grid is N ∈ {64, 128, 256} × K ∈ {32, 128, 256} at T = 100 (the per-step cost does
not depend on T).

Writes `benchmarks/results/step_profile.md` and `.json` (or `--out PREFIX`).
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import math
import re
import sys
import tempfile
from pathlib import Path

import equinox as eqx
import jax
import jax.random as jr

import neurodyn as nd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402
from step_cost import BATCH, matmul_peak, median_seconds, vanilla_rnn  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
_COMP = re.compile(r"^%?([\w.\-]+) \((.*)\) -> (\S+) \{$")
_FUSION = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = (\S+) fusion\(.*calls=%?([\w.\-]+)")
_DOT = re.compile(
    r"= (\S+?)\{?[\d,]*\}? dot\(%?([\w.\-]+), %?([\w.\-]+)\), lhs_contracting_dims=\{([\d,]*)\}"
)
_SHAPE = re.compile(r"\w+\[([\d,]*)\]")


def _dims(shape: str) -> list[int]:
    m = _SHAPE.match(shape)
    return [int(d) for d in m.group(1).split(",") if d] if m else []


def hlo_ops(hlo: str) -> dict[str, dict]:
    """Name → {kind, text, flops} for every fusion of the compiled HLO module."""
    comps, current, params = {}, None, {}
    for line in hlo.splitlines():
        m = _COMP.match(line)
        if m:
            current = m.group(1)
            params = dict(re.findall(r"([\w.\-]+): (\w+\[[\d,]*\])", m.group(2)))
            comps[current] = {"params": params, "dot": None}
            continue
        d = _DOT.search(line)
        if d and current is not None:
            out, lhs, rhs, contract = d.groups()
            lhs_shape, rhs_shape = params.get(lhs), params.get(rhs)
            if lhs_shape and rhs_shape:
                k = math.prod(_dims(lhs_shape)[int(i)] for i in contract.split(",") if i)
                comps[current]["dot"] = {
                    "text": f"matmul {lhs_shape} × {rhs_shape}",
                    "flops": 2 * math.prod(_dims(out)) * k,
                }
    ops = {}
    for line in hlo.splitlines():
        m = _FUSION.match(line)
        if m:
            name, shape, comp = m.groups()
            dot = comps.get(comp, {}).get("dot")
            if dot:
                ops[name] = {"kind": "matmul", **dot}
            else:
                shape = shape.split("{")[0]
                ops[name] = {"kind": "element-wise", "text": f"loop → {shape}", "flops": 0}
    return ops


def _iteration(n_units: int, k: int, t: int, chunk_size=1):
    params, step, loss, h0, xs, _, _ = vanilla_rnn(n_units, t)
    tangents = nd.sample_tangents(jr.PRNGKey(7), params, k)
    sofo = nd.value_and_sofo_grad_scan(step, loss, 1e-5, chunk_size=chunk_size)
    return jax.jit(lambda p, v: sofo(p, v, h0, xs)[:2]), params, tangents


def chunk_sweep(n_units: int, k: int, t: int, chunks, repeats: int) -> dict:
    """Seconds per iteration at each `chunk_size` ("auto": None), same process."""
    out = {}
    for c in chunks:
        fn, params, tangents = _iteration(n_units, k, t, None if c == "auto" else int(c))
        out[str(c)] = median_seconds(lambda: fn(params, tangents), repeats)[0]
    return out


def profile(n_units: int, k: int, t: int, repeats: int) -> dict:
    fn, params, tangents = _iteration(n_units, k, t)
    macs = sum(int(x.size) for x in jax.tree.leaves(params) if x.ndim == 2)
    result = profile_callable(fn, (params, tangents), t, repeats)
    return {
        "N": n_units,
        "K": k,
        "T": t,
        "bound_flops": 2 * (2 * k + 1) * macs * BATCH * t,
        **result,
    }


def task_iteration(name: str, k: int | None, batch: int):
    """One SOFO iteration of a task's default model through `nd.optim.sofo` (what `fit` runs)."""
    task = nd.tasks.get(name)
    model = task.default_model(key=jr.PRNGKey(0))
    data = task.sample(key=jr.PRNGKey(1), batch_size=batch)
    problem = task.problem(model, data, key=jr.PRNGKey(2))
    k = k or 48
    trainable = model.trainable()
    opt = nd.optim.sofo(learning_rate=0.01, n_tangents=k)
    state = opt.init(model, trainable)
    dynamic, static = eqx.partition((model, state, problem), eqx.is_array)

    def iteration(d):
        m, s, p = eqx.combine(d, static)
        new_model, new_state = opt.step(m, s, p, key=jr.PRNGKey(3), trainable=trainable)[:2]
        return eqx.filter((new_model, new_state), eqx.is_array)

    params = eqx.filter(model, trainable)
    macs = sum(int(x.size) for x in jax.tree.leaves(params) if x.ndim == 2)
    n_steps = problem.n_steps
    return jax.jit(iteration), (dynamic,), n_steps, k, 2 * (2 * k + 1) * macs * batch * n_steps


def profile_callable(fn, args, t: int, repeats: int) -> dict:
    """Per-op times of `fn(*args)` (a jitted call whose loop body runs `t` times)."""
    compiled = fn.lower(*args).compile()  # compiled once: named from, timed and profiled
    ops = hlo_ops(compiled.as_text())
    fn = compiled
    wall = median_seconds(lambda: fn(*args), repeats)[0]  # without the profiler
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp, create_perfetto_trace=True):
            for _ in range(repeats):
                jax.block_until_ready(fn(*args))
        trace = sorted(Path(tmp).rglob("*.trace.json.gz"))[-1]
        events = json.loads(gzip.decompress(trace.read_bytes()))
    events = events["traceEvents"] if isinstance(events, dict) else events
    total = collections.Counter()
    for e in events:
        if e.get("ph") == "X" and e.get("name") in ops:
            total[e["name"]] += e.get("dur", 0) * 1e-6 / repeats  # seconds per iteration
    profiled = sum(total.values())
    rows = []
    for name, secs in total.most_common():
        op = ops[name]
        rows.append(
            {
                "op": name,
                "kind": op["kind"],
                "what": op["text"],
                "ms_per_step": 1e3 * secs / t,
                "share": secs / profiled if profiled else 0.0,
                "gflops": op["flops"] * t / secs / 1e9 if op["flops"] and secs > 0 else None,
            }
        )
    return {"iteration_s": wall, "profiled_s": profiled, "ops": rows}


def chunk_table(sweeps) -> str:
    chunks = list(sweeps[0]["seconds"])
    lines = [
        "",
        "## Chunk size (`chunk_size`): seconds per iteration, and the ratio to the first column",
        "",
        "| N | K | T | " + " | ".join(f"chunk {c}" for c in chunks) + " |",
        "|---|---|---|" + "---|" * len(chunks),
    ]
    for r in sweeps:
        base = r["seconds"][chunks[0]]
        cells = [f"{v:.3g} s ({v / base:.2f}×)" for v in r["seconds"].values()]
        lines.append(f"| {r['N']} | {r['K']} | {r['T']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def table(results, peak, top) -> str:
    lines = [
        "# Where a SOFO iteration's time goes",
        "",
        f"Machine: {machine()}. Matmul peak (1024³ float32, same run): {peak / 1e9:.0f} "
        f"GFLOP/s. Vanilla rate RNN (tanh), batch {BATCH}, float32, MSE at every step; the "
        "JAX profiler's time of each compiled op, per time step of the scan; `share`: of all "
        "the ops' profiled time. Matrix-product shapes are those XLA "
        "compiled (K tangent lanes folded into the rows or columns).",
    ]
    for r in results:
        mm = sum(o["share"] for o in r["ops"] if o["kind"] == "matmul")
        ew = sum(o["share"] for o in r["ops"] if o["kind"] != "matmul")
        pct = 100 * r["bound_flops"] / r["iteration_s"] / peak
        where = (
            f"task {r['task']} (default model, B = {r['B']})" if "task" in r else f"N = {r['N']}"
        )
        lines += [
            "",
            f"## {where}, K = {r['K']}, T = {r['T']}: {r['iteration_s']:.3g} s per "
            f"iteration, {pct:.0f} % of peak; of the ops' profiled time (itself "
            f"{100 * r['profiled_s'] / r['iteration_s']:.0f} % of the wall clock): matrix "
            f"products {100 * mm:.0f} %, element-wise loops {100 * ew:.0f} %",
            "",
            "| op | ms per step | share | GFLOP/s |",
            "|---|---|---|---|",
        ]
        for o in r["ops"][:top]:
            gf = f"{o['gflops']:.0f}" if o["gflops"] else "–"
            lines.append(
                f"| {o['what']} | {o['ms_per_step']:.3f} | {100 * o['share']:.1f} % | {gf} |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 16, K = 4, T = 20")
    parser.add_argument("--units", type=int, nargs="*", default=None)
    parser.add_argument("--tangents", type=int, nargs="*", default=None)
    parser.add_argument("--horizon", type=int, default=None, help="T (default 100)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--top", type=int, default=8, help="ops listed per configuration")
    parser.add_argument(
        "--chunk-sizes",
        nargs="*",
        default=None,
        help="also time the iteration at these chunk_size values (ints or 'auto'); "
        "the first is the baseline of the ratios",
    )
    parser.add_argument("--no-profile", action="store_true", help="only the chunk sweep")
    parser.add_argument(
        "--task",
        default=None,
        help="profile a task's SOFO iteration instead (its default model, `nd.optim.sofo`; "
        "K from --tangents, default 48)",
    )
    parser.add_argument("--batch", type=int, default=64, help="batch size for --task")
    parser.add_argument("--out", default=str(RESULTS / "step_profile"), help="output prefix")
    args = parser.parse_args(argv)
    for name in ("repeats", "top", "horizon", "batch"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be ≥ 1; got {value}")
    units = args.units or ([16] if args.quick else [64, 128, 256])
    tangents = args.tangents or ([4] if args.quick else [32, 128, 256])
    t = args.horizon or (20 if args.quick else 100)
    for c in args.chunk_sizes or ():
        if c != "auto" and not (c.isdigit() and int(c) >= 1):
            parser.error(f"--chunk-sizes takes ints ≥ 1 or 'auto'; got {c!r}")
    peak = matmul_peak(10, n=1024)
    results, sweeps = [], []
    if args.task:
        for k in args.tangents or [48]:
            fn, fargs, t, k, bound = task_iteration(args.task, k, args.batch)
            r = {"task": args.task, "B": args.batch, "K": k, "T": t, "bound_flops": bound}
            results.append({**r, **profile_callable(fn, fargs, t, args.repeats)})
            print(f"{args.task} K={k}: {results[-1]['iteration_s']:.4g} s per iteration")
        units = []  # the task replaces the vanilla grid
    for n in units:
        for k in tangents:
            if not args.no_profile:
                r = profile(n, k, t, args.repeats)
                results.append(r)
                print(f"N={n} K={k} T={t}: {r['iteration_s']:.4g} s per iteration", flush=True)
            if args.chunk_sizes:
                secs = chunk_sweep(n, k, t, args.chunk_sizes, args.repeats)
                sweeps.append({"N": n, "K": k, "T": t, "seconds": secs})
                print(f"N={n} K={k} T={t} chunk sizes: {secs}", flush=True)
    text = table(results, peak, args.top) + (chunk_table(sweeps) if sweeps else "")
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(
        json.dumps(
            {"machine": machine(), "peak_flops": peak, "results": results, "chunks": sweeps},
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
