"""The recurrent-model contract and the bridge from a model to an optimizer's problem.

A recurrent model is written for **one trial** and batched with `jax.vmap`:

- `model.initial_state(key=None) -> carry` — the trial's initial carry (may depend on learnt
  parameters, e.g. a learnable x0, and on a key, e.g. a random initial state);
- `model.step(carry, u, noise) -> (carry, y)` — one time step with input vector `u` and that
  step's noise sample (`None` for a noiseless model);
- `model.sample_noise(key, n_steps) -> noise` — every noise sample of one trial, with a leading
  time axis (or `None`). Noise is drawn outside the differentiated step, once per iteration,
  and shared by all tangents (docs/concepts/sofo.md);
- `model.rates(carry) -> Float[Array, "neuron"]` — firing rates, for analysis;
- `model.trainable() -> filter spec` — which leaves are trained: a pytree of the model's
  structure with bool / boolean-array leaves (see `neurodyn.optim.count_params`).
"""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

from ..optim import RecurrentProblem, count_params, scan_steps


class AbstractRecurrentModel(eqx.Module):
    """Base class of recurrent models (see the module docstring for the contract)."""

    @abc.abstractmethod
    def initial_state(self, key=None) -> Any: ...

    @abc.abstractmethod
    def step(self, carry, u, noise=None) -> tuple[Any, Any]: ...

    def sample_noise(self, key, n_steps: int) -> Any:
        """Noise for one trial with a leading time axis; `None` when the model is noiseless."""
        del key, n_steps
        return None

    def rates(self, carry) -> jax.Array:
        """Firing rates of the network in `carry` (default: the carry itself)."""
        return carry

    def trainable(self) -> Any:
        """Filter spec of the trained leaves (default: every floating-point array)."""
        return jax.tree.map(eqx.is_inexact_array, self)

    @property
    def n_params(self) -> int:
        """P, the number of trained scalars (choose K as a fraction of it)."""
        return count_params(self, self.trainable())


def _time_major(tree):
    return jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), tree)


def batch_noise(model, key, batch_size: int, n_steps: int):
    """Noise for a batch of trials, batch-first (`[B, T, ...]`), or `None`."""
    keys = jr.split(key, batch_size)
    return jax.vmap(lambda k: model.sample_noise(k, n_steps))(keys)


def rollout_problem(
    model, inputs, loss, *, key, extra: dict | None = None, initial_state: Any = None
) -> RecurrentProblem:
    """The optimizer's view of a batch of trials of a per-trial recurrent model.

    **Arguments:**

    - `model`: an [`neurodyn.models.AbstractRecurrentModel`][] (or any module with the same
      methods, e.g. a closed loop).
    - `inputs`: `[B, T, n_in]` (batch-first, as tasks return them).
    - `loss`: `(y_t, x_t) -> scalar`, with `x_t` the time-`t` slice of
      `{"inputs", "noise", **extra}` (each `[B, ...]`).
    - `key`: drives the noise and the random initial states of this iteration.
    - `extra`: further batch-first arrays `[B, T, ...]` made time-major and passed to the loss
      (targets, weights).
    - `initial_state`: overrides `model.initial_state`: a batched carry `[B, ...]` given by
      the task (e.g. Lorenz initial conditions), or a function `model -> batched carry`.

    **Returns:** a [`neurodyn.optim.RecurrentProblem`][] whose `step(model, carry, x_t)` is the
    batched step and whose `carry0(model)` is the batched initial state (a function of the
    model, so that learnt initial states get tangents).
    """
    batch_size, n_steps = inputs.shape[0], inputs.shape[1]
    k_noise, k_init = jr.split(key)
    # batch-first arrays with time on axis 1: the scan slices step t out of them, so no
    # time-major copy of the batch is made (memory stays flat in T)
    xs = {"inputs": inputs}
    noise = batch_noise(model, k_noise, batch_size, n_steps)
    if noise is not None:
        xs["noise"] = noise
    for name, value in (extra or {}).items():
        xs[name] = value
    carry0 = _BatchedInit(jr.split(k_init, batch_size)) if initial_state is None else initial_state
    return RecurrentProblem(batched_step, loss, carry0, xs, time_axis=1)


def batched_step(model, carry, x):
    """The batched step `(model, carry, x_t) -> (carry, y_t)` used by `rollout_problem`."""
    noise = x.get("noise")
    if noise is None:
        return jax.vmap(lambda c, u: model.step(c, u, None))(carry, x["inputs"])
    return jax.vmap(model.step)(carry, x["inputs"], noise)


def _no_loss(y, x):
    return jnp.zeros(())


class _BatchedInit(eqx.Module):
    keys: Any

    def __call__(self, model):
        return jax.vmap(model.initial_state)(self.keys)


def simulate(model, inputs, *, key, initial_state: Any = None):
    """Run a per-trial model on a batch; return `(carries, outputs)`, each `[B, T, ...]`.

    The full state trajectory is kept (memory O(T)): this is for analysis, not training.
    """
    problem = rollout_problem(model, inputs, _no_loss, key=key, initial_state=initial_state)

    def body(carry, t):
        carry, y = problem.step(model, carry, problem.x_at(t))
        return carry, (carry, y)

    _, (carries, ys) = scan_steps(body, problem.initial_carry(model), problem.n_steps)
    return _time_major(carries), _time_major(ys)
