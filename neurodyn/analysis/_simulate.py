"""Run a trained model on fresh or canonical trials and label everything as an `xarray.Dataset`.

The dataset is built in two layers:

- the generic rollout (this file): sample the trials, scan the task's own problem
  (`task.problem`, so task-given initial states and noise are honoured) and keep, at every
  step, what an *adapter* observes (rates, outputs, plant signals);
- the adapter of the task (registered by task class with [`register_adapter`][]) that says how
  to draw trials, what to observe and how to name, label and unit every variable. Adapters of
  the built-in tasks live in `_adapters.py` (abstract tasks) and `_arm.py` (reaching).

Time convention (every recurrent task): index `t` of the `time` dimension is the bin
[t·dt, (t+1)·dt); `time` holds its start t·dt. Inputs, targets and loss weights are those
presented during the bin; states, rates and outputs are the values at its end (after the step
that consumed the input). An event at step s (e.g. a go cue) has time s·dt.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import xarray as xr

from ..optim import scan_steps
from ..tasks import AbstractTask, Batch
from ._io import CONVENTIONS

# ----------------------------------------------------------------------------- variables


def var(dims, data, units: str, long_name: str, **attrs) -> xr.Variable:
    """An `xarray.Variable` with its `units` and `long_name` (the two attrs every export has)."""
    # a writable copy: arrays that come from JAX are read-only views
    return xr.Variable(dims, np.array(data), {"units": units, "long_name": long_name, **attrs})


def event_coord(seconds, long_name: str, units: str = "s") -> xr.Variable:
    """A per-trial event time (a coordinate on `trial` that `psth(align=...)` can use)."""
    return var(("trial",), np.asarray(seconds, np.float64), units, long_name, role="event")


def _jsonable(value) -> Any:
    """A JSON-able view of a config value (None when there is none)."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, (tuple, list)):
        items = [_jsonable(v) for v in value]
        return items
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if callable(value) and hasattr(value, "__name__"):
        return value.__name__
    return None


def module_config(module) -> dict[str, Any]:
    """The static (non-array) fields of an Equinox module, nested modules included.

    Arrays are described by their shape (`"array(64, 64)"`), so the config says what the
    module is without holding its parameters.
    """
    out: dict[str, Any] = {"class": type(module).__name__}
    if not dataclasses.is_dataclass(module):
        return out
    for field in dataclasses.fields(module):
        value = getattr(module, field.name, None)
        if isinstance(value, eqx.Module):
            out[field.name] = module_config(value)
        elif isinstance(value, (jax.Array, np.ndarray)):
            out[field.name] = f"array{tuple(value.shape)}"
        elif isinstance(value, (tuple, list)) and value and isinstance(value[0], jax.Array):
            out[field.name] = [f"array{tuple(v.shape)}" for v in value]
        else:
            json_value = _jsonable(value)
            if json_value is not None or value is None:
                out[field.name] = json_value
    return out


def software_versions() -> dict[str, str]:
    """Versions of neurodyn and of what the dataset was computed and written with."""
    import h5netcdf
    import matplotlib

    from ..training import software_versions as base

    return {
        **base(),
        "xarray": xr.__version__,
        "h5netcdf": h5netcdf.__version__,
        "matplotlib": matplotlib.__version__,
    }


# ----------------------------------------------------------------------------- adapters


