r"""Losses convex in the outputs, and their contribution to the subspace GGN.

The GGN blocks per loss type are tabulated in docs/concepts/sofo.md ("The loss's GGN
blocks").

A loss is any callable `loss(y, x) -> scalar` that is convex in `y` (the GGN requires it).
For such a loss and K output tangents Ẏ_k (the JVPs of the outputs along the tangents v_k),
one evaluation contributes

- to the projected gradient: c̃_k = ∇_y ℓ · Ẏ_k,
- to the subspace GGN:       G̃_kl = Ẏ_kᵀ H Ẏ_l, with H = ∂²ℓ/∂y².

The generic path gets ∇_y ℓ and H Ẏ_k by forward-over-reverse differentiation on the (small)
output vector. The losses defined here also carry closed forms of the same quantities, which
the tests check against the generic path.
"""

from __future__ import annotations

import abc
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp


def _dot_lanes(a, bdot):
    """Σ over all entries of a (unbatched) times each lane of bdot → shape (K,)."""
    return jnp.einsum("i,ki->k", jnp.ravel(a), jnp.reshape(bdot, (bdot.shape[0], -1)))


def _gram_lanes(adot, bdot):
    """Σ over entries of adot_k ⊙ bdot_l → shape (K, K)."""
    a = jnp.reshape(adot, (adot.shape[0], -1))
    b = jnp.reshape(bdot, (bdot.shape[0], -1))
    return a @ b.T


def generic_loss_terms(loss, y, ydot, *args):
    """Loss value, c̃ (K,) and G̃ (K, K) of one loss evaluation by automatic differentiation.

    `ydot` has the structure of `y` with a leading K axis on every leaf; `loss(y, *args)`.
    """
    value, g = jax.value_and_grad(loss)(y, *args)

    def hvp(t):
        return jax.jvp(lambda yy: jax.grad(loss)(yy, *args), (y,), (t,))[1]

    hy = jax.vmap(hvp)(ydot)
    gl, yl, hl = jax.tree.leaves(g), jax.tree.leaves(ydot), jax.tree.leaves(hy)
    vg = sum(_dot_lanes(a, b) for a, b in zip(gl, yl))
    ggn = sum(_gram_lanes(a, b) for a, b in zip(yl, hl))
    return value, vg, ggn


def loss_value_and_vg(loss, y, ydot, *args):
    """Loss value and c̃ only (no GGN): what first-order methods need."""
    value, g = jax.value_and_grad(loss)(y, *args)
    vg = sum(_dot_lanes(a, b) for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(ydot)))
    return value, vg


def loss_terms(loss, y, ydot, *args, generic: bool = False):
    """Loss value, c̃ and G̃ of one loss evaluation: closed form when the loss has one."""
    if isinstance(loss, AbstractLoss) and not generic:
        return loss.value_and_terms(y, ydot, *args)
    return generic_loss_terms(loss, y, ydot, *args)


