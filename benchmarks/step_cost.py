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

**Side by side with a reference implementation** (`--reference path/to/api.py`): the module
at that path must define `value_and_sofo_grad_temporal(rnn, loss, tangent_size, damping)`
and `sample_v(tangent_size, params, rng)` with the signatures of the SOFO authors' JAX code
(`jax/api.py` of github.com/hennequin-lab/SOFO; fetch it yourself — it has no licence, so it
is never committed here). Both implementations train the same vanilla rate RNN (N tanh units,
4 inputs, 2 linear outputs, batch 32, float32, ½‖y − y*‖² averaged over the batch at every
step, relative damping 1e-5) and are fed the same K tangents (the reference's `sample_v` is
replaced by one returning neurodyn's), so their updates must agree (cosine and norm ratio are
printed and checked). The two are timed interleaved in one process, call by call, and the
table reports the median of the paired ratios with their range, and each one's FLOP/s as a
fraction of one 1024³ float32 matmul's peak measured in the same run:

    taskset -c 1 python benchmarks/step_cost.py --reference /tmp/sofo_ref/api.py \\
        --horizons 100 1000 --tangents 32 128 256 --out benchmarks/results/step_cost_reference
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


def matmul_peak(repeats: int, n: int = 2048) -> float:
    """The best FLOP/s of `repeats` n³ float32 matmuls (the best, not the median: a peak)."""
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


def vanilla_rnn(n_units: int, n_steps: int, batch: int = BATCH):
    """The side-by-side network as plain functions: (params, step, loss, h0, xs, ref_rnn, ref_loss).

    h' = h + α(tanh(h) W + u W_in + b − h), y = tanh(h') W_out + b_out, α = 0.1; the loss of a
    step is ½ Σ_o (y − y*)² averaged over the batch (neurodyn: `mse(scale=0.5,
    reduction="sum")`; the reference: the same expression, whose GGN is its `ggn_mse`).
    """
    keys = jr.split(jr.PRNGKey(0), 6)
    n_in, n_out, alpha = 4, 2, 0.1
    params = {
        "W": jr.normal(keys[0], (n_units, n_units)) * (1.2 / math.sqrt(n_units)),
        "W_in": jr.normal(keys[1], (n_in, n_units)),
        "b": jnp.zeros(n_units),
        "W_out": jr.normal(keys[2], (n_units, n_out)) / math.sqrt(n_units),
        "b_out": jnp.zeros(n_out),
    }
    inputs = jr.normal(keys[3], (n_steps, batch, n_in))
    targets = jr.normal(keys[4], (n_steps, batch, n_out))

    def cell(p, h, u):
        h = h + alpha * (jnp.tanh(h) @ p["W"] + u @ p["W_in"] + p["b"] - h)
        return h, jnp.tanh(h) @ p["W_out"] + p["b_out"]

    def step(p, h, x):
        return cell(p, h, x["u"])

    def ref_rnn(p, h, u):  # the reference's convention: ((new latent, output), aux output)
        h, y = cell(p, h, u)
        return (h, y), y

    def ref_loss(y, target):
        return 0.5 * jnp.mean(jnp.sum((y - target) ** 2, axis=-1))

    loss = nd.optim.mse(target="target", scale=0.5, reduction="sum")
    xs = {"u": inputs, "target": targets}
    return params, step, loss, jnp.zeros((batch, n_units)), xs, ref_rnn, ref_loss


def _usage_error(message: str):
    """Exit 2 with `message` on stderr, as argparse does (the exception still carries it)."""
    print(f"step_cost.py: error: {message}", file=sys.stderr)
    err = SystemExit(message)
    err.code = 2
    raise err


