"""Figures of the abstract tasks: flip-flop, Kalman filtering, Lorenz, one-shot, digits."""

from __future__ import annotations

import numpy as np

from ._plots import _pyplot, plain_log_ticks, time_label


def _require(ds, names, what):
    missing = [n for n in names if n not in ds.variables]
    if missing:
        raise ValueError(f"{what} needs the variables {missing}; is this the right task's dataset?")


# ----------------------------------------------------------------------------- flip-flop


def plot_flipflop(ds, *, trial: int = 0):
    """Inputs, targets and network outputs of one flip-flop trial, one row per bit.

    **Arguments:** `ds` — a flip-flop trials dataset; `trial` — which trial.

    **Returns:** a `matplotlib.figure.Figure` (input pulses grey, target black dashed,
    output coloured).

    **Example:** `fig = plot_flipflop(nd.analysis.simulate(model, task, key=key), trial=3)`
    """
    _require(ds, ["inputs", "targets", "outputs"], "plot_flipflop")
    plt = _pyplot()
    one = ds.isel(trial=trial)
    n_bits = one.sizes["bit"]
    t = np.asarray(ds["time"].values, float)
    fig, axes = plt.subplots(
        n_bits,
        1,
        figsize=(10, 1.7 * n_bits + 0.9),
        sharex=True,
        squeeze=False,
        constrained_layout=True,
    )
    for b, ax in enumerate(axes[:, 0]):
        u = np.asarray(one["inputs"].isel(bit=b).values, float)
        ax.fill_between(t, 0, u, step="post", color="0.75", lw=0, label="input pulse")
        ax.step(
            t,
            np.asarray(one["targets"].isel(bit=b).values),
            where="post",
            color="k",
            ls="--",
            lw=1.2,
            label="target",
        )
        ax.plot(
            t,
            np.asarray(one["outputs"].isel(bit=b).values),
            color=f"C{b}",
            lw=1.5,
            label="network output",
        )
        ax.set_ylim(-1.5, 1.5)
        ax.set_yticks([-1, 0, 1])
        ax.set_ylabel(f"bit {b}")
        ax.grid(alpha=0.25)
    axes[-1, 0].set_xlabel(time_label(ds["time"]))
    handles, labels = [], []
    for ax in axes[:, 0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels and lab != "network output":
                handles.append(h)
                labels.append(lab)
    from matplotlib.lines import Line2D

    handles.append(Line2D([], [], color="C0", lw=1.5))
    labels.append("network output")
    fig.legend(handles, labels, loc="outside right upper", frameon=False)
    fig.suptitle(f"{n_bits}-bit flip-flop, trial {trial}: hold the sign of the last pulse")
    return fig


# ----------------------------------------------------------------------------- Kalman


def plot_kalman_traces(ds, *, trial: int = 0, window: tuple[float, float] | None = None):
    """One Kalman trial: latent, observations, the network's and the oracle filter's estimates.

    **Arguments:**

    - `ds`: a Kalman trials dataset.
    - `trial`: which trial.
    - `window`: `(start, end)` in time units (default the first 400 steps).

    Context switches are dotted vertical lines; the context mean b is the grey step line.

    **Returns:** a `matplotlib.figure.Figure`.

    **Example:** `fig = plot_kalman_traces(ds, trial=2, window=(0, 600))`
    """
    _require(ds, ["latent", "observation", "estimate", "oracle_estimate"], "plot_kalman_traces")
    plt = _pyplot()
    one = ds.isel(trial=trial)
    t = np.asarray(ds["time"].values, float)
    lo, hi = window if window is not None else (t[0], t[min(len(t) - 1, 399)])
    sel = (t >= lo) & (t <= hi)
    fig, ax = plt.subplots(figsize=(11, 4.2), constrained_layout=True)
    ax.plot(t[sel], one["observation"].values[sel], ".", color="0.6", ms=3, label="observation y")
    if "bias" in one:
        ax.step(
            t[sel],
            one["bias"].values[sel],
            where="post",
            color="0.45",
            lw=1,
            alpha=0.7,
            label="context mean b",
        )
    ax.plot(t[sel], one["latent"].values[sel], color="k", lw=1.6, label="true latent x")
    ax.plot(
        t[sel],
        one["oracle_estimate"].values[sel],
        color="C1",
        lw=1.4,
        ls="--",
        label="oracle Kalman filter",
    )
    ax.plot(t[sel], one["estimate"].values[sel], color="C0", lw=1.4, label="network estimate")
    if "switch" in one:
        for s in t[sel][np.asarray(one["switch"].values, bool)[sel]]:
            ax.axvline(s, color="C3", ls=":", lw=1.0)
        ax.plot([], [], color="C3", ls=":", label="context switch")
    err_net = np.mean((one["estimate"].values - one["latent"].values) ** 2)
    err_kf = np.mean((one["oracle_estimate"].values - one["latent"].values) ** 2)
    ax.set_xlabel(time_label(ds["time"]))
    ax.set_ylabel("latent state (a.u.)")
    ax.grid(alpha=0.25)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9)
    ax.set_title(
        f"Kalman filtering, trial {trial}: MSE network {err_net:.3f}, oracle {err_kf:.3f} "
        "(whole trial)",
        fontsize=10,
    )
    return fig


