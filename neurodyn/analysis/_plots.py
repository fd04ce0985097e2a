"""Figures: each a function returning a matplotlib Figure (this file: shared helpers, learning
curves and the PSTH grid; `_plots_arm.py`: reaching; `_plots_tasks.py`: the other tasks)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

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
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def save_figure(fig, path, *, dpi: int = 120) -> Path:
    """Save a figure as PNG (atomically: temporary name, then rename) and close it.

    **Example:** `save_figure(plot_psth_grid(p), "figures/psth.png")`
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.png")
    try:
        fig.savefig(tmp, dpi=dpi)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
        _pyplot().close(fig)
    return path


# ----------------------------------------------------------------------------- helpers


def plain_log_ticks(ax, axis: str = "y") -> None:
    """Log-axis tick labels as plain numbers (0.3, 1, 2, 5 rather than 3×10⁻¹)."""
    from matplotlib.ticker import FuncFormatter

    def label(y, _, minor=False):
        if not y > 0:
            return ""
        mantissa = round(y / 10 ** np.floor(np.log10(y)), 6)
        return "" if minor and mantissa not in (2, 3, 5) else f"{y:g}"

    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(FuncFormatter(label))
    target.set_minor_formatter(FuncFormatter(lambda y, p: label(y, p, minor=True)))
    ax.tick_params(axis=axis, which="minor", labelsize=7)


def nonfinite_note(*arrays) -> str:
    """A warning for a title when some values are NaN/inf (e.g. a diverged network)."""
    total = sum(np.size(a) for a in arrays)
    bad = sum(int(np.sum(~np.isfinite(np.asarray(a, float)))) for a in arrays)
    if not bad:
        return ""
    share = 100 * bad / max(total, 1)
    return f"\nwarning: {share:.0f}% of the values are not finite (diverged network?)"


def time_label(coord, default: str = "time") -> str:
    """Axis label of a time coordinate: its long name (without the bin note) and units."""
    units = coord.attrs.get("units", "")
    name = coord.attrs.get("long_name", default).split(",")[0].split(" (")[0]
    if units == "step" or (
        units in ("", "1") and "network steps" in coord.attrs.get("long_name", "")
    ):
        return f"{name} (steps)"
    if units in ("", "1"):
        return (
            f"{name} (Lorenz time units)" if "Lorenz" in coord.attrs.get("long_name", "") else name
        )
    return f"{name} ({units})"


def direction_colors(angles, angle_range=None) -> list:
    """One colour per reach direction (rad): hues spread from red to purple over the range."""
    from matplotlib.colors import hsv_to_rgb

    angles = np.asarray(angles, np.float64)
    lo, hi = (np.min(angles), np.max(angles)) if angle_range is None else angle_range
    span = hi - lo if hi > lo else 1.0
    hue = 0.82 * (angles - lo) / span
    return [hsv_to_rgb((h, 0.85, 0.82)) for h in hue]


def subset_conditions(ds, dim: str = "condition", max_groups: int = 16):
    """Many conditions (the 64 of the double reach): keep those whose first target is the
    first canonical direction, so that one panel shows 8 lines. Returns (subset, note)."""
    if ds.sizes[dim] <= max_groups or "direction1" not in ds.coords:
        return ds, ""
    if ds["direction1"].dims != (dim,):
        return ds, ""
    d1 = np.asarray(ds["direction1"].values)
    keep = np.flatnonzero(d1 == d1.min())
    note = ""
    if "angle1" in ds.coords:
        note = f" (first target at {np.degrees(float(ds['angle1'].values[keep[0]])):.0f}°)"
    return ds.isel({dim: keep}), note


def condition_colors(ds, dim: str = "condition", angle_coord: str | None = None):
    """Colours for the groups of a PSTH/trajectories dataset: by direction when the groups
    carry a direction angle, else a qualitative palette. Returns (colours, labels, legend
    title)."""
    n = ds.sizes[dim]
    angle_coord = angle_coord or next(
        (c for c in ("angle", "angle2", "angle1") if c in ds.coords and ds[c].dims == (dim,)),
        None,
    )
    if angle_coord is not None:
        angles = np.asarray(ds[angle_coord].values, np.float64)
        colors = direction_colors(angles)
        labels = [f"{np.degrees(a):.0f}°" for a in angles]
        if "radius" in ds.coords and ds["radius"].dims == (dim,):
            radii = np.asarray(ds["radius"].values)
            if np.unique(radii).size > 1:
                labels = [f"{lab}, {100 * r:.0f} cm" for lab, r in zip(labels, radii)]
        title = "second-target direction" if angle_coord == "angle2" else "direction"
        return colors, labels, title
    if n == 1 and ds[dim].attrs.get("long_name") == "all trials":
        return ["C0"], ["all trials"], None
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if n <= 10 else "viridis")
    colors = [cmap(i if n <= 10 else i / max(n - 1, 1)) for i in range(n)]
    labels = [f"{dim} {v}" for v in np.asarray(ds[dim].values)]
    return colors, labels, dim