class AbstractLoss(eqx.Module):
    """A loss `loss(y, *args) -> scalar`, convex in `y`, with a closed-form GGN.

    `args` is whatever the caller passes with the outputs (for a scan: that step's slice `x_t`
    of `xs`). The loss reads its targets and weights from `x = args[0]` (or from the tuple
    `args` when there are several) with the keys or functions it was built with.
    """

    @abc.abstractmethod
    def __call__(self, y, *args) -> jax.Array: ...

    @abc.abstractmethod
    def value_and_terms(self, y, ydot, *args) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Return (loss, c̃ (K,), G̃ (K, K)) for output tangents `ydot` (K leading axis)."""


def _get(args, key):
    if key is None:
        return None
    x = args[0] if len(args) == 1 else args
    if callable(key):
        return key(x)
    try:
        return x[key]
    except (KeyError, TypeError, IndexError):
        raise KeyError(
            f"the loss looks for {key!r} in its second argument; got {type(x).__name__} "
            f"without that entry."
        ) from None


class MeanSquaredError(AbstractLoss):
    r"""Weighted squared error, mean over the batch axis.

    $$\ell = \frac{s}{B}\sum_b \frac{1}{D}\sum_i w_{bi}\,(y_{bi} - y^*_{bi})^2$$

    with $D$ the number of output dimensions when `reduction="mean"` (plain MSE, the first row
    of the GGN-block table in docs/concepts/sofo.md) and $D = 1$ when `reduction="sum"` (the
    motor tasks' weighted squared error, row 2). Its Hessian is $(2s/(BD))\,\mathrm{diag}(w)$.

    **Arguments:**

    - `target`: key (or function of `x`) giving the target, same shape as `y` (batch first).
    - `weight`: key (or function) giving weights broadcastable to `y`, or `None`.
    - `scale`: the factor $s$ (e.g. 1/T for a mean over time).
    - `reduction`: `"mean"` or `"sum"` over the output dimensions.
    """

    target: Any = eqx.field(static=True, default="target")
    weight: Any = eqx.field(static=True, default=None)
    scale: float = eqx.field(static=True, default=1.0)
    reduction: Literal["mean", "sum"] = eqx.field(static=True, default="mean")

    def __check_init__(self):
        if self.reduction not in ("mean", "sum"):
            raise ValueError(f"`reduction` must be 'mean' or 'sum'; got {self.reduction!r}.")

    def _factor_and_weight(self, y, x):  # x: the args tuple
        batch = y.shape[0] if y.ndim > 0 else 1
        per_trial = 1 if y.ndim <= 1 else int(y[0].size)
        denom = batch * (per_trial if self.reduction == "mean" else 1)
        w = _get(x, self.weight)
        w = jnp.ones((), y.dtype) if w is None else jnp.broadcast_to(w, y.shape).astype(y.dtype)
        return self.scale / denom, w

    def __call__(self, y, *x):
        c, w = self._factor_and_weight(y, x)
        r = y - _get(x, self.target)
        return c * jnp.sum(w * r**2)

    def value_and_terms(self, y, ydot, *x):
        c, w = self._factor_and_weight(y, x)
        r = y - _get(x, self.target)
        value = c * jnp.sum(w * r**2)
        vg = _dot_lanes(2 * c * w * r, ydot)
        ggn = _gram_lanes(ydot, 2 * c * w * ydot)
        return value, vg, ggn


class SoftmaxCrossEntropy(AbstractLoss):
    r"""Softmax cross-entropy over the last axis, weighted mean over the batch axis.

    $$\ell = \frac{s}{B}\sum_b w_b\Big(-\sum_i y^*_{bi}\log\mathrm{softmax}(y_b)_i\Big)$$

    Targets are probabilities (e.g. one-hot) of the shape of `y`, or integer class labels of
    shape `y.shape[:-1]`. GGN block per trial: $Ẏᵀ(\mathrm{diag}\,p - pp^\top)Ẏ$.

    **Arguments:** `target`, `weight` (per trial, shape `y.shape[:-1]`, or `None`), `scale`.
    """

    target: Any = eqx.field(static=True, default="target")
    weight: Any = eqx.field(static=True, default=None)
    scale: float = eqx.field(static=True, default=1.0)

    def _parts(self, y, x):
        t = _get(x, self.target)
        if jnp.issubdtype(jnp.asarray(t).dtype, jnp.integer):
            t = jax.nn.one_hot(t, y.shape[-1], dtype=y.dtype)
        batch = y.shape[0] if y.ndim > 1 else 1
        w = _get(x, self.weight)
        w = jnp.ones(y.shape[:-1], y.dtype) if w is None else jnp.broadcast_to(w, y.shape[:-1])
        return t, (self.scale / batch) * w.astype(y.dtype)

    def __call__(self, y, *x):
        t, cw = self._parts(y, x)
        logp = jax.nn.log_softmax(y, axis=-1)
        return -jnp.sum(cw * jnp.sum(t * logp, axis=-1))

    def value_and_terms(self, y, ydot, *x):
        t, cw = self._parts(y, x)
        logp = jax.nn.log_softmax(y, axis=-1)
        p = jnp.exp(logp)
        value = -jnp.sum(cw * jnp.sum(t * logp, axis=-1))
        tsum = jnp.sum(t, axis=-1, keepdims=True)
        grad = cw[..., None] * (tsum * p - t)
        vg = _dot_lanes(grad, ydot)
        # G̃_kl = Σ_b c_b [Ẏ_kᵀ diag(p) Ẏ_l − (Ẏ_kᵀp)(Ẏ_lᵀp)],  c_b = (s/B) w_b Σ_i y*_bi
        n_classes = y.shape[-1]
        c = jnp.ravel(cw * tsum[..., 0])
        pm = jnp.reshape(p, (-1, n_classes))
        yd = jnp.reshape(ydot, (ydot.shape[0], -1, n_classes))
        yp = jnp.einsum("kmc,mc->km", yd, pm)
        ggn = jnp.einsum("kmc,lmc,m->kl", yd, yd * pm, c) - jnp.einsum("km,lm,m->kl", yp, yp, c)
        return value, vg, ggn


def mse(target="target", weight=None, *, scale=1.0, reduction="mean") -> MeanSquaredError:
    """Shorthand for [`neurodyn.optim.MeanSquaredError`][]."""
    return MeanSquaredError(target=target, weight=weight, scale=scale, reduction=reduction)


def cross_entropy(target="target", weight=None, *, scale=1.0) -> SoftmaxCrossEntropy:
    """Shorthand for [`neurodyn.optim.SoftmaxCrossEntropy`][]."""
    return SoftmaxCrossEntropy(target=target, weight=weight, scale=scale)