class TaskAdapter:
    """How `simulate` runs and labels one kind of task (subclass and register per task class).

    The defaults handle any recurrent task: fresh trials from `task.sample`, canonical trials
    from `task.conditions()`, the rollout of `task.problem`, and the generic variables
    `inputs`, `targets`, `outputs`, `rates`, `loss_weight` (arbitrary units).
    """

    kind = "generic"
    default_n_trials = 16  # fresh trials
    default_repeats = 4  # trials per canonical condition
    psth_align: str | None = None  # the event PSTHs of this task are aligned on
    psth_window: tuple[float, float] | None = None

    # -- time -----------------------------------------------------------------------
    def time_units(self, task) -> tuple[str, str]:
        """(units, description) of the time axis."""
        if float(task.dt) == 1.0:
            return "1", "time (network steps: this task has no physical time unit)"
        return "s", "time"

    # -- trials ---------------------------------------------------------------------
    def fresh_trials(self, task, *, key, n_trials: int) -> Batch:
        """Fresh trials (traced: `simulate` compiles sampling, rollout and `extras` as one
        program — run eagerly, every primitive would be compiled on its own)."""
        return task.sample(key=key, batch_size=n_trials)

    def canonical_trials(self, task) -> Batch | None:
        if type(task).conditions is AbstractTask.conditions:
            return None
        return _jit_conditions(task)

    # -- rollout --------------------------------------------------------------------
    def problem(self, task, model, batch: Batch, *, key):
        return task.problem(model, batch, key=key)

    def extras(self, task, model, batch: Batch, *, key) -> dict[str, jax.Array]:
        """Batch-level arrays computed with the rollout (traced), e.g. a baseline filter."""
        del task, model, batch, key
        return {}

    def observe(self, model, carry, x, new_carry, y) -> dict[str, jax.Array]:
        """What to keep of one trial's step (`carry` → `new_carry` on input `x`, output `y`)."""
        del carry, x
        return {"rates": model.rates(new_carry), "outputs": y}

    # -- labelling ------------------------------------------------------------------
    def variables(self, task, model, batch: Batch, observed, *, key) -> dict[str, xr.Variable]:
        """Data variables (and per-trial coordinates marked by `dims == ("trial",)` or
        `role="coord"`) of the dataset."""
        del task, key
        out = {
            "inputs": var(("trial", "time", "input"), batch.inputs, "1", "network input"),
            "outputs": var(("trial", "time", "output"), observed["outputs"], "1", "network output"),
            "rates": rates_variable(model, observed["rates"]),
        }
        targets = np.asarray(batch.targets) if batch.targets is not None else None
        if (
            targets is not None
            and targets.ndim == 3
            and targets.shape[:2] == batch.inputs.shape[:2]
        ):
            out["targets"] = var(("trial", "time", "output"), targets, "1", "target output")
        weights = loss_weight(batch)
        if weights is not None:
            out["loss_weight"] = weights
        return out

    def coords(self, task, model, batch: Batch) -> dict[str, xr.Variable]:
        """Extra coordinates (per trial, per neuron, labels of the small dimensions)."""
        del task, model, batch
        return {}

    def attrs(self, task, model, batch: Batch) -> dict[str, Any]:
        del task, model, batch
        return {}


@eqx.filter_jit
def _jit_conditions(task):
    return task.conditions()


def rates_variable(model, rates, long_name: str = "firing rate") -> xr.Variable:
    units = "1"
    return var(("trial", "time", "neuron"), rates, units, long_name)


def loss_weight(batch: Batch) -> xr.Variable | None:
    """The per-step loss weight `[trial, time]` (trailing size-1 axes dropped), if any."""
    if batch.weights is None:
        return None
    w = np.asarray(batch.weights)
    while w.ndim > 2 and w.shape[-1] == 1:
        w = w[..., 0]
    if w.ndim != 2:
        return None
    return var(("trial", "time"), w, "1", "loss weight of the step")


_ADAPTERS: dict[type, TaskAdapter] = {}
_GENERIC = TaskAdapter()


def register_adapter(task_cls: type, adapter: TaskAdapter) -> None:
    """Make [`simulate`][] use `adapter` for `task_cls` and its subclasses.

    **Example:** `register_adapter(MyTask, MyAdapter())`, with `MyAdapter` a subclass of
    `TaskAdapter` overriding `variables` (and `observe` to keep more than rates and outputs).
    """
    if not isinstance(adapter, TaskAdapter):
        raise TypeError(f"`adapter` must be a TaskAdapter; got {type(adapter).__name__}.")
    _ADAPTERS[task_cls] = adapter


