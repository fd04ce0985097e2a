"""The task interface shared by every task, and the task registry.

A task is an `eqx.Module` that

- samples a batch of trials from a key (`sample(key=, batch_size=) -> Batch`, batch-first
  arrays: inputs, targets, per-step loss weights, and per-trial metadata such as condition
  labels and event times);
- defines its per-step loss (`loss(y_t, x_t) -> scalar`, the batch mean at one step, convex in
  `y_t` and consistent with the GGN — usually a `neurodyn.optim.MeanSquaredError` or
  `SoftmaxCrossEntropy`);
- turns a model and a batch into the optimizer's problem (`problem(model, batch, key=)`);
- evaluates a model on fresh trials into named metrics (`evaluate(model, key=) -> dict`);
- builds the paper's default network (`default_model(key=)`);
- carries recommended hyperparameters for each optimizer at its size
  (`hyperparameters(optimizer) -> dict`).

Tasks are built at a size: `"cpu"` (the default: trains in minutes on 2 cores) or `"paper"`
(the paper's sizes). `neurodyn.tasks.get(name, size=..., **overrides)` builds one by name.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import equinox as eqx
import jax

from .._validation import check_size as check_int
from ..models import rollout_problem

Size = Literal["cpu", "paper"]
SIZES: tuple[str, ...] = ("cpu", "paper")
"""Task sizes: `"cpu"` (minutes on a laptop) or `"paper"` (the paper's sizes, for a GPU)."""


class Batch(eqx.Module):
    """A batch of trials, batch-first.

    - `inputs`: `[B, T, n_in]` (or `[B, n_in]` for a feedforward task).
    - `targets`: `[B, T, n_out]` (or a pytree of such arrays, or `[B, ...]` feedforward).
    - `weights`: per-step loss weights broadcastable to the targets, or `None`.
    - `metadata`: per-trial arrays `[B, ...]` — condition labels, event times (in steps),
      context switches. Names are task-specific and documented on each task.
    """

    inputs: Any
    targets: Any
    weights: Any = None
    metadata: dict = dataclasses.field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return int(jax.tree.leaves(self.inputs)[0].shape[0])

    @property
    def n_steps(self) -> int:
        return int(jax.tree.leaves(self.inputs)[0].shape[1])


class AbstractTask(eqx.Module):
    """Base class of tasks (see the module docstring)."""

    name: ClassVar[str] = "task"
    description: ClassVar[str] = ""
    recurrent: ClassVar[bool] = True

    @abc.abstractmethod
    def sample(self, *, key, batch_size: int) -> Batch: ...

    @abc.abstractmethod
    def loss(self, y, x) -> jax.Array:
        """Per-step loss; `x` holds that step's `target` and `weight` (and `inputs`)."""

    @abc.abstractmethod
    def default_model(self, *, key) -> Any: ...

    @abc.abstractmethod
    def evaluate(self, model, *, key, n_trials: int | None = None) -> dict[str, float]: ...

    @abc.abstractmethod
    def hyperparameters(self, optimizer: str = "sofo") -> dict[str, Any]: ...

    def default_optimizer(self) -> str:
        """The optimizer `neurodyn fit` and `nd.fit` use when none is given: `"sofo"`, unless
        a task measured that another one reaches its success level within the size's budget
        and SOFO does not (the single reach's torque arm at size `"cpu"`: `"adam"`)."""
        return "sofo"

    def loss_function(self) -> Callable:
        """The per-step loss as the object handed to the optimizer (default: `self.loss`).

        Tasks whose loss is a `neurodyn.optim.AbstractLoss` (`mse`, `cross_entropy`) return
        that object here, so that SOFO uses its closed-form GGN instead of differentiating a
        bound method, and so that the problem's static loss never hashes the task's arrays.
        """
        return self.loss

    def problem(self, model, batch: Batch, *, key):
        """The optimizer's problem for `model` on `batch` (noise drawn from `key`)."""
        extra = {"target": batch.targets}
        if batch.weights is not None:
            extra["weight"] = batch.weights
        return rollout_problem(model, batch.inputs, self.loss_function(), key=key, extra=extra)

    @property
    def dt(self) -> float:
        """Seconds per step (for time axes in analysis); 1.0 when time is in steps."""
        return 1.0

    def conditions(self) -> Batch | None:
        """The canonical evaluation conditions (e.g. 8 reach directions), if the task has any."""
        return None

    def metric_units(self, name: str) -> str:
        """UDUNITS units of the evaluation metric `name` (the `units` of `eval_<name>` in
        `history.nc`).

        The default reads the metric's name, the convention of every neurodyn task: a suffix
        `_cm_s` → `"cm s-1"`, `_cm` → `"cm"`, `_ms` → `"ms"`, a prefix `percent_` →
        `"percent"`, anything else → `"1"` (dimensionless: losses, MSEs in the task's
        normalised units, accuracies and fractions in [0, 1]). A task whose metric names do
        not say their units overrides this.
        """
        for suffix, units in (("_cm_s", "cm s-1"), ("_cm", "cm"), ("_ms", "ms")):
            if name.endswith(suffix):
                return units
        return "percent" if name.startswith("percent_") else "1"

    def success_criterion(self) -> tuple[str, float, str] | None:
        """`(metric, threshold, "below" | "above")`: when a run counts as solved.

        Used by `neurodyn compare` and the benchmarks for the time to reach the success level.
        """
        return None


_REGISTRY: dict[str, Callable[..., AbstractTask]] = {}


def register(name: str):
    """Class decorator: make a task constructible by name with [`neurodyn.tasks.get`][]."""

    def wrap(cls):
        if name in _REGISTRY:
            raise ValueError(f"a task named {name!r} is already registered.")
        _REGISTRY[name] = cls
        return cls

    return wrap


_FAMILIES: dict[str, tuple[Callable[..., AbstractTask], tuple[str, ...]]] = {}


def register_family(
    prefix: str, builder: Callable[..., AbstractTask], options: tuple[str, ...] = ()
) -> None:
    """Make `get("<prefix>:<id>", size=..., **overrides)` call
    `builder(id, size=size, **overrides)` (e.g. `"neurogym:GoNogo-v0"`); `options` are the
    override names it accepts (what [`neurodyn.tasks.options`][] answers)."""
    if prefix in _FAMILIES:
        raise ValueError(f"a task family {prefix!r} is already registered.")
    _FAMILIES[prefix] = (builder, tuple(options))


def families() -> dict[str, str]:
    """Registered task families (`"<prefix>:<id>"` names) with their one-line descriptions."""
    return {
        f"{p}:<id>": ((b.__doc__ or "").strip().splitlines() or [""])[0]
        for p, (b, _) in sorted(_FAMILIES.items())
    }


def _family(name) -> tuple[Callable[..., AbstractTask], tuple[str, ...], str] | None:
    """(builder, options, id) when `name` is `"<registered family>:<id>"`, else None."""
    prefix, colon, ident = str(name).partition(":")
    if colon and prefix in _FAMILIES:
        return (*_FAMILIES[prefix], ident)
    return None


def available() -> dict[str, str]:
    """Registered task names with their one-line descriptions."""
    return {name: getattr(cls, "description", "") for name, cls in sorted(_REGISTRY.items())}


def get(name: str, *, size: Size = "cpu", **overrides) -> AbstractTask:
    """Build a task by name at a size (`"cpu"` default, or `"paper"`), with overrides.

    A name `"<family>:<id>"` builds a task of a registered family, e.g.
    `get("neurogym:PerceptualDecisionMaking-v0")` (see [`neurodyn.tasks.neurogym_task`][]).

    **Raises:** `ValueError` naming the accepted tasks or sizes.
    """
    family = _family(name)
    if family is not None:
        if size not in SIZES:
            raise ValueError(f"`size` must be one of {SIZES}; got {size!r}.")
        return family[0](family[2], size=size, **overrides)
    if name not in _REGISTRY:
        accepted = [*sorted(_REGISTRY), *(f"{p}:<id>" for p in sorted(_FAMILIES))]
        raise ValueError(f"unknown task {name!r}; accepted: {', '.join(accepted)}.")
    if size not in SIZES:
        raise ValueError(f"`size` must be one of {SIZES}; got {size!r}.")
    cls = _REGISTRY[name]
    builder = getattr(cls, "from_size", None)
    return builder(size, **overrides) if builder is not None else cls(**overrides)


def options(name: str) -> tuple[str, ...]:
    """The option names task `name` accepts as overrides in [`neurodyn.tasks.get`][]
    (its constructor's fields, `size` excepted).

    **Raises:** `ValueError` naming the accepted tasks.
    """
    family = _family(name)
    if family is not None:
        return family[1]
    if name not in _REGISTRY:
        raise ValueError(f"unknown task {name!r}; accepted: {', '.join(sorted(_REGISTRY))}.")
    cls = _REGISTRY[name]
    if not dataclasses.is_dataclass(cls):  # pragma: no cover - every task is an eqx.Module
        return ()
    return tuple(f.name for f in dataclasses.fields(cls) if f.init and f.name != "size")


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    """Trace-time check for integer task arguments (`neurodyn._validation.check_size`)."""
    return check_int(value, name, minimum=minimum)


OPTIMIZER_NAMES: tuple[str, ...] = ("sofo", "adam", "fgd", "first-order-sofo")
"""Optimizer names a task's `hyperparameters(optimizer)` answers for."""


def select_hyperparameters(table: dict, size: str, optimizer: str, task: str) -> dict[str, Any]:
    """A copy of `table[size][optimizer]`, with errors that name the accepted values.

    `table` maps each size in `SIZES` to a dict keyed by optimizer name (see
    `OPTIMIZER_NAMES`); every entry holds at least `n_iters`, `batch_size` and
    `learning_rate` (plus `n_tangents` and `damping` for the tangent methods).
    """
    if size not in table:
        raise ValueError(f"`size` must be one of {tuple(table)}; got {size!r}.")
    if optimizer not in table[size]:
        raise ValueError(
            f"no hyperparameters for optimizer {optimizer!r} on task {task!r}; accepted: "
            f"{', '.join(table[size])}."
        )
    return dict(table[size][optimizer])


def check_size(size) -> str:
    """Trace-time check of a task size (`"cpu"` or `"paper"`)."""
    if size not in SIZES:
        raise ValueError(f"`size` must be one of {SIZES}; got {size!r}.")
    return size
