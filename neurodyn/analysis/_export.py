"""What `neurodyn fit` / `neurodyn export` write next to the checkpoints.

A run folder gets `trials.nc` (every task), `psth.nc` and `trajectories.nc` (tasks with
canonical conditions / an arm), and `figures/*.png`:

| task | figures |
|---|---|
| every task (with a history) | `learning_curve.png` |
| reach, double-reach | `hand_trajectories.png`, `psth.png`, `motor_output.png` |
| kalman | `kalman_traces.png`, `kalman_error.png` |
| lorenz | `lorenz_attractor.png` |
| flipflop | `flipflop.png` |
| oneshot | `oneshot.png` |
| digits | `digits.png` |
"""

from __future__ import annotations

import warnings
from pathlib import Path

from ._io import save
from ._plots import plot_learning_curves, plot_psth_grid, save_figure
from ._plots_arm import plot_hand_trajectories, plot_motor_output
from ._plots_tasks import (
    plot_digits,
    plot_flipflop,
    plot_kalman_error,
    plot_kalman_traces,
    plot_lorenz_attractor,
    plot_oneshot,
)
from ._psth import psth
from ._simulate import adapter_for, simulate
from ._trajectories import trajectories

TRIAL_FIGURES = {
    "reach": {"hand_trajectories": plot_hand_trajectories, "motor_output": plot_motor_output},
    "kalman": {"kalman_traces": plot_kalman_traces, "kalman_error": plot_kalman_error},
    "lorenz": {"lorenz_attractor": plot_lorenz_attractor},
    "flipflop": {"flipflop": plot_flipflop},
    "oneshot": {"oneshot": plot_oneshot},
    "digits": {"digits": plot_digits},
}
"""Figures drawn from the trials dataset, by adapter kind (name → function)."""


def _figure(outputs: dict, out: Path, name: str, make) -> None:
    try:
        save_figure(make(), out / "figures" / f"{name}.png")
    except Exception as err:  # a figure must not lose the run's data files
        warnings.warn(f"figure {name!r} failed: {type(err).__name__}: {err}", stacklevel=3)
        return
    outputs[name if name not in outputs else f"{name}_figure"] = f"figures/{name}.png"


def export_run(out, model, task, *, key, history=None, n_trials=None) -> dict[str, str]:
    """Write the analysis outputs of a trained model into the run folder `out`.

    **Arguments:**

    - `out`: the run folder.
    - `model`, `task`: the trained model and its task.
    - `key`: drives the simulated trials (the command line uses `fold_in(PRNGKey(seed), 2)`,
      so `neurodyn export` reproduces what `neurodyn fit` wrote).
    - `history`: the training history (`FitResult.history`) for the learning curve.
    - `n_trials`: trials to simulate (rounded up to whole repeats of the conditions) — see
      [`neurodyn.analysis.simulate`][].

    **Returns:** a mapping name → path relative to `out` (`trials`, `psth`, `trajectories`,
    and one entry per figure; see the module docstring for which task gets what).

    **Example:** `export_run("runs/reach", result.model, task, key=jr.PRNGKey(2))`
    """
    out = Path(out)
    outputs: dict[str, str] = {}
    if history is not None:
        title = f"{getattr(task, 'name', '')}: training".strip(": ")
        _figure(outputs, out, "learning_curve", lambda: plot_learning_curves(history, title=title))
    adapter = adapter_for(task, model)
    ds = simulate(model, task, key=key, n_trials=n_trials)
    save(ds, out / "trials.nc")
    outputs["trials"] = "trials.nc"
    if "condition" in ds.coords and "time" in ds.dims:
        window = adapter.psth_window if adapter.psth_align else None
        p = psth(ds, align=adapter.psth_align, window=window)
        save(p, out / "psth.nc")
        outputs["psth"] = "psth.nc"
        if "rates_mean" in p and p.sizes.get("neuron", 0):
            _figure(outputs, out, "psth", lambda: plot_psth_grid(p))
    if "hand_position" in ds.data_vars:
        tr = trajectories(ds, by="condition" if "condition" in ds.coords else None)
        save(tr, out / "trajectories.nc")
        outputs["trajectories"] = "trajectories.nc"
    for name, plot in TRIAL_FIGURES.get(adapter.kind, {}).items():
        _figure(outputs, out, name, lambda plot=plot: plot(ds))
    return outputs


def export_from_run(run_dir, *, n_trials=None) -> dict[str, str]:
    """Rebuild the analysis outputs of a run folder from its config and last checkpoint.

    **Arguments:** `run_dir` — a folder written by `neurodyn fit`; `n_trials` — as for
    [`export_run`][].

    **Returns:** the mapping of [`export_run`][]. With the default `n_trials` the files equal
    those `neurodyn fit` wrote (same model, same key).

    **Raises:** `CheckpointError` when the run has no checkpoint.

    **Example:** `export_from_run("runs/reach", n_trials=8)`
    """
    from ..config import run_keys

    run_dir = Path(run_dir)
    config, task, model, history = trained_run(run_dir)
    key = run_keys(int(config.get("seed", 0)))["export"]
    return export_run(run_dir, model, task, key=key, history=history, n_trials=n_trials)


def trained_run(run_dir):
    """`(config, task, model, history)` of a run folder: the model of its last checkpoint.

    **Raises:** `CheckpointError` when the run has no checkpoint.
    """
    from ..config import read_toml
    from ._io import load
    from ._run import load_trained

    run_dir = Path(run_dir)
    config = read_toml(run_dir / "config.toml")
    task, model = load_trained(run_dir)
    history = load(run_dir / "history.nc") if (run_dir / "history.nc").exists() else None
    return config, task, model, history
