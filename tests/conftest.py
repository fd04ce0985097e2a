"""Shared test configuration: float64 everywhere, a seeded `getkey` fixture, Agg backend."""

import os
import random
import zlib

import jax
import jax.random as jr
import matplotlib
import pytest

matplotlib.use("Agg")
jax.config.update("jax_enable_x64", True)
os.environ.setdefault("NEURODYN_FAST", "1")


@pytest.fixture
def getkey(request):
    """A function returning fresh PRNG keys.

    The seed is fixed per test (from the test's id), so every run, CI included, draws the same
    keys; `NEURODYN_TEST_SEED=<int>` replays a given seed and `NEURODYN_TEST_SEED=random` draws
    a fresh one. The seed is printed so a failure can be replayed.
    """
    choice = os.environ.get("NEURODYN_TEST_SEED")
    if choice == "random":
        seed = random.randint(0, 2**31 - 1)
    elif choice:
        seed = int(choice)
    else:
        seed = zlib.crc32(request.node.nodeid.encode()) & 0x7FFFFFFF
    print(f"getkey seed: {seed}")
    key = jr.PRNGKey(seed)

    def _getkey():
        nonlocal key
        key, sub = jr.split(key)
        return sub

    return _getkey
