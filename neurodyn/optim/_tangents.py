"""Random tangent subspaces: the columns of V in SOFO (docs/concepts/sofo.md)."""

from __future__ import annotations

from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

TangentKind = Literal["gaussian", "normalized", "orthonormal"]
TANGENT_KINDS: tuple[str, ...] = ("gaussian", "normalized", "orthonormal")
"""Tangent kinds of `sample_tangents`: i.i.d. N(0, 1) entries, each tangent scaled to unit
global norm (the default), or whitened so that VᵀV = I."""


def _leaf_mask(params: Any, trainable: Any) -> list[Any]:
    """Trainability of each inexact-array leaf of `params`, in flattening order.

    Each entry is `True`, `False` or a boolean array of the leaf's shape (an element mask).
    """
    is_none = lambda x: x is None
    flat_params = jax.tree.leaves(params, is_leaf=is_none)
    if trainable is None:
        trainable = True
    if isinstance(trainable, (bool, np.bool_)):
        flat_masks = [bool(trainable)] * len(flat_params)
    elif callable(trainable) and not isinstance(trainable, eqx.Module):
        # an equinox-style filter function applied to each leaf (a Module is a spec pytree,
        # even when it defines __call__)
        flat_masks = [bool(trainable(leaf)) for leaf in flat_params]
    else:
        flat_masks = jax.tree.leaves(_broadcast_prefix(trainable, params), is_leaf=is_none)
    out = []
    for p, m in zip(flat_params, flat_masks, strict=True):
        if not eqx.is_inexact_array(p):
            continue
        if isinstance(m, (bool, np.bool_)):
            out.append(bool(m))
            continue
        m = jnp.asarray(m)
        if m.dtype != jnp.bool_ or m.shape != p.shape:
            raise ValueError(
                "`trainable` leaves must be Python bools or boolean arrays of the same "
                f"shape as the parameter; got dtype {m.dtype}, shape {m.shape} for a "
                f"parameter of shape {p.shape}."
            )
        out.append(m)
    return out


def _broadcast_prefix(prefix: Any, full: Any) -> Any:
    """Broadcast a prefix pytree (e.g. a bool per sub-module) to the structure of `full`."""
    try:
        return jax.tree.map(
            lambda m, sub: jax.tree.map(lambda _: m, sub, is_leaf=lambda x: x is None),
            prefix,
            full,
            is_leaf=lambda x: isinstance(x, (bool, np.bool_)),
        )
    except ValueError as err:
        raise ValueError(
            "`trainable` must be a bool, a filter function, or a pytree (prefix) of "
            f"the parameters with bool / boolean-array leaves: {err}"
        ) from None


def count_params(params: Any, trainable: Any = None) -> int:
    """Number of trained scalars P (inexact-array entries that are trainable).

    **Arguments:**

    - `params`: a pytree (e.g. an `eqx.Module`).
    - `trainable`: `None` (every floating-point array), a bool, a filter function, or a
      pytree of bools / boolean arrays (element masks) with the structure of `params`.
    """
    leaves = jax.tree.leaves(eqx.filter(params, eqx.is_inexact_array))
    total = 0
    for leaf, m in zip(leaves, _leaf_mask(params, trainable)):
        if isinstance(m, bool):
            total += int(np.prod(leaf.shape)) if m else 0
        else:
            total += int(np.asarray(m).sum())
    return total


