"""What an optimizer is asked to minimise: a recurrent rollout or a feedforward map."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp


class RecurrentProblem(eqx.Module):
    """Minimise Σ_t loss(y_t, x_t) over a rollout `carry, y_t = step(params, carry, x_t)`.

    **Arguments:**

    - `step`: `(params, carry, x_t) -> (carry, y_t)`, the batched one-step update.
    - `loss`: `(y_t, x_t) -> scalar`, the step's batch-mean loss, convex in `y_t`.
    - `carry0`: the initial carry, or a function `params -> carry` for a learnt initial state.
    - `xs`: pytree of per-step inputs (inputs, targets, weights, noise) whose leaves share a
      time axis.
    - `time_axis`: which axis of every `xs` leaf is time (0 by default; tasks keep their
      batches batch-first and use 1, so that no time-major copy of the batch is made).
    """

    step: Callable
    loss: Callable
    carry0: Any
    xs: Any
    time_axis: int = eqx.field(static=True, default=0)

    @property
    def n_steps(self) -> int:
        return int(jax.tree.leaves(self.xs)[0].shape[self.time_axis])

    def x_at(self, t):
        """The inputs of step `t` (a traced index is fine)."""
        return step_inputs(self.xs, t, self.time_axis)

    def initial_carry(self, params):
        return self.carry0(params) if callable(self.carry0) else self.carry0

    def rollout(self, params):
        """Run the system; return (final carry, stacked outputs, per-step losses)."""

        def body(carry, t):
            x = self.x_at(t)
            carry, y = self.step(params, carry, x)
            return carry, (y, self.loss(y, x))

        carry, (ys, losses) = scan_steps(body, self.initial_carry(params), self.n_steps)
        return carry, ys, losses

    def value(self, params, *, checkpoint_every: int | None = None):
        """The total loss Σ_t loss(y_t, x_t), without storing the outputs.

        `checkpoint_every`: `None` (default) scans the T steps in one loop, so reverse mode
        keeps every step's activations (memory ∝ T). An int c scans chunks of c steps and
        wraps each chunk in `jax.checkpoint`: reverse mode keeps only the carry at the
        ⌈T/c⌉ chunk boundaries and recomputes one chunk at a time during the backward pass
        (memory ∝ T/c + c, minimal near c = √T, for about one extra forward pass; Griewank
        and Walther 2000). The value is the same either way.
        """

        def body(carry, t):
            carry, total = carry
            x = self.x_at(t)
            carry, y = self.step(params, carry, x)
            return (carry, total + self.loss(y, x)), None

        x0 = self.x_at(0)
        dtype = jax.eval_shape(
            lambda p: self.loss(self.step(p, self.initial_carry(p), x0)[1], x0), params
        ).dtype
        init = (self.initial_carry(params), jnp.zeros((), dtype))
        n_steps = self.n_steps
        if checkpoint_every is None or checkpoint_every >= n_steps:
            (_, total), _ = scan_steps(body, init, n_steps)
            return total
        size = int(checkpoint_every)
        if size < 1:
            raise ValueError(f"`checkpoint_every` must be an int >= 1 or None; got {size}.")

        def chunk(length):
            @jax.checkpoint
            def run(state, start):
                state, _ = scan_steps(lambda s, i: body(s, start + i), state, length)
                return state

            return run

        n_chunks, rest = divmod(n_steps, size)
        full = chunk(size)
        state, _ = scan_steps(lambda s, k: (full(s, k * size), None), init, n_chunks)
        if rest:
            state = chunk(rest)(state, jnp.asarray(n_chunks * size, jnp.int32))
        return state[1]


def scan_steps(body, init, n_steps: int, *, unroll: int = 1):
    """`lax.scan` of `body(carry, t)` over t = 0 … n_steps−1 with the step counter in the carry.

    Unlike scanning over `jnp.arange(n_steps)`, no length-T index array is materialised:
    memory stays independent of the horizon.
    """

    def wrapped(carry, _):
        inner, t = carry
        inner, out = body(inner, t)
        return (inner, t + 1), out

    (final, _), outs = jax.lax.scan(
        wrapped, (init, jnp.zeros((), jnp.int32)), None, length=n_steps, unroll=unroll
    )
    return final, outs


def step_inputs(xs, t, time_axis: int = 0):
    """Slice step `t` out of every leaf of `xs` along `time_axis` (no copy of the rest)."""
    return jax.tree.map(
        lambda a: jax.lax.dynamic_index_in_dim(a, t, axis=time_axis, keepdims=False), xs
    )


def step_chunk(xs, start, size: int, time_axis: int = 0):
    """Steps `start … start+size-1` of every leaf, time-major (`[size, ...]`)."""
    return jax.tree.map(
        lambda a: jnp.moveaxis(
            jax.lax.dynamic_slice_in_dim(a, start, size, axis=time_axis), time_axis, 0
        ),
        xs,
    )


class FeedforwardProblem(eqx.Module):
    """Minimise `loss(fun(params, *args), *args)`.

    **Arguments:** `fun` `(params, *args) -> y`; `loss` `(y, *args) -> scalar` (batch mean,
    convex in y); `args`, a tuple.
    """

    fun: Callable
    loss: Callable
    args: tuple = ()

    def value(self, params, *, checkpoint_every: int | None = None):
        """The loss; `checkpoint_every` is accepted for symmetry with
        [`neurodyn.optim.RecurrentProblem`][] and ignored (there is no time axis)."""
        del checkpoint_every
        return self.loss(self.fun(params, *self.args), *self.args)
