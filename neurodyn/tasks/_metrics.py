"""Metrics and helpers shared by the task environments (rollouts, R², attractor statistics)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..models import rollout_problem


def _no_loss(y, x):
    return jnp.zeros((), jnp.result_type(*jax.tree.leaves(y)))


def rollout_outputs(model, inputs, *, key, initial_state: Any = None):
    """Outputs `[B, T, ...]` of a per-trial model on a batch; only the outputs are kept.

    Unlike `neurodyn.models.simulate`, the per-step states are not stored, so memory is
    O(B·T·n_out) rather than O(B·T·N): what evaluation over long horizons needs.
    """
    problem = rollout_problem(model, inputs, _no_loss, key=key, initial_state=initial_state)
    _, ys, _ = problem.rollout(model)
    return jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), ys)


def r_squared(prediction, truth, axis=None) -> float:
    """Coefficient of determination 1 − SS_res/SS_tot, each coordinate centred on its mean.

    `prediction`, `truth`: `[..., d]`; SS_tot is taken about the per-coordinate mean of
    `truth` over all other axes, and both sums run over every entry.
    """
    prediction = np.asarray(prediction, np.float64)
    truth = np.asarray(truth, np.float64)
    centred = truth - truth.reshape(-1, truth.shape[-1]).mean(0)
    ss_res = np.sum((prediction - truth) ** 2, axis=axis)
    ss_tot = np.sum(centred**2, axis=axis)
    return float(1.0 - ss_res / ss_tot)


def local_maxima(series) -> np.ndarray:
    """Values of the strict local maxima of a 1-D series (Lorenz's successive z-maxima)."""
    s = np.asarray(series, np.float64)
    inner = (s[1:-1] > s[:-2]) & (s[1:-1] >= s[2:])
    return s[1:-1][inner]


def ks_statistic(a, b) -> float:
    """Two-sample Kolmogorov–Smirnov statistic sup |F_a − F_b| (1.0 when either is empty)."""
    a = np.sort(np.asarray(a, np.float64).ravel())
    b = np.sort(np.asarray(b, np.float64).ravel())
    if a.size == 0 or b.size == 0:
        return 1.0
    grid = np.concatenate([a, b])
    fa = np.searchsorted(a, grid, side="right") / a.size
    fb = np.searchsorted(b, grid, side="right") / b.size
    return float(np.max(np.abs(fa - fb)))


def load_eval_set(name: str):
    """The shipped evaluation set `name` (see `neurodyn._data.load_eval_set`; raises
    `neurodyn._data.EvalSetError` naming the file when it is missing or unreadable)."""
    from .._data import load_eval_set as load

    return load(name)
