"""netCDF save/load of analysis datasets: compressed, atomic, lossless for attrs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import xarray as xr

_JSON_PREFIX = "__json__:"


def _encode_attr(value):
    """netCDF attributes hold strings, numbers and flat numeric arrays; the rest is JSON."""
    if isinstance(value, (bool, np.bool_)) or value is None or isinstance(value, dict):
        return _JSON_PREFIX + json.dumps(value.item() if isinstance(value, np.bool_) else value)
    if isinstance(value, (list, tuple)):
        arr = np.asarray(value) if len(value) else None
        if arr is not None and arr.dtype.kind in "iuf" and arr.ndim == 1:
            return arr
        return _JSON_PREFIX + json.dumps(list(value), default=_json_default)
    if isinstance(value, np.ndarray) and value.dtype.kind == "b":
        return _JSON_PREFIX + json.dumps(value.tolist())
    if isinstance(value, (str, int, float, np.integer, np.floating, np.ndarray)):
        return value
    return _JSON_PREFIX + json.dumps(value, default=_json_default)


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _decode_attr(value):
    if isinstance(value, str) and value.startswith(_JSON_PREFIX):
        return json.loads(value[len(_JSON_PREFIX) :])
    return value


def _map_attrs(ds: xr.Dataset, fn) -> xr.Dataset:
    ds = ds.copy()
    ds.attrs = {k: fn(v) for k, v in ds.attrs.items()}
    for name in list(ds.variables):
        ds[name].attrs = {k: fn(v) for k, v in ds[name].attrs.items()}
    return ds


def save(ds: xr.Dataset, path: str | os.PathLike, *, complevel: int = 4) -> Path:
    """Write `ds` to a netCDF-4 file with h5netcdf, compressed, atomically.

    Attributes netCDF cannot hold (bool, None, dict, nested or mixed lists) are stored as JSON
    strings and restored by [`neurodyn.analysis.load`][]. The file is written to a temporary
    name and renamed, so a crash never leaves a half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    encoded = _map_attrs(ds, _encode_attr)
    encoding = {}
    for name, var in encoded.data_vars.items():
        if var.dtype.kind in "iufb" and var.ndim > 0:
            encoding[name] = {"zlib": True, "complevel": complevel}
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
    """Read a dataset written by [`neurodyn.analysis.save`][] (fully into memory)."""
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        ds = ds.load()
    return _map_attrs(ds, _decode_attr)