def adapter_for(task, model=None) -> TaskAdapter:
    """The adapter registered for the task's class (nearest in its MRO), else a closed-loop
    adapter when the model drives a plant, else the generic one."""
    from . import _adapters  # noqa: F401  (registers the built-in adapters)

    for cls in type(task).__mro__:
        if cls in _ADAPTERS:
            return _ADAPTERS[cls]
    if model is not None and hasattr(model, "plant") and hasattr(model, "network"):
        from ._arm import ARM_ADAPTER

        return ARM_ADAPTER
    return _GENERIC


# ----------------------------------------------------------------------------- rollout


def _batched_observe(adapter, model, carry, x, new_carry, y):
    """vmap the per-trial `adapter.observe` over the batch of one step."""
    x_trial = {"inputs": x["inputs"], "noise": x.get("noise")}
    return jax.vmap(lambda c, xi, nc, yi: adapter.observe(model, c, xi, nc, yi))(
        carry, x_trial, new_carry, y
    )


def rollout(adapter, task, model, batch: Batch, *, key) -> dict[str, jax.Array]:
    """Roll `model` out on `batch` (the task's problem) keeping what `adapter.observe` keeps
    at every step; batch-first arrays. Traceable."""
    problem = adapter.problem(task, model, batch, key=key)

    def body(carry, t):
        x = problem.x_at(t)
        new_carry, y = problem.step(model, carry, x)
        return new_carry, _batched_observe(adapter, model, carry, x, new_carry, y)

    _, observed = scan_steps(body, problem.initial_carry(model), problem.n_steps)
    return jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), observed)


@eqx.filter_jit
def _simulate_arrays(adapter, task, model, batch, keys, n_fresh, recurrent):
    """Trials (when `batch` is None), rollout and extras as one compiled program."""
    k_trials, k_run, k_extra = keys
    if batch is None:
        batch = adapter.fresh_trials(task, key=k_trials, n_trials=n_fresh)
    observed = rollout(adapter, task, model, batch, key=k_run) if recurrent else {}
    observed.update(adapter.extras(task, model, batch, key=k_extra))
    return batch, observed


# ----------------------------------------------------------------------------- trials


def _repeat(batch: Batch, repeats: int) -> Batch:
    """Each trial `repeats` times in a row (condition-major: c0 c0 … c1 c1 …)."""
    return jax.tree.map(lambda a: np.repeat(np.asarray(a), repeats, axis=0), batch)


def _check_n_trials(n_trials) -> int | None:
    if n_trials is None:
        return None
    if isinstance(n_trials, bool) or not isinstance(n_trials, (int, np.integer)):
        raise TypeError(f"`n_trials` must be a positive int or None; got {n_trials!r}.")
    if n_trials < 1:
        raise ValueError(f"`n_trials` must be >= 1; got {n_trials}.")
    return int(n_trials)