def sample_tangents(
    key: PRNGKeyArray,
    params: Any,
    n_tangents: int,
    kind: TangentKind = "normalized",
    *,
    trainable: Any = None,
) -> Any:
    r"""Draw K random tangent directions of parameter space (the columns of V).

    Each trained inexact-array leaf of shape `s` gets a tangent leaf of shape `(K, *s)`; other
    leaves (frozen ones, integers) get `None`, so the result has the structure of
    `eqx.filter(params, eqx.is_inexact_array)` with `None` wherever nothing is trained. An
    element mask zeroes the masked entries. Frozen parameters therefore never move, and the
    forward pass does no tangent work for them.

    - `"gaussian"`: entries i.i.d. N(0, 1) (the paper's Algorithm 1).
    - `"normalized"` (default): Gaussian, then each tangent scaled to unit global norm over the
      whole pytree (the authors' published JAX/PyTorch API).
    - `"orthonormal"`: Gaussian, then whitened by its K×K Gram matrix so that VᵀV = I_K
      (the authors' 2025 OCaml code). Same span as the Gaussian draw.

    **Arguments:**

    - `key`: a JAX PRNG key.
    - `params`: the parameter pytree.
    - `n_tangents`: K, with 1 ≤ K ≤ P (P = number of trained scalars).
    - `kind`: one of `"gaussian"`, `"normalized"`, `"orthonormal"`.
    - `trainable`: which parameters are trained (see [`neurodyn.optim.count_params`][]).

    **Returns:** a pytree of tangents with a leading axis of size K on every array leaf.

    **Raises:** `ValueError` for K outside [1, P] or an unknown `kind`.
    """
    if kind not in TANGENT_KINDS:
        raise ValueError(f"`kind` must be one of {TANGENT_KINDS}; got {kind!r}.")
    if isinstance(n_tangents, bool) or not isinstance(n_tangents, (int, np.integer)):
        raise TypeError(f"`n_tangents` must be an int; got {type(n_tangents).__name__}.")
    n_params = count_params(params, trainable)
    if n_tangents < 1 or n_tangents > n_params:
        raise ValueError(
            f"`n_tangents` must satisfy 1 <= K <= P = {n_params} (the number of trained "
            f"parameters); got K = {n_tangents}."
        )
    diff = eqx.filter(params, eqx.is_inexact_array)
    leaves, treedef = jax.tree.flatten(diff)
    masks = _leaf_mask(params, trainable)
    # One draw for all trained leaves, cut into pieces: one random kernel instead of one per
    # leaf (compiles once; the leaves' values are still i.i.d. N(0, 1)).
    trained = [leaf for leaf, m in zip(leaves, masks) if m is not False]
    dtype = jnp.result_type(*[leaf.dtype for leaf in trained])
    sizes = [int(np.prod(leaf.shape)) for leaf in trained]
    flat = jr.normal(key, (n_tangents, sum(sizes)), dtype)
    offsets = np.cumsum([0, *sizes])
    pieces = iter(range(len(trained)))
    out = []
    for leaf, m in zip(leaves, masks):
        if m is False:
            out.append(None)
            continue
        i = next(pieces)
        v = flat[:, offsets[i] : offsets[i + 1]].reshape(n_tangents, *leaf.shape)
        v = v.astype(leaf.dtype)
        if m is not True:
            v = v * m.astype(leaf.dtype)
        out.append(v)
    tangents = jax.tree.unflatten(treedef, out)
    if kind == "normalized":
        norms = jnp.sqrt(tangent_gram_diag(tangents))
        tangents = scale_tangents(tangents, 1.0 / norms)
    elif kind == "orthonormal":
        tangents = orthonormalize(tangents)
    return tangents


def tangent_gram_diag(tangents: Any) -> Float[Array, " k"]:
    """Squared global norm of each of the K tangents: diag(VᵀV)."""
    leaves = jax.tree.leaves(tangents)
    return sum(jnp.sum(jnp.reshape(v, (v.shape[0], -1)) ** 2, axis=1) for v in leaves)


def split_trainable(params: Any, trainable: Any = None):
    """Split params into (trained part, rest) and the element masks of the trained part.

    Returns `(dynamic, static, masks)`: `eqx.combine(dynamic, static)` rebuilds `params`;
    `masks` has the structure of `dynamic` with a boolean array where an element mask applies
    and `None` elsewhere.
    """
    is_none = lambda x: x is None
    flat, treedef = jax.tree.flatten(params, is_leaf=is_none)
    leaf_masks = iter(_leaf_mask(params, trainable))
    spec, masks = [], []
    for p in flat:
        m = next(leaf_masks) if eqx.is_inexact_array(p) else False
        spec.append(m is not False)
        masks.append(None if isinstance(m, bool) else m)
    spec = jax.tree.unflatten(treedef, spec)
    dynamic, static = eqx.partition(params, spec)
    masks = jax.tree.unflatten(treedef, masks)
    return dynamic, static, masks


def tangent_gram(tangents: Any) -> Float[Array, "k k"]:
    """The K×K Gram matrix VᵀV of a tangent pytree."""
    leaves = jax.tree.leaves(tangents)
    flat = [jnp.reshape(v, (v.shape[0], -1)) for v in leaves]
    return sum(f @ f.T for f in flat)


def scale_tangents(tangents: Any, scale: Float[Array, " k"]) -> Any:
    """Multiply tangent k by `scale[k]`."""
    return jax.tree.map(
        lambda v: v * jnp.reshape(scale, (-1,) + (1,) * (v.ndim - 1)).astype(v.dtype), tangents
    )


def combine_tangents(tangents: Any, alpha: Float[Array, " k"]) -> Any:
    """The parameter-space vector V α = Σ_k α_k v_k, with the structure of the parameters."""
    return jax.tree.map(lambda v: jnp.tensordot(alpha.astype(v.dtype), v, axes=1), tangents)


def project(tangents: Any, vector: Any) -> Float[Array, " k"]:
    """Vᵀ x: the K inner products of each tangent with a parameter-space vector `x`."""
    pairs = zip(jax.tree.leaves(tangents), jax.tree.leaves(vector))
    return sum(jnp.reshape(v, (v.shape[0], -1)) @ jnp.ravel(x) for v, x in pairs)


def orthonormalize(tangents: Any) -> Any:
    """Whiten tangents by their Gram matrix so that VᵀV = I (V ← V U S^{-1/2})."""
    gram = tangent_gram(tangents)
    s, u = jnp.linalg.eigh((gram + gram.T) / 2)
    s = jnp.maximum(s, jnp.finfo(s.dtype).tiny)
    transform = u / jnp.sqrt(s)  # V ← V U S^{-1/2}; column j of the transform is u_j/√s_j
    return jax.tree.map(lambda v: jnp.tensordot(transform.T.astype(v.dtype), v, axes=1), tangents)
