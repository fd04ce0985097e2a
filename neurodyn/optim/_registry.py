"""Optimizers by name, for configuration files and the command line."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from ._bptt import adam
from ._fgd import fgd
from ._force import force
from ._sofo_optimizer import SOFO, FirstOrderSOFO, first_order_sofo, sofo

# keys of a task's hyperparameter dict that configure the loop, not the optimizer
TRAINING_KEYS = frozenset({"n_iters", "batch_size", "eval_every", "log_every", "eval_trials"})

_BUILDERS: dict[str, tuple[Callable, str]] = {
    "sofo": (sofo, "SOFO: second-order forward-mode (damped Gauss-Newton in a random subspace)"),
    "adam": (adam, "BPTT + Adam (exact gradients by reverse mode)"),
    "fgd": (fgd, "forward gradient descent (unbiased random-direction gradient)"),
    "first-order-sofo": (first_order_sofo, "first-order SOFO (gradient projected on V)"),
    "force": (force, "batched FORCE: online recursive least squares on the readout"),
}


def optimizer_names() -> dict[str, str]:
    """Names accepted by [`neurodyn.optim.from_config`][] with one-line descriptions."""
    return {name: desc for name, (_, desc) in _BUILDERS.items()}


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
    task's `hyperparameters(name)` dict can be passed as it is.

    **Raises:** `ValueError` for an unknown name (listing the accepted ones) or an argument
    the optimizer does not take.
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown optimizer {name!r}; accepted: {', '.join(_BUILDERS)}.")
    builder, _ = _BUILDERS[name]
    hp = {k: v for k, v in hyperparameters.items() if k not in TRAINING_KEYS}
    accepted = _accepted(builder)
    unknown = sorted(set(hp) - accepted)
    if unknown:
        raise ValueError(
            f"optimizer {name!r} does not take {', '.join(unknown)}; it accepts: "
            f"{', '.join(sorted(accepted))}."
        )
    return builder(**hp)
