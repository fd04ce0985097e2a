"""Per-iteration cost of SOFO against a forward rollout, BPTT + Adam, first-order SOFO and FGD.

The networks are the flip-flop and Kalman tasks' default networks at their CPU size (flip-flop:
N = 64 ReLU units with output feedback; Kalman: N = 100 leaky-ReLU units), batch 32, float32,
on the tasks' own trials at horizon T; and (`--nets rnn128`) a plain rate RNN with N = 128 tanh
units, 4 inputs and 2 outputs on random inputs and targets (the README's table). For each
network, T ∈ {100, 1000, 5000} and
K ∈ {16, 32, 64, 128, 256}: the median seconds per iteration (≥ 5 repeats after a compiling
warm-up call) of

- `forward`: the loss of one rollout (no derivatives),
- `bptt`: one BPTT + Adam iteration (`nd.optim.adam`, reverse mode through the scan),
- `sofo`: one SOFO iteration (K tangents, subspace GGN, damped solve, update),
- `fo-sofo`: one first-order SOFO iteration (K tangents, no GGN),
- `fgd`: one forward-gradient iteration with K tangents,

with the ratios measured in the same run, and SOFO's achieved FLOP/s against this machine's
float32 matmul peak (a 2048³ matmul, measured in the same run).

**FLOP lower bound.** One step of one trial costs M multiply-adds, the sum of the sizes of the
network's weight matrices (every matrix is used once per step). Propagating the primal and K
tangents costs at least (2K + 1)·M multiply-adds per step and trial: for each tangent one
product with the weight tangent (dW·r) and one with the state tangent (W·dr). SOFO's lower
bound is therefore 2·(2K + 1)·M·B·T FLOP per iteration (nonlinearities, the GGN's K×K
accumulation and the K×K eigensolve are not counted), and `× bound` is SOFO's time over the
time that bound would take at the measured peak.

    python benchmarks/step_cost.py                        # the full grid (tens of minutes)
    python benchmarks/step_cost.py --quick                # T ∈ {100, 1000}, K ∈ {16, 64}
    python benchmarks/step_cost.py --nets kalman --horizons 1000 --tangents 32 128
    python benchmarks/step_cost.py --nets rnn128 --tangents 32 128 \\
        --out benchmarks/results/step_cost_rnn128

Writes `benchmarks/results/step_cost.md`, `.json` and `.png` (or `--out PREFIX`).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

import neurodyn as nd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BATCH = 32
METHODS = ("forward", "bptt", "sofo", "fo-sofo", "fgd")


def median_seconds(fn, repeats: int) -> tuple[float, float]:
    """(median seconds of `repeats` calls after one warm-up call, warm-up seconds)."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    warm = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times), warm


def matmul_peak(repeats: int) -> float:
    """The best FLOP/s of `repeats` 2048³ float32 matmuls (the best, not the median: a peak)."""
    n = 2048
    a = jr.normal(jr.PRNGKey(0), (n, n), jnp.float32)
    b = jr.normal(jr.PRNGKey(1), (n, n), jnp.float32)
    f = jax.jit(jnp.matmul)
    jax.block_until_ready(f(a, b))
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f(a, b))
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def matrix_macs(model) -> int:
    """Multiply-adds of one step of one trial: the sizes of the trained weight matrices."""
    params = eqx.filter(model, model.trainable())
    return sum(int(x.size) for x in jax.tree_util.tree_leaves(params) if x.ndim == 2)


def network(name: str, t: int):
    if name == "rnn128":  # issue 2's network: N = 128 tanh, random inputs and targets
        model = nd.models.RateRNN(128, 4, 2, tau=10.0, dt=1.0, activation="tanh", key=jr.PRNGKey(0))
        ku, kt = jr.split(jr.PRNGKey(t))
        inputs = jr.normal(ku, (BATCH, t, 4), jnp.float32)
        targets = jr.normal(kt, (BATCH, t, 2), jnp.float32)
        loss = nd.optim.mse(scale=1.0 / t)
        problem = nd.models.rollout_problem(
            model, inputs, loss, key=jr.PRNGKey(2), extra={"target": targets}
        )
        return None, model, problem
    if name == "flipflop":
        task = nd.tasks.get("flipflop", n_steps=t)
    elif name == "kalman":
        task = nd.tasks.get("kalman", n_steps=t)
    else:
        raise ValueError(f"`--nets` accepts 'flipflop', 'kalman' and 'rnn128'; got {name!r}")
    model = task.default_model(key=jr.PRNGKey(0))
    batch = task.sample(key=jr.PRNGKey(1), batch_size=BATCH)
    problem = task.problem(model, batch, key=jr.PRNGKey(2))
    return task, model, problem


def optimizer(method: str, k: int):
    if method == "bptt":
        return nd.optim.adam(1e-3)
    if method == "sofo":
        return nd.optim.sofo(learning_rate=0.1, n_tangents=k, damping=1e-5)
    if method == "fo-sofo":
        return nd.optim.first_order_sofo(learning_rate=0.1, n_tangents=k)
    if method == "fgd":
        return nd.optim.fgd(learning_rate=1e-4, n_tangents=k)
    raise ValueError(method)