def _event_label(attrs, default: str) -> str:
    return attrs.get("long_name", default).split(",")[0]


def mark_events(ax, ds, dim: str, *, shade: bool = True, legend: bool = True):
    """Vertical line at the aligning event (time 0) and the other events' mean times; the
    preparation period (target onset → go cue) shaded."""
    align = ds["time"].attrs.get("long_name", "time from event").replace("time from ", "")
    ax.axvline(0.0, color="k", lw=0.8, ls="--", label=align if legend else None)
    events = [
        str(c) for c, v in ds.coords.items() if v.dims == (dim,) and v.attrs.get("role") == "event"
    ]
    t = np.asarray(ds["time"].values)
    for name in events:
        rel = float(np.nanmean(ds[name].values))
        if not np.isfinite(rel) or abs(rel) < 1e-12 or rel < t[0] - 1e-9 and name != "target_onset":
            continue
        if name == "target_onset" and shade and rel < 0:
            ax.axvspan(
                max(rel, t[0]),
                0.0,
                color="0.9",
                lw=0,
                zorder=0,
                label="preparation" if legend else None,
            )
        elif t[0] <= rel <= t[-1]:
            label = _event_label(ds[name].attrs, name.replace("_", " "))
            ax.axvline(rel, color="0.4", lw=0.8, ls=":", label=label if legend else None)


# ----------------------------------------------------------------------------- learning curves


def plot_learning_curves(histories, *, metric: str = "loss", title: str | None = None):
    """Learning curves against iterations and against wall-clock, several runs overlaid.

    **Arguments:**

    - `histories`: one history (`FitResult.history`), or a mapping label → history or
      label → list of histories (seeds: the median is drawn, the range shaded).
    - `metric`: `"loss"` or an evaluated metric (`"eval_<name>"`).
    - `title`: the figure title.

    **Returns:** a `matplotlib.figure.Figure` with two panels (iteration, wall-clock time);
    a log y-axis when every value is positive and they span at least a decade.

    **Example:**

    ```python
    fig = plot_learning_curves({"sofo": r1.history, "adam": r2.history}, title="reach")
    ```
    """
    import xarray as xr

    plt = _pyplot()
    if isinstance(histories, xr.Dataset) or not isinstance(histories, Mapping):
        histories = {"run": histories}
    runs_of = {k: (v if isinstance(v, (list, tuple)) else [v]) for k, v in histories.items()}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    positive = True
    lo, hi = np.inf, -np.inf
    for i, (label, runs) in enumerate(runs_of.items()):
        color = f"C{i}"
        for ax, xname in zip(axes, ("iteration", "wall_time")):
            xs, ys = [], []
            for h in runs:
                if metric not in h or (xname == "wall_time" and "wall_time" not in h):
                    continue
                y = np.asarray(h[metric].values, float)
                x = np.asarray(h[xname].values, float)
                ok = np.isfinite(y) & np.isfinite(x)
                xs.append(x[ok])
                ys.append(y[ok])
            if not ys or min(len(y) for y in ys) == 0:
                continue
            n = min(len(y) for y in ys)
            x = np.median([x[:n] for x in xs], axis=0)
            y = np.stack([y[:n] for y in ys])
            positive &= bool(np.all(y > 0))
            lo, hi = min(lo, float(y.min())), max(hi, float(y.max()))
            style = {"marker": "o", "ms": 3} if n < 20 else {}
            ax.plot(
                x,
                np.median(y, 0),
                color=color,
                label=f"{label} ({len(ys)} seeds)" if len(ys) > 1 else label,
                **style,
            )
            if len(ys) > 1:
                ax.fill_between(x, y.min(0), y.max(0), color=color, alpha=0.2, lw=0)
    ylabel = metric.replace("eval_", "test ").replace("_", " ")
    # a log axis where the values span a decade or more (losses); linear for narrow ranges
    # (accuracies near their ceiling), where a log axis would have no labelled ticks
    positive = positive and hi > 10 * lo
    for ax, xlabel in zip(axes, ("iteration", "wall-clock time (s)")):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel + (" (log scale)" if positive else ""))
        if positive and ax.lines:
            ax.set_yscale("log")
            plain_log_ticks(ax)
        ax.grid(alpha=0.3, which="both")
    seeds = any(len(runs) > 1 for runs in runs_of.values())
    axes[0].set_title(f"{ylabel} against iterations", fontsize=10)
    axes[1].set_title(f"{ylabel} against wall-clock time", fontsize=10)
    if axes[0].lines:
        axes[0].legend(
            frameon=False,
            title="median over seeds, range shaded" if seeds else None,
            title_fontsize=8,
        )
    if title:
        fig.suptitle(title)
    return fig


# ----------------------------------------------------------------------------- PSTH grid


