"""Shared test configuration: float64 everywhere, a seeded `getkey` fixture, Agg backend."""

import os
import random

import jax
import jax.random as jr
import matplotlib
import pytest

matplotlib.use("Agg")
jax.config.update("jax_enable_x64", True)
os.environ.setdefault("NEURODYN_FAST", "1")


@pytest.fixture
def getkey():
    """A function returning fresh PRNG keys; the seed is printed so a failure can be replayed."""
    seed = random.randint(0, 2**31 - 1)
    print(f"getkey seed: {seed}")
    key = jr.PRNGKey(seed)

    def _getkey():
        nonlocal key
        key, sub = jr.split(key)
        return sub

    return _getkey
