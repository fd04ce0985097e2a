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
    - `xs`: pytree of per-step inputs with a leading time axis (inputs, targets, weights,
      noise).
    """

    step: Callable
    loss: Callable
    carry0: Any
    xs: Any

    def initial_carry(self, params):
        return self.carry0(params) if callable(self.carry0) else self.carry0

    def rollout(self, params):
        """Run the system; return (final carry, stacked outputs, per-step losses)."""

        def body(carry, x):
            carry, y = self.step(params, carry, x)
            return carry, (y, self.loss(y, x))

        carry, (ys, losses) = jax.lax.scan(body, self.initial_carry(params), self.xs)
        return carry, ys, losses

    def value(self, params):
        """The total loss Σ_t loss(y_t, x_t), without storing the outputs."""

        def body(carry, x):
            carry, total = carry
            carry, y = self.step(params, carry, x)
            return (carry, total + self.loss(y, x)), None

        x0 = jax.tree.map(lambda x: x[0], self.xs)
        dtype = jax.eval_shape(
            lambda p: self.loss(self.step(p, self.initial_carry(p), x0)[1], x0), params
        ).dtype
        (_, total), _ = jax.lax.scan(
            body, (self.initial_carry(params), jnp.zeros((), dtype)), self.xs
        )
        return total


class FeedforwardProblem(eqx.Module):
    """Minimise `loss(fun(params, *args), *args)`.

    **Arguments:** `fun` `(params, *args) -> y`; `loss` `(y, *args) -> scalar` (batch mean,
    convex in y); `args`, a tuple.
    """

    fun: Callable
    loss: Callable
    args: tuple = ()

    def value(self, params):
        return self.loss(self.fun(params, *self.args), *self.args)
