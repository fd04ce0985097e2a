"""Figures of the reaching tasks: hand paths with targets, and hand speed, torques and muscle
activations over time."""

from __future__ import annotations

import numpy as np

from ._plots import (
    _pyplot,
    condition_colors,
    direction_colors,
    mark_events,
    nonfinite_note,
    subset_conditions,
    time_label,
)
from ._trajectories import trajectories

WITHIN_M = 0.02  # the reach tasks' success radius (2 cm), drawn around each target


def _trial_angles(ds) -> tuple[np.ndarray, str]:
    for name in ("angle", "angle2"):
        if name in ds.coords and ds[name].dims == ("trial",):
            return np.asarray(ds[name].values, float), name
    raise ValueError("this dataset has no per-trial target angle (`angle`): not a reach task?")


def plot_hand_trajectories(ds, *, max_trials: int = 4, ax=None):
    """Hand paths for the evaluation conditions, coloured by reach direction, with targets.

    **Arguments:**

    - `ds`: a trials dataset of a reaching task ([`neurodyn.analysis.simulate`][]).
    - `max_trials`: single trials drawn (thin) per condition under the condition mean
      (thick); the mean is drawn when the dataset has conditions.
    - `ax`: an existing axes for the single reach (a new figure otherwise).

    Targets are circles of the 2-cm success radius in the direction's colour; the centre
    (start) is a black cross. The double reach gets one panel per first target (black disc),
    coloured by the second target's direction.

    **Returns:** a `matplotlib.figure.Figure`; axes in cm, equal aspect.

    **Example:** `fig = plot_hand_trajectories(nd.analysis.simulate(model, task, key=key))`
    """
    plt = _pyplot()
    angles, angle_name = _trial_angles(ds)
    double = angle_name == "angle2" and "target1" in ds.coords
    center = np.asarray(ds.attrs.get("center", [0.0, 0.2052]), float)
    hand = np.asarray(ds["hand_position"].transpose("trial", "time", "axis").values, float)
    lo, hi = float(angles.min()), float(angles.max())
    colors = direction_colors(angles, (lo, hi))
    has_cond = "condition" in ds.coords
    mean = None
    if has_cond:
        tr = trajectories(ds, align=None, variables=["hand_position"])
        mean = np.asarray(tr["hand_position_mean"].transpose("condition", "time", "axis").values)
        cond_of_trial = np.asarray(ds["condition"].values)
        cond_values = list(np.asarray(tr["condition"].values))
    target_name = "target2" if double else "target"
    targets = np.asarray(ds[target_name].values, float)

    if double:
        d1 = np.asarray(ds["direction1"].values)
        groups = [np.flatnonzero(d1 == v) for v in np.unique(d1)]
        ncols = min(4, len(groups))
        nrows = int(np.ceil(len(groups) / ncols))
        fig, axes = plt.subplots(
            nrows,
            ncols,
            figsize=(3.4 * ncols + 1.4, 3.3 * nrows + 0.5),
            squeeze=False,
            constrained_layout=True,
            sharex=True,
            sharey=True,
        )
        panels = list(zip(axes.flat, groups))
        for a in list(axes.flat)[len(groups) :]:
            a.set_visible(False)
    else:
        if ax is None:
            fig, ax = plt.subplots(figsize=(7.4, 5.6), constrained_layout=True)
        else:
            fig = ax.figure
        panels = [(ax, np.arange(ds.sizes["trial"]))]

    for a, members in panels:
        drawn_targets = set()
        per_condition: dict = {}
        for i in members:
            key = int(cond_of_trial[i]) if has_cond else int(i)
            per_condition.setdefault(key, []).append(i)
        for key, trials in per_condition.items():
            c = colors[trials[0]]
            for i in trials[:max_trials]:
                a.plot(100 * hand[i, :, 0], 100 * hand[i, :, 1], color=c, lw=0.6, alpha=0.45)
            if mean is not None:
                m = mean[cond_values.index(key)]
                a.plot(100 * m[:, 0], 100 * m[:, 1], color=c, lw=2.0)
            tgt = tuple(np.round(targets[trials[0]], 6))
            if tgt not in drawn_targets:
                drawn_targets.add(tgt)
                a.add_patch(
                    plt.Circle(
                        100 * targets[trials[0]], 100 * WITHIN_M, fill=False, color=c, lw=1.5
                    )
                )
        if double:
            t1 = np.asarray(ds["target1"].values, float)[members[0]]
            a.plot(100 * t1[0], 100 * t1[1], "o", color="k", ms=7, label="first target")
            a.set_title(
                f"first target {np.degrees(float(ds['angle1'].values[members[0]])):.0f}°",
                fontsize=9,
            )
        a.plot(100 * center[0], 100 * center[1], "k+", ms=10, mew=2, label="start (centre)")
        a.set_aspect("equal", adjustable="box" if double else "datalim")
        a.grid(alpha=0.25)
    all_axes = [p[0] for p in panels]
    for a in all_axes:
        a.set_xlabel("hand x (cm)")
        a.set_ylabel("hand y (cm)")
    # legend: one entry per direction
    from matplotlib.lines import Line2D

    uniq = sorted(set(np.round(angles, 9)))
    handles = []
    if len(uniq) <= 16:
        handles = [
            Line2D(
                [],
                [],
                color=direction_colors([u], (lo, hi))[0],
                lw=2,
                label=f"{np.degrees(u):.0f}°",
            )
            for u in uniq
        ]
    else:  # random targets: a colour bar instead of one entry per direction
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import ListedColormap, Normalize

        cmap = ListedColormap(direction_colors(np.linspace(lo, hi, 256), (lo, hi)))
        mappable = ScalarMappable(Normalize(np.degrees(lo), np.degrees(hi)), cmap)
        fig.colorbar(mappable, ax=[p[0] for p in panels], label="target direction (°)", shrink=0.6)
    handles.append(Line2D([], [], color="k", marker="+", ls="", ms=9, mew=2, label="start"))
    handles.append(
        Line2D([], [], color="0.3", marker="o", mfc="none", ls="", ms=9, label="target (2 cm)")
    )
    if double:
        handles.append(Line2D([], [], color="k", marker="o", ls="", ms=7, label="first target"))
    title = ("second-target direction" if double else "direction") if len(uniq) <= 16 else None
    fig.legend(handles=handles, loc="outside right upper", frameon=False, fontsize=8, title=title)
    what = "mean (thick) and single trials (thin)" if mean is not None else "single trials"
    note = nonfinite_note(ds["rates"].values) if "rates" in ds else ""
    fig.suptitle(
        f"{ds.attrs.get('task', '')} hand paths: {what}".strip() + note, color="C3" if note else "k"
    )
    return fig


