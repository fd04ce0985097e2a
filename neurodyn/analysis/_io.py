"""netCDF save/load of analysis datasets: compressed, atomic, lossless for attrs and dtypes.

netCDF attributes hold strings, numbers and flat numeric arrays. Everything else is written
as a JSON string with a prefix and restored on load: bool, None, dict, lists and tuples
(restored as lists), and numpy arrays that are boolean or not one-dimensional (restored with
their dtype and shape). Fixed-width unicode variables (`<U…`), which netCDF stores as
variable-length strings, get their dtype back on load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import xarray as xr

_JSON_PREFIX = "__json__:"
_ARRAY_PREFIX = "__ndarray__:"
_DTYPE_ATTR = "_neurodyn_dtype"


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _encode_attr(value):
    if isinstance(value, np.ndarray):
        if value.ndim == 1 and value.dtype.kind in "iuf" and value.size:
            return value
        payload = {"dtype": value.dtype.str, "shape": list(value.shape), "data": value.tolist()}
        return _ARRAY_PREFIX + json.dumps(payload, default=_json_default)
    if isinstance(value, (bool, np.bool_)) or value is None:
        return _JSON_PREFIX + json.dumps(bool(value) if value is not None else None)
    if isinstance(value, (dict, list, tuple)):
        return _JSON_PREFIX + json.dumps(value, default=_json_default)
    if isinstance(value, (str, int, float, np.integer, np.floating)):
        return value
    return _JSON_PREFIX + json.dumps(value, default=_json_default)


def _decode_attr(value):
    if isinstance(value, str):
        if value.startswith(_JSON_PREFIX):
            return json.loads(value[len(_JSON_PREFIX) :])
        if value.startswith(_ARRAY_PREFIX):
            payload = json.loads(value[len(_ARRAY_PREFIX) :])
            return np.asarray(payload["data"], dtype=np.dtype(payload["dtype"])).reshape(
                payload["shape"]
            )
    return value


def _map_attrs(ds: xr.Dataset, fn) -> xr.Dataset:
    ds = ds.copy()
    ds.attrs = {k: fn(v) for k, v in ds.attrs.items()}
    for name in list(ds.variables):
        ds[name].attrs = {k: fn(v) for k, v in ds[name].attrs.items()}
    return ds


def _encode(ds: xr.Dataset) -> xr.Dataset:
    ds = _map_attrs(ds, _encode_attr)
    for name, v in ds.variables.items():
        if v.dtype.kind == "U":
            ds[name].attrs[_DTYPE_ATTR] = v.dtype.str
    return ds


def _decode(ds: xr.Dataset) -> xr.Dataset:
    ds = _map_attrs(ds, _decode_attr)
    for name in list(ds.variables):
        dtype = ds[name].attrs.pop(_DTYPE_ATTR, None)
        if dtype is not None:
            attrs = dict(ds[name].attrs)
            if name in ds.coords:
                ds = ds.assign_coords({name: ds[name].astype(dtype)})
            else:
                ds[name] = ds[name].astype(dtype)
            ds[name].attrs = attrs
    return ds


def save(ds: xr.Dataset, path: str | os.PathLike, *, complevel: int = 4) -> Path:
    """Write `ds` to a netCDF-4 file with h5netcdf, compressed, atomically.

    **Arguments:**

    - `ds`: the dataset (trials, PSTH, trajectories, a training history, ...).
    - `path`: the file to write (its folder is created).
    - `complevel`: zlib level (0–9) of the numeric variables and coordinates.

    Attributes netCDF cannot hold (bool, None, dict, lists, non-flat or boolean arrays) are
    stored as JSON strings and restored by [`neurodyn.analysis.load`][]. The file is written
    to a temporary name in the same folder, fsynced and renamed, so a crash never leaves a
    half-written file.

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

    Attributes stored as JSON are restored (bool, None, dict, lists, arrays) and fixed-width
    string variables get their dtype back, so `load(save(ds, p))` is identical to `ds`
    (`xarray.Dataset.identical`) with the same dtypes. Variables with `units = "s"` stay
    floats (no timedelta decoding).

    **Example:** `ds = nd.analysis.load("runs/reach/trials.nc")`
    """
    with xr.open_dataset(path, engine="h5netcdf", decode_timedelta=False) as ds:
        ds = ds.load()
    return _decode(ds)