def kalman_error_profile(ds, *, max_lag: int = 300, bin_size: int = 5) -> dict[str, np.ndarray]:
    """Mean squared error against time since the last context switch (binned), for the
    network, the oracle filter and copying the observation.

    **Returns:** `lag` (bin starts, time units), `network`, `oracle`, `copy` (MSE per bin)
    and `count` (steps per bin).
    """
    since = np.asarray(ds["time_since_switch"].values, float).ravel()
    dt = float(ds.attrs.get("dt", 1.0))
    lag_steps = np.rint(since / dt).astype(np.int64)
    keep = lag_steps < max_lag
    bins = lag_steps[keep] // bin_size
    n_bins = int(np.ceil(max_lag / bin_size))
    count = np.bincount(bins, minlength=n_bins).astype(float)
    latent = np.asarray(ds["latent"].values, float).ravel()[keep]
    out = {"lag": np.arange(n_bins) * bin_size * dt, "count": count}
    for name, var in (
        ("network", "estimate"),
        ("oracle", "oracle_estimate"),
        ("copy", "observation"),
    ):
        err = (np.asarray(ds[var].values, float).ravel()[keep] - latent) ** 2
        with np.errstate(invalid="ignore", divide="ignore"):
            out[name] = np.bincount(bins, weights=err, minlength=n_bins) / count
    return out


def plot_kalman_error(ds, *, max_lag: int = 300, bin_size: int = 5):
    """MSE against time since a context switch: network, oracle filter, copying y.

    **Arguments:** `ds` — a Kalman trials dataset; `max_lag` — longest lag shown (steps);
    `bin_size` — steps per bin.

    **Returns:** a `matplotlib.figure.Figure` (MSE in a log scale, with the number of steps
    per bin below).

    **Example:** `fig = plot_kalman_error(nd.analysis.simulate(model, task, key=key))`
    """
    _require(
        ds,
        ["latent", "observation", "estimate", "oracle_estimate", "time_since_switch"],
        "plot_kalman_error",
    )
    plt = _pyplot()
    prof = kalman_error_profile(ds, max_lag=max_lag, bin_size=bin_size)
    fig, (ax, axc) = plt.subplots(
        2,
        1,
        figsize=(8, 5.2),
        sharex=True,
        constrained_layout=True,
        gridspec_kw={"height_ratios": [3, 1]},
    )
    lag = prof["lag"] + 0.5 * bin_size * float(ds.attrs.get("dt", 1.0))
    for name, color, label in (
        ("network", "C0", "network"),
        ("oracle", "C1", "oracle Kalman filter"),
        ("copy", "0.5", "copy the observation"),
    ):
        ax.plot(lag, prof[name], color=color, lw=1.6, marker="o", ms=2.5, label=label)
    ax.set_yscale("log")
    plain_log_ticks(ax)
    ax.set_ylabel("mean squared error (log scale)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(frameon=False, ncols=3, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    fig.suptitle(
        f"Kalman filtering: error against time since a context switch "
        f"({ds.sizes['trial']} trials, bins of {bin_size} steps)",
        fontsize=11,
    )
    axc.bar(
        prof["lag"],
        prof["count"],
        width=bin_size * float(ds.attrs.get("dt", 1.0)),
        align="edge",
        color="0.7",
    )
    axc.set_ylabel("steps per bin")
    unit = ds["time"].attrs.get("units", "1")
    axc.set_xlabel(
        "time since the last context switch"
        + (" (steps)" if unit in ("1", "step") else f" ({unit})")
    )
    return fig


# ----------------------------------------------------------------------------- Lorenz