def time_method(method, model, problem, k, repeats):
    if method == "forward":
        fwd = eqx.filter_jit(lambda m, p: p.value(m))
        return median_seconds(lambda: fwd(model, problem), repeats)
    trainable = model.trainable()
    opt = optimizer(method, k)
    state = opt.init(model, trainable)
    step = eqx.filter_jit(lambda m, s, p, key: opt.step(m, s, p, key=key, trainable=trainable)[:2])
    return median_seconds(lambda: step(model, state, problem, jr.PRNGKey(3)), repeats)


def table(rows, peak, repeats) -> str:
    lines = [
        "# Step cost",
        "",
        f"Machine: {machine()}. Matmul peak (2048³ float32, same run): "
        f"{peak / 1e9:.0f} GFLOP/s. Median of {repeats} after a compiling warm-up; batch "
        f"{BATCH}; float32. Ratios are against `forward` and `bptt` of the same row's T, "
        "measured in the same run. `× bound`: SOFO's time over the time of its multiply-add "
        "lower bound 2·(2K+1)·M·B·T at the measured peak (M: multiply-adds per step).",
        "",
        "| net | P | T | K | forward (s) | BPTT+Adam (s) | SOFO (s) | FO-SOFO (s) | FGD (s) "
        "| SOFO/forward | SOFO/BPTT | SOFO GFLOP/s | % of peak | × bound |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = r["seconds"]
        lines.append(
            f"| {r['net']} | {r['P']} | {r['T']} | {r['K']} | {s['forward']:.4f} | "
            f"{s['bptt']:.4f} | {s['sofo']:.3f} | {s['fo-sofo']:.3f} | {s['fgd']:.3f} | "
            f"{s['sofo'] / s['forward']:.0f}× | {s['sofo'] / s['bptt']:.1f}× | "
            f"{r['sofo_gflops']:.0f} | {100 * r['sofo_gflops'] * 1e9 / peak:.0f}% | "
            f"{r['x_bound']:.1f}× |"
        )
    return "\n".join(lines) + "\n"


def plot(rows, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nets = sorted({r["net"] for r in rows})
    fig, axes = plt.subplots(1, len(nets), figsize=(5.5 * len(nets), 4), squeeze=False)
    for ax, net in zip(axes[0], nets):
        for t in sorted({r["T"] for r in rows if r["net"] == net}):
            sel = [r for r in rows if r["net"] == net and r["T"] == t]
            ks = [r["K"] for r in sel]
            (line,) = ax.plot(ks, [r["seconds"]["sofo"] for r in sel], "o-", label=f"SOFO T={t}")
            ax.plot(ks, [r["bound_s"] for r in sel], ":", color=line.get_color())
            ax.axhline(sel[0]["seconds"]["bptt"], ls="--", color=line.get_color(), lw=0.8)
        ax.set_xscale("log")
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set(
            yscale="log",
            xlabel="K (tangents)",
            ylabel="seconds per iteration",
            title=f"{net}: SOFO (o), its FLOP bound (:), BPTT+Adam (--)",
        )
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="T ∈ {100, 1000}, K ∈ {16, 64}")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--nets", nargs="*", default=["flipflop", "kalman"])
    parser.add_argument("--horizons", type=int, nargs="*", default=None)
    parser.add_argument("--tangents", type=int, nargs="*", default=None)
    parser.add_argument("--out", default=str(RESULTS / "step_cost"), help="output prefix")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be ≥ 1")
    horizons = args.horizons or ([100, 1000] if args.quick else [100, 1000, 5000])
    tangents = args.tangents or ([16, 64] if args.quick else [16, 32, 64, 128, 256])

    peak = matmul_peak(2 * args.repeats)
    print(f"# {machine()}\n# matmul peak {peak / 1e9:.0f} GFLOP/s", flush=True)
    rows = []
    for net in args.nets:
        for t in horizons:
            _, model, problem = network(net, t)
            macs = matrix_macs(model)
            base = {m: time_method(m, model, problem, 0, args.repeats)[0] for m in METHODS[:2]}
            for k in tangents:
                secs = dict(base)
                for m in METHODS[2:]:
                    secs[m] = time_method(m, model, problem, k, args.repeats)[0]
                flops = 2 * (2 * k + 1) * macs * BATCH * t
                row = {
                    "net": net,
                    "P": int(model.n_params),
                    "macs_per_step": macs,
                    "T": t,
                    "K": k,
                    "seconds": secs,
                    "sofo_gflops": flops / secs["sofo"] / 1e9,
                    "bound_s": flops / peak,
                    "x_bound": secs["sofo"] / (flops / peak),
                }
                rows.append(row)
                print(
                    f"{net} T={t} K={k}: "
                    + ", ".join(f"{m} {v:.4g} s" for m, v in secs.items())
                    + f"; SOFO {row['sofo_gflops']:.0f} GFLOP/s, {row['x_bound']:.1f}× bound",
                    flush=True,
                )
    # the peak again at the end (the machine's clock and neighbours vary): the higher counts
    peak_end = matmul_peak(2 * args.repeats)
    if peak_end > peak:
        for r in rows:
            r["bound_s"] *= peak / peak_end
            r["x_bound"] = r["seconds"]["sofo"] / r["bound_s"]
        peak = peak_end
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = table(rows, peak, args.repeats)
    print(text)
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(
        json.dumps({"machine": machine(), "peak_flops": peak, "rows": rows}, indent=1)
    )
    plot(rows, out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
