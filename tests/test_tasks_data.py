"""The fixed evaluation sets shipped in `neurodyn/_data/`: regenerate them, check they match the
files, find them in a built wheel and sdist, and fail clearly when one is missing."""

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import neurodyn._data as data
from neurodyn.tasks import _kalman, _lorenz

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "neurodyn" / "_data"

# h5netcdf reads and writes through h5py, which pyproject.toml must list as a dependency;
# without it these tests are reported as skipped with this reason rather than erroring.
pytest.importorskip("h5py", reason="h5netcdf needs h5py: add h5py to the dependencies")


def _open(name):
    path = DATA / f"{name}.nc"
    if not path.exists():
        pytest.fail(f"{path} is missing: run `python data/make_eval_sets.py`.")
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()


def test_eval_sets_are_small_and_labelled():
    total = sum(p.stat().st_size for p in DATA.glob("*.nc"))
    assert total < 6 * 2**20
    for name in data.EVAL_SETS:
        assert data.eval_set_path(name) == DATA / f"{name}.nc"
        ds = _open(name)
        for var in list(ds.data_vars) + list(ds.coords):
            assert "long_name" in ds[var].attrs, var
            if var != "axis":
                assert "units" in ds[var].attrs, var


def test_lorenz_eval_set_regenerates():
    stored = _open("lorenz_eval")["state"].values
    fresh = np.asarray(_lorenz.make_eval_segments(dtype=np.float64))
    assert stored.shape == fresh.shape == (128, 65, 3)
    np.testing.assert_allclose(stored, fresh, rtol=1e-5, atol=1e-5)


def test_kalman_eval_set_regenerates():
    ds = _open("kalman_eval")
    fresh = {k: np.asarray(v) for k, v in _kalman.make_eval_trials(dtype=np.float64).items()}
    assert fresh["observation"].shape == (1024, 1000)
    # observation and latent are int16-packed with a quantum of 1e-3 (rounding ≤ 5e-4)
    for name in ("observation", "latent"):
        np.testing.assert_allclose(ds[name].values, fresh[name], rtol=0, atol=5.01e-4)
    for name in ("tau", "bias", "beta"):
        np.testing.assert_allclose(ds[name].values, fresh[name], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(ds["switch"].values.astype(bool), fresh["switch"])
    np.testing.assert_array_equal(ds["time_since_switch"].values, fresh["time_since_switch"])


def test_tasks_evaluate_on_the_stored_sets():
    task = _kalman.KalmanTask()
    batch = task.eval_batch()
    assert batch.inputs.shape == (1024, 1000, 1)
    segments = _lorenz.LorenzTask(n_train=20, n_hidden=8).test_segments()
    assert segments.shape == (128, 65, 3)


def test_a_missing_or_unreadable_set_is_a_clear_error_naming_the_file(tmp_path, monkeypatch):
    missing = tmp_path / "kalman_eval.nc"
    monkeypatch.setattr(data, "eval_set_path", lambda name: tmp_path / f"{name}.nc")
    _kalman._load_eval_arrays.cache_clear()
    try:
        with pytest.raises(data.EvalSetError, match=str(missing)):
            _kalman.KalmanTask().eval_batch()
        missing.write_bytes(b"not a netCDF file")
        with pytest.raises(data.EvalSetError, match="could not read"):
            _kalman.KalmanTask().eval_batch()
        # a task whose settings the set does not cover draws fresh trials, as documented
        fresh = _kalman.KalmanTask(n_steps=50).eval_batch(key=np.uint32([0, 1]), n_trials=3)
        assert fresh.inputs.shape == (3, 50, 1)
    finally:
        _kalman._load_eval_arrays.cache_clear()


def test_the_wheel_and_the_sdist_ship_the_sets(tmp_path):
    """Build both with hatchling (the build backend) and find the sets inside."""
    pytest.importorskip("hatchling", reason="building needs hatchling (pip install hatchling)")
    out = subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-d", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    (wheel,) = tmp_path.glob("*.whl")
    (sdist,) = tmp_path.glob("*.tar.gz")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    with tarfile.open(sdist) as tf:
        snames = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    for name in data.EVAL_SETS:
        assert f"neurodyn/_data/{name}.nc" in names
        assert f"neurodyn/_data/{name}.nc" in snames
    assert "neurodyn/_data/__init__.py" in names
    assert "data/make_eval_sets.py" in snames