def plot_lorenz_attractor(ds, *, trial: int | None = None, show_time: float = 5.0):
    """The true Lorenz attractor against the free-running network, in 3D, and the first
    time units of one run.

    **Arguments:**

    - `ds`: a Lorenz trials dataset (long free runs from points on the attractor).
    - `trial`: the run shown in the time-series panel (default 0); the 3D panels show all.
    - `show_time`: time units of the time-series panel.

    **Returns:** a `matplotlib.figure.Figure`: true (left) and network (right) trajectories
    in z-scored coordinates with the same axes, and x, y, z against time below.

    **Example:** `fig = plot_lorenz_attractor(ds)`
    """
    _require(ds, ["targets", "outputs"], "plot_lorenz_attractor")
    plt = _pyplot()
    true = np.asarray(ds["targets"].transpose("trial", "time", "axis").values, float)
    net = np.asarray(ds["outputs"].transpose("trial", "time", "axis").values, float)
    finite = np.isfinite(net).all(axis=(1, 2))
    fig = plt.figure(figsize=(12, 8.5), constrained_layout=True)
    grid = fig.add_gridspec(2, 2, height_ratios=[2.2, 1])
    lim = np.stack([true.reshape(-1, 3).min(0), true.reshape(-1, 3).max(0)]) * 1.15
    for col, (data, title) in enumerate(
        ((true, "true Lorenz system"), (net, "network, free-running"))
    ):
        ax = fig.add_subplot(grid[0, col], projection="3d")
        for i in range(data.shape[0]):
            if col == 1 and not finite[i]:
                continue
            ax.plot(*data[i].T, lw=0.5, alpha=0.7, color="0.15" if col == 0 else "C0")
        ax.scatter(*true[:, 0].T, color="k", s=12, label="initial states")
        ax.set_xlim(lim[:, 0])
        ax.set_ylim(lim[:, 1])
        ax.set_zlim(lim[:, 2])
        ax.set_xlabel("x (z-scored)")
        ax.set_ylabel("y (z-scored)")
        ax.set_zlabel("z (z-scored)")
        ax.set_title(
            f"{title}: {data.shape[0]} runs of "
            f"{float(ds['time'].values[-1] + ds.attrs.get('dt', 0.01)):.0f} time units",
            fontsize=10,
        )
        ax.view_init(elev=20, azim=-60)
        ax.set_box_aspect(None, zoom=0.88)
        if col == 0:
            ax.legend(loc="upper left", frameon=False, fontsize=8)
    i = 0 if trial is None else int(trial)
    t = np.asarray(ds["time"].values, float)
    sel = t <= t[0] + show_time
    ax = fig.add_subplot(grid[1, :])
    for k, name in enumerate(("x", "y", "z")):
        ax.plot(t[sel], true[i, sel, k], color=f"C{k}", lw=1.4, label=f"{name} true")
        ax.plot(t[sel], net[i, sel, k], color=f"C{k}", lw=1.4, ls="--", label=f"{name} network")
    ax.set_xlabel(time_label(ds["time"]))
    ax.set_ylabel("state (z-scored)")
    ax.grid(alpha=0.25)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    ax.set_title(
        f"run {i}: true (solid) and network (dashed), from the same initial state", fontsize=10
    )
    if not finite.all():
        fig.suptitle(f"{int((~finite).sum())} network runs diverged (not drawn)", color="C3")
    return fig


# ----------------------------------------------------------------------------- one-shot


