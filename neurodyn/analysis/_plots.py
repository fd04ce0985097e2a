"""Figures: each a function returning a matplotlib Figure."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "ps", "cairo") and not (
        _has_display()
    ):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _has_display() -> bool:
    import os

    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def plot_learning_curves(histories, *, metric: str = "loss", title: str | None = None):
    """Learning curves against iterations and against wall-clock, several runs overlaid.

    **Arguments:**

    - `histories`: one history (`FitResult.history`), or a mapping label → history or
      label → list of histories (seeds: the median is drawn, the range shaded).
    - `metric`: `"loss"` or an evaluated metric (`"eval_<name>"`).

    **Returns:** a `matplotlib.figure.Figure` with two panels.
    """
    import xarray as xr

    plt = _pyplot()
    if isinstance(histories, xr.Dataset) or not isinstance(histories, Mapping):
        histories = {"run": histories}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    for i, (label, runs) in enumerate(histories.items()):
        runs = runs if isinstance(runs, (list, tuple)) else [runs]
        color = f"C{i}"
        for ax, xname in zip(axes, ("iteration", "wall_time")):
            xs, ys = [], []
            for h in runs:
                if metric not in h:
                    continue
                y = np.asarray(h[metric].values, float)
                x = np.asarray(
                    h["iteration"].values if xname == "iteration" else h["wall_time"].values, float
                )
                ok = np.isfinite(y) & np.isfinite(x)
                xs.append(x[ok])
                ys.append(y[ok])
            if not ys:
                continue
            n = min(len(y) for y in ys)
            x = np.median([x[:n] for x in xs], axis=0)
            y = np.stack([y[:n] for y in ys])
            ax.plot(
                x,
                np.median(y, 0),
                color=color,
                label=f"{label} (n={len(ys)})" if len(ys) > 1 else label,
            )
            if len(ys) > 1:
                ax.fill_between(x, y.min(0), y.max(0), color=color, alpha=0.2, lw=0)
    positive = all(
        np.all(np.asarray(h[metric].values)[np.isfinite(h[metric].values)] > 0)
        for runs in histories.values()
        for h in (runs if isinstance(runs, (list, tuple)) else [runs])
        if metric in h
    )
    label = metric.replace("eval_", "test ").replace("_", " ")
    for ax, xlabel in zip(axes, ("iteration", "wall-clock time (s)")):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        if positive:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def save_figure(fig, path) -> None:
    """Save a figure as PNG (atomically) and close it."""
    import os
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.png")
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, path)
    _pyplot().close(fig)
