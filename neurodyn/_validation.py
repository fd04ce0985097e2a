"""Checks of user arguments, with messages that name the argument and what is accepted.

The one place the package's integer and real-number checks live: tasks, models, optimizers'
builders and `nd.fit` call these (plants keep a check of their own that lets traced values
through, for plants built inside `jit`)."""

from __future__ import annotations

import math
import numbers


def check_size(value, name: str, *, minimum: int = 1) -> int:
    """An integer size `>= minimum` (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an int >= {minimum}; got {value!r}.")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}; got {value}.")
    return int(value)


def check_real(
    value,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict_minimum: bool = False,
) -> float:
    """A finite real number within the given bounds (`minimum` exclusive if `strict_minimum`)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a real number; got {value!r}.")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be finite; got {value}.")
    if minimum is not None and (value <= minimum if strict_minimum else value < minimum):
        relation = ">" if strict_minimum else ">="
        raise ValueError(f"`{name}` must be {relation} {minimum}; got {value}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be <= {maximum}; got {value}.")
    return value


def check_time_constants(tau, dt) -> tuple[float, float]:
    """τ > 0 and 0 < dt <= τ (a larger step overshoots the leak and the Euler map is unstable)."""
    tau = check_real(tau, "tau", minimum=0.0, strict_minimum=True)
    dt = check_real(dt, "dt", minimum=0.0, strict_minimum=True)
    if dt > tau:
        raise ValueError(
            f"`dt` must satisfy 0 < dt <= tau (Euler with dt > tau overshoots the leak); got "
            f"dt = {dt}, tau = {tau}."
        )
    return tau, dt


def check_choice(value, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}; got {value!r}.")
    return value
