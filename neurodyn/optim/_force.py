"""Batched FORCE (Sussillo & Abbott 2009): online recursive least squares on a readout."""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from ._base import AbstractOptimizer
from ._problem import RecurrentProblem, scan_steps


class FORCEState(NamedTuple):
    """State of [`neurodyn.optim.FORCE`][]: the RLS matrix and the iteration count."""

    P: jax.Array
    """Running inverse correlation matrix of the rates, `[neuron, neuron]`."""
    count: jax.Array
    """Number of FORCE iterations (batches) done."""


def rls_update(P, W, R, E, *, symmetrize: bool = True):
    r"""One batched recursive-least-squares update (FORCE, Sussillo & Abbott 2009, batched).

    $$P \leftarrow P - P R^\top (B I + R P R^\top)^{-1} R P,\qquad
      W \leftarrow W - P R^\top E / B$$

    with the *updated* P and the error E = R W − Y* computed *before* the update. This is RLS
    with information increment RᵀR/B: after updates with rows R_1 … R_n from W = 0,
    P = (P_0⁻¹ + Σ RᵀR/B)⁻¹ and W solves the ridge-regularised normal equations
    (P_0⁻¹ + Σ RᵀR/B) W = Σ RᵀY*/B. P is symmetrised after each update (`symmetrize`) so that
    round-off cannot make it drift from symmetric positive definite in float32.

    **Arguments:** `P` `[N, N]`, `W` `[N, M]` (row convention: outputs R W), `R` `[B, N]`
    (rates), `E` `[B, M]` (errors). **Returns:** `(P, W)`.
    """
    batch = R.shape[0]
    PR = P @ R.T  # [N, B]
    RPR = R @ PR  # [B, B]
    S = batch * jnp.eye(batch, dtype=P.dtype) + RPR  # symmetric positive definite
    G = jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(S), PR.T)  # S⁻¹ R P, [B, N]
    P = P - PR @ G
    if symmetrize:
        P = 0.5 * (P + P.T)
    # the updated P times Rᵀ without a second N×N×B product: P_new Rᵀ = PR − PR S⁻¹ RPR
    PR_new = PR - PR @ (G @ R.T)
    W = W - PR_new @ E / batch
    return P, W


class FORCE(AbstractOptimizer):
    r"""Batched FORCE learning of a readout with output feedback (Sussillo & Abbott 2009).

    At every time step of every trial of the batch the readout W_out of a
    [`neurodyn.models.RateRNN`][] (row convention, y = r W_out) is updated by
    [`neurodyn.optim.rls_update`][] from the rates r_{t+1} that produced y_t and the error
    y_t − y*_t, and the network advances with the new readout (its feedback uses it at the
    next step). Only `W_out` is trained; every other parameter stays as it is. One `step` is
    one batch of trials (a FORCE "iteration"); `info["loss"]` is the task loss of the online
    outputs during that pass. Test error is measured by evaluating the returned model, i.e.
    with updates frozen.

    **Arguments:** `alpha` > 0: P_0 = I/α (Sussillo & Abbott use α ∈ [1, 100]; the
    authors' reference code took it from the command line and did not record it — default
    1).

    ??? cite "Reference"
        Sussillo & Abbott, *Generating coherent patterns of activity from chaotic neural
        networks*, Neuron 63 (2009).
    """

    alpha: float = 1.0
    name: ClassVar[str] = "force"
    guards_steps: ClassVar[bool] = False  # its loss is the online loss, not the loss before

    def __check_init__(self):
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)):
            raise TypeError(f"`alpha` must be a number > 0; got {self.alpha!r}.")
        if not self.alpha > 0 or self.alpha == float("inf"):
            raise ValueError(f"`alpha` must be a finite number > 0; got {self.alpha!r}.")

    @staticmethod
    def _check_model(params):
        """FORCE needs a readout, not a particular class: a network that declares
        `linear_readout = True` (outputs `rates(state) @ W_out`) and has `n_neurons` — a
        [`neurodyn.models.RateRNN`][] built with `readout_bias=False` and
        `readout_from="all"`."""
        if not getattr(params, "linear_readout", False):
            raise TypeError(
                "FORCE trains the linear readout `W_out` of a network whose outputs are "
                "rates(state) @ W_out (a neurodyn.models.RateRNN, e.g. "
                f"nd.models.reservoir_rnn); got {type(params).__name__}."
            )
        if getattr(params, "b_out", None) is not None or params.readout_from != "all":
            raise ValueError(
                "FORCE needs a plain linear readout: build the RateRNN with "
                "readout_bias=False and readout_from='all'."
            )

    def init(self, params, trainable=None):
        del trainable
        self._check_model(params)
        n = params.n_neurons
        return FORCEState(
            jnp.eye(n, dtype=params.W_out.dtype) / self.alpha, jnp.zeros((), jnp.int32)
        )

    def step(self, params, state, problem, *, key=None, trainable=None):
        del key, trainable
        self._check_model(params)
        if not isinstance(problem, RecurrentProblem):
            raise TypeError("FORCE needs a recurrent problem (a rollout of the network).")

        def body(carry, t):
            x = problem.x_at(t)
            W_out, P, z, total = carry
            model = eqx.tree_at(lambda m: m.W_out, params, W_out)
            new_z, y = problem.step(model, z, x)
            loss = problem.loss(y, x)
            R = jax.vmap(model.rates)(new_z)
            if "noise" in x and x["noise"] is not None and "rate_next" in x["noise"]:
                R = R * x["noise"]["rate_next"]  # the rates that produced y
            P, W_out = rls_update(P, W_out, R, y - x["target"])
            return (W_out, P, new_z, total + loss), None

        z0 = problem.initial_carry(params)
        zero = jnp.zeros((), params.W_out.dtype)
        (W_out, P, _, total), _ = scan_steps(
            body, (params.W_out, state.P, z0, zero), problem.n_steps
        )
        ok = jnp.isfinite(total) & jnp.all(jnp.isfinite(W_out)) & jnp.all(jnp.isfinite(P))
        W_out = jnp.where(ok, W_out, params.W_out)
        P = jnp.where(ok, P, state.P)
        new = eqx.tree_at(lambda m: m.W_out, params, W_out)
        info = {"loss": total, "finite": ok, "P_trace": jnp.trace(P)}
        return new, FORCEState(P, state.count + ok.astype(jnp.int32)), info


def force(alpha: float = 1.0) -> FORCE:
    """Build a [`neurodyn.optim.FORCE`][] optimizer (P_0 = I/α)."""
    return FORCE(alpha=alpha)
