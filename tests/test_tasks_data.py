"""The fixed evaluation sets in `data/`: regenerate them and check they match the files."""

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from neurodyn.tasks import _kalman, _lorenz

DATA = Path(__file__).resolve().parents[1] / "data"

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
    assert total < 2 * 2**20
    for name in ("lorenz_eval", "kalman_eval"):
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
    for name in ("observation", "latent", "tau", "bias", "beta"):
        np.testing.assert_allclose(ds[name].values, fresh[name], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(ds["switch"].values.astype(bool), fresh["switch"])
    np.testing.assert_array_equal(ds["time_since_switch"].values, fresh["time_since_switch"])


def test_tasks_evaluate_on_the_stored_sets():
    task = _kalman.KalmanTask()
    batch = task.eval_batch()
    assert batch.inputs.shape == (64, 1000, 1)
    segments = _lorenz.LorenzTask(n_train=20, n_hidden=8).test_segments()
    assert segments.shape == (128, 65, 3)
