"""Per-condition hand paths, speeds, joint signals, torques and muscle activity."""

from __future__ import annotations

from collections.abc import Sequence

import xarray as xr

from ._psth import grouped

ARM_VARIABLES: tuple[str, ...] = (
    "hand_position",
    "hand_velocity",
    "hand_speed",
    "joint_angle",
    "joint_velocity",
    "torque",
    "muscle_excitation",
    "muscle_activation",
)
"""The trial variables `trajectories` summarises by default (those the dataset has)."""


def trajectories(
    ds: xr.Dataset,
    by: str | None = "condition",
    align: str | None = "default",
    window: tuple[float, float] | None = None,
    smooth: float | None = None,
    *,
    variables: Sequence[str] | None = None,
) -> xr.Dataset:
    """Per-condition mean and spread of the arm's trajectories (hand paths, speeds, torques).

    **Arguments:**

    - `ds`: a trials dataset of a reaching task ([`neurodyn.analysis.simulate`][]).
    - `by`: per-trial grouping coordinate (default `"condition"`; `None` pools all trials).
    - `align`: event to align on; `"default"` uses the dataset's `default_align` attr (the go
      cue of the reaching tasks) when it has one, else the trial start; otherwise as in
      [`neurodyn.analysis.psth`][].
    - `window`: relative time range (s), `None` for all of it.
    - `smooth`: optional Gaussian std (s) applied along time before averaging.
    - `variables`: what to summarise; default every one of `ARM_VARIABLES` the dataset has
      (`hand_position`, `hand_velocity`, `hand_speed`, `joint_angle`, `joint_velocity`,
      `torque`, `muscle_excitation`, `muscle_activation`).

    **Returns:** a dataset over (`condition`, `time`, and `axis`/`joint`/`muscle`) with
    `<variable>_mean`, `<variable>_std` (ddof = 1, the spread across trials),
    `<variable>_sem` and `n_trials`, plus the per-condition coordinates (target, angle, ...)
    and the other events' mean times relative to the aligning one.

    **Example:**

    ```python
    tr = nd.analysis.trajectories(ds)
    tr.hand_position_mean.sel(axis="x")     # (condition, time)
    ```
    """
    if variables is None:
        variables = [v for v in ARM_VARIABLES if v in ds.data_vars]
        if not variables:
            raise ValueError(
                "this dataset has none of the arm variables "
                f"{ARM_VARIABLES}; pass `variables=` to summarise others."
            )
    if align == "default":
        align = ds.attrs.get("default_align")
    return grouped(
        ds,
        variables,
        by=by,
        align=align,
        window=window,
        smooth=smooth,
        stats=("mean", "std", "sem"),
        kind="trajectories",
    )