def choose_trials(adapter, task, *, key, n_trials, conditions):
    """(batch — or the number of fresh trials to draw —, condition index per trial or None,
    repeat index or None, mode)."""
    n_trials = _check_n_trials(n_trials)
    if isinstance(conditions, Batch):
        canonical, mode = conditions, "given"
    elif conditions is None or conditions is True:
        canonical, mode = adapter.canonical_trials(task), "canonical"
        if canonical is None:
            if conditions is True:
                raise ValueError(
                    f"task {getattr(task, 'name', type(task).__name__)!r} has no canonical "
                    "evaluation conditions; pass `conditions=False` (fresh trials)."
                )
    elif conditions is False:
        canonical, mode = None, "fresh"
    else:
        raise TypeError(
            "`conditions` must be None (canonical when the task has them), True, False or a "
            f"neurodyn.tasks.Batch; got {type(conditions).__name__}."
        )
    if canonical is None:  # the batch is drawn by `_simulate_arrays`; here its size
        n = adapter.default_n_trials if n_trials is None else n_trials
        return n, None, None, "fresh"
    n_cond = canonical.batch_size
    # as the reach tasks' own evaluation: n_trials rounded up to whole repeats per condition
    repeats = adapter.default_repeats if n_trials is None else -(-n_trials // n_cond)
    batch = _repeat(canonical, repeats)
    condition = np.repeat(np.arange(n_cond), repeats)
    repeat = np.tile(np.arange(repeats), n_cond)
    return batch, condition, repeat, mode


# ----------------------------------------------------------------------------- simulate


def cell_types(model, n_neurons: int) -> np.ndarray:
    """Per-neuron cell type: `"E"`/`"I"` under Dale's law, `"none"` without it (or when the
    model's units are not the recurrent population, e.g. a hidden layer)."""
    signs = getattr(getattr(model, "network", model), "signs", None)
    if signs is not None and np.shape(signs) == (n_neurons,):
        return np.where(np.asarray(signs) > 0, "E", "I").astype("<U4")
    return np.full(n_neurons, "none", dtype="<U4")


def simulate(
    model, task, *, key, n_trials: int | None = None, conditions: Any = None
) -> xr.Dataset:
    """Run a trained model on trials of its task and return everything as a labelled dataset.

    **Arguments:**

    - `model`: the trained model (e.g. `FitResult.model`).
    - `task`: its task.
    - `key`: drives the trials (when fresh) and the network's noise (required, keyword-only).
    - `n_trials`: the number of trials. With canonical conditions it is rounded up to a
      whole number of repeats of every condition, each repeat with its own noise (default:
      4 repeats for the reach, 2 for the double reach's 64 conditions); fresh trials default
      to 16 (32 for Kalman, 8 for Lorenz, the test set up to 1000 images for digits).
    - `conditions`: `None` (default) — the task's canonical evaluation conditions
      (`task.conditions()`, e.g. the 8 reach directions) when it has them, else fresh trials;
      `True` — the canonical conditions (error if there are none); `False` — fresh trials
      from `task.sample`; or a `neurodyn.tasks.Batch` of trials to run, each trial counted
      as a condition and repeated as the canonical ones are (`n_trials`).

    **Returns:** an `xarray.Dataset` with dims `trial`, `time` (seconds for physical tasks,
    steps otherwise; see the module docstring for the bin convention), `neuron` and the
    task's own (`joint`, `muscle`, `axis`, `bit`, `class`, ...). Coordinates: `time`, `step`,
    per-trial `condition` and `repeat` (canonical trials), event times (`role="event"`, e.g.
    `go_cue`, in the units of `time`), per-neuron `cell_type`. Every variable has `units` and
    `long_name`; attrs hold the task and model configs (`task_config`, `model_config`), the
    software versions, `dt`, the key and how the trials were chosen (`trials`).

    Variables by task (`[T]` stands for the dims `(trial, time)`):

    - every recurrent task: `inputs` `[T, input]`, `targets`, `outputs` `[T, output]`,
      `rates` `[T, neuron]`, `loss_weight` `[T]` (where the task weights its loss);
    - reach, double-reach: `hand_position`, `hand_velocity` `[T, axis]` (m, m s-1),
      `hand_speed` `[T]`, `joint_angle`, `joint_velocity` `[T, joint]` (rad, rad s-1),
      `torque` `[T, joint]` (N m), `network_output` `[T, control]`, `target_position`
      `[T, axis]`; with muscles `muscle_excitation`, `muscle_activation` `[T, muscle]` and
      `muscle_force` (N); per-trial coords `target`, `angle` (rad), `radius` (m),
      `direction` (`target1`, `angle2`, ... for the double reach) and the events
      `target_onset`, `go_cue` (`go_cue1`, `go_cue2`) in s;
    - kalman: `latent`, `observation`, `estimate` (the network's), `oracle_estimate` `[T]`,
      the context `tau` (steps), `bias`, `beta`, `switch` (bool), `time_since_switch`;
    - lorenz: `targets` (true) and `outputs` (the free-running network) `[T, axis]` with
      axis x, y, z (z-scored); `initial_state`; `rates` = the hidden layer; attrs
      `zscore_mean`, `zscore_std`;
    - flipflop: `inputs`, `targets`, `outputs` `[T, bit]`, `onset` (bool), coord `n_pulses`;
    - oneshot: `outputs` (logits) and `probability` `[T, class]`, `targets`, `item` `[T]`,
      coords `permutation`, `query_time`;
    - digits (no time): `inputs` `(trial, pixel)`, `targets`, `prediction` `(trial)`,
      `outputs`, `probability` `(trial, class)`, `rates` `(trial, neuron)` (the hidden
      units, coord `layer`).

    **Example:**

    ```python
    ds = nd.analysis.simulate(result.model, task, key=jr.PRNGKey(0))
    ds.rates.sel(neuron=3).plot.line(x="time", hue="trial")
    ```
    """
    adapter = adapter_for(task, model)
    k_trials, k_run, k_extra = jr.split(key, 3)
    batch, condition, repeat, mode = choose_trials(
        adapter, task, key=k_trials, n_trials=n_trials, conditions=conditions
    )
    recurrent = bool(getattr(task, "recurrent", True))
    n_fresh = batch if isinstance(batch, int) else None
    batch, observed = _simulate_arrays(
        adapter,
        task,
        model,
        None if n_fresh else batch,
        (k_trials, k_run, k_extra),
        n_fresh,
        recurrent,
    )
    observed = {k: np.asarray(v) for k, v in observed.items()}
    data = adapter.variables(task, model, batch, observed, key=k_extra)

    coords: dict[str, Any] = {}
    n_batch = batch.batch_size
    coords["trial"] = var(("trial",), np.arange(n_batch), "1", "trial index")
    if recurrent:
        n_steps = batch.n_steps
        dt = float(task.dt)
        units, description = adapter.time_units(task)
        coords["time"] = var(
            ("time",),
            np.round(np.arange(n_steps) * dt, 12),
            units,
            f"{description}, from the start of the trial (bin start)",
            align="trial_start",
            bins="index t holds inputs presented during [t*dt, (t+1)*dt) and states at its end",
        )
        coords["step"] = var(("time",), np.arange(n_steps), "1", "network step index")
    n_neurons = next(
        (v.shape[v.dims.index("neuron")] for v in data.values() if "neuron" in v.dims), 0
    )
    if n_neurons:
        coords["neuron"] = var(("neuron",), np.arange(n_neurons), "1", "neuron index")
        coords["cell_type"] = var(
            ("neuron",),
            cell_types(model, n_neurons),
            "1",
            "cell type (E excitatory, I inhibitory; none: no Dale's law)",
        )
    if condition is not None:
        coords["condition"] = var(("trial",), condition, "1", "evaluation condition index")
        coords["repeat"] = var(("trial",), repeat, "1", "repeat of the condition (own noise)")
    coords.update(adapter.coords(task, model, batch))
    for name in [n for n, v in data.items() if v.attrs.get("role") in ("coord", "event")]:
        coords[name] = data.pop(name)

    key_data = np.asarray(
        jr.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    )
    attrs = {
        "Conventions": CONVENTIONS,
        "title": f"{getattr(task, 'name', type(task).__name__)}: simulated trials",
        "neurodyn_dataset": "trials",
        "task": getattr(task, "name", type(task).__name__),
        "task_config": module_config(task),
        "model": type(model).__name__,
        "model_config": module_config(model),
        "n_params": int(getattr(model, "n_params", 0) or 0),
        "trials": mode,
        "n_trials": int(n_batch),
        "key": json.dumps(key_data.tolist()),
        "versions": software_versions(),
    }
    if recurrent:
        attrs["dt"] = float(task.dt)
        attrs["time_units"] = coords["time"].attrs["units"]
    if adapter.psth_align is not None:
        attrs["default_align"] = adapter.psth_align
    attrs.update(adapter.attrs(task, model, batch))
    return xr.Dataset(data, coords=coords, attrs=attrs)
