"""The seed streams of a run, derived from its `seed` in one place."""

from __future__ import annotations

STREAM_MODEL, STREAM_TRAINING, STREAM_EXPORT = 0, 1, 2
"""`fold_in(PRNGKey(seed), stream)`: the model's initial parameters, the training loop
(batches, noise, tangents) and the trials `neurodyn fit`/`neurodyn export` simulate."""


def run_keys(seed: int) -> dict:
    """The PRNG keys of a run with `seed`: `model`, `training` and `export`."""
    import jax.random as jr

    base = jr.PRNGKey(int(seed))
    return {
        "model": jr.fold_in(base, STREAM_MODEL),
        "training": jr.fold_in(base, STREAM_TRAINING),
        "export": jr.fold_in(base, STREAM_EXPORT),
    }
