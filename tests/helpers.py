"""Test helpers: tree comparison."""

import jax
import jax.numpy as jnp
import numpy as np


def tree_allclose(x, y, *, rtol=1e-5, atol=1e-8):
    """True when two pytrees have the same structure and all leaves are close."""
    if jax.tree.structure(x) != jax.tree.structure(y):
        return False
    for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y)):
        a = np.asarray(a)
        b = np.asarray(b)
        if a.shape != b.shape or not np.allclose(a, b, rtol=rtol, atol=atol):
            return False
    return True


def tree_max_relerr(x, y):
    """Largest relative error, taken over the whole tree (norm-wise per leaf)."""
    errs = []
    for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y)):
        a = jnp.asarray(a)
        b = jnp.asarray(b)
        errs.append(float(jnp.linalg.norm((a - b).ravel()) / (jnp.linalg.norm(b.ravel()) + 1e-300)))
    return max(errs) if errs else 0.0
