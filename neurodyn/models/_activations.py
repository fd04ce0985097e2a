"""Firing-rate nonlinearities φ, by name or as any callable."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def rectified_tanh(x):
    """φ(x) = max(0, tanh x): a saturating rate that is zero below threshold."""
    return jnp.maximum(jnp.tanh(x), 0.0)


def linear(x):
    """φ(x) = x (a linear network)."""
    return x


ACTIVATIONS: dict[str, Callable] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "softplus": jax.nn.softplus,
    "rectified_tanh": rectified_tanh,
    "sigmoid": jax.nn.sigmoid,
    "linear": linear,
}
"""The activations accepted by name (`"retanh"` is an alias of `"rectified_tanh"`)."""

_ALIASES = {"retanh": "rectified_tanh", "identity": "linear"}


def resolve_activation(activation: str | Callable, *, argument: str = "activation"):
    """Return `(name, fn)` for an activation given by name or as a callable.

    **Arguments:**

    - `activation`: one of the names in `ACTIVATIONS` (or an alias), or a callable applied
      elementwise to a JAX array.
    - `argument`: the constructor argument's name, for the error message.

    **Raises:** `ValueError` for an unknown name (listing the accepted ones), `TypeError` for
    anything that is neither a string nor a callable.
    """
    if isinstance(activation, str):
        name = _ALIASES.get(activation, activation)
        if name not in ACTIVATIONS:
            accepted = ", ".join(repr(k) for k in (*ACTIVATIONS, *_ALIASES))
            raise ValueError(
                f"`{argument}` must be one of {accepted}, or a callable; got {activation!r}."
            )
        return name, ACTIVATIONS[name]
    if callable(activation):
        return getattr(activation, "__name__", type(activation).__name__), activation
    raise TypeError(
        f"`{argument}` must be an activation name (str) or a callable; "
        f"got {type(activation).__name__}."
    )
