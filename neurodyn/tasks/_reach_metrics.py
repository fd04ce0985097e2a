"""Metrics on hand trajectories, shared by the reaching tasks (numpy; tested on known
trajectories): the per-trial kinematics of one reach and the split of endpoint errors into
bias and scatter."""

from __future__ import annotations

import numpy as np

# Reaction time (our choice): the first output after the go cue where the hand speed reaches
# this fraction of the reach's peak speed (a common kinematic onset criterion).
ONSET_SPEED_FRACTION = 0.1
WITHIN_CM = 2.0  # the success level: endpoint within 2 cm


def reach_metrics(position, velocity, target, *, go_cue, hold_start, end, dt) -> dict:
    r"""Per-trial kinematic metrics of one reach.

    Output index t is the hand state after network step t, i.e. at time (t + 1)·dt from the
    start of the trial; the go cue is presented from step `go_cue` on (time `go_cue`·dt).

    **Arguments:**

    - `position`, `velocity`: hand positions (m) and velocities (m/s), `[B, T, 2]`.
    - `target`: the reach target `[B, 2]` (m).
    - `go_cue`: go-cue step `[B]`; `hold_start`, `end`: first and last step (inclusive) of
      the reach's scored hold window `[B]` (e.g. `go + m + 1` and `T − 1`).
    - `dt`: seconds per step.

    **Returns:** a dict of `[B]` float64 arrays:

    - `endpoint_error_cm`: |hand − target| at step `end` (cm);
    - `hold_error_cm`: mean |hand − target| over the hold window (cm);
    - `endpoint_speed_cm_s`: hand speed at step `end` (cm/s);
    - `peak_speed_cm_s`: the largest hand speed from the go cue to `end` (cm/s);
    - `reaction_time_ms`: time from the go cue to the first output at or after it whose
      speed reaches `ONSET_SPEED_FRACTION` (10 %) of that peak (ms; NaN when the peak is 0).
    """
    position = np.asarray(position, np.float64)
    velocity = np.asarray(velocity, np.float64)
    target = np.asarray(target, np.float64)
    go_cue, hold_start, end = (np.asarray(a, np.int64) for a in (go_cue, hold_start, end))
    n_trials, n_steps = position.shape[:2]
    rows = np.arange(n_trials)
    t = np.arange(n_steps)[None, :]
    distance = np.linalg.norm(position - target[:, None, :], axis=-1)
    speed = np.linalg.norm(velocity, axis=-1)
    in_hold = (t >= hold_start[:, None]) & (t <= end[:, None])
    in_reach = (t >= go_cue[:, None]) & (t <= end[:, None])
    peak = np.where(in_reach, speed, -np.inf).max(axis=1)
    onset_ok = in_reach & (speed >= ONSET_SPEED_FRACTION * peak[:, None]) & (peak[:, None] > 0)
    first = np.where(onset_ok.any(axis=1), np.argmax(onset_ok, axis=1), -1)
    reaction = np.where(first >= 0, (first + 1 - go_cue) * dt * 1e3, np.nan)
    with np.errstate(invalid="ignore"):
        hold = np.where(in_hold, distance, 0.0).sum(1) / np.maximum(in_hold.sum(1), 1)
    return {
        "endpoint_error_cm": 100.0 * distance[rows, end],
        "hold_error_cm": 100.0 * hold,
        "endpoint_speed_cm_s": 100.0 * speed[rows, end],
        "peak_speed_cm_s": 100.0 * np.maximum(peak, 0.0),
        "reaction_time_ms": reaction,
    }


def endpoint_bias_scatter(endpoint, target, condition) -> tuple[np.ndarray, np.ndarray]:
    r"""Split endpoint errors into bias and scatter, per condition.

    For each condition c with n_c repeats i: the mean endpoint m_c = mean_i endpoint_i,
    bias_c = |m_c − target_c| and scatter_c = √(Σ_i |endpoint_i − m_c|² / (n_c − 1)) (the
    root mean square distance from the condition's mean endpoint, with Bessel's correction
    so that it does not shrink with few repeats: the noise-driven variability). A condition
    run once shows no spread: its scatter is reported as 0. Both in cm; `endpoint`,
    `target`: `[B, 2]` (m), `condition`: `[B]` integer labels (a negative label, as on
    training trials, marks a trial of its own condition). Returns `(bias [C], scatter [C])`
    over the sorted distinct labels.

    Example: four repeats ending 1 cm left, right, above and below their target have bias 0
    and scatter √(4/3) cm; the endpoint error is 1 cm for each.
    """
    endpoint = np.asarray(endpoint, np.float64)
    target = np.asarray(target, np.float64)
    condition = np.asarray(condition, np.int64)
    condition = np.where(condition < 0, -1 - np.arange(condition.size), condition)
    labels = np.unique(condition)
    bias, scatter = np.empty(labels.size), np.empty(labels.size)
    for j, c in enumerate(labels):
        pts = endpoint[condition == c]
        mean = pts.mean(axis=0)
        bias[j] = 100.0 * np.linalg.norm(mean - target[condition == c][0])
        n = pts.shape[0]
        sq = np.sum((pts - mean) ** 2)
        scatter[j] = 100.0 * np.sqrt(sq / (n - 1)) if n > 1 else 0.0
    return bias, scatter


def _mean(values) -> float:
    values = np.asarray(values, np.float64)
    if values.size == 0 or np.all(np.isnan(values)):
        return float("nan")
    return float(np.nanmean(values))
