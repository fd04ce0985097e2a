"""Optimizers by name, for configuration files and the command line."""

from __future__ import annotations

import dataclasses
import inspect
import math
import numbers
from collections.abc import Callable

import jax.numpy as jnp

from ._bptt import adam
from ._fgd import fgd
from ._force import force
from ._sofo_optimizer import SOFO, FirstOrderSOFO, first_order_sofo, sofo

TRAINING_KEYS = frozenset(
    {"n_iters", "batch_size", "eval_every", "log_every", "eval_trials", "max_loss_spike"}
)
"""Keys of a task's hyperparameter dict that configure the training loop, not the optimizer."""

_BUILDERS: dict[str, tuple[Callable, str]] = {
    "sofo": (sofo, "SOFO: second-order forward-mode (damped Gauss-Newton in a random subspace)"),
    "adam": (adam, "BPTT + Adam (exact gradients by reverse mode)"),
    "fgd": (fgd, "forward gradient descent (unbiased random-direction gradient)"),
    "first-order-sofo": (first_order_sofo, "first-order SOFO (gradient projected on V)"),
    "force": (force, "batched FORCE: online recursive least squares on the readout"),
}


LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine")
"""Learning-rate schedules `from_config` builds from `lr_schedule`."""
# keys of a hyperparameter dict that describe the learning-rate schedule
SCHEDULE_KEYS = frozenset({"lr_schedule", "lr_decay_start", "lr_final"})


def _fraction(value, name: str, *, upper_open: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a number; got {value!r}.")
    value = float(value)
    ok = math.isfinite(value) and 0 <= value and (value < 1 if upper_open else value <= 1)
    if not ok:
        bound = "[0, 1)" if upper_open else "[0, 1]"
        raise ValueError(f"`{name}` must lie in {bound}; got {value}.")
    return value


def learning_rate_schedule(
    learning_rate, n_iters: int, *, lr_schedule="constant", lr_decay_start=0.5, lr_final=0.1
):
    """The learning rate as a number (`lr_schedule="constant"`) or an optax schedule.

    `"cosine"`: constant `learning_rate` for the first `lr_decay_start`·`n_iters`
    iterations, then a cosine decay to `lr_final`·`learning_rate` at iteration `n_iters`
    (and held there). A fixed step size leaves the parameters jittering at a level set by
    the step size and the batch noise; the decay lets the last iterations settle. (On the
    reach task it did not lower SOFO's final error against a constant η;
    `benchmarks/results/reach_results.md`.)

    **Raises:** `ValueError` naming the argument for an unknown schedule, fractions outside
    [0, 1) (`lr_decay_start`) or [0, 1] (`lr_final`), or `n_iters` < 1.
    """
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"`lr_schedule` must be one of {LR_SCHEDULES}; got {lr_schedule!r}.")
    start = _fraction(lr_decay_start, "lr_decay_start", upper_open=True)
    final = _fraction(lr_final, "lr_final", upper_open=False)
    if lr_schedule == "constant":
        return learning_rate
    if isinstance(n_iters, bool) or not isinstance(n_iters, numbers.Integral) or n_iters < 1:
        raise ValueError(f"`n_iters` must be an int >= 1 for a cosine schedule; got {n_iters!r}.")
    return CosineDecay(float(learning_rate), int(n_iters), start, final)


@dataclasses.dataclass(frozen=True)
class CosineDecay:
    """η(k) = η0 for k < s·n; then η_f + (η0 − η_f)·(1 + cos(π·(k − s·n)/(n − s·n)))/2 with
    η_f = `final`·η0, held at η_f from iteration n on (an optax-style schedule with a stable
    repr, so a resumed run recognises its own configuration)."""

    learning_rate: float
    n_iters: int
    decay_start: float
    final: float

    def __call__(self, count):
        first = int(round(self.decay_start * self.n_iters))
        span = max(self.n_iters - first, 1)
        progress = jnp.clip((jnp.asarray(count, jnp.float32) - first) / span, 0.0, 1.0)
        lr0, lr_f = self.learning_rate, self.final * self.learning_rate
        return lr_f + (lr0 - lr_f) * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))


def optimizer_names() -> dict[str, str]:
    """Names accepted by [`neurodyn.optim.from_config`][] with one-line descriptions."""
    return {name: desc for name, (_, desc) in _BUILDERS.items()}


def optimizer_builder(name: str) -> Callable:
    """The function that builds optimizer `name` (e.g. [`neurodyn.optim.sofo`][] for
    `"sofo"`): its signature lists the hyperparameters `from_config(name, ...)` accepts.

    **Raises:** `ValueError` for an unknown name, listing the accepted ones."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown optimizer {name!r}; accepted: {', '.join(_BUILDERS)}.")
    return _BUILDERS[name][0]


def register_optimizer(name: str, builder: Callable, description: str) -> None:
    """Make `builder(**hyperparameters)` available by `name`."""
    _BUILDERS[name] = (builder, description)


def _accepted(builder) -> set[str]:
    params = inspect.signature(builder).parameters
    names = {n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        cls = {sofo: SOFO, first_order_sofo: FirstOrderSOFO}.get(builder)
        if cls is None and builder is fgd:
            from ._fgd import FGD as cls
        if cls is not None:
            names |= {f.name for f in cls.__dataclass_fields__.values()}
    return names


def from_config(name: str, **hyperparameters):
    """Build an optimizer by name from a hyperparameter dict.

    Keys that configure the training loop (`n_iters`, `batch_size`, ...) are ignored, so a
    task's `hyperparameters(name)` dict can be passed as it is. `lr_schedule`
    (`"constant"` or `"cosine"`), `lr_decay_start` and `lr_final` turn `learning_rate`
    into a schedule over `n_iters` iterations (see
    [`neurodyn.optim.learning_rate_schedule`][]); a cosine schedule needs `n_iters`.

    **Raises:** `ValueError` for an unknown name (listing the accepted ones) or an argument
    the optimizer does not take.
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown optimizer {name!r}; accepted: {', '.join(_BUILDERS)}.")
    builder, _ = _BUILDERS[name]
    schedule = {k: v for k, v in hyperparameters.items() if k in SCHEDULE_KEYS}
    hp = {
        k: v
        for k, v in hyperparameters.items()
        if k not in TRAINING_KEYS and k not in SCHEDULE_KEYS
    }
    if schedule.get("lr_schedule", "constant") != "constant":
        if "learning_rate" not in hp:
            default = inspect.signature(builder).parameters.get("learning_rate")
            if default is None or default.default is inspect.Parameter.empty:
                raise ValueError(
                    f"`lr_schedule` needs a `learning_rate`; optimizer {name!r} has none."
                )
            hp["learning_rate"] = default.default
        hp["learning_rate"] = learning_rate_schedule(
            hp["learning_rate"], hyperparameters.get("n_iters"), **schedule
        )
    elif schedule:
        learning_rate_schedule(1.0, 1, **schedule)  # validate the keys even when constant
    accepted = _accepted(builder)
    unknown = sorted(set(hp) - accepted)
    if unknown:
        raise ValueError(
            f"optimizer {name!r} does not take {', '.join(unknown)}; it accepts: "
            f"{', '.join(sorted(accepted))}."
        )
    return builder(**hp)
