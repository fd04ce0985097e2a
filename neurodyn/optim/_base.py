"""The optimizer interface shared by SOFO, first-order SOFO, FGD, BPTT and FORCE.

An optimizer is an `eqx.Module` holding its hyperparameters, with two pure methods:

- `init(params, trainable=None) -> state`
- `step(params, state, problem, *, key, trainable=None) -> (params, state, info)`

`problem` is a [`neurodyn.optim.RecurrentProblem`][] or [`neurodyn.optim.FeedforwardProblem`][];
`info` is a dict of scalars and small arrays (at least `loss`, the loss before the update, and
`finite`, whether the step was accepted). A step whose loss or update is not finite leaves
the parameters and the state untouched and reports `finite = False`.
"""

from __future__ import annotations

import abc
import numbers
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from ._problem import FeedforwardProblem, RecurrentProblem
from ._sofo import sofo_scan_terms, sofo_terms
from ._tangents import count_params, sample_tangents, split_trainable


class AbstractOptimizer(eqx.Module):
    """Base class of every neurodyn optimizer (see the module docstring)."""

    name: ClassVar[str] = "optimizer"
    uses_tangents: ClassVar[bool] = False

    @abc.abstractmethod
    def init(self, params: Any, trainable: Any = None) -> Any: ...

    @abc.abstractmethod
    def step(
        self, params: Any, state: Any, problem: Any, *, key, trainable: Any = None
    ) -> tuple[Any, Any, dict]: ...

    guards_steps: ClassVar[bool] = True
    """Whether `nd.fit` may reject a finite step that raised the loss on its own batch (see
    `fit`'s `max_loss_increase`). False for optimizers whose reported loss is not the loss
    of the parameters before the step (FORCE's online loss)."""

    cheap_loss_check: ClassVar[bool] = False
    """Whether one more forward pass is cheap next to a step (the tangent methods, whose
    step costs about K forward passes); `nd.fit` then checks by default that a step did not
    raise the loss (`max_loss_increase="auto"`)."""

    def retry_state(self, state: Any, scale: jax.Array) -> Any:
        """The state a retried attempt starts from, after `tries` rejected attempts, with
        `scale` = `retry_damping_factor`**tries (default: unchanged)."""
        del scale
        return state

    def accepted_state(self, before: Any, after: Any) -> Any:
        """The state kept once a (possibly retried) step is accepted (default: `after`)."""
        del before
        return after

    def learning_rate_at(self, state: Any) -> Any:
        """The learning rate the next step from `state` uses, or None when the optimizer
        does not know it (a user-supplied optax transform)."""
        del state
        return None


def tree_all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def tree_select(pred, on_true, on_false):
    """Leafwise `where(pred, a, b)` over two pytrees of the same structure."""
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def apply_direction(transform, opt_state, params, direction, trainable, ok):
    """Pass `direction` (gradient-like) through `transform` and update the trained params.

    Element masks zero the update of masked entries; when `ok` is False nothing changes.
    Returns `(new_params, new_opt_state, ok)`, with `ok` also False if the update is not finite.
    """
    dynamic, static, masks = split_trainable(params, trainable)
    updates, new_opt_state = transform.update(direction, opt_state, dynamic)
    updates = jax.tree.map(
        lambda u, m: u if m is None else u * m.astype(u.dtype),
        updates,
        masks,
        is_leaf=lambda x: x is None,
    )
    ok = ok & tree_all_finite(updates)
    new_dynamic = optax.apply_updates(dynamic, updates)
    new_dynamic = tree_select(ok, new_dynamic, dynamic)
    # every array leaf of the optimizer state, integer step counts included (Adam's bias
    # correction and optax schedules read them): an earlier version kept only the inexact
    # leaves here, so those counts never advanced (see tests/test_optimizers.py)
    arrays = eqx.is_array
    new_opt_state = tree_select(
        ok, eqx.filter(new_opt_state, arrays), eqx.filter(opt_state, arrays)
    )
    new_opt_state = eqx.combine(new_opt_state, eqx.filter(opt_state, arrays, inverse=True))
    return eqx.combine(new_dynamic, static), new_opt_state, ok


def trainable_params(params, trainable):
    """The trained part of `params` (None elsewhere), for initialising optax states."""
    return split_trainable(params, trainable)[0]


def check_problem(problem) -> None:
    if not isinstance(problem, (RecurrentProblem, FeedforwardProblem)):
        raise TypeError(
            "`problem` must be a neurodyn.optim.RecurrentProblem or FeedforwardProblem; got "
            f"{type(problem).__name__}."
        )


def check_n_tangents(n_tangents, params, trainable) -> None:
    if isinstance(n_tangents, bool) or not isinstance(n_tangents, int):
        raise TypeError(f"`n_tangents` must be an int; got {n_tangents!r}.")
    n_params = count_params(params, trainable)
    if not 1 <= n_tangents <= n_params:
        raise ValueError(
            f"`n_tangents` must satisfy 1 <= K <= P = {n_params} (trained parameters); got "
            f"K = {n_tangents}."
        )


def forward_terms(problem, params, tangents, *, compute_ggn, generic_ggn=False, chunk_size=1):
    """One forward-mode pass over a problem: (loss, Vᵀg, G̃ or None)."""
    check_problem(problem)
    if isinstance(problem, RecurrentProblem):
        value, vg, ggn, _, _ = sofo_scan_terms(
            problem.step,
            problem.loss,
            params,
            tangents,
            problem.carry0,
            problem.xs,
            compute_ggn=compute_ggn,
            generic_ggn=generic_ggn,
            chunk_size=chunk_size,
            time_axis=problem.time_axis,
        )
    else:
        value, vg, ggn, _ = sofo_terms(
            problem.fun,
            problem.loss,
            params,
            tangents,
            *problem.args,
            compute_ggn=compute_ggn,
            generic_ggn=generic_ggn,
        )
    return value, vg, ggn


def draw_tangents(key, params, n_tangents, kind, trainable):
    return sample_tangents(key, params, n_tangents, kind, trainable=trainable)


def _is_real_scalar(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, numbers.Real):
        return True
    dtype = getattr(value, "dtype", None)  # a 0-d jax or numpy array
    return (
        getattr(value, "ndim", None) == 0
        and dtype is not None
        and jnp.issubdtype(dtype, jnp.number)
        and not jnp.issubdtype(dtype, jnp.complexfloating)
    )


def check_learning_rate(learning_rate, name: str = "learning_rate") -> None:
    """A finite number > 0 or a schedule (a callable of the step count)."""
    if callable(learning_rate):
        return
    if not _is_real_scalar(learning_rate):
        raise TypeError(
            f"`{name}` must be a number or an optax schedule; got "
            f"{type(learning_rate).__name__} {learning_rate!r}."
        )
    lr = float(learning_rate)
    if not lr > 0 or lr != lr or lr == float("inf"):
        raise ValueError(f"`{name}` must be a finite number > 0; got {learning_rate!r}.")


def check_optional_fraction(value, name: str) -> None:
    """`None` or a number in [0, 1) (momentum, weight decay)."""
    if value is None:
        return
    if not _is_real_scalar(value):
        raise TypeError(f"`{name}` must be a number in [0, 1) or None; got {value!r}.")
    v = float(value)
    if not (0 <= v < 1):
        raise ValueError(f"`{name}` must be a number in [0, 1) or None; got {value!r}.")
