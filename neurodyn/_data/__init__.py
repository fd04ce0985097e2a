"""The fixed evaluation sets shipped with the package (`neurodyn/_data/*.nc`).

They are written by `data/make_eval_sets.py` (the one way to regenerate them) and read here
from the installed package, so that every installation evaluates on the same trials.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

EVAL_SETS: tuple[str, ...] = ("lorenz_eval", "kalman_eval")
"""Names of the shipped evaluation sets (files `<name>.nc` in this folder)."""


class EvalSetError(RuntimeError):
    """A shipped evaluation set is missing or cannot be read."""


def eval_set_path(name: str) -> Path:
    """The path of the shipped evaluation set `name` (`neurodyn/_data/<name>.nc`)."""
    if name not in EVAL_SETS:
        raise ValueError(f"unknown evaluation set {name!r}; accepted: {', '.join(EVAL_SETS)}.")
    return Path(str(resources.files(__name__).joinpath(f"{name}.nc")))


def load_eval_set(name: str):
    """Open the shipped evaluation set `name` as an `xarray.Dataset` (loaded into memory).

    **Raises:** `EvalSetError` naming the file when it is missing (a broken installation: the
    sets ship in the wheel and the sdist) or cannot be read; never falls back to fresh trials.
    """
    path = eval_set_path(name)
    if not path.is_file():
        raise EvalSetError(
            f"the evaluation set {path} is missing: neurodyn ships it as package data, so this "
            "installation is incomplete. Reinstall neurodyn, or regenerate the sets from a "
            "source checkout with `python data/make_eval_sets.py`."
        )
    import xarray as xr

    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            return ds.load()
    except Exception as err:  # h5py/h5netcdf raise many types for a corrupt file
        raise EvalSetError(
            f"could not read the evaluation set {path} ({type(err).__name__}: {err}). "
            "Reinstall neurodyn, or regenerate the sets with `python data/make_eval_sets.py`."
        ) from err
