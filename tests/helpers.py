"""Test helpers: tree comparison."""

import jax
import jax.numpy as jnp
import numpy as np


def tree_allclose(x, y, *, rtol=1e-5, atol=1e-8):
    """True when two pytrees have the same structure and all leaves are close."""
    if jax.tree.structure(x) != jax.tree.structure(y):
        return False
    for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y)):
        a = np.asarray(a)
        b = np.asarray(b)
        if a.shape != b.shape or not np.allclose(a, b, rtol=rtol, atol=atol):
            return False
    return True


def tree_max_relerr(x, y):
    """Largest relative error, taken over the whole tree (norm-wise per leaf)."""
    errs = []
    for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y)):
        a = jnp.asarray(a)
        b = jnp.asarray(b)
        errs.append(float(jnp.linalg.norm((a - b).ravel()) / (jnp.linalg.norm(b.ravel()) + 1e-300)))
    return max(errs) if errs else 0.0


def assert_cf_clean(path):
    """Open a netCDF file with plain h5netcdf (no neurodyn, no xarray) and check what a
    CF-aware reader relies on: `Conventions`, a UDUNITS-parsable `units` and a `long_name` on
    every variable, no attribute of ours with a leading underscore, no coordinate with a
    `_FillValue`, and every attribute named in `json_attributes` readable by `json.loads`.

    **Returns:** `{variable: units}` of the file."""
    import json

    import h5netcdf
    import pytest

    unit = pytest.importorskip("cf_units", reason="the UDUNITS parser cf-units").Unit
    found = {}
    with h5netcdf.File(path, "r") as f:
        assert f.attrs["Conventions"] == "CF-1.10", path
        groups = [("", dict(f.attrs))] + [(n, dict(v.attrs)) for n, v in f.variables.items()]
        for name, attrs in groups:
            for key, value in attrs.items():
                where = f"{path.name}: {name or 'global'}.{key}"
                assert not key.startswith("_") or key == "_FillValue", where
                assert not (isinstance(value, str) and value.startswith("__")), where
            for key in str(attrs.get("json_attributes", "")).split():
                json.loads(attrs[key])  # raises on anything but JSON text
        for name, v in f.variables.items():
            attrs = dict(v.attrs)
            assert "units" in attrs and "long_name" in attrs, f"{path.name}: {name}"
            try:
                unit(attrs["units"])
            except ValueError as err:
                raise AssertionError(f"{path.name}: {name}.units = {attrs['units']!r}") from err
            if v.dimensions == (name,):  # a coordinate variable
                assert "_FillValue" not in attrs, f"{path.name}: coordinate {name}"
            found[name] = attrs["units"]
    return found
