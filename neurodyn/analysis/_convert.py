"""Small converters from neurodyn datasets to what analysis tools expect.

- jPCA implementations take a list with one (time × neuron) array per condition;
- dPCA takes neuron-first arrays: neuron × condition × time, and single trials as
  neuron × condition × time × trial (NaN-padded where a condition has fewer trials);
- anything else takes plain numpy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from ._psth import _groups, align_trials


def _condition_dim(ds: xr.Dataset, variable: str) -> str:
    dims = ds[variable].dims
    if "trial" in dims:
        raise ValueError(
            f"{variable!r} is per trial; average first with nd.analysis.psth(...) (or use "
            "to_dpca for single trials)."
        )
    if len(dims) != 3 or dims[1] != "time":
        raise ValueError(f"{variable!r} must have dims (condition, time, neuron); has {dims}.")
    return dims[0]


def to_jpca(
    ds: xr.Dataset, variable: str = "rates_mean", *, return_times: bool = False
) -> list[np.ndarray] | tuple[list[np.ndarray], np.ndarray]:
    """One (time × neuron) array per condition, from a PSTH dataset (what jPCA expects).

    **Arguments:**

    - `ds`: a dataset of [`neurodyn.analysis.psth`][] (dims condition, time, neuron).
    - `variable`: the trial average to export (default `"rates_mean"`).
    - `return_times`: also return the relative time axis.

    **Returns:** a list of float64 arrays `[time, neuron]`, in the order of the condition
    coordinate (and the times `[time]` when asked).

    **Example:**

    ```python
    datas, times = nd.analysis.to_jpca(nd.analysis.psth(ds), return_times=True)
    ```
    """
    dim = _condition_dim(ds, variable)
    da = ds[variable]
    datas = [np.asarray(da.isel({dim: i}).values, np.float64) for i in range(ds.sizes[dim])]
    if return_times:
        return datas, np.asarray(ds["time"].values, np.float64)
    return datas


def to_dpca(
    ds: xr.Dataset,
    variable: str | None = None,
    *,
    by: str | None = "condition",
    align=None,
    window: tuple[float, float] | None = None,
) -> np.ndarray:
    """Neuron-first arrays for dPCA.

    **Arguments:**

    - `ds`: a PSTH dataset (then `variable` defaults to `"rates_mean"`), or a trials dataset
      (then `variable` defaults to `"rates"` and single trials are returned).
    - `by`, `align`, `window`: for a trials dataset, the grouping and re-alignment of
      [`neurodyn.analysis.psth`][] (default: by condition, from the trial start, whole trial).

    **Returns:** from a PSTH: `[neuron, condition, time]`; from trials:
    `[neuron, condition, time, trial]`, trials of each condition in order and NaN where a
    condition has fewer trials or a relative time lies outside a trial (dPCA's `trialX` is
    `np.moveaxis(x, -1, 0)`; the trial average is `np.nanmean(x, axis=-1)`).

    **Example:**

    ```python
    R = nd.analysis.to_dpca(nd.analysis.psth(ds))   # (neuron, condition, time)
    X = nd.analysis.to_dpca(ds, align="go_cue", window=(-0.3, 0.8))  # (..., trial)
    ```
    """
    if "trial" not in ds.dims:
        variable = variable or "rates_mean"
        dim = _condition_dim(ds, variable)
        return np.asarray(ds[variable].transpose(ds[variable].dims[2], dim, "time").values)
    variable = variable or "rates"
    dims = ds[variable].dims
    if len(dims) != 3 or dims[:2] != ("trial", "time"):
        raise ValueError(f"{variable!r} must have dims (trial, time, neuron); has {dims}.")
    values, valid, rel, _ = align_trials(ds, [variable], align=align, window=window)
    x = values[variable].astype(np.float64)
    x[~valid] = np.nan
    groups, index, _, _ = _groups(ds, by)
    n_max = int(np.bincount(index, minlength=len(groups)).max())
    out = np.full((x.shape[2], len(groups), rel.size, n_max), np.nan)
    for g in range(len(groups)):
        members = np.flatnonzero(index == g)
        out[:, g, :, : members.size] = np.transpose(x[members], (2, 1, 0))
    return out


def to_numpy(ds: xr.Dataset, variables: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """The dataset as a plain dict of numpy arrays (data variables and coordinates).

    **Arguments:** `ds`; `variables` — the names to export (default: every data variable and
    coordinate).

    **Returns:** `{name: np.ndarray}`; each array keeps the dimension order of `ds[name].dims`.

    **Example:** `arrays = nd.analysis.to_numpy(ds); arrays["rates"].shape  # (trial, time, neuron)`
    """
    names = list(variables) if variables is not None else [*ds.data_vars, *ds.coords]
    missing = [n for n in names if n not in ds.variables]
    if missing:
        raise ValueError(f"{missing} are not in this dataset.")
    return {str(n): np.asarray(ds[n].values) for n in names}
