"""Random initial weights cut from one draw."""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, PRNGKeyArray


def _cut(flat: Array, shapes: Sequence[tuple[int, ...]]) -> list[Array]:
    out, start = [], 0
    for shape in shapes:
        size = math.prod(shape)
        out.append(jnp.reshape(flat[start : start + size], shape))
        start += size
    return out


def normal_blocks(key: PRNGKeyArray, shapes: Sequence[tuple[int, ...]], dtype=None) -> list[Array]:
    """Independent standard-normal arrays of the given shapes, cut from one flat draw.

    The entries are i.i.d. N(0, 1), as with one `jax.random.normal` call per array; drawing
    them at once compiles the random-number kernel once per model configuration instead of
    once per array, which makes building a model several times faster on CPU.
    """
    return _cut(jr.normal(key, (sum(math.prod(s) for s in shapes),), dtype), shapes)


def uniform_blocks(
    key: PRNGKeyArray,
    shapes: Sequence[tuple[int, ...]],
    minval: float = -1.0,
    maxval: float = 1.0,
    dtype=None,
) -> list[Array]:
    """Independent U(minval, maxval) arrays of the given shapes, cut from one flat draw."""
    flat = jr.uniform(
        key, (sum(math.prod(s) for s in shapes),), dtype, minval=minval, maxval=maxval
    )
    return _cut(flat, shapes)
