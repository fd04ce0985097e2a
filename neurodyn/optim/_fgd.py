"""Forward gradient descent (Baydin et al. 2022, "Gradients without backpropagation")."""

from __future__ import annotations

from typing import Any, ClassVar

import equinox as eqx
import jax.numpy as jnp

from ._sofo_optimizer import AbstractSubspaceGradient


class FGD(AbstractSubspaceGradient):
    r"""Forward gradient descent: an unbiased gradient estimate from K random directions.

    With Gaussian tangents v_k ~ N(0, I_P) (default, Baydin et al.'s form)

    $$\hat g = \frac{1}{K}\sum_k (v_k^\top g)\,v_k,$$

    and with unit-norm tangents (`tangents="normalized"`, the reference's form)
    ĝ = (P/K) Σ_k (v_kᵀg) v_k; both satisfy E[ĝ] = g. θ ← θ − η ĝ (optax SGD, or
    `transform`). K = 1 is classic FGD.

    ??? cite "Reference"
        Baydin, Pearlmutter, Syme, Wood & Torr. *Gradients without backpropagation.* 2022.
    """

    learning_rate: Any = 1e-3
    n_tangents: int = eqx.field(static=True, default=1)
    tangents: str = eqx.field(static=True, default="gaussian")
    momentum: float | None = None
    transform: Any = eqx.field(static=True, default=None)

    name: ClassVar[str] = "fgd"

    def __check_init__(self):
        if self.tangents not in ("gaussian", "normalized"):
            raise ValueError(
                "FGD `tangents` must be 'gaussian' (v ~ N(0, I)) or 'normalized' (unit v, "
                f"scaled by P/K); got {self.tangents!r}."
            )

    def _scale(self, vg, n_params):
        k = vg.shape[0]
        factor = (n_params if self.tangents == "normalized" else 1.0) / k
        return jnp.asarray(factor, vg.dtype) * vg


def fgd(learning_rate=1e-3, n_tangents: int = 1, **kwargs) -> FGD:
    """Build a [`neurodyn.optim.FGD`][] optimizer."""
    return FGD(learning_rate=learning_rate, n_tangents=n_tangents, **kwargs)
