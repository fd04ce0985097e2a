"""Biological constraints on recurrent weights: Dale's law, connectivity masks, spectral radius.

Constrained weights are stored *free* and mapped to the constrained weight in one place
([`neurodyn.models.RateRNN.weights`][]). The fixed arrays these helpers build are not
floating point (an `int8` sign vector, boolean masks), so no optimizer can move them, whatever
filter spec it is given.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray


def n_excitatory(n_neurons: int, excitatory_fraction: float) -> int:
    """Number of excitatory neurons: `excitatory_fraction * n_neurons`, rounded half up."""
    return int(np.floor(excitatory_fraction * n_neurons + 0.5))


def dale_signs(n_neurons: int, excitatory_fraction: float) -> Int[Array, " neuron"]:
    """Sign of each neuron's outgoing synapses: `+1` for the first `n_excitatory` neurons
    (excitatory), `-1` for the rest (inhibitory). E units come first so that slices of the
    state are populations."""
    n_exc = n_excitatory(n_neurons, excitatory_fraction)
    return jnp.where(jnp.arange(n_neurons) < n_exc, 1, -1).astype(jnp.int8)


def apply_dale(
    weight_free: Float[Array, "pre post"], signs: Int[Array, " pre"]
) -> Float[Array, "pre post"]:
    """The signed weight |W_free| ⊙ sign(pre): row i (the row convention `r @ W`) carries
    presynaptic neuron i's sign.

    `abs` rather than `relu`/clipping: a free weight that crosses zero flips back to a small
    weight of the right sign and keeps receiving gradient (the derivative of |w| is ±1, and JAX
    takes 1 at 0), whereas `relu` gives a zero gradient to every negative free weight, so
    synapses die and never recover.
    """
    signs = jax.lax.stop_gradient(signs).astype(weight_free.dtype)
    return jnp.abs(weight_free) * signs[:, None]


def connectivity_mask(
    key: PRNGKeyArray | None,
    n_neurons: int,
    *,
    connectivity: float = 1.0,
    mask: Bool[Array, "post pre"] | None = None,
    self_connections: bool = True,
) -> Bool[Array, "post pre"] | None:
    """Which recurrent synapses exist; `None` when all of them do.

    Each synapse exists independently with probability `connectivity`, and only where the
    explicit `mask` is `True`; the diagonal is removed when `self_connections=False`.
    """
    out = None
    if connectivity < 1.0:
        out = jr.bernoulli(key, connectivity, (n_neurons, n_neurons))
    if mask is not None:
        out = mask if out is None else out & mask
    if not self_connections:
        off_diagonal = ~jnp.eye(n_neurons, dtype=bool)
        out = off_diagonal if out is None else out & off_diagonal
    return out


def _host_spectral_radius(weight):
    weight = np.asarray(weight)
    if weight.size == 0:
        return np.zeros((), weight.dtype)
    return np.max(np.abs(np.linalg.eigvals(weight))).astype(weight.dtype)


def spectral_radius(weight: Float[Array, "n n"]) -> Float[Array, ""]:
    """Largest eigenvalue modulus of a square matrix.

    Computed by LAPACK on the host (`numpy.linalg.eigvals` through `jax.pure_callback`): the
    non-symmetric eigensolver is not available on every accelerator, and this runs once, at
    initialisation. Works under `jit` and `vmap`.
    """
    weight = jnp.asarray(weight)
    return jax.pure_callback(
        _host_spectral_radius,
        jax.ShapeDtypeStruct((), weight.dtype),
        weight,
        vmap_method="sequential",
    )


def scale_to_spectral_radius(weight: Float[Array, "n n"], radius: float) -> Float[Array, "n n"]:
    """Multiply `weight` by a positive scalar so that its spectral radius is `radius`.

    A positive factor keeps every sign, so Dale's law survives. A nilpotent or zero matrix
    (radius 0) is left unchanged.
    """
    current = spectral_radius(weight)
    factor = jnp.where(current > 0, radius / jnp.where(current > 0, current, 1.0), 1.0)
    return weight * factor


def balanced_dale_weights(
    key: PRNGKeyArray,
    signs: Int[Array, " neuron"],
    mask: Bool[Array, "post pre"] | None,
    dtype=None,
) -> Float[Array, "post pre"]:
    """A random signed recurrent matrix obeying Dale's law, with every row balanced.

    Returned in the column form `(post, pre)` (rows are postsynaptic here): transpose it for
    [`neurodyn.models.RateRNN`][]'s row convention.

    Magnitudes are half-normal, |N(0, 1/(pN))| with p the fraction of existing synapses; in
    each row the inhibitory magnitudes are then scaled so that the summed inhibition equals the
    summed excitation (Σ_j W_ij = 0 for every postsynaptic i). Exact row balance removes the
    large outlier eigenvalue of an unbalanced E/I matrix, so the spectrum is a bulk that
    `scale_to_spectral_radius` can set. Rows without both E and I inputs are left unscaled.

    ??? cite "Reference"
        Rajan & Abbott, *Eigenvalue spectra of random matrices for neural networks*, Phys. Rev.
        Lett. 97, 188104 (2006).
    """
    n = signs.shape[0]
    return balance_dale(jr.normal(key, (n, n), dtype), signs, mask)


def balance_dale(
    standard_normal: Float[Array, "post pre"],
    signs: Int[Array, " neuron"],
    mask: Bool[Array, "post pre"] | None,
) -> Float[Array, "post pre"]:
    """[`neurodyn.models.balanced_dale_weights`][] from an already drawn N(0, 1) matrix."""
    n = signs.shape[0]
    present = jnp.ones((n, n), bool) if mask is None else mask
    density = jnp.maximum(jnp.mean(present), 1.0 / max(n, 1))
    magnitude = jnp.abs(standard_normal) / jnp.sqrt(density * n)
    magnitude = jnp.where(present, magnitude, 0.0)
    excitatory = (signs > 0)[None, :]
    exc_sum = jnp.sum(jnp.where(excitatory, magnitude, 0.0), axis=1, keepdims=True)
    inh_sum = jnp.sum(jnp.where(excitatory, 0.0, magnitude), axis=1, keepdims=True)
    both = (exc_sum > 0) & (inh_sum > 0)
    ratio = jnp.where(both, exc_sum / jnp.where(both, inh_sum, 1.0), 1.0)
    magnitude = jnp.where(excitatory, magnitude, magnitude * ratio)
    return magnitude * signs[None, :].astype(magnitude.dtype)