def plot_motor_output(ds, *, max_conditions: int = 16):
    """Hand speed, joint torques and (muscle arm) muscle activations against time, one line
    per condition (mean over trials ± s.d.), aligned on the go cue.

    **Arguments:**

    - `ds`: a trials dataset of a reaching task.
    - `max_conditions`: beyond this many conditions (the double reach's 64), only those with
      the first canonical first target are drawn.

    **Returns:** a `matplotlib.figure.Figure`: hand speed and the two torques in the first
    row, the six muscle activations below (muscle arm only).

    **Example:** `fig = plot_motor_output(ds)`
    """
    plt = _pyplot()
    variables = [v for v in ("hand_speed", "torque", "muscle_activation") if v in ds.data_vars]
    if "hand_speed" not in variables:
        raise ValueError("this dataset has no `hand_speed`: not a reach task?")
    by = "condition" if "condition" in ds.coords else None
    tr = trajectories(ds, by=by, variables=variables)
    dim = tr["hand_speed_mean"].dims[0]
    tr, note = subset_conditions(tr, dim, max_conditions)
    colors, labels, legend_title = condition_colors(tr, dim)
    muscle = "muscle_activation" in variables
    nrows = 3 if muscle else 1
    fig, axes = plt.subplots(
        nrows,
        3,
        figsize=(12.5, 2.9 * nrows + 0.6),
        sharex=True,
        squeeze=False,
        constrained_layout=True,
    )
    t = np.asarray(tr["time"].values, float)
    panels = [(axes[0, 0], "hand_speed", None, "hand speed (cm/s)", 100.0)]
    for j, joint in enumerate(np.asarray(tr["joint"].values)):
        panels.append((axes[0, 1 + j], "torque", {"joint": j}, f"{joint} torque (N·m)", 1.0))
    if muscle:
        for m, name in enumerate(np.asarray(tr["muscle"].values)):
            panels.append(
                (
                    axes[1 + m // 3, m % 3],
                    "muscle_activation",
                    {"muscle": m},
                    f"{name} activation",
                    1.0,
                )
            )
    for k, (ax, name, sel, ylabel, scale) in enumerate(panels):
        mean = tr[f"{name}_mean"]
        std = tr[f"{name}_std"]
        if sel:
            mean, std = mean.isel(sel), std.isel(sel)
        mean = scale * np.asarray(mean.transpose(dim, "time").values, float)
        std = scale * np.asarray(std.transpose(dim, "time").values, float)
        mark_events(ax, tr, dim, legend=(k == 0))
        for c in range(mean.shape[0]):
            ax.plot(t, mean[c], color=colors[c], lw=1.2, label=labels[c] if k == 0 else None)
            ok = np.isfinite(std[c])
            ax.fill_between(
                t[ok],
                (mean[c] - std[c])[ok],
                (mean[c] + std[c])[ok],
                color=colors[c],
                alpha=0.12,
                lw=0,
            )
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.25)
    for ax in axes[-1]:
        ax.set_xlabel(time_label(tr["time"]))
    handles, labs = axes[0, 0].get_legend_handles_labels()
    fig.legend(
        handles,
        labs,
        loc="outside right upper",
        frameon=False,
        fontsize=8,
        title=legend_title,
    )
    arm = "muscle arm" if muscle else "torque arm"
    over = "trials per condition" if by else f"all {ds.sizes['trial']} trials"
    warn = nonfinite_note(*(ds[v].values for v in variables))
    fig.suptitle(
        f"{ds.attrs.get('task', '')} ({arm}): mean ± s.d. over {over}{note}".strip() + warn,
        color="C3" if warn else "k",
    )
    return fig
