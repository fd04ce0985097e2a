"""Exact gradients by reverse mode through the whole rollout (BPTT), with any optax transform."""

from __future__ import annotations

import math
from typing import Any, ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from ._base import (
    AbstractOptimizer,
    _is_real_scalar,
    apply_direction,
    batch_mean,
    check_learning_rate,
    check_optional_fraction,
    check_problem,
    trainable_params,
)
from ._tangents import split_trainable


class BPTTState(NamedTuple):
    opt_state: Any
    count: jax.Array


class BPTT(AbstractOptimizer):
    """Backpropagation through time (reverse mode over the whole horizon) + an optax transform.

    The Adam baseline is `bptt(optax.adam(1e-3))`. Memory grows linearly with the horizon T
    (every step's activations are kept for the backward pass). `remat` trades compute for
    memory with gradient checkpointing over chunks of the scan (the memory-lean BPTT):
    `True` uses chunks of ⌈√T⌉ steps, an int c chunks of c steps; the loss keeps only the
    carry at the chunk boundaries and one chunk's activations at a time, about one extra
    forward pass per iteration (see `RecurrentProblem.value`). Gradients are unchanged.

    **Arguments:** `transform` (an `optax.GradientTransformation`), `remat` (`False`,
    `True` or an int ≥ 1).
    """

    transform: Any = eqx.field(static=True, default=None)
    remat: bool | int = eqx.field(static=True, default=False)
    learning_rate: float | None = eqx.field(static=True, default=None)  # for reports only

    name: ClassVar[str] = "bptt"

    def __check_init__(self):
        if not isinstance(self.transform, optax.GradientTransformation):
            raise TypeError(
                "`transform` must be an optax.GradientTransformation, e.g. optax.adam(1e-3); "
                f"got {type(self.transform).__name__}."
            )
        check_remat(self.remat)

    def learning_rate_at(self, state):
        del state
        return self.learning_rate

    def init(self, params, trainable=None):
        return BPTTState(
            self.transform.init(trainable_params(params, trainable)), jnp.zeros((), jnp.int32)
        )

    def value_and_grad(self, params, problem, trainable=None):
        """Loss and exact gradient with respect to the trained parameters.

        In a fit whose trials are split over devices, each device differentiates its trials
        and the gradients are averaged once (see `neurodyn.optim._base.batch_mean`)."""
        check_problem(problem)
        dynamic, static, _ = split_trainable(params, trainable)

        def compute(prob, dynamic):
            every = remat_chunk(self.remat, getattr(prob, "n_steps", 1))

            def value(d):
                return prob.value(eqx.combine(d, static), checkpoint_every=every)

            return jax.value_and_grad(value)(dynamic)

        return batch_mean(compute, problem, dynamic)

    def step(self, params, state, problem, *, key=None, trainable=None):
        del key
        value, grads = self.value_and_grad(params, problem, trainable)
        ok = jnp.isfinite(value)
        new_params, opt_state, ok = apply_direction(
            self.transform, state.opt_state, params, grads, trainable, ok
        )
        leaves = jax.tree.leaves(grads)
        gnorm = jnp.sqrt(sum(jnp.sum(g**2) for g in leaves))
        info = {"loss": value, "grad_norm": gnorm, "finite": ok}
        return new_params, BPTTState(opt_state, state.count + ok.astype(jnp.int32)), info


def check_remat(remat) -> None:
    """`remat` is `False`, `True` or an int ≥ 1 (a chunk length in steps)."""
    if isinstance(remat, bool):
        return
    if not isinstance(remat, int) or remat < 1:
        raise ValueError(
            f"`remat` must be False, True or an int >= 1 (steps per chunk); got {remat!r}."
        )


def remat_chunk(remat, n_steps: int) -> int | None:
    """The checkpointed chunk length for `remat` at horizon `n_steps` (`None`: no chunks)."""
    if remat is False:
        return None
    if remat is True:
        return max(1, math.ceil(math.sqrt(n_steps)))
    return int(remat)


def bptt(transform=None) -> BPTT:
    """Build a [`neurodyn.optim.BPTT`][] optimizer; `bptt()` is Adam with lr 1e-3."""
    return BPTT(transform=optax.adam(1e-3) if transform is None else transform)


def adam(
    learning_rate=1e-3,
    *,
    eps=1e-8,
    b1=0.9,
    b2=0.999,
    clip_norm: float | None = None,
    remat: bool | int = False,
) -> BPTT:
    """BPTT + Adam (β1 = 0.9, β2 = 0.999, ε = 1e-8 by default: Adam's usual defaults, Kingma &
    Ba 2015).

    `clip_norm`: when given, the gradient is rescaled to at most this global L2 norm before
    Adam sees it (`optax.clip_by_global_norm`; Pascanu et al. 2013), so that one exploding
    BPTT gradient neither throws the first moment nor inflates the second for thousands of
    steps. None (default): no clipping. `remat`: gradient checkpointing over chunks of the
    scan (`True`: ⌈√T⌉ steps per chunk; an int: that many), see [`neurodyn.optim.BPTT`][].

    **Raises:** `TypeError`/`ValueError` naming a learning rate that is not a positive
    number or schedule, or `eps`, `b1`, `b2`, `clip_norm` outside their ranges.
    """
    check_learning_rate(learning_rate)
    if not _is_real_scalar(eps) or not float(eps) >= 0:
        raise ValueError(f"`eps` must be a number >= 0; got {eps!r}.")
    for name, beta in (("b1", b1), ("b2", b2)):
        check_optional_fraction(beta, name)
    transform = optax.adam(learning_rate, b1=b1, b2=b2, eps=eps)
    if clip_norm is not None:
        if not _is_real_scalar(clip_norm) or not float(clip_norm) > 0:
            raise ValueError(f"`clip_norm` must be a number > 0 or None; got {clip_norm!r}.")
        transform = optax.chain(optax.clip_by_global_norm(float(clip_norm)), transform)
    return BPTT(
        transform=transform,
        remat=remat,
        learning_rate=learning_rate if not callable(learning_rate) else None,
    )
