r"""netCDF save/load of analysis datasets: CF-1.10 files that plain readers understand.

**What a file holds.** Every file has the global attribute `Conventions = "CF-1.10"`; every
variable has `units` (a UDUNITS string: `"1"` for dimensionless values, indices and labels,
`"s"`, `"m"`, `"m s-1"`, `"rad s-1"`, `"N m"`, ...) and `long_name`. Coordinate variables have
no `_FillValue` (CF: coordinates are never missing).

**Attributes: one encoding.** netCDF attributes hold strings, numbers and flat numeric
arrays; these are written as they are (a list or tuple of numbers becomes a numeric array).
Every other value — bool, None, dict (configurations, software versions), a list holding
strings or mixed values, an empty list — is written as **JSON text** (`json.loads` reads it),
and the names of the attributes so written are listed, space-separated, in the attribute
`json_attributes` of the same variable (or of the file, for global attributes). Arrays that are
boolean or not one-dimensional are JSON objects `{"dtype", "shape", "data"}`, listed in
`array_attributes` instead. Example, in plain Python:

```python
import json, h5netcdf
with h5netcdf.File("runs/flipflop/trials.nc", "r") as f:
    config = json.loads(f.attrs["task_config"])  # listed in f.attrs["json_attributes"]
```

[`neurodyn.analysis.load`][] decodes them (and removes the two listing attributes), and
gives fixed-width string variables (`<U…`, stored by netCDF as variable-length strings) their
numpy dtype back, so `load(save(ds, path))` is identical to `ds`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import xarray as xr

CONVENTIONS = "CF-1.10"
"""The CF version the exported files follow (their global `Conventions` attribute)."""
JSON_ATTRIBUTES = "json_attributes"
"""Attribute naming (space-separated) the attributes written as JSON text."""
ARRAY_ATTRIBUTES = "array_attributes"
"""Attribute naming the attributes written as JSON `{"dtype", "shape", "data"}` arrays."""

_LEGACY_JSON, _LEGACY_ARRAY, _LEGACY_DTYPE = "__json__:", "__ndarray__:", "_neurodyn_dtype"


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _is_number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(
        x, (bool, np.bool_)
    )


def _encode_value(value) -> tuple[object, str | None]:
    """(value netCDF can hold, None | "json" | "array")."""
    if isinstance(value, np.ndarray):
        if value.ndim == 1 and value.dtype.kind in "iuf" and value.size:
            return value, None
        payload = {"dtype": value.dtype.str, "shape": list(value.shape), "data": value.tolist()}
        return json.dumps(payload, default=_json_default), "array"
    if isinstance(value, str) or _is_number(value):
        return value, None
    if isinstance(value, (list, tuple)) and value and all(_is_number(x) for x in value):
        return np.asarray(value), None
    return json.dumps(value, default=_json_default), "json"


def _encode_attrs(attrs: dict) -> dict:
    out, listed = {}, {"json": [], "array": []}
    for name, value in attrs.items():
        if name in (JSON_ATTRIBUTES, ARRAY_ATTRIBUTES):
            continue
        if " " in name:
            raise ValueError(f"attribute names must not contain spaces; got {name!r}.")
        out[name], kind = _encode_value(value)
        if kind is not None:
            listed[kind].append(name)
    if listed["json"]:
        out[JSON_ATTRIBUTES] = " ".join(listed["json"])
    if listed["array"]:
        out[ARRAY_ATTRIBUTES] = " ".join(listed["array"])
    return out


def _decode_attrs(attrs: dict) -> dict:
    attrs = dict(attrs)
    as_json = str(attrs.pop(JSON_ATTRIBUTES, "")).split()
    as_array = str(attrs.pop(ARRAY_ATTRIBUTES, "")).split()
    for name, value in list(attrs.items()):  # files written before the listing attributes
        if isinstance(value, str) and value.startswith(_LEGACY_JSON):
            attrs[name] = json.loads(value[len(_LEGACY_JSON) :])
        elif isinstance(value, str) and value.startswith(_LEGACY_ARRAY):
            attrs[name], as_array = value[len(_LEGACY_ARRAY) :], [*as_array, name]
    attrs.pop(_LEGACY_DTYPE, None)
    for name in as_json:
        if name in attrs:
            attrs[name] = json.loads(attrs[name])
    for name in as_array:
        if name in attrs:
            payload = json.loads(attrs[name])
            attrs[name] = np.asarray(payload["data"], dtype=np.dtype(payload["dtype"])).reshape(
                payload["shape"]
            )
    return attrs


def _map_attrs(ds: xr.Dataset, fn) -> xr.Dataset:
    ds = ds.copy()
    ds.attrs = fn(ds.attrs)
    for name in list(ds.variables):
        ds[name].attrs = fn(ds[name].attrs)
    return ds


def _encode(ds: xr.Dataset) -> xr.Dataset:
    ds = ds.copy()
    ds.attrs.setdefault("Conventions", CONVENTIONS)
    return _map_attrs(ds, _encode_attrs)


def _decode(ds: xr.Dataset) -> xr.Dataset:
    ds = _map_attrs(ds, _decode_attrs)
    for name in list(ds.variables):
        if ds[name].dtype.kind == "O":  # variable-length strings: back to fixed width
            attrs = dict(ds[name].attrs)
            values = ds[name].values.astype(str)
            if name in ds.coords:
                ds = ds.assign_coords({name: (ds[name].dims, values)})
            else:
                ds[name] = (ds[name].dims, values)
            ds[name].attrs = attrs
    return ds


def save(ds: xr.Dataset, path: str | os.PathLike, *, complevel: int = 4) -> Path:
    """Write `ds` to a netCDF-4 file with h5netcdf, compressed, atomically.

    **Arguments:**

    - `ds`: the dataset (trials, PSTH, trajectories, a training history, ...).
    - `path`: the file to write (its folder is created).
    - `complevel`: zlib level (0–9) of the numeric variables and coordinates.

    The file follows CF-1.10: a global `Conventions` attribute is added when `ds` has none,
    coordinates get no `_FillValue`, and attributes netCDF cannot hold (bool, None, dict,
    lists of strings, non-flat or boolean arrays) are written as JSON text named in
    `json_attributes` / `array_attributes` (the module's one encoding, see
    [`neurodyn.analysis.load`][]). The file is written to a temporary name in the same folder,
    fsynced and renamed, so a crash never leaves a half-written file.

    **Returns:** the path written.

    **Example:** `nd.analysis.save(ds, "runs/reach/trials.nc")`
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    encoded = _encode(ds)
    encoding = {}
    for name, v in encoded.variables.items():
        if v.dtype.kind in "iufb" and v.ndim > 0 and v.size > 0:
            encoding[name] = {"zlib": True, "complevel": int(complevel)}
        if name in encoded.coords and v.dtype.kind == "f":
            encoding.setdefault(name, {})["_FillValue"] = None
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        encoded.to_netcdf(tmp, engine="h5netcdf", encoding=encoding)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load(path: str | os.PathLike) -> xr.Dataset:
    """Read a dataset written by [`neurodyn.analysis.save`][], fully into memory.

    Attributes written as JSON are decoded (bool, None, dict, lists of strings, arrays) and
    the listing attributes `json_attributes` / `array_attributes` removed; string variables
    come back as fixed-width numpy strings (`<U…`). So `load(save(ds, p))` is identical to
    `ds` (`xarray.Dataset.identical`) with the same dtypes, with two documented differences:
    a global `Conventions = "CF-1.10"` if `ds` had none, and lists of numbers returned as
    numpy arrays. Variables with `units = "s"` stay floats (no timedelta decoding).
    Files written by earlier versions (attributes prefixed `__json__:`) are read too.

    **Example:** `ds = nd.analysis.load("runs/reach/trials.nc")`
    """
    with xr.open_dataset(path, engine="h5netcdf", decode_timedelta=False) as ds:
        ds = ds.load()
    return _decode(ds)
