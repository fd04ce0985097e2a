"""Per-iteration cost of SOFO against a forward rollout and BPTT + Adam (issue 2 / issue 8).

A rate RNN (N = 128, batch 32, tanh, float32) at T ∈ {100, 1000, 5000} and K ∈ {32, 128}.
For each configuration: median seconds per iteration (after a warm-up call) of

- a plain forward rollout (the loss only),
- one BPTT + Adam iteration (`nd.optim.adam`),
- one SOFO iteration (`nd.optim.sofo`, the generic `value_and_sofo_grad_scan` path),

the ratios measured in the same run, and SOFO's achieved FLOP/s as a fraction of this
machine's matmul peak (a 2048³ float32 matmul, measured in the same run). The FLOP count is
the lower bound of propagating the primal and K tangents: per step and trial,
2·[(2K+1)·N² + (K+1)·N·n_in + (2K+1)·N·n_out] (one N×N product per tangent for the weight
tangent, one for the state tangent).

    python benchmarks/step_cost.py                 # the table of the README
    python benchmarks/step_cost.py --quick         # T ∈ {100, 1000}, 3 repeats
    python benchmarks/step_cost.py --chunk-size 8  # SOFO with chunked parameter drives
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

import neurodyn as nd

N, B, N_IN, N_OUT = 128, 32, 4, 2


def median_seconds(fn, repeats: int) -> float:
    jax.block_until_ready(fn())  # compile + warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_peak(repeats: int) -> float:
    n = 2048
    a = jr.normal(jr.PRNGKey(0), (n, n), jnp.float32)
    b = jr.normal(jr.PRNGKey(1), (n, n), jnp.float32)
    f = jax.jit(jnp.matmul)
    return 2 * n**3 / median_seconds(lambda: f(a, b), repeats)


def sofo_flops(k: int, t: int) -> float:
    per_trial_step = 2 * ((2 * k + 1) * N * N + (k + 1) * N * N_IN + (2 * k + 1) * N * N_OUT)
    return per_trial_step * B * t


def problem_for(model, t: int, key):
    ku, kt = jr.split(key)
    inputs = jr.normal(ku, (B, t, N_IN), jnp.float32)
    targets = jr.normal(kt, (B, t, N_OUT), jnp.float32)
    loss = nd.optim.mse(scale=1.0 / t)
    return nd.models.rollout_problem(model, inputs, loss, key=key, extra={"target": targets})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="T in {100, 1000}, 3 repeats")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--horizons", type=int, nargs="*", default=None)
    parser.add_argument("--tangents", type=int, nargs="*", default=[32, 128])
    args = parser.parse_args(argv)
    horizons = args.horizons or ([100, 1000] if args.quick else [100, 1000, 5000])
    repeats = 3 if args.quick else args.repeats

    model = nd.models.RateRNN(
        N, N_IN, N_OUT, tau=10.0, dt=1.0, activation="tanh", key=jr.PRNGKey(0)
    )
    trainable = model.trainable()
    peak = matmul_peak(repeats)
    print(
        f"# neurodyn {nd.__version__}, jax {jax.__version__}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.platform()})"
    )
    print(f"# matmul peak (2048^3 float32): {peak / 1e9:.0f} GFLOP/s")
    print(
        f"# rate RNN N={N}, batch={B}, n_in={N_IN}, n_out={N_OUT}, tanh, float32, "
        f"P={model.n_params}; median of {repeats} after warm-up"
    )
    header = (
        "| T | K | forward (s) | BPTT+Adam (s) | SOFO (s) | SOFO/forward | SOFO/BPTT | "
        "SOFO GFLOP/s | % of peak |"
    )
    print(header)
    print("|" + "---|" * 9)
    for t in horizons:
        problem = problem_for(model, t, jr.PRNGKey(t))
        forward = eqx.filter_jit(lambda m, p: p.value(m))
        t_fwd = median_seconds(lambda: forward(model, problem), repeats)
        adam = nd.optim.adam(1e-3)
        adam_state = adam.init(model, trainable)
        adam_step = eqx.filter_jit(
            lambda m, s, p: adam.step(m, s, p, key=None, trainable=trainable)[:2]
        )
        t_bptt = median_seconds(lambda: adam_step(model, adam_state, problem), repeats)
        for k in args.tangents:
            opt = nd.optim.sofo(
                learning_rate=0.1, n_tangents=k, damping=1e-5, chunk_size=args.chunk_size or 1
            )
            state = opt.init(model, trainable)
            sofo_step = eqx.filter_jit(
                lambda m, s, p, key: opt.step(m, s, p, key=key, trainable=trainable)[:2]
            )
            t_sofo = median_seconds(
                lambda: sofo_step(model, state, problem, jr.PRNGKey(1)), repeats
            )
            flops = sofo_flops(k, t) / t_sofo
            print(
                f"| {t} | {k} | {t_fwd:.4f} | {t_bptt:.4f} | {t_sofo:.3f} | "
                f"{t_sofo / t_fwd:.0f}× | {t_sofo / t_bptt:.1f}× | {flops / 1e9:.0f} | "
                f"{100 * flops / peak:.0f}% |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
