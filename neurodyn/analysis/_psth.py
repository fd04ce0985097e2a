"""Peri-stimulus time histograms: trials re-aligned on an event, grouped, averaged.

Re-alignment. Trial i with event time e_i (a per-trial coordinate, e.g. `go_cue`) contributes
at relative time τ (a multiple of dt inside `window`) the sample at absolute time e_i + τ.
When every e_i lies on the time grid this is an exact index shift; otherwise the two
neighbouring samples are interpolated linearly. A relative time that falls outside a trial
contributes nothing: `n_trials` counts, per group and relative time, the trials that do, and
the mean and standard error use only those.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

# events within this many steps of the time grid are on it (float32 event times are off by
# ~1e-7 relative; interpolating by such amounts would only add rounding noise)
_GRID_TOL = 1e-3


def event_names(ds: xr.Dataset) -> list[str]:
    """Per-trial event-time coordinates of a trials dataset (those with `role="event"`)."""
    return [
        str(name)
        for name, c in ds.coords.items()
        if c.dims == ("trial",) and c.attrs.get("role") == "event"
    ]


def _time_step(ds: xr.Dataset) -> float:
    if "time" not in ds.dims:
        raise ValueError("this dataset has no `time` dimension (a feedforward task?).")
    t = np.asarray(ds["time"].values, np.float64)
    if t.size < 2:
        return 1.0
    steps = np.diff(t)
    dt = float(np.median(steps))
    if not np.allclose(steps, dt, rtol=1e-6, atol=1e-12):
        raise ValueError("the `time` coordinate must be uniformly spaced.")
    return dt


def _event_times(ds: xr.Dataset, align) -> tuple[np.ndarray, str]:
    n = ds.sizes["trial"]
    if align is None or (isinstance(align, str) and align == "trial_start"):
        return np.zeros(n), "trial start"
    if isinstance(align, str):
        if align not in ds.coords and align not in ds.data_vars:
            raise ValueError(
                f"`align` = {align!r} is not an event of this dataset; accepted: "
                f"{', '.join(['trial_start', *event_names(ds)])} (or per-trial times)."
            )
        e = ds[align]
        if e.dims != ("trial",):
            raise ValueError(f"`align` = {align!r} must be a per-trial time (dims ('trial',)).")
        return np.asarray(e.values, np.float64), e.attrs.get("long_name", align)
    e = np.asarray(align, np.float64)
    if e.shape != (n,):
        raise ValueError(f"`align` times must have one value per trial ({n}); got shape {e.shape}.")
    return e, "event"


def gaussian_smooth(values: np.ndarray, sigma_steps: float, axis: int) -> np.ndarray:
    """Gaussian smoothing along `axis` (σ in samples, kernel ±4σ), renormalised at the edges
    so that the first and last samples are weighted averages of the samples that exist."""
    if sigma_steps <= 0:
        return values
    half = int(np.ceil(4 * sigma_steps))
    offsets = np.arange(-half, half + 1)
    kernel = np.exp(-0.5 * (offsets / sigma_steps) ** 2)
    x = np.moveaxis(np.asarray(values, np.float64), axis, -1)
    n = x.shape[-1]
    total = np.zeros_like(x)
    norm = np.zeros(n)
    for k, w in zip(offsets, kernel):
        lo, hi = max(0, -k), min(n, n - k)  # out[t] += w * x[t + k] for valid t
        if lo >= hi:
            continue
        total[..., lo:hi] += w * x[..., lo + k : hi + k]
        norm[lo:hi] += w
    return np.moveaxis(total / norm, -1, axis)


def align_trials(
    ds: xr.Dataset,
    variables: Sequence[str],
    *,
    align=None,
    window: tuple[float, float] | None = None,
    smooth: float | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, str]:
    """Per-trial values of `variables` on a common relative time axis.

    **Returns:** `(values, valid, relative_time, event_description)` with `values[name]` of
    shape `[trial, rel_time, ...]` (the variable's other dims in their order after `time`;
    0 where invalid), `valid` `[trial, rel_time]` booleans.
    """
    dt = _time_step(ds)
    t = np.asarray(ds["time"].values, np.float64)
    events, description = _event_times(ds, align)
    if np.any(~np.isfinite(events)):
        raise ValueError("event times must be finite.")
    rel_lo = t[0] - events.max()
    rel_hi = t[-1] - events.min()
    if window is None:
        lo, hi = rel_lo, rel_hi
    else:
        lo, hi = (float(w) for w in window)
        if not lo <= hi:
            raise ValueError(f"`window` must be (start, end) with start <= end; got {window}.")
    k = np.arange(np.ceil(lo / dt - _GRID_TOL), np.floor(hi / dt + _GRID_TOL) + 1)
    rel = np.round(k * dt, 12)  # 0.3, not 0.30000000000000004: `sel(time=0.3)` works
    pos = (events[:, None] + rel[None, :] - t[0]) / dt  # fractional sample index [trial, rel]
    n_t = t.size
    nearest = np.rint(pos)
    on_grid = np.all(np.abs(pos - nearest) < _GRID_TOL)
    if on_grid:
        i0 = nearest.astype(np.int64)
        frac = np.zeros_like(pos)
        valid = (i0 >= 0) & (i0 < n_t)
    else:
        i0 = np.floor(pos).astype(np.int64)
        frac = pos - i0
        valid = (pos >= -_GRID_TOL) & (pos <= n_t - 1 + _GRID_TOL)
    i0c = np.clip(i0, 0, n_t - 1)
    i1c = np.clip(i0 + 1, 0, n_t - 1)
    sigma = None if smooth is None else float(smooth) / dt
    if sigma is not None and not sigma >= 0:
        raise ValueError(
            f"`smooth` must be a Gaussian std >= 0 (time units) or None; got {smooth}."
        )
    out = {}
    for name in variables:
        da = ds[name]
        if "trial" not in da.dims or "time" not in da.dims:
            raise ValueError(f"variable {name!r} must have `trial` and `time` dims; has {da.dims}.")
        other = [d for d in da.dims if d not in ("trial", "time")]
        x = np.asarray(da.transpose("trial", "time", *other).values)
        x = x.astype(np.result_type(x.dtype, np.float32))
        if sigma:
            x = gaussian_smooth(x, sigma, axis=1)
        shape = (x.shape[0], rel.size) + x.shape[2:]
        expand = (slice(None), slice(None)) + (None,) * (x.ndim - 2)
        rows = np.arange(x.shape[0])[:, None]
        v = x[rows, i0c]
        if not on_grid:
            w = frac[expand]
            v = (1 - w) * v + w * x[rows, i1c]
        v = np.where(valid[expand], v, 0).reshape(shape)
        out[name] = v
    return out, valid, rel, description


def _groups(ds: xr.Dataset, by) -> tuple[np.ndarray, np.ndarray, str, dict]:
    """(group label per group, group index per trial, dim name, attrs of the label coord)."""
    n = ds.sizes["trial"]
    if by is None:
        return (
            np.array([0]),
            np.zeros(n, np.int64),
            "condition",
            {"units": "1", "long_name": "all trials"},
        )
    if by not in ds.coords and by not in ds.data_vars:
        choices = [str(c) for c, v in ds.coords.items() if v.dims == ("trial",)]
        raise ValueError(
            f"`by` = {by!r} is not a per-trial coordinate of this dataset; accepted: "
            f"{', '.join(choices) or 'none (fresh trials have no conditions: by=None)'}."
        )
    labels = ds[by]
    if labels.dims != ("trial",):
        raise ValueError(f"`by` = {by!r} must be a per-trial label (dims ('trial',)).")
    values = np.asarray(labels.values)
    groups, index = np.unique(values, return_inverse=True)
    return groups, index.reshape(-1), by, dict(labels.attrs)


def group_statistics(values, valid, index, n_groups):
    """Mean, std (ddof=1), sem and count per group; NaN where fewer than 1 (mean) or 2
    (std, sem) trials contribute. Two passes (mean, then squared deviations from it)."""
    members = [np.flatnonzero(index == g) for g in range(n_groups)]
    count = np.stack([valid[m].sum(0) for m in members]).astype(np.int64)
    out = {}
    for name, v in values.items():
        expand = (slice(None), slice(None)) + (None,) * (v.ndim - 2)
        mean = np.empty((n_groups,) + v.shape[1:], v.dtype)
        var = np.empty_like(mean)
        for g, m in enumerate(members):
            w = valid[m][expand]
            n = count[g][(slice(None),) + (None,) * (v.ndim - 2)].astype(v.dtype)
            with np.errstate(invalid="ignore", divide="ignore"):
                mu = np.where(w, v[m], 0).sum(0) / n
                sq = np.where(w, (v[m] - mu) ** 2, 0).sum(0)
                mean[g] = np.where(n >= 1, mu, np.nan)
                var[g] = np.where(n >= 2, sq / (n - 1), np.nan)
        std = np.sqrt(var)
        n_all = count[expand].astype(v.dtype)
        with np.errstate(invalid="ignore", divide="ignore"):
            sem = std / np.sqrt(n_all)
        out[name] = (mean, std, sem)
    return out, count


def grouped(
    ds: xr.Dataset,
    variables: Sequence[str],
    *,
    by,
    align,
    window,
    smooth,
    stats: Sequence[str],
    kind: str,
) -> xr.Dataset:
    """The shared engine of `psth` and `trajectories` (see their docstrings)."""
    variables = list(variables)
    missing = [v for v in variables if v not in ds.data_vars]
    if missing:
        raise ValueError(
            f"variables {missing} are not in this dataset; it has "
            f"{', '.join(map(str, ds.data_vars))}."
        )
    values, valid, rel, description = align_trials(
        ds, variables, align=align, window=window, smooth=smooth
    )
    groups, index, dim, label_attrs = _groups(ds, by)
    results, count = group_statistics(values, valid, index, len(groups))
    time_units = ds["time"].attrs.get("units", "s")
    align_name = align if isinstance(align, str) or align is None else "event"
    align_name = "trial_start" if align_name is None else align_name
    coords = {
        dim: xr.Variable(
            (dim,),
            groups,
            {
                "long_name": label_attrs.get("long_name", dim),
                "units": label_attrs.get("units", "1"),
            },
        ),
        "time": xr.Variable(
            ("time",),
            rel,
            {"units": time_units, "long_name": f"time from {description}", "align": align_name},
        ),
    }
    data = {}
    for name in variables:
        da = ds[name]
        other = [d for d in da.dims if d not in ("trial", "time")]
        dims = (dim, "time", *other)
        units, long_name = da.attrs.get("units", "1"), da.attrs.get("long_name", name)
        mean, std, sem = results[name]
        labels = {
            "mean": (mean, "mean"),
            "std": (std, "standard deviation (ddof=1) of"),
            "sem": (sem, "standard error (ddof=1) of the mean"),
        }
        for stat in stats:
            arr, what = labels[stat]
            data[f"{name}_{stat}"] = xr.Variable(
                dims,
                arr,
                {"units": units, "long_name": f"{what} {long_name}".replace("mean mean", "mean")},
            )
        for d in other:
            if d in ds.coords:
                coords[d] = ds[d].variable
        for cname, c in ds.coords.items():
            if cname not in coords and set(c.dims) <= set(other) and c.dims:
                coords[cname] = c.variable
    data["n_trials"] = xr.Variable(
        (dim, "time"), count, {"units": "1", "long_name": "number of trials averaged"}
    )
    coords.update(_group_coords(ds, index, len(groups), dim, by, align, events_relative=True))
    attrs = {
        k: v for k, v in ds.attrs.items() if k not in ("neurodyn_dataset", "title", "n_trials")
    }
    attrs.update(
        {
            "title": f"{ds.attrs.get('task', '')}: {kind}".strip(": "),
            "neurodyn_dataset": kind,
            "by": "none" if by is None else str(by),
            "align": align_name,
            "window": [round(float(rel[0]), 12), round(float(rel[-1]), 12)] if rel.size else [],
            "smooth": None if smooth is None else float(smooth),
            "n_trials_total": int(ds.sizes["trial"]),
        }
    )
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _group_coords(ds, index, n_groups, dim, by, align, events_relative):
    """Per-trial coordinates that are constant within every group become per-group ones; event
    times become their mean relative to the aligning event."""
    out = {}
    events, _ = _event_times(ds, align)
    for name, c in ds.coords.items():
        if name in ("trial", by) or not c.dims or c.dims[0] != "trial":
            continue
        values = np.asarray(c.values)
        is_event = c.attrs.get("role") == "event" and c.dims == ("trial",)
        if is_event:
            rel = values.astype(np.float64) - events
            mean = np.full(n_groups, np.nan)
            for g in range(n_groups):
                mean[g] = rel[index == g].mean()
            attrs = dict(c.attrs)
            attrs["long_name"] = (
                f"{c.attrs.get('long_name', name)}, relative to the aligning event "
                "(mean over trials)"
            )
            out[name] = xr.Variable((dim,), mean, attrs)
            continue
        first = np.zeros(n_groups, np.int64)
        constant = True
        for g in range(n_groups):
            members = np.flatnonzero(index == g)
            first[g] = members[0]
            if not all(np.array_equal(values[m], values[members[0]]) for m in members[1:]):
                constant = False
                break
        if constant:
            out[name] = xr.Variable((dim, *c.dims[1:]), values[first], dict(c.attrs))
    return out


def psth(
    ds: xr.Dataset,
    by: str | None = "condition",
    align="go_cue",
    window: tuple[float, float] | None = (-0.3, 0.8),
    smooth: float | None = None,
    *,
    variables: Sequence[str] = ("rates",),
) -> xr.Dataset:
    """Trial-averaged activity per condition, with trials re-aligned on an event.

    **Arguments:**

    - `ds`: a trials dataset ([`neurodyn.analysis.simulate`][] or one loaded from
      `trials.nc`).
    - `by`: the per-trial coordinate whose values define the groups (default `"condition"`);
      `None` pools every trial.
    - `align`: the event to align on — the name of a per-trial event coordinate (`"go_cue"`,
      `"target_onset"`, `"go_cue1"`, ...), `"trial_start"`/`None` (no shift), or an array of
      one time per trial. See the module docstring for how trials are re-aligned.
    - `window`: `(start, end)` of the relative time axis, in the units of `time`, both
      included; `None` takes every relative time any trial covers.
    - `smooth`: `None`, or the std of a Gaussian kernel (units of `time`) applied to each
      trial along time before alignment (renormalised at the trial's edges).
    - `variables`: the variables to average (default the firing rates).

    **Returns:** a dataset over (`condition` — or the name of `by` —, `time`, `neuron`)
    with `rates_mean`, `rates_sem` (standard error with ddof = 1; NaN with fewer than two
    trials) and `n_trials` (`condition`, `time`); `time` is relative to the event (its
    `align` attr names it); trial coordinates constant within each condition (direction,
    target, ...) become condition coordinates, and other event times become their mean
    offset from the aligning event (e.g. `target_onset` ≈ −0.5 s before the go cue).

    **Example:**

    ```python
    p = nd.analysis.psth(ds, align="go_cue", window=(-0.3, 0.8), smooth=0.02)
    p.rates_mean.sel(neuron=0).plot.line(x="time", hue="condition")
    ```
    """
    return grouped(
        ds,
        variables,
        by=by,
        align=align,
        window=window,
        smooth=smooth,
        stats=("mean", "sem"),
        kind="psth",
    )
