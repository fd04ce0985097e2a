"""Write the fixed evaluation sets shipped with the package, `neurodyn/_data/*.nc`.

    python data/make_eval_sets.py [--out DIR]     # default DIR: neurodyn/_data

This script is the one way to regenerate them. Both sets are generated in float64 from fixed
seeds by the tasks' own generators (`neurodyn.tasks._lorenz.make_eval_segments`,
`neurodyn.tasks._kalman.make_eval_trials`) and stored as netCDF (`engine="h5netcdf"`,
zlib-compressed, written atomically), so that results stay comparable across versions and
installations; they ship as package data in the wheel and the sdist
(`tests/test_tasks_data.py` regenerates them, checks that they match the files, and builds a
wheel and an sdist to find them).

- `lorenz_eval.nc`: 128 test segments of the Lorenz system (σ = 10, ρ = 28, β = 8/3), each
  65 points (64 steps of dt = 0.01) after a 10-time-unit transient from y ~ N(0, I)
  (SPEC §3.1); raw (not z-scored) coordinates, float32.
- `kalman_eval.nc`: 1024 trials of T = 1000 steps of the adaptive Kalman task with the
  default prior (SPEC §3.2): observations, latents, context parameters and switch times. 1024
  trials put the standard error of a trained network's MSE below 0.005. Observations and
  latents are packed as int16 with a scale factor of 1e-3 (netCDF/CF `scale_factor`, decoded
  on reading; rounding error ≤ 5e-4, i.e. ≤ 3e-7 added to an MSE of ≈ 0.6) to keep the file
  at ≈ 4 MB; the context parameters are float32.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from neurodyn.tasks import _kalman, _lorenz  # noqa: E402

HERE = Path(__file__).resolve().parent
PACKAGE_DATA = HERE.parent / "neurodyn" / "_data"
PACK_SCALE = 1e-3
"""Quantum of the int16-packed Kalman observations and latents."""


def lorenz_dataset() -> xr.Dataset:
    seg = np.asarray(_lorenz.make_eval_segments(dtype=np.float64), np.float32)
    n_trials, n_points, _ = seg.shape
    ds = xr.Dataset(
        {
            "state": (
                ("trial", "time", "axis"),
                seg,
                {"units": "1", "long_name": "Lorenz state (x, y, z), raw coordinates"},
            )
        },
        coords={
            "trial": ("trial", np.arange(n_trials), {"units": "1", "long_name": "test trial"}),
            "time": (
                "time",
                0.01 * np.arange(n_points),
                {"units": "1", "long_name": "Lorenz time from the segment's first point"},
            ),
            "axis": ("axis", np.array(["x", "y", "z"]), {"long_name": "state coordinate"}),
        },
        attrs={
            "title": "neurodyn Lorenz test segments (SPEC §3.1)",
            "config": json.dumps(
                {
                    "seed": _lorenz.EVAL_SET_SEED,
                    "n_trials": _lorenz.EVAL_SET_TRIALS,
                    "n_steps": _lorenz.EVAL_SET_STEPS,
                    "dt": 0.01,
                    "params": [10.0, 28.0, 8.0 / 3.0],
                    "transient": _lorenz.EVAL_TRANSIENT,
                    "generator": "neurodyn.tasks._lorenz.make_eval_segments",
                }
            ),
        },
    )
    return ds


def kalman_dataset() -> xr.Dataset:
    trials = {k: np.asarray(v) for k, v in _kalman.make_eval_trials(dtype=np.float64).items()}
    n_trials, n_steps = trials["observation"].shape
    meta = {
        "observation": ("1", "observation y_t = x_t + beta nu_t"),
        "latent": ("1", "latent x_t"),
        "tau": ("step", "time constant tau of the context in force"),
        "bias": ("1", "mean b of the context in force"),
        "beta": ("1", "observation-noise std beta of the context in force"),
    }
    data_vars = {
        name: (("trial", "time"), trials[name].astype(np.float32), {"units": u, "long_name": ln})
        for name, (u, ln) in meta.items()
    }
    limit = np.iinfo(np.int16).max * PACK_SCALE
    for name in PACKED:
        peak = float(np.max(np.abs(trials[name])))
        if peak >= limit:
            raise ValueError(f"{name} reaches {peak:.3f}, beyond the int16 packing range ±{limit}.")
    data_vars["switch"] = (
        ("trial", "time"),
        trials["switch"].astype(np.int8),
        {"units": "1", "long_name": "1 where a context begins (including t = 0)"},
    )
    data_vars["time_since_switch"] = (
        ("trial", "time"),
        trials["time_since_switch"].astype(np.int16),
        {"units": "step", "long_name": "steps since the last context switch"},
    )
    return xr.Dataset(
        data_vars,
        coords={
            "trial": ("trial", np.arange(n_trials), {"units": "1", "long_name": "test trial"}),
            "time": ("time", np.arange(n_steps), {"units": "step", "long_name": "time step"}),
        },
        attrs={
            "title": "neurodyn adaptive-Kalman test trials (SPEC §3.2)",
            "config": json.dumps(
                {
                    "seed": _kalman.EVAL_SET_SEED,
                    "n_trials": _kalman.EVAL_SET_TRIALS,
                    "n_steps": n_steps,
                    "hold": 100,
                    "hazard": 0.01,
                    "tau_range": [1.0, 10.0],
                    "bias_range": [-3.0, 3.0],
                    "beta_range": [0.1, 3.0],
                    "sigma": 1.0,
                    "generator": "neurodyn.tasks._kalman.make_eval_trials",
                }
            ),
        },
    )


PACKED = ("observation", "latent")


def write(ds: xr.Dataset, path: Path) -> None:
    """Write `ds` to `path` atomically (temporary file in the same folder + `os.replace`)."""
    encoding = {name: {"zlib": True, "complevel": 9, "shuffle": True} for name in ds.data_vars}
    for name in PACKED:
        if name in ds.data_vars:
            encoding[name].update(
                {"dtype": "int16", "scale_factor": PACK_SCALE, "_FillValue": np.int16(-32768)}
            )
    fd, tmp = tempfile.mkstemp(suffix=".nc", dir=path.parent)
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="h5netcdf", encoding=encoding)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


DATASETS = {"lorenz_eval": lorenz_dataset, "kalman_eval": kalman_dataset}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=PACKAGE_DATA, help="output folder (default: neurodyn/_data/)"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, build in DATASETS.items():
        path = args.out / f"{name}.nc"
        write(build(), path)
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
