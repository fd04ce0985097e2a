r"""Perturbations of a reaching trial: curl force fields, force pulses, target jumps, catch trials.

Each perturbation is a small frozen description (hashable, so a task can hold it as a static
field). A reaching task with `perturbations=(...)` draws them per trial, applies them to the
batch it builds — the mechanical ones as per-step plant inputs (`"curl"`, `"hand_force"`,
see [`neurodyn.tasks.ClosedLoop`][]), target jumps and catch trials as changes of the task
inputs and the loss targets — and records what it drew in `Batch.metadata`, which the
exported trials (`trials.nc`) carry per trial. They compose: a trial can be in a curl field,
receive a pulse and see its target jump.

Conventions: angles in degrees in the descriptions (radians in the metadata), times in seconds
after the go cue (whole network steps), forces in N, field strengths in N·s/m. A pair
`(lo, hi)` draws uniformly per trial; a single number is fixed.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping

import jax.numpy as jnp
import jax.random as jr


def _pair(value, name: str) -> tuple[float, float]:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = (value, value)
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"`{name}` must be a number or a pair (lo, hi); got {value!r}.") from e
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ValueError(f"`{name}` must be finite with lo <= hi; got {(lo, hi)}.")
    return (lo, hi)


def _probability(value, name: str = "probability") -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a number in [0, 1]; got {value!r}.")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"`{name}` must lie in [0, 1]; got {value}.")
    return float(value)


def _uniform(key, n, pair, dtype):
    lo, hi = pair
    if lo == hi:
        return jnp.full((n,), lo, dtype)
    return jr.uniform(key, (n,), dtype, lo, hi)


def _applied(key, n, probability):
    if probability >= 1.0:
        return jnp.ones((n,), bool)
    if probability <= 0.0:
        return jnp.zeros((n,), bool)
    return jr.bernoulli(key, probability, (n,))


@dataclasses.dataclass(frozen=True)
class CurlField:
    r"""A velocity-dependent curl force field at the hand (Shadmehr & Mussa-Ivaldi 1994 used
    a viscous field; the curl field is its common rotational form, e.g. Thoroughman &
    Shadmehr 2000).

    F = b·(−v_y, v_x): the force is the hand velocity turned by +90° and scaled by b, so it
    is perpendicular to the motion and does no work. b > 0 pushes counter-clockwise (to the
    left of the motion), b < 0 clockwise. It acts during the whole trial (the hand at rest
    feels nothing).

    **Arguments:**

    - `strength`: b in N·s/m (a number, or a pair drawn uniformly per trial). Human
      experiments use |b| ≈ 10–20 N·s/m.
    - `probability`: the fraction of trials in the field (1: every trial).
    - `random_sign`: flip the sign of b with probability ½ per trial (both directions).
    """

    strength: float | tuple[float, float] = 15.0
    probability: float = 1.0
    random_sign: bool = False

    kind = "curl"

    def __post_init__(self):
        object.__setattr__(self, "strength", _pair(self.strength, "CurlField.strength"))
        object.__setattr__(self, "probability", _probability(self.probability))
        object.__setattr__(self, "random_sign", bool(self.random_sign))

    def draw(self, key, n: int, dtype) -> jnp.ndarray:
        """Per-trial strengths b `[n]` (N·s/m; 0 where the field is off)."""
        k_on, k_b, k_sign = jr.split(key, 3)
        b = _uniform(k_b, n, self.strength, dtype)
        if self.random_sign:
            b = jnp.where(jr.bernoulli(k_sign, 0.5, (n,)), -b, b)
        return jnp.where(_applied(k_on, n, self.probability), b, 0.0).astype(dtype)


@dataclasses.dataclass(frozen=True)
class ForcePulse:
    """A constant force on the hand for a short time (a mechanical "bump").

    **Arguments:**

    - `magnitude`: N (number or pair).
    - `direction`: degrees from +x, counter-clockwise (number or pair; default any
      direction, `(0, 360)`).
    - `onset`: seconds after the go cue (number or pair; whole network steps, rounded to the
      nearest step like the task's other durations). A negative onset pushes during the
      preparation period (a postural perturbation).
    - `duration`: seconds (a whole number of network steps, > 0).
    - `probability`: the fraction of trials that get a pulse.
    """

    magnitude: float | tuple[float, float] = 10.0
    direction: float | tuple[float, float] = (0.0, 360.0)
    onset: float | tuple[float, float] = (0.1, 0.3)
    duration: float = 0.05
    probability: float = 1.0

    kind = "pulse"

    def __post_init__(self):
        object.__setattr__(self, "magnitude", _pair(self.magnitude, "ForcePulse.magnitude"))
        object.__setattr__(self, "direction", _pair(self.direction, "ForcePulse.direction"))
        object.__setattr__(self, "onset", _pair(self.onset, "ForcePulse.onset"))
        object.__setattr__(self, "probability", _probability(self.probability))
        if self.magnitude[0] < 0:
            raise ValueError(f"`ForcePulse.magnitude` must be >= 0 N; got {self.magnitude}.")
        duration = float(self.duration)
        if not (math.isfinite(duration) and duration > 0):
            raise ValueError(f"`ForcePulse.duration` must be > 0 s; got {self.duration}.")
        object.__setattr__(self, "duration", duration)


@dataclasses.dataclass(frozen=True)
class TargetJump:
    """The target jumps to a new position after the go cue.

    At the jump the new target appears on the cue inputs (the fixation input stays 0) until
    the end of the trial, and the loss target switches to it; the scored windows stay those
    of the trial. The new target is the old one rotated about the centre by `rotation`
    degrees (radius unchanged).

    **Arguments:**

    - `time`: seconds after the go cue (number or pair; whole network steps).
    - `rotation`: degrees (number or pair), positive counter-clockwise.
    - `random_sign`: flip the rotation's sign with probability ½ per trial.
    - `probability`: the fraction of trials whose target jumps.
    """

    time: float | tuple[float, float] = (0.05, 0.15)
    rotation: float | tuple[float, float] = 45.0
    random_sign: bool = True
    probability: float = 0.5

    kind = "jump"

    def __post_init__(self):
        object.__setattr__(self, "time", _pair(self.time, "TargetJump.time"))
        object.__setattr__(self, "rotation", _pair(self.rotation, "TargetJump.rotation"))
        object.__setattr__(self, "random_sign", bool(self.random_sign))
        object.__setattr__(self, "probability", _probability(self.probability))
        if self.time[0] < 0:
            raise ValueError(f"`TargetJump.time` must be >= 0 s after the go cue; got {self.time}.")


@dataclasses.dataclass(frozen=True)
class CatchTrials:
    """Trials without a go cue: the fixation input and the target cue stay on to the end, and
    the hand must stay at the centre (loss target = centre, weight 1, throughout). The
    trial's `go_cue` metadata is then the number of steps (no go cue within the trial).

    **Arguments:** `probability`: the fraction of catch trials.
    """

    probability: float = 0.1

    kind = "catch"

    def __post_init__(self):
        object.__setattr__(self, "probability", _probability(self.probability))


PERTURBATIONS = {cls.kind: cls for cls in (CurlField, ForcePulse, TargetJump, CatchTrials)}
"""The perturbation descriptions by kind (`"curl"`, `"pulse"`, `"jump"`, `"catch"`)."""


def as_perturbations(value) -> tuple:
    """Normalise a task's `perturbations` argument: perturbation objects, or mappings with a
    `"kind"` (from a TOML config: `{kind = "curl", strength = 15}`), at most one per kind."""
    if value is None:
        return ()
    if isinstance(value, Mapping) or dataclasses.is_dataclass(value):
        value = (value,)
    out = []
    for item in value:
        if isinstance(item, Mapping):
            item = dict(item)
            kind = item.pop("kind", None)
            if kind not in PERTURBATIONS:
                raise ValueError(
                    f"`perturbations`: each mapping needs a `kind` among {tuple(PERTURBATIONS)}; "
                    f"got {kind!r}."
                )
            try:
                item = PERTURBATIONS[kind](**item)
            except TypeError as e:
                raise ValueError(f"`perturbations` ({kind}): {e}") from e
        if not isinstance(item, tuple(PERTURBATIONS.values())):
            raise TypeError(
                "`perturbations` must hold CurlField, ForcePulse, TargetJump or CatchTrials "
                f"objects (or mappings with a `kind`); got {item!r}."
            )
        out.append(item)
    kinds = [p.kind for p in out]
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"`perturbations` holds at most one of each kind; got {kinds}.")
    return tuple(out)