def plot_oneshot(ds, *, trial: int = 0):
    """One one-shot session: the inputs over time, and the network's probability of each
    class with the correct label marked at the query steps.

    **Arguments:** `ds` — a one-shot trials dataset; `trial` — which session.

    **Returns:** a `matplotlib.figure.Figure`.

    **Example:** `fig = plot_oneshot(ds, trial=1)`
    """
    _require(ds, ["inputs", "probability", "targets"], "plot_oneshot")
    plt = _pyplot()
    one = ds.isel(trial=trial)
    t = np.asarray(ds["time"].values, float)
    dt = float(ds.attrs.get("dt", 1.0))
    fig, (ax0, ax1) = plt.subplots(
        2,
        1,
        figsize=(10, 6.5),
        sharex=True,
        constrained_layout=True,
        gridspec_kw={"height_ratios": [1.2, 1]},
    )
    inputs = np.asarray(one["inputs"].transpose("time", "input").values, float)
    im = ax0.imshow(
        inputs.T,
        aspect="auto",
        origin="lower",
        cmap="Greys",
        interpolation="nearest",
        extent=(t[0], t[-1] + dt, -0.5, inputs.shape[1] - 0.5),
    )
    ax0.set_yticks(np.arange(inputs.shape[1]))
    ax0.set_yticklabels([str(s) for s in one["input"].values], fontsize=7)
    ax0.set_ylabel("input channel")
    del im
    n_learn = (
        int(np.sum(np.asarray(one["inputs"].sel(input="cue").values) > 0.5))
        if "cue" in one["input"].values
        else 0
    )
    if n_learn:
        for a in (ax0, ax1):
            a.axvline(t[0] + n_learn * dt, color="C3", lw=1.2)
        ax0.text(
            t[0] + 0.5 * n_learn * dt,
            inputs.shape[1] - 0.5,
            "learn phase",
            ha="center",
            va="bottom",
            color="C3",
            fontsize=9,
        )
        ax0.text(
            t[0] + n_learn * dt + 0.5 * (t[-1] + dt - t[0] - n_learn * dt),
            inputs.shape[1] - 0.5,
            "query phase",
            ha="center",
            va="bottom",
            color="C3",
            fontsize=9,
        )
    ax0.set_title(
        "inputs (black = 1): each item with its label, then the items alone", fontsize=10, pad=16
    )
    prob = np.asarray(one["probability"].transpose("time", "class").values, float)
    for c in range(prob.shape[1]):
        ax1.plot(t, prob[:, c], color=f"C{c}", lw=1.3, label=f"class {c}")
    target = np.asarray(one["targets"].values)
    if "query_time" in one.coords:
        for q in np.asarray(one["query_time"].values, float):
            k = int(round(q / dt))
            ax1.plot(q, prob[k, target[k]], "o", mfc="none", mec="k", ms=9, mew=1.5)
        ax1.plot([], [], "o", mfc="none", mec="k", ms=9, mew=1.5, label="correct label at query")
    ax1.axhline(1.0 / prob.shape[1], color="0.5", ls=":", lw=1, label="chance")
    ax1.set_ylim(0, 1.02)
    ax1.set_ylabel("network probability")
    ax1.set_xlabel(time_label(ds["time"]))
    ax1.grid(alpha=0.25)
    fig.legend(
        *ax1.get_legend_handles_labels(), loc="outside right lower", frameon=False, fontsize=8
    )
    fig.suptitle(f"one-shot classification, session {trial}")
    return fig


# ----------------------------------------------------------------------------- digits


def plot_digits(ds, *, n_examples: int = 8):
    """Test-set confusion matrix and example images with the predicted class.

    **Arguments:** `ds` — a digits dataset; `n_examples` — images shown.

    **Returns:** a `matplotlib.figure.Figure`.

    **Example:** `fig = plot_digits(nd.analysis.simulate(model, task, key=key))`
    """
    _require(ds, ["inputs", "targets", "prediction", "probability"], "plot_digits")
    plt = _pyplot()
    y = np.asarray(ds["targets"].values)
    p = np.asarray(ds["prediction"].values)
    n_class = ds.sizes["class"]
    conf = np.zeros((n_class, n_class))
    np.add.at(conf, (y, p), 1)
    conf_norm = conf / np.maximum(conf.sum(1, keepdims=True), 1)
    side = ds.attrs.get("image_shape", [8, 8])
    fig = plt.figure(figsize=(11, 5), constrained_layout=True)
    grid = fig.add_gridspec(
        2, 1 + (n_examples + 1) // 2, width_ratios=[3] + [1] * ((n_examples + 1) // 2)
    )
    ax = fig.add_subplot(grid[:, 0])
    im = ax.imshow(conf_norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(n_class):
        for j in range(n_class):
            if conf[i, j]:
                ax.text(
                    j,
                    i,
                    int(conf[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="w" if conf_norm[i, j] > 0.5 else "k",
                )
    ax.set_xticks(range(n_class))
    ax.set_yticks(range(n_class))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    fig.colorbar(im, ax=ax, label="fraction of the true digit", shrink=0.8)
    ax.set_title(f"test accuracy {100 * np.mean(y == p):.1f}% ({len(y)} images)", fontsize=10)
    images = np.asarray(ds["inputs"].values, float)
    prob = np.asarray(ds["probability"].values, float)
    for k in range(min(n_examples, len(y))):
        a = fig.add_subplot(grid[k % 2, 1 + k // 2])
        a.imshow(images[k].reshape(side), cmap="gray_r")
        ok = y[k] == p[k]
        a.set_title(
            f"true {y[k]}, pred {p[k]}\n({100 * prob[k, p[k]]:.0f}%)",
            fontsize=8,
            color="k" if ok else "C3",
        )
        a.set_axis_off()
    fig.suptitle("digit classification (MLP)")
    return fig
