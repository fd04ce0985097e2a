"""`load_run`: everything a `neurodyn fit` run folder holds, in one call.

A run folder (see the command line) holds `config.toml`, `run.json`, `checkpoints/`,
`history.nc`, `trials.nc`, `psth.nc`, `trajectories.nc` and `figures/*.png`; which of the
analysis files exist depends on the task and on `--no-export`. [`load_run`][] reads them all
into a [`Run`][]: the configuration and the summary as dicts, every netCDF file as an
`xarray.Dataset` (or `None` when absent), the figures and checkpoints as paths, and the
trained network on demand ([`Run.model`][]).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import xarray as xr

from ._io import load

DATASETS: tuple[str, ...] = ("history", "trials", "psth", "trajectories")
"""The netCDF files of a run folder, by name (`<name>.nc`)."""


@dataclasses.dataclass
class Run:
    """The contents of a run folder, as returned by [`load_run`][].

    - `path`: the folder.
    - `config`: `config.toml` as a dict (task, size, seed, optimizer, training, task_options).
    - `summary`: `run.json` as a dict (versions, device, timings, final metrics, outputs), or
      `None` when the run stopped before writing it.
    - `history`, `trials`, `psth`, `trajectories`: the datasets of `history.nc`, `trials.nc`,
      `psth.nc`, `trajectories.nc` ([`neurodyn.analysis.load`][]), `None` when absent.
    - `figures`: figure name → path of `figures/<name>.png`.
    - `checkpoints`: the checkpoint files, oldest first.
    """

    path: Path
    config: dict[str, Any]
    summary: dict[str, Any] | None
    history: xr.Dataset | None
    trials: xr.Dataset | None
    psth: xr.Dataset | None
    trajectories: xr.Dataset | None
    figures: dict[str, Path]
    checkpoints: list[Path]

    def model(self, checkpoint: int = -1):
        """The network stored in a checkpoint (default the last), rebuilt from `config`.

        **Arguments:** `checkpoint` — an index into `checkpoints` (`-1`: the last).

        **Returns:** `(task, model)`: the run's task and its trained network.

        **Raises:** `CheckpointError` when the run has no checkpoint.
        """
        return load_trained(self.path, checkpoint)

    def __repr__(self) -> str:
        have = [n for n in DATASETS if getattr(self, n) is not None]
        return (
            f"Run({str(self.path)!r}, task={self.config.get('task')!r}, "
            f"optimizer={self.config.get('optimizer', {}).get('name')!r}, "
            f"datasets={have}, figures={sorted(self.figures)}, "
            f"checkpoints={len(self.checkpoints)})"
        )


def load_run(path: str | os.PathLike) -> Run:
    """Read a run folder written by `neurodyn fit` (or [`neurodyn.analysis.export_run`][]).

    **Arguments:** `path` — the run folder.

    **Returns:** a [`Run`][] with the configuration, the `run.json` summary, the history,
    trials, PSTH and trajectory datasets (`None` for files the run does not have), the figure
    and checkpoint paths; `run.model()` rebuilds the trained network.

    **Raises:** `FileNotFoundError` when `path` is not a folder, `ValueError` when it holds no
    `config.toml` (not a run folder).

    **Example:**

    ```python
    run = nd.analysis.load_run("runs/reach")
    run.history.eval_endpoint_error_cm.dropna("iteration")   # units: cm
    run.psth.rates_mean.sel(condition=0)
    task, model = run.model()
    ```
    """
    from ..config import read_toml
    from ..training import list_checkpoints

    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"`path`: {root} is not a folder.")
    if not (root / "config.toml").exists():
        raise ValueError(f"`path`: {root} is not a run folder (it has no config.toml).")
    summary_file = root / "run.json"
    summary = json.loads(summary_file.read_text("utf-8")) if summary_file.exists() else None
    datasets = {
        name: load(root / f"{name}.nc") if (root / f"{name}.nc").exists() else None
        for name in DATASETS
    }
    figures = {p.stem: p for p in sorted((root / "figures").glob("*.png"))}
    return Run(
        path=root,
        config=read_toml(root / "config.toml"),
        summary=summary,
        figures=figures,
        checkpoints=list_checkpoints(root / "checkpoints"),
        **datasets,
    )


def load_trained(run_dir: str | os.PathLike, checkpoint: int = -1):
    """`(task, model)` of a run folder: the task and network built from its `config.toml`,
    with the parameters of checkpoint number `checkpoint` (default the last).

    **Raises:** `CheckpointError` when the run has no checkpoint.
    """
    import jax.random as jr
    import numpy as np

    from ..config import build, read_toml
    from ..training import CheckpointError, list_checkpoints, load_checkpoint

    run_dir = Path(run_dir)
    task, model, optimizer = build(read_toml(run_dir / "config.toml"))
    ckpts = list_checkpoints(run_dir / "checkpoints")
    if not ckpts:
        raise CheckpointError(f"{run_dir / 'checkpoints'} holds no checkpoint to load.")
    opt_state = optimizer.init(model, model.trainable() if hasattr(model, "trainable") else None)
    key_data = np.zeros_like(np.asarray(jr.PRNGKey(0)))
    _, _, (model, _, _) = load_checkpoint(ckpts[checkpoint], (model, opt_state, key_data))
    return task, model
