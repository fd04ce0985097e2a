"""The damped Gauss–Newton solve in the K-dimensional subspace (docs/concepts/sofo.md)."""

from __future__ import annotations

from typing import Literal, NamedTuple

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

DampingMode = Literal["relative", "absolute", "none"]
DAMPING_MODES: tuple[str, ...] = ("relative", "absolute", "none")
"""How the damping λ becomes γ: `"relative"` (γ = λ·max eig of the subspace GGN),
`"absolute"` (γ = λ) or `"none"` (γ = 0)."""


class SubspaceSolution(NamedTuple):
    """Result of [`neurodyn.optim.damped_solve`][]."""

    alpha: Float[Array, " k"]
    """Subspace coordinates α = U (S + γI)⁻¹ Uᵀ c̃, shape (K,)."""
    eigenvalues: Float[Array, " k"]
    """Eigenvalues of the symmetrised subspace GGN, clipped at 0, ascending, shape (K,)."""
    gamma: Float[Array, ""]
    """The damping actually added, γ."""
    predicted_decrease: Float[Array, ""]
    """c̃ᵀα − ½ αᵀG̃α: the decrease of the undamped quadratic model for the step −Vα."""


def check_damping(damping, damping_mode: str) -> None:
    """Trace-time validation of the damping arguments."""
    if damping_mode not in DAMPING_MODES:
        raise ValueError(f"`damping_mode` must be one of {DAMPING_MODES}; got {damping_mode!r}.")
    if isinstance(damping, bool) or not (
        isinstance(damping, (int, float, np.floating, np.integer))
        or getattr(damping, "ndim", None) == 0  # a traced or concrete 0-d array
    ):
        raise TypeError(
            f"`damping` must be a number >= 0; got {type(damping).__name__} {damping!r}."
        )
    if isinstance(damping, (int, float, np.floating, np.integer)):
        if not np.isfinite(damping) or damping < 0:
            raise ValueError(f"`damping` must be a finite number >= 0; got {damping!r}.")


def damped_solve(
    ggn: Float[Array, "k k"],
    vg: Float[Array, " k"],
    damping: float | Float[Array, ""],
    damping_mode: DampingMode = "relative",
) -> SubspaceSolution:
    r"""Solve (G̃ + γI) α = c̃ by eigendecomposition.

    G̃ is symmetrised and its negative eigenvalues (round-off) are clipped to 0. The damping is
    γ = λ·max(eig G̃) (`"relative"`, the reference's choice, invariant to rescaling V),
    γ = λ (`"absolute"`), or γ = 0 (`"none"`; zero eigenvalues are then pseudo-inverted).

    **Arguments:** `ggn` (K, K), `vg` (K,), `damping` λ ≥ 0, `damping_mode`.
    """
    check_damping(damping, damping_mode)
    ggn = (ggn + ggn.T) / 2
    s, u = jnp.linalg.eigh(ggn)
    s = jnp.maximum(s, 0)
    top = s[-1]
    if damping_mode == "relative":
        gamma = damping * top
    elif damping_mode == "absolute":
        gamma = jnp.asarray(damping, s.dtype)
    else:
        gamma = jnp.zeros((), s.dtype)
    denom = s + gamma
    # pseudo-inverse below round-off level (only reachable without damping)
    cutoff = s.shape[0] * jnp.finfo(s.dtype).eps * jnp.maximum(top, jnp.finfo(s.dtype).tiny)
    inv = jnp.where(denom > cutoff, 1.0 / jnp.where(denom > cutoff, denom, 1.0), 0.0)
    coeff = u.T @ vg
    alpha = u @ (inv * coeff)
    predicted = jnp.dot(vg, alpha) - 0.5 * jnp.dot(alpha, ggn @ alpha)
    return SubspaceSolution(alpha, s, jnp.asarray(gamma, s.dtype), predicted)