def _most_modulated(mean: np.ndarray, n: int) -> np.ndarray:
    """Indices of the `n` neurons whose trial-averaged activity varies most (over
    condition × time), in increasing index order."""
    spread = np.nanvar(mean.reshape(-1, mean.shape[-1]), axis=0)
    spread = np.where(np.isfinite(spread), spread, -np.inf)
    order = np.argsort(-spread, kind="stable")
    active = order[spread[order] > 0]  # silent or constant neurons only if nothing else
    chosen = active[:n] if active.size else order[:n]
    return np.sort(chosen)


def plot_psth_grid(
    psth_ds,
    *,
    neurons: Sequence[int] | None = None,
    n_neurons: int = 12,
    variable: str = "rates",
    ncols: int = 4,
    max_conditions: int = 16,
):
    """PSTHs of sample neurons, one panel each, one line per condition (± s.e.m.).

    **Arguments:**

    - `psth_ds`: a dataset of [`neurodyn.analysis.psth`][].
    - `neurons`: the neuron indices to show; default the `n_neurons` (12) most modulated
      (largest variance of the trial average over conditions and time).
    - `variable`: the averaged variable (`"<variable>_mean"`, `"<variable>_sem"`).
    - `ncols`: panels per row.
    - `max_conditions`: beyond this many conditions (the double reach's 64), only those with
      the first canonical first target are drawn (said in the title).

    Lines are coloured by reach direction when the conditions carry one; time 0 is the
    aligning event (dashed), the preparation period (target onset → go cue) is shaded and
    other events are dotted. Panels are titled with the neuron index and cell type.

    **Returns:** a `matplotlib.figure.Figure`.

    **Example:** `fig = plot_psth_grid(nd.analysis.psth(ds, smooth=0.02))`
    """
    plt = _pyplot()
    dim = psth_ds[f"{variable}_mean"].dims[0]
    psth_ds, note = subset_conditions(psth_ds, dim, max_conditions)
    mean = np.asarray(psth_ds[f"{variable}_mean"].transpose(dim, "time", "neuron").values, float)
    sem = np.asarray(psth_ds[f"{variable}_sem"].transpose(dim, "time", "neuron").values, float)
    if neurons is None:
        neurons = _most_modulated(mean, min(n_neurons, mean.shape[-1]))
    neurons = [int(i) for i in neurons]
    n = len(neurons)
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(3.0 * ncols + 1.6, 2.3 * nrows + 0.6),
        sharex=True,
        squeeze=False,
        constrained_layout=True,
    )
    t = np.asarray(psth_ds["time"].values, float)
    colors, labels, legend_title = condition_colors(psth_ds, dim)
    types = psth_ds["cell_type"].values if "cell_type" in psth_ds.coords else None
    align = psth_ds["time"].attrs.get("align", "event")
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.set_visible(False)
            continue
        i = neurons[k]
        mark_events(ax, psth_ds, dim, legend=(k == 0))
        for c in range(mean.shape[0]):
            ax.plot(
                t,
                mean[c, :, i],
                color=colors[c],
                lw=1.2,
                label=labels[c] if (k == 0 and mean.shape[0] <= 16) else None,
            )
            ok = np.isfinite(sem[c, :, i])
            ax.fill_between(
                t[ok],
                (mean[c, :, i] - sem[c, :, i])[ok],
                (mean[c, :, i] + sem[c, :, i])[ok],
                color=colors[c],
                alpha=0.18,
                lw=0,
            )
        kind = "" if types is None or types[i] == "none" else f" ({types[i]})"
        ax.set_title(f"neuron {i}{kind}", fontsize=9)
        ax.grid(alpha=0.25)
        if k % ncols == 0:
            unit = psth_ds[f"{variable}_mean"].attrs.get("units", "1")
            ax.set_ylabel("rate (a.u.)" if unit in ("1", "") else f"rate ({unit})")
        if k + ncols >= n:  # the lowest panel of its column
            ax.set_xlabel(time_label(psth_ds["time"]))
            ax.xaxis.set_tick_params(labelbottom=True)
    handles, labs = axes.flat[0].get_legend_handles_labels()
    fig.legend(
        handles,
        labs,
        loc="outside right upper",
        frameon=False,
        fontsize=8,
        title=legend_title if mean.shape[0] <= 16 else None,
    )
    n_tr = np.asarray(psth_ds["n_trials"].values)
    task = psth_ds.attrs.get("task", "")
    covered = np.asarray(psth_ds["n_trials"].transpose(dim, "time").values) > 0
    warn = nonfinite_note(mean[..., neurons][covered])
    event = psth_ds["time"].attrs.get("long_name", "").replace("time from ", "") or align
    fig.suptitle(
        f"{task} PSTHs: mean ± s.e.m. over {int(np.nanmax(n_tr)) if n_tr.size else 0} "
        f"trials per condition{note}, aligned on the {event}".strip()
        + warn,
        color="C3" if warn else "k",
    )
    return fig