def load_reference(path: str):
    """Import the reference module from `path`; a clear error if it is not usable."""
    import importlib.util

    file = Path(path)
    if not file.is_file():
        _usage_error(f"--reference: no file at {path!r} (give the path of the reference)")
    spec = importlib.util.spec_from_file_location("sofo_reference", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    missing = [n for n in ("value_and_sofo_grad_temporal", "sample_v") if not hasattr(module, n)]
    if missing:
        _usage_error(f"--reference: {path!r} defines no {', '.join(missing)}")
    return module


def side_by_side(ref, n_units, t, k, repeats, damping=1e-5):
    """Paired timings of one SOFO iteration, neurodyn against the reference, same tangents."""
    params, step, loss, h0, xs, ref_rnn, ref_loss = vanilla_rnn(n_units, t)
    tangents = nd.sample_tangents(jr.PRNGKey(7), params, k)
    ours_fn = nd.value_and_sofo_grad_scan(step, loss, damping)
    ours = jax.jit(lambda p, v: ours_fn(p, v, h0, xs)[:2])
    batch = (xs["u"], xs["target"])
    wrapper = ref.value_and_sofo_grad_temporal(ref_rnn, ref_loss, k, damping)(h0, batch)
    sample_v = ref.sample_v

    def theirs_fn(p, v):
        ref.sample_v = lambda tangent_size, p_, rng: v  # feed the same tangents (at trace time)
        try:
            return wrapper(jr.PRNGKey(1), p)[:2]
        finally:
            ref.sample_v = sample_v

    theirs = jax.jit(theirs_fn)
    (loss_a, dir_a), warm_a = _timed(lambda: ours(params, tangents))
    (loss_b, dir_b), warm_b = _timed(lambda: theirs(params, tangents))
    a = jnp.concatenate([x.ravel() for x in jax.tree.leaves(dir_a)])
    b = jnp.concatenate([x.ravel() for x in jax.tree.leaves(dir_b)])
    cosine = float(a @ b / (jnp.linalg.norm(a) * jnp.linalg.norm(b)))
    norm_ratio = float(jnp.linalg.norm(a) / jnp.linalg.norm(b))
    pairs = []
    for _ in range(repeats):  # interleaved, so both see the same machine state
        pairs.append(
            (_timed(lambda: ours(params, tangents))[1], _timed(lambda: theirs(params, tangents))[1])
        )
    macs = sum(int(x.size) for x in jax.tree.leaves(params) if x.ndim == 2)
    return {
        "N": n_units,
        "T": t,
        "K": k,
        "loss": [float(loss_a), float(loss_b)],
        "cosine": cosine,
        "norm_ratio": norm_ratio,
        "neurodyn_s": statistics.median(p[0] for p in pairs),
        "reference_s": statistics.median(p[1] for p in pairs),
        "ratios": [p[0] / p[1] for p in pairs],
        "compile_s": [warm_a, warm_b],
        "flops": 2 * (2 * k + 1) * macs * BATCH * t,
    }


def _timed(fn):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - t0


def reference_table(rows, peak, repeats) -> str:
    lines = [
        "# SOFO step: neurodyn against the reference implementation",
        "",
        f"Machine: {machine()}. Matmul peak (1024³ float32, best of the runs at the start and "
        f"the end): {peak / 1e9:.0f} GFLOP/s. Vanilla rate RNN (tanh), batch {BATCH}, float32, "
        f"MSE at every step; the same tangents fed to both; {repeats} interleaved pairs after a "
        "compiling call. `ratio`: median of the paired ratios neurodyn / reference [min–max]; "
        "`% of peak`: FLOP/s of the multiply-add lower bound 2·(2K+1)·M·B·T over the peak.",
        "",
        "| N | T | K | neurodyn (s) | reference (s) | ratio [range] | neurodyn % of peak "
        "| reference % of peak | update cosine | norm ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = statistics.median(r["ratios"])
        lines.append(
            f"| {r['N']} | {r['T']} | {r['K']} | {r['neurodyn_s']:.4g} | {r['reference_s']:.4g} | "
            f"{ratio:.2f} [{min(r['ratios']):.2f}–{max(r['ratios']):.2f}] | "
            f"{100 * r['flops'] / r['neurodyn_s'] / peak:.0f} % | "
            f"{100 * r['flops'] / r['reference_s'] / peak:.0f} % | {r['cosine']:.6f} | "
            f"{r['norm_ratio']:.5f} |"
        )
    return "\n".join(lines) + "\n"


def reference_main(args) -> int:
    ref = load_reference(args.reference)
    horizons = args.horizons or ([20] if args.quick else [100, 1000])
    tangents = args.tangents or ([4, 8] if args.quick else [32, 128, 256])
    units = args.units or ([16] if args.quick else [128])
    peak = matmul_peak(2 * args.repeats, n=1024)
    print(f"# {machine()}\n# matmul peak {peak / 1e9:.0f} GFLOP/s", flush=True)
    rows = []
    for n in units:
        for t in horizons:
            for k in tangents:
                row = side_by_side(ref, n, t, k, args.repeats)
                if not (row["cosine"] > 0.9999 and abs(row["norm_ratio"] - 1) < 1e-3):
                    raise SystemExit(
                        f"the updates disagree at N={n} T={t} K={k}: cosine {row['cosine']:.6f}, "
                        f"norm ratio {row['norm_ratio']:.5f} — not the same algorithm or convention"
                    )
                rows.append(row)
                print(
                    f"N={n} T={t} K={k}: neurodyn {row['neurodyn_s']:.4g} s, reference "
                    f"{row['reference_s']:.4g} s, ratio {statistics.median(row['ratios']):.2f}, "
                    f"cosine {row['cosine']:.6f}",
                    flush=True,
                )
    peak = max(peak, matmul_peak(2 * args.repeats, n=1024))
    out = Path(args.out or str(RESULTS / "step_cost_reference"))
    out.parent.mkdir(parents=True, exist_ok=True)
    text = reference_table(rows, peak, args.repeats)
    print(text)
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(
        json.dumps({"machine": machine(), "peak_flops": peak, "rows": rows}, indent=1)
    )
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="T ∈ {100, 1000}, K ∈ {16, 64}")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--nets", nargs="*", default=["flipflop", "kalman"])
    parser.add_argument("--horizons", type=int, nargs="*", default=None)
    parser.add_argument("--tangents", type=int, nargs="*", default=None)
    parser.add_argument("--out", default=None, help="output prefix")
    parser.add_argument(
        "--reference",
        default=None,
        help="path of a reference SOFO api.py: time neurodyn against it side by side",
    )
    parser.add_argument(
        "--units", type=int, nargs="*", default=None, help="N for --reference (default 128)"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be ≥ 1")
    if args.reference is not None:
        return reference_main(args)
    args.out = args.out or str(RESULTS / "step_cost")
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
