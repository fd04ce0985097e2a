"""Pieces shared by the benchmark scripts: the jitted training step, the step-size sweep rule
and the machine's name."""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Callable

import equinox as eqx
import jax
import jax.random as jr


def make_step(task, opt, batch_size: int, trainable):
    """One jitted iteration as `nd.fit` takes it: a fresh batch, noise and tangents per key."""

    @eqx.filter_jit
    def step(model, state, key):
        k_data, k_problem, k_opt = jr.split(key, 3)
        batch = task.sample(key=k_data, batch_size=batch_size)
        problem = task.problem(model, batch, key=k_problem)
        return opt.step(model, state, problem, key=k_opt, trainable=trainable)

    return step


def machine() -> str:
    """The processor, the cores this process may use, the OS and the JAX backend."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{platform.processor() or platform.machine()}, {cores} of {os.cpu_count()} CPU cores "
        f"available to the process, {platform.system()} {platform.release()}, jax "
        f"{jax.__version__} ({jax.default_backend()}: {jax.devices()[0].device_kind}), float32"
    )


# A sweep whose best step size is the smallest or largest tried goes on past it (× or ÷
# EDGE_FACTOR) while the metric improves, for at most EDGE_STEPS more runs: one rule for every
# optimizer in every benchmark that tunes step sizes.
EDGE_STEPS = 2
EDGE_FACTOR = 3.0


def better(a: float, b: float, direction: str) -> bool:
    """Whether metric value `a` beats `b` (`direction` "above": larger is better, "below":
    smaller); a non-finite value never beats a finite one."""
    if not math.isfinite(b):
        return True
    if not math.isfinite(a):
        return False
    return a > b if direction == "above" else a < b


def sweep_step_size(trial: Callable[[float], dict], rates, direction: str) -> tuple[dict, list]:
    """Run `trial(rate)` (a record with the run's final metric under `"final"`) at each rate
    of the grid, then past an edge of it while the best is there and improving (see
    `EDGE_STEPS`). Returns the best record and every record, in the order they ran."""
    tried = [trial(rate) for rate in rates]
    best = tried[0]
    for entry in tried[1:]:
        if better(entry["final"], best["final"], direction):
            best = entry
    for _ in range(EDGE_STEPS if len(tried) > 1 else 0):
        ordered = sorted(e["learning_rate"] for e in tried)
        rate = best["learning_rate"]
        if rate not in (ordered[0], ordered[-1]):
            break
        factor = EDGE_FACTOR if rate == ordered[-1] else 1 / EDGE_FACTOR
        entry = trial(float(f"{rate * factor:.3g}"))
        tried.append(entry)
        if not better(entry["final"], best["final"], direction):
            break
        best = entry
    return best, tried


def median_range_figure(
    series: dict[str, list[dict]],
    path,
    *,
    x: str,
    xlabel: str,
    ylabel: str,
    title: str,
    log_base: float = 10,
    hlines: tuple = (),
    figsize=(5.5, 3.8),
) -> None:
    """One line per series of summary rows (each with the key `x` and "median", "min", "max"),
    the bars from min to max: the figure of every sweep over a size or a horizon. A non-finite
    min (a diverged run) is left out of the bar. `hlines`: (y, colour, label or None) each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize)
    for label, rows in series.items():
        rows = sorted(rows, key=lambda s: s[x])
        if not rows:
            continue
        med = [s["median"] for s in rows]
        low = [s["min"] if math.isfinite(s["min"]) else s["median"] for s in rows]
        err = [[m - lo for m, lo in zip(med, low)], [s["max"] - s["median"] for s in rows]]
        ax.errorbar([s[x] for s in rows], med, yerr=err, marker="o", capsize=3, label=label)
    for y, colour, label in hlines:
        ax.axhline(y, color=colour, lw=0.8, ls=":", label=label)
    ax.set_xscale("log", base=log_base)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
