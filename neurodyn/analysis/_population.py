"""Population data in one layout for jPCA, dPCA and the similarity measures.

Every population analysis takes a `[condition, time, unit]` array. It accepts:

- a PSTH dataset ([`neurodyn.analysis.psth`][]: `rates_mean` over condition, time, neuron),
- a trials dataset ([`neurodyn.analysis.simulate`][]: `rates` over trial, time, neuron) — the
  trials are averaged per `condition` when the dataset has that coordinate, and each trial is
  its own condition otherwise,
- an `xarray.DataArray` with a `time` dim, a unit dim (`neuron` or `unit`) and one more dim,
- a plain array `[condition, time, unit]` (or `[time, unit]`: one condition).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

UNIT_DIMS: tuple[str, ...] = ("neuron", "unit")


@dataclass
class Population:
    """`values [condition, time, unit]` (float64) and the labels to put on results."""

    values: np.ndarray
    condition_dim: str
    conditions: np.ndarray
    times: np.ndarray
    time_units: str
    unit_dim: str
    units: np.ndarray

    def coords(self) -> dict:
        return {
            self.condition_dim: self.conditions,
            "time": xr.Variable(("time",), self.times, {"units": self.time_units}),
            self.unit_dim: self.units,
        }


def population(data, variable: str | None = None, *, name: str = "data") -> Population:
    """Bring any accepted input (module docstring) to a [`Population`][]."""
    if isinstance(data, xr.Dataset):
        if variable is None:
            variable = next((v for v in ("rates_mean", "rates") if v in data.data_vars), None)
            if variable is None:
                raise ValueError(
                    f"`{name}` has neither `rates_mean` nor `rates`; pass `variable=`."
                )
        if variable not in data.data_vars:
            raise ValueError(f"`{name}` has no variable {variable!r} ({list(data.data_vars)}).")
        da = data[variable]
        if "trial" in da.dims:
            if "condition" in data.coords and data["condition"].dims == ("trial",):
                da = da.groupby(data["condition"]).mean("trial")
                da = da.transpose("condition", ...)
            else:
                da = da.rename(trial="condition")
        return population(da, name=name)
    if isinstance(data, xr.DataArray):
        unit_dim = next((d for d in UNIT_DIMS if d in data.dims), None)
        if data.ndim == 2 and "time" in data.dims and unit_dim:
            data = data.expand_dims(condition=[0])
        others = [d for d in data.dims if d not in ("time", unit_dim)]
        if data.ndim != 3 or "time" not in data.dims or unit_dim is None or len(others) != 1:
            raise ValueError(
                f"`{name}` must have dims (condition, time, neuron|unit) — one condition-like "
                f"dim, `time` and `neuron` or `unit`; got {data.dims}."
            )
        cond = others[0]
        da = data.transpose(cond, "time", unit_dim)
        values = np.asarray(da.values, dtype=np.float64)
        time_units = str(da["time"].attrs.get("units", "1")) if "time" in da.coords else "1"
        conditions = np.asarray(da[cond].values) if cond in da.coords else np.arange(da.shape[0])
        times = (
            np.asarray(da["time"].values, np.float64)
            if "time" in da.coords
            else np.arange(da.shape[1], dtype=float)
        )
        units = np.asarray(da[unit_dim].values) if unit_dim in da.coords else np.arange(da.shape[2])
        return _checked(
            Population(values, cond, conditions, times, time_units, unit_dim, units), name
        )
    arr = np.asarray(data)
    if arr.dtype.kind not in "fiu":
        raise TypeError(
            f"`{name}` must be a dataset, a DataArray or a real array [condition, time, unit]; "
            f"got {type(data).__name__} of dtype {arr.dtype}."
        )
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(
            f"`{name}` as an array must be [condition, time, unit] (or [time, unit]); got shape "
            f"{arr.shape}."
        )
    pop = Population(
        arr.astype(np.float64),
        "condition",
        np.arange(arr.shape[0]),
        np.arange(arr.shape[1], dtype=np.float64),
        "step",
        "unit",
        np.arange(arr.shape[2]),
    )
    return _checked(pop, name)


def _checked(pop: Population, name: str) -> Population:
    if min(pop.values.shape) < 1:
        raise ValueError(f"`{name}` is empty: shape (condition, time, unit) = {pop.values.shape}.")
    if not np.all(np.isfinite(pop.values)):
        raise ValueError(
            f"`{name}` holds NaN or inf (e.g. a PSTH window wider than some trials); choose a "
            "window every trial covers."
        )
    return pop


def pca_basis(x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-`n` principal axes `[unit, n]` of the rows of centred `x` and their variance
    fractions `[n]`. Each axis' sign makes the sample with the largest |score| positive, a
    rule that does not depend on the units' basis (a rotated copy of `x` gets the same
    scores)."""
    if x.shape[0] >= x.shape[1]:
        # tall data: eigenvectors of the small Gram matrix xᵀx (far cheaper than an SVD of
        # the tall matrix)
        evals, evecs = np.linalg.eigh(x.T @ x)
        order = np.argsort(evals)[::-1]
        s = np.sqrt(np.clip(evals[order], 0.0, None))
        vt = evecs[:, order].T
    else:
        _, s, vt = np.linalg.svd(x, full_matrices=False)
    axes = vt[:n].T
    scores = x @ axes
    signs = np.sign(scores[np.abs(scores).argmax(axis=0), np.arange(axes.shape[1])])
    axes = axes * np.where(signs == 0, 1.0, signs)
    total = float(np.sum(s**2))
    frac = s[:n] ** 2 / total if total > 0 else np.zeros(min(n, s.size))
    return axes, frac
