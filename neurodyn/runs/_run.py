"""Running a configured fit into a run folder, and what a run folder records.

`run.json` holds the software versions, the command, the seed, the device, the timings, the
final metrics and a `status`: `"completed"`, `"stopped"` (a time budget or a callback ended
training early), `"failed"` (training stopped with an error: `reason` says why and
`last_checkpoint` names the newest checkpoint) or `"interrupted"` (Ctrl-C). A failed or
interrupted run still writes `history.nc` with the iterations it did.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from pathlib import Path

from ..config import build, run_keys, to_toml


def device_description() -> dict:
    import jax

    dev = jax.devices()[0]
    return {
        "platform": dev.platform,
        "device_kind": getattr(dev, "device_kind", ""),
        "n_devices": jax.device_count(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
    }


def atomic_text(path: Path, text: str) -> None:
    from ..training import atomic_write_bytes

    atomic_write_bytes(path, text.encode())


def _median_step(history) -> float | None:
    import numpy as np

    if history is None or "wall_time" not in history or history.sizes.get("iteration", 0) < 2:
        return None
    return float(np.median(np.diff(history["wall_time"].values)))


def _newest_checkpoint(out: Path) -> str | None:
    from ..training import list_checkpoints

    ckpts = list_checkpoints(out / "checkpoints")
    return str(ckpts[-1].relative_to(out)) if ckpts else None


def _summary(config, out, status, train_seconds, history, metrics, reason=None) -> dict:
    from .._version import __version__
    from ..training import software_versions

    n_done = int(history.sizes.get("iteration", 0)) if history is not None else 0
    last_loss = float(history["loss"].values[-1]) if n_done else None
    summary = {
        "status": status,
        "neurodyn": __version__,
        "versions": software_versions(),
        "command": " ".join(["neurodyn", *sys.argv[1:]]) if sys.argv else "",
        "task": config["task"],
        "size": config.get("size", "cpu"),
        "optimizer": config["optimizer"]["name"],
        "seed": int(config["seed"]),
        "n_params": int(history.attrs.get("n_params", 0)) if history is not None else None,
        "device": device_description(),
        "timings": {
            "train_seconds": train_seconds,
            "iterations": int(history["iteration"].values[-1]) if n_done else 0,
            "median_seconds_per_iteration": _median_step(history),
        },
        "final_metrics": metrics,
        "final_loss": last_loss,
        "non_finite_metrics": sorted(k for k, v in metrics.items() if not math.isfinite(v)),
        "last_checkpoint": _newest_checkpoint(out),
    }
    if reason is not None:
        summary["reason"] = reason
    return summary


def run_fit(
    config: dict,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    progress: bool = True,
    export: bool = True,
    callbacks=(),
    time_budget: float | None = None,
    devices=None,
) -> dict:
    """Train as configured (a config from [`resolve_config`][neurodyn.config.resolve_config]),
    writing the run folder `out` (which the caller has checked with `prepare_out`); return
    the run summary that is also written to `run.json`.

    A run that fails still writes `history.nc` and `run.json` (status `"failed"`, the
    reason and the last checkpoint) before the error propagates. `devices` is passed to
    `nd.fit` (None: every device, as many as the batch divides).
    """
    from ..analysis import save
    from ..training import FitError, final_metrics, fit

    out = Path(out)
    task, model, optimizer = build(config)
    training = config["training"]
    keys = run_keys(config["seed"])
    checkpoint_every = training.get("checkpoint_every") or max(1, training["n_iters"] // 10)
    if not resume:
        atomic_text(out / "config.toml", to_toml(config))
    t0 = time.perf_counter()

    def record_failure(status, err, history):
        if history is not None and history.sizes.get("iteration", 0):
            save(history, out / "history.nc")
        metrics = final_metrics(history) if history is not None else {}
        summary = _summary(
            config, out, status, time.perf_counter() - t0, history, metrics, reason=str(err)
        )
        summary["outputs"] = {"config": "config.toml", "checkpoints": "checkpoints/"}
        if history is not None:
            summary["outputs"]["history"] = "history.nc"
        atomic_text(out / "run.json", json.dumps(summary, indent=2, default=str) + "\n")

    try:
        result = fit(
            model,
            task,
            optimizer,
            n_iters=int(training["n_iters"]),
            batch_size=int(training["batch_size"]),
            key=keys["training"],
            eval_every=training.get("eval_every"),
            eval_trials=training.get("eval_trials"),
            log_every=int(training.get("log_every") or 10),
            checkpoint_dir=out / "checkpoints",
            checkpoint_every=int(checkpoint_every),
            keep_checkpoints=int(training.get("keep_checkpoints", 2)),
            max_retries=int(training.get("max_retries", 5)),
            max_loss_spike=training.get("max_loss_spike"),
            resume=resume,
            progress=progress,
            devices=devices,
            callbacks=callbacks,
            time_budget=time_budget,
            config=config,
        )
    except FitError as err:
        record_failure("failed", err, err.history)
        raise
    except KeyboardInterrupt as err:
        record_failure("interrupted", "interrupted (Ctrl-C)", getattr(err, "history", None))
        raise
    train_seconds = time.perf_counter() - t0
    save(result.history, out / "history.nc")
    status = "stopped" if result.stopped else "completed"
    summary = _summary(config, out, status, train_seconds, result.history, result.final_metrics)
    if result.stopped:
        summary["reason"] = result.stopped
    outputs = {"config": "config.toml", "history": "history.nc", "checkpoints": "checkpoints/"}
    if export:
        from ..analysis import export_run

        t1 = time.perf_counter()
        outputs.update(
            export_run(out, result.model, task, key=keys["export"], history=result.history)
        )
        summary["timings"]["export_seconds"] = time.perf_counter() - t1
    summary["outputs"] = outputs
    atomic_text(out / "run.json", json.dumps(summary, indent=2, default=str) + "\n")
    return summary
