r"""SOFO's primitives: loss, Vᵀg and the subspace GGN from one batched forward-mode pass.

The algorithm of Yu et al. (2024), explained in docs/concepts/sofo.md. For tangents
V = [v_1 … v_K] the forward pass carries, next to every primal quantity, its K directional
derivatives. From the output tangents Ẏ = J V and the loss's own
derivatives in output space it accumulates

- the loss L,
- the projected gradient c̃ = Vᵀ∇L (the K-lane tangent of the scalar loss),
- the subspace GGN G̃ = Vᵀ G V = Σ Ẏᵀ H Ẏ,

then returns the damped Gauss–Newton direction Δ = V (G̃ + γI)⁻¹ c̃. For a recurrent system the
recursion Ṡ_{t+1} = ∂F/∂s Ṡ_t + ∂F/∂θ V runs inside `lax.scan`, so nothing is stored per time
step and memory does not grow with the horizon T.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._losses import loss_terms, loss_value_and_vg
from ._problem import scan_steps, step_chunk, step_inputs
from ._solve import DampingMode, check_damping, damped_solve
from ._tangents import combine_tangents

_is_none = lambda x: x is None  # noqa: E731


def check_tangents(params: Any, tangents: Any) -> int:
    """Validate tangents against parameters at trace time and return K."""
    diff = eqx.filter(params, eqx.is_inexact_array)
    p_leaves, p_def = jax.tree.flatten(diff, is_leaf=_is_none)
    try:
        t_leaves, t_def = jax.tree.flatten(tangents, is_leaf=_is_none)
    except Exception as err:  # pragma: no cover - defensive
        raise TypeError(f"`tangents` is not a pytree: {err}") from None
    if p_def != t_def:
        raise ValueError(
            "`tangents` must have the structure of the floating-point parameters "
            "(`eqx.filter(params, eqx.is_inexact_array)`), with None for leaves that get no "
            f"tangent.\n  params:   {p_def}\n  tangents: {t_def}"
        )
    n_tangents = None
    for p, v in zip(p_leaves, t_leaves):
        if v is None or p is None:
            if v is not None:
                raise ValueError("`tangents` has an array where `params` has no float leaf.")
            continue
        if not hasattr(v, "shape") or v.ndim != p.ndim + 1 or tuple(v.shape[1:]) != p.shape:
            raise ValueError(
                "every `tangents` leaf must have shape (K, *param.shape); got "
                f"{getattr(v, 'shape', type(v).__name__)} for a parameter of shape {p.shape}."
            )
        if n_tangents is None:
            n_tangents = v.shape[0]
        elif v.shape[0] != n_tangents:
            raise ValueError(
                f"all `tangents` leaves must share the leading size K; got {n_tangents} and "
                f"{v.shape[0]}."
            )
    if n_tangents is None:
        raise ValueError("`tangents` holds no arrays: nothing would be trained.")
    if n_tangents < 1:
        raise ValueError(f"`tangents` must hold K >= 1 directions; got K = {n_tangents}.")
    return int(n_tangents)


def _split_by_tangents(params, tangents):
    """Split params into (differentiated, constant) parts following where tangents are None.

    Leaves without a tangent (frozen ones) are closed over as constants, so forward mode does
    no work for them.
    """
    diff = eqx.filter(params, eqx.is_inexact_array)
    flat_diff, treedef = jax.tree.flatten(diff, is_leaf=_is_none)
    flat_t = jax.tree.leaves(tangents, is_leaf=_is_none)
    spec = jax.tree.unflatten(
        treedef, [d is not None and t is not None for d, t in zip(flat_diff, flat_t)]
    )
    dynamic, static = eqx.partition(params, spec)
    return dynamic, static


def _check_loss_scalar(loss, y, *args):
    out = jax.eval_shape(loss, y, *args)
    if not (hasattr(out, "shape") and out.shape == () and jnp.issubdtype(out.dtype, jnp.inexact)):
        raise ValueError(
            "`loss` must return a scalar float (the batch mean for that step); got "
            f"{getattr(out, 'shape', type(out).__name__)} "
            f"{getattr(out, 'dtype', '')}."
        )


def _finish(value, vg, ggn, tangents, damping, damping_mode, extra):
    sol = damped_solve(ggn, vg, damping, damping_mode)
    direction = combine_tangents(tangents, sol.alpha)
    info = {
        "vg": vg,
        "ggn": ggn,
        "eigenvalues": sol.eigenvalues,
        "damping": sol.gamma,
        "alpha": sol.alpha,
        "predicted_decrease": sol.predicted_decrease,
        **extra,
    }
    return value, direction, info


def value_and_sofo_grad(
    fun: Callable,
    loss: Callable,
    damping: float = 1e-5,
    *,
    damping_mode: DampingMode = "relative",
    generic_ggn: bool = False,
) -> Callable:
    r"""SOFO for a feedforward map: loss, damped GGN direction and diagnostics.

    `fun(params, *args) -> y` is the model on a whole batch; `loss(y, *args) -> scalar` is the
    batch-mean loss (convex in `y`). The returned function `f(params, tangents, *args)` gives
    `(loss, direction, info)`, where `direction` = V (G̃ + γI)⁻¹ Vᵀg has the structure of the
    tangents (the floating-point parameters; `None` where a leaf has no tangent), so that
    `params - lr * direction` is a SOFO step.

    **Arguments:**

    - `fun`, `loss`: as above.
    - `damping`: λ ≥ 0; γ = λ·max eig(G̃) for `damping_mode="relative"` (default), γ = λ
      for `"absolute"`, γ = 0 for `"none"`.
    - `generic_ggn`: use forward-over-reverse on the loss even if it has a closed form.

    **Returns:** a function `(params, tangents, *args) -> (loss, direction, info)`, with `info`
    holding `vg` (= Vᵀg), `ggn` (G̃), `eigenvalues`, `damping` (γ), `alpha`,
    `predicted_decrease` and `outputs` (y).
    """
    check_damping(damping, damping_mode)

    def sofo_fn(params, tangents, *args):
        value, vg, ggn, y = sofo_terms(fun, loss, params, tangents, *args, generic_ggn=generic_ggn)
        return _finish(value, vg, ggn, tangents, damping, damping_mode, {"outputs": y})

    return sofo_fn


def sofo_terms(
    fun: Callable,
    loss: Callable,
    params: Any,
    tangents: Any,
    *args,
    compute_ggn: bool = True,
    generic_ggn: bool = False,
):
    """Feedforward forward-mode pass; return (loss, vg, ggn or None, outputs)."""
    check_tangents(params, tangents)
    dynamic, static = _split_by_tangents(params, tangents)

    def f(d):
        return fun(eqx.combine(d, static), *args)

    def lane(v):
        return jax.jvp(f, (dynamic,), (v,))

    y, ydot = jax.vmap(lane, out_axes=(None, 0))(tangents)
    _check_loss_scalar(loss, y, *args)
    if compute_ggn:
        value, vg, ggn = loss_terms(loss, y, ydot, *args, generic=generic_ggn)
    else:
        (value, vg), ggn = loss_value_and_vg(loss, y, ydot, *args), None
    return value, vg, ggn, y


def _carry_tangent_zeros(carry, n_tangents):
    return jax.tree.map(
        lambda c: jnp.zeros((n_tangents, *jnp.shape(c)), jnp.result_type(c)),
        eqx.filter(carry, eqx.is_inexact_array),
    )


def check_xs(xs, time_axis: int = 0) -> int:
    """All leaves of `xs` must share the length of their time axis; return T."""
    leaves = jax.tree.leaves(xs)
    if not leaves:
        raise ValueError("`xs` must hold at least one array with a time axis.")
    if any(np.ndim(x) <= time_axis for x in leaves):
        raise ValueError(
            f"every leaf of `xs` needs a time axis (axis {time_axis}); found a leaf with "
            f"{min(np.ndim(x) for x in leaves)} dimension(s)."
        )
    lengths = {int(np.shape(x)[time_axis]) for x in leaves}
    if len(lengths) != 1:
        raise ValueError(
            f"all leaves of `xs` must share the length of the time axis (axis {time_axis}); "
            f"got lengths {sorted(lengths)}."
        )
    return lengths.pop()


def _gemm_layout(tangents):
    """Lay matrix tangents out as (rows, K, cols) once per iteration.

    A (K, a, b) weight tangent is contracted with activations over `a` (row-vector
    convention `r @ W`) or over `b` (`W @ r`). With K in the middle, both contractions see
    the other two axes as one contiguous GEMM operand, so no per-step re-layout of the
    loop-invariant K×a×b tangent is needed. Returns the laid-out tangents and the matching
    `vmap` axes.
    """
    laid = jax.tree.map(lambda v: jnp.moveaxis(v, 0, 1) if v.ndim == 3 else v, tangents)
    axes = jax.tree.map(lambda v: 1 if v.ndim == 3 else 0, tangents)
    return laid, axes


def _auto_chunk(n_steps: int, n_tangents: int, carry_dyn: Any, budget_bytes: int) -> int:
    """The chunk size `chunk_size=None` picks: a measured rule per backend.

    On the CPU the per-step recursion (1): in the chunk sweep of `benchmarks/step_profile.py`
    (docs/benchmarks.md#where-the-time-goes; N ∈ {64, 128, 256}, K ∈ {32, 128, 256}) chunks
    of 2–16 steps cost 1.15–2.2× its time up to N·K = 128·128 and 0.93–1.2× above, never
    clearly less: the C stored parameter drives leave the cache. On an accelerator, where one large
    product beats C small ones, the largest chunk (≤ 16 steps) whose K per-step parameter
    drives fit in `budget_bytes` (not yet measured against 1: `benchmarks/gpu.sh` step 6).
    """
    if jax.default_backend() == "cpu":
        return 1
    per_step = n_tangents * sum(
        int(np.prod(jnp.shape(c))) * jnp.dtype(jnp.result_type(c)).itemsize
        for c in jax.tree.leaves(carry_dyn)
    )
    chunk = budget_bytes // max(per_step, 1)
    return int(max(1, min(16, chunk, n_steps)))


def sofo_scan_terms(
    step: Callable,
    loss: Callable,
    params: Any,
    tangents: Any,
    carry0: Any,
    xs: Any,
    *,
    compute_ggn: bool = True,
    generic_ggn: bool = False,
    return_outputs: bool = False,
    unroll: int = 1,
    chunk_size: int | None = 1,
    chunk_budget_bytes: int = 64 * 2**20,
    time_axis: int = 0,
):
    """Run the forward-mode scan; return (loss, vg, ggn, final_carry, outputs).

    The building block shared by SOFO, first-order SOFO and FGD. See
    [`neurodyn.value_and_sofo_grad_scan`][] for the arguments.
    """
    n_tangents = check_tangents(params, tangents)
    n_steps = check_xs(xs, time_axis)
    dynamic, static = _split_by_tangents(params, tangents)
    vt, v_axes = _gemm_layout(tangents)

    def rebuild(d):
        return eqx.combine(d, static)

    if callable(carry0):
        # learnable initial state: Ṡ_0 = ∂s_0/∂θ · V
        def init(d):
            return eqx.partition(carry0(rebuild(d)), eqx.is_inexact_array)

        c_dyn, c_static = init(dynamic)
        c_dot = jax.vmap(
            lambda v: jax.jvp(lambda d: init(d)[0], (dynamic,), (v,))[1], in_axes=(v_axes,)
        )(vt)
    else:
        c_dyn, c_static = eqx.partition(carry0, eqx.is_inexact_array)
        c_dot = _carry_tangent_zeros(c_dyn, n_tangents)

    x0 = step_inputs(xs, 0, time_axis)
    _, y_shape = jax.eval_shape(
        lambda d, c, x: step(rebuild(d), eqx.combine(c, c_static), x), dynamic, c_dyn, x0
    )
    _check_loss_scalar(loss, y_shape, x0)
    dtype = jnp.result_type(*[leaf.dtype for leaf in jax.tree.leaves(y_shape)])
    k = n_tangents

    def split_step(d, c_dyn, c_static, x):
        new_c, y = step(rebuild(d), eqx.combine(c_dyn, c_static), x)
        new_dyn, new_static = eqx.partition(new_c, eqx.is_inexact_array)
        return new_dyn, new_static, y

    def terms(y, ydot, x):
        if compute_ggn:
            value, vg_t, ggn_t = loss_terms(loss, y, ydot, x, generic=generic_ggn)
            return value, vg_t.astype(dtype), ggn_t.astype(dtype)
        value, vg_t = loss_value_and_vg(loss, y, ydot, x)
        return value, vg_t.astype(dtype), jnp.zeros((k, k), dtype)

    def step_body(state, t):
        """One step: primal once, K tangent lanes through both parameters and carry."""
        c_dyn, c_static, c_dot, total, vg, ggn = state
        x = step_inputs(xs, t, time_axis)

        def lane(v, cd):
            def f(d, c):
                new_dyn, new_static, y = split_step(d, c, c_static, x)
                return (new_dyn, y), new_static

            return jax.jvp(f, (dynamic, c_dyn), (v, cd), has_aux=True)

        (new_dyn, y), (new_dot, ydot), new_static = jax.vmap(
            lane, in_axes=(v_axes, 0), out_axes=((None, None), (0, 0), None)
        )(vt, c_dot)
        value, vg_t, ggn_t = terms(y, ydot, x)
        new_state = (new_dyn, new_static, new_dot, total + value, vg + vg_t, ggn + ggn_t)
        return new_state, (y if return_outputs else None)

    def chunk_body(state, xc):
        """C steps at once (the forward-mode recursion, re-associated for large matrix products).

        The tangent recursion Ṡ_{t+1} = ∂F/∂s·Ṡ_t + ∂F/∂θ·V is linear in the tangents and the
        primal trajectory does not depend on them. So over a chunk of C steps we (1) run the
        primal and keep its C input carries, (2) compute every parameter drive ∂F/∂θ·V for the
        C steps at once — for a rate network one (K·N × N) by (N × C·B) product instead of C
        skinny ones — and (3) run the sequential part Ṡ_{t+1} = ∂F/∂s·Ṡ_t + drive_t. Memory is
        O(C·K·state), independent of T.
        """
        c_dyn, c_static, c_dot, total, vg, ggn = state

        def primal(carry, x):
            cd, cs = carry
            new_dyn, new_static, _ = split_step(dynamic, cd, cs, x)
            return (new_dyn, new_static), carry

        (end_dyn, end_static), (cin_dyn, cin_static) = jax.lax.scan(
            primal, (c_dyn, c_static), xc, unroll=unroll
        )

        def drive(cd, cs, x):
            def f(d):
                new_dyn, _, y = split_step(d, cd, cs, x)
                return new_dyn, y

            return jax.vmap(lambda v: jax.jvp(f, (dynamic,), (v,))[1], in_axes=(v_axes,))(vt)

        drive_c, drive_y = jax.vmap(drive)(cin_dyn, cin_static, xc)

        def sequential(cdot, inp):
            cd, cs, x, dc, dy = inp

            def g(c):
                new_dyn, _, y = split_step(dynamic, c, cs, x)
                return new_dyn, y

            (_, y), (new_dot, ydot) = jax.vmap(
                lambda t: jax.jvp(g, (cd,), (t,)), out_axes=((None, None), (0, 0))
            )(cdot)
            new_dot = jax.tree.map(jnp.add, new_dot, dc)
            ydot = jax.tree.map(jnp.add, ydot, dy)
            return new_dot, (y, ydot)

        end_dot, (ys, ydots) = jax.lax.scan(
            sequential,
            c_dot,
            (cin_dyn, cin_static, xc, drive_c, drive_y),
            unroll=unroll,
        )
        values, vgs, ggns = jax.vmap(terms)(ys, ydots, xc)
        new_state = (
            end_dyn,
            end_static,
            end_dot,
            total + values.sum(),
            vg + vgs.sum(0),
            ggn + ggns.sum(0),
        )
        return new_state, (ys if return_outputs else None)

    zero = jnp.zeros((), dtype)
    state = (c_dyn, c_static, c_dot, zero, jnp.zeros((k,), dtype), jnp.zeros((k, k), dtype))
    if chunk_size is None:
        chunk_size = _auto_chunk(n_steps, k, c_dyn, chunk_budget_bytes)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"`chunk_size` must be a positive int or None; got {chunk_size!r}.")
    chunk_size = min(chunk_size, n_steps)
    if chunk_size == 1:
        state, outputs = scan_steps(step_body, state, n_steps, unroll=unroll)
    else:
        n_chunks, rem = divmod(n_steps, chunk_size)
        state, outputs = scan_steps(
            lambda st, i: chunk_body(st, step_chunk(xs, i * chunk_size, chunk_size, time_axis)),
            state,
            n_chunks,
        )
        if return_outputs:
            outputs = jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:]), outputs)
        if rem:
            tail = step_chunk(xs, n_chunks * chunk_size, rem, time_axis)
            state, tail_out = chunk_body(state, tail)
            if return_outputs:
                outputs = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), outputs, tail_out)
    c_dyn, c_static, _, total, vg, ggn = state
    return total, vg, (ggn if compute_ggn else None), eqx.combine(c_dyn, c_static), outputs


def value_and_sofo_grad_scan(
    step: Callable,
    loss: Callable,
    damping: float = 1e-5,
    *,
    damping_mode: DampingMode = "relative",
    generic_ggn: bool = False,
    return_outputs: bool = False,
    unroll: int = 1,
    chunk_size: int | None = 1,
    time_axis: int = 0,
) -> Callable:
    r"""SOFO for a recurrent system rolled out with `lax.scan`, in memory constant in T.

    `step(params, carry, x_t) -> (carry, y_t)` advances the (batched) system by one step;
    `loss(y_t, x_t) -> scalar` is that step's batch-mean loss (convex in `y_t`); the total loss
    is Σ_t loss(y_t, x_t). The returned function `f(params, tangents, carry0, xs)` runs one
    forward pass that carries the K state tangents Ṡ_t and accumulates, inside the scan, the
    loss, c̃ = Vᵀg and G̃ = Σ_t Ẏ_tᵀ H_t Ẏ_t. No per-step tangent is stored.

    **Arguments:**

    - `step`, `loss`: as above. Noise must come in through `xs` (drawn once per iteration,
      shared by all tangents).
    - `damping`, `damping_mode`, `generic_ggn`: as in [`neurodyn.value_and_sofo_grad`][].
    - `return_outputs`: also return the stacked y_t in `info["outputs"]` (memory O(T)).
    - `unroll`: passed to `lax.scan`.
    - `time_axis`: the time axis of the `xs` leaves (0: time-major; tasks pass batch-first
      arrays with 1, which avoids a time-major copy of the batch).
    - `chunk_size`: number of steps whose parameter drives ∂F/∂θ·V are computed together
      (see below); `1` (default) is the plain per-step recursion, the fastest on the CPU at
      every size measured; `None` picks 1 on the CPU and, on an accelerator, up to 16 steps
      within a 64 MiB budget. The result does not depend on it (up to round-off).

    Because the tangent recursion is linear and the primal does not depend on the tangents,
    the scan runs in chunks of C steps: the primal first, then the C parameter drives at once
    (large, efficient matrix products), then the sequential carry-tangent recursion. Memory is
    O(C·K·state + K·P), constant in T.

    The returned function takes `params`, `tangents` (from [`neurodyn.sample_tangents`][]),
    `carry0` (the initial carry, or a function `params -> carry` when the initial state is
    learnt, so that Ṡ_0 = ∂s_0/∂θ·V) and `xs` (a pytree whose leaves share a leading time
    axis).

    **Returns:** `(loss, direction, info)`; `info` as for `value_and_sofo_grad`, plus `carry`
    (the final carry).

    **Raises:** `ValueError`/`TypeError` at trace time for mismatched tangents, a non-scalar
    loss, leaves of `xs` with different time lengths, or bad damping arguments.
    """
    check_damping(damping, damping_mode)

    def sofo_fn(params, tangents, carry0, xs):
        value, vg, ggn, carry, outputs = sofo_scan_terms(
            step,
            loss,
            params,
            tangents,
            carry0,
            xs,
            generic_ggn=generic_ggn,
            return_outputs=return_outputs,
            unroll=unroll,
            chunk_size=chunk_size,
            time_axis=time_axis,
        )
        extra = {"carry": carry}
        if return_outputs:
            extra["outputs"] = outputs
        return _finish(value, vg, ggn, tangents, damping, damping_mode, extra)

    return sofo_fn
