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
import contextlib
import contextvars
import numbers
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ._losses import AbstractLoss
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


BATCH_SHARDING: contextvars.ContextVar = contextvars.ContextVar(
    "neurodyn_batch_sharding", default=None
)
"""Set by `nd.fit` while it traces a step whose trials are split over a mesh axis `"batch"`
(and no tangents axis): `(mesh, batch_size)`. See `batch_mean`."""


def _batch_specs(problem, batch_size: int):
    """Partition specs splitting the trials of `problem`'s arrays, or None when `problem` is
    not known to be a batch mean of independent trials (then XLA partitions it instead)."""
    if not isinstance(getattr(problem, "loss", None), AbstractLoss):
        return None  # only the package's losses are known to be batch means
    arrays = eqx.filter(problem, eqx.is_array)
    if isinstance(problem, RecurrentProblem):
        axis = 1 if problem.time_axis == 0 else 0
        carry = problem.carry0
        if callable(carry) and not isinstance(carry, eqx.Module):
            return None  # a closure: its per-trial arrays are out of sight
        carry_leaves = jax.tree.leaves(eqx.filter(carry, eqx.is_array))
        if not carry_leaves or any(c.ndim < 1 or c.shape[0] != batch_size for c in carry_leaves):
            return None
        x_leaves = jax.tree.leaves(problem.xs)
        if any(x.ndim <= axis or x.shape[axis] != batch_size for x in x_leaves):
            return None
        by_batch = PartitionSpec(*([None] * axis), "batch")
        return eqx.tree_at(
            lambda p: (p.xs, p.carry0),
            jax.tree.map(lambda _: PartitionSpec(), arrays),
            (
                jax.tree.map(lambda _: by_batch, arrays.xs),
                jax.tree.map(lambda _: PartitionSpec("batch"), arrays.carry0),
            ),
            is_leaf=lambda x: x is None,
        )
    leaves = jax.tree.leaves(arrays)
    if not leaves or any(a.ndim < 1 or a.shape[0] != batch_size for a in leaves):
        return None
    return jax.tree.map(lambda _: PartitionSpec("batch"), arrays)


def batch_mean(compute, problem, *args):
    """`compute(problem, *args)`, a pytree of batch means (loss, Vᵀg, G̃, a gradient), with
    the trials split over the devices of a fit's `"batch"` mesh axis when there is one.

    Each device computes the means over its own trials (`shard_map`) and one `pmean` per
    iteration averages them: equal slices make the mean of the slices' means the mean over
    the batch. Without a batch mesh, or for a problem not known to be a batch mean of
    independent trials (a loss that is not a `neurodyn.optim.AbstractLoss`, per-trial arrays
    hidden in a closure), this is `compute(problem, *args)` and XLA partitions it from the
    layout of the batch (correct too, with a reduction at every time step).
    """
    ctx = BATCH_SHARDING.get()
    specs = None if ctx is None else _batch_specs(problem, ctx[1])
    if specs is None:
        return compute(problem, *args)
    mesh = ctx[0]
    (p_arrays, a_arrays), static = eqx.partition((problem, args), eqx.is_array)

    def local(p_arrays, a_arrays):
        prob, rest = eqx.combine((p_arrays, a_arrays), static)
        return jax.lax.pmean(compute(prob, *rest), "batch")

    arg_specs = jax.tree.map(lambda _: PartitionSpec(), a_arrays)
    return jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(specs, arg_specs),
        out_specs=PartitionSpec(),
        check_vma=False,
    )(p_arrays, a_arrays)


def forward_terms(problem, params, tangents, *, compute_ggn, generic_ggn=False, chunk_size=1):
    """One forward-mode pass over a problem: (loss, Vᵀg, G̃ or None).

    In a fit whose trials are split over devices, each device runs its trials and the three
    sums are averaged once (see `batch_mean`).
    """
    check_problem(problem)
    return batch_mean(
        lambda prob, p, t: _forward_terms(prob, p, t, compute_ggn, generic_ggn, chunk_size),
        problem,
        params,
        tangents,
    )


def _forward_terms(problem, params, tangents, compute_ggn, generic_ggn, chunk_size):
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


TANGENT_SHARDING: contextvars.ContextVar = contextvars.ContextVar(
    "neurodyn_tangent_sharding", default=None
)
"""Set by `nd.fit` while it traces a step on a mesh with a tangents axis: the sharding of the
K axis of the tangents (a layout hint for XLA; values do not depend on it)."""


@contextlib.contextmanager
def step_sharding(mesh: Mesh | None, batch_size: int, reduction: str = "once"):
    """Context manager: while a step is traced inside it on `mesh` (a `jax.sharding.Mesh`
    with axes `"batch"` and `"tangents"`), SOFO-like optimizers lay the tangents they draw
    out over the `"tangents"` axis, and on a mesh with only a batch axis the optimizers'
    batch means ([`neurodyn.optim.batch_mean`][]) run per device with one reduction per
    iteration. `reduction="xla"` leaves the partitioning to XLA instead (it reduces at every
    time step; kept for the scale-out benchmark). `mesh=None`: no effect. `nd.fit` enters
    it around its step; an optimizer written outside the package gets the same behaviour by
    computing its batch means with `batch_mean`."""
    if mesh is None:
        yield
        return
    tokens = []
    if mesh.shape["tangents"] > 1:
        sharding = NamedSharding(mesh, PartitionSpec("tangents"))
        tokens.append((TANGENT_SHARDING, TANGENT_SHARDING.set(sharding)))
    elif reduction == "once":
        tokens.append((BATCH_SHARDING, BATCH_SHARDING.set((mesh, batch_size))))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def draw_tangents(key, params, n_tangents, kind, trainable):
    tangents = sample_tangents(key, params, n_tangents, kind, trainable=trainable)
    sharding = TANGENT_SHARDING.get()
    if sharding is None:
        return tangents
    return jax.tree.map(
        lambda v: v if v is None else jax.lax.with_sharding_constraint(v, sharding),
        tangents,
        is_leaf=lambda x: x is None,
    )


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
