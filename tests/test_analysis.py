"""`neurodyn.analysis`: simulated datasets, PSTHs, trajectories, converters, netCDF, figures,
and the command line's exports — each checked against an independent computation."""

import shutil

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import matplotlib.image
import numpy as np
import pytest
import xarray as xr

import neurodyn as nd
from neurodyn.analysis import _arm
from neurodyn.cli import main

from .helpers import assert_cf_clean

A = nd.analysis

# tiny versions of every task (reaching: 60 network steps of 10 ms, events early)
# (one arm step per network step of 5 ms: a cheaper compile than the default 5 substeps)
_SHORT_REACH = dict(
    n_neurons=8,
    network_dt=0.005,
    arm_dt=0.005,
    duration=0.6,
    idle_range=(0.05, 0.1),
    prep_range=(0.1, 0.2),
    movement_time=0.2,
)
TASKS = {
    "flipflop": ("flipflop", dict(n_steps=30, n_neurons=8)),
    "kalman": ("kalman", dict(n_steps=60, n_neurons=8, hold=10)),
    "lorenz": ("lorenz", dict(n_hidden=8, n_train=10)),
    "oneshot": ("oneshot", dict(n_classes=3, item_steps=3, n_latent=6, n_hidden=6)),
    "digits": ("digits", dict(hidden_sizes=(5,))),
    "reach": ("reach", dict(_SHORT_REACH, plant="muscle")),
    "reach-torque": ("reach", dict(_SHORT_REACH, plant="torque")),
    "double-reach": (
        "double-reach",
        dict(
            n_neurons=8,
            network_dt=0.01,
            arm_dt=0.005,
            duration=1.2,
            prep_range=(0.1, 0.2),
            movement_time=0.2,
        ),
    ),
}
_CACHE: dict = {}
HAS_REACH = "reach" in nd.tasks.available()
needs_reach = pytest.mark.skipif(not HAS_REACH, reason="the reaching tasks are not installed")


def tasks_param(names):
    """pytest params over task names, the reaching ones skipped when absent."""
    return [pytest.param(n, marks=needs_reach) if "reach" in n else n for n in names]


def simulated(name):
    """(task, model, dataset) of a tiny task, simulated once per test session."""
    if name not in _CACHE:
        task_name, kwargs = TASKS[name]
        task = nd.tasks.get(task_name, **kwargs)
        model = task.default_model(key=jr.PRNGKey(0))
        n_trials = 128 if name == "double-reach" else None  # 2 repeats of 64 conditions
        ds = A.simulate(model, task, key=jr.PRNGKey(1), n_trials=n_trials)
        _CACHE[name] = (task, model, ds)
    return _CACHE[name]


def synthetic_trials(rates, events, conditions, dt=0.01):
    """A trials dataset with given rates `[trial, time, neuron]` and go cues (s)."""
    n_trials, n_steps, _ = rates.shape
    return xr.Dataset(
        {"rates": (("trial", "time", "neuron"), rates, {"units": "1", "long_name": "rate"})},
        coords={
            "time": ("time", np.arange(n_steps) * dt, {"units": "s", "long_name": "time"}),
            "condition": ("trial", np.asarray(conditions), {"units": "1", "long_name": "cond"}),
            "go_cue": (
                "trial",
                np.asarray(events, float),
                {"units": "s", "long_name": "go cue", "role": "event"},
            ),
        },
    )


# ----------------------------------------------------------------------------- PSTH


def test_psth_equals_hand_computed_average():
    rng = np.random.default_rng(0)
    dt, n_steps = 0.01, 40
    conditions = np.array([0, 1, 0, 2, 1, 0, 2, 2, 1])
    event_steps = rng.integers(5, 30, size=conditions.size)
    rates = rng.normal(size=(conditions.size, n_steps, 3))
    ds = synthetic_trials(rates, event_steps * dt, conditions, dt)
    p = A.psth(ds, align="go_cue", window=(-0.1, 0.15))
    rel_steps = np.arange(-10, 16)
    np.testing.assert_allclose(p.time.values, rel_steps * dt, atol=1e-12)
    for c in range(3):
        for j, k in enumerate(rel_steps):
            samples = [
                rates[i, event_steps[i] + k]
                for i in range(conditions.size)
                if conditions[i] == c and 0 <= event_steps[i] + k < n_steps
            ]
            assert p.n_trials.values[c, j] == len(samples)
            if len(samples) == 0:
                assert np.all(np.isnan(p.rates_mean.values[c, j]))
                continue
            samples = np.array(samples)
            np.testing.assert_allclose(p.rates_mean.values[c, j], samples.mean(0), rtol=1e-12)
            if len(samples) >= 2:
                sem = samples.std(0, ddof=1) / np.sqrt(len(samples))
                np.testing.assert_allclose(p.rates_sem.values[c, j], sem, rtol=1e-10)
            else:
                assert np.all(np.isnan(p.rates_sem.values[c, j]))
    assert p.rates_mean.dims == ("condition", "time", "neuron")
    assert p.time.attrs["align"] == "go_cue" and p.time.attrs["units"] == "s"


def test_psth_realigns_trials_with_different_events():
    """Each trial is a bump centred on its own go cue; aligned, all trials coincide."""
    dt, n_steps = 0.01, 100
    event_steps = np.array([20, 35, 50, 65])
    t = np.arange(n_steps) * dt
    bump = lambda s: np.exp(-0.5 * (s / 0.05) ** 2)  # noqa: E731
    rates = np.stack([bump(t - e * dt) for e in event_steps])[..., None]
    ds = synthetic_trials(rates, event_steps * dt, np.zeros(4, int), dt)
    p = A.psth(ds, align="go_cue", window=(-0.2, 0.3))
    np.testing.assert_allclose(p.rates_mean.values[0, :, 0], bump(p.time.values), atol=1e-12)
    np.testing.assert_allclose(p.rates_sem.values[0, :, 0], 0.0, atol=1e-12)
    assert np.all(p.n_trials.values == 4)
    # the whole range: edges are covered by fewer trials
    full = A.psth(ds, align="go_cue", window=None)
    assert full.time.values[0] == pytest.approx(-0.65) and full.time.values[-1] == pytest.approx(
        0.79
    )
    assert full.n_trials.values[0, 0] == 1 and full.n_trials.values[0, -1] == 1
    assert full.n_trials.max() == 4
    # without alignment the trials do not coincide
    raw = A.psth(ds, align=None, window=None)
    assert raw.rates_sem.max() > 0.1


def test_psth_float32_event_times_stay_on_the_grid():
    """Event times stored in float32 (the tasks' default dtype) are exact index shifts."""
    dt, n_steps = 0.002, 1000
    event_steps = np.array([400, 537, 799])
    events32 = (event_steps * np.float32(dt)).astype(np.float32)
    assert np.any(events32.astype(np.float64) != event_steps * dt)
    rates = np.random.default_rng(2).normal(size=(3, n_steps, 2))
    ds = synthetic_trials(rates, events32, [0, 1, 2], dt)
    p = A.psth(ds, align="go_cue", window=(-0.3, 0.4))
    for c, e in enumerate(event_steps):
        np.testing.assert_array_equal(p.rates_mean.values[c], rates[c, e - 150 : e + 201])


def test_psth_interpolates_events_off_the_grid():
    dt, n_steps = 0.01, 50
    t = np.arange(n_steps) * dt
    events = np.array([0.1234, 0.2051, 0.1777])
    slope = np.array([1.0, -2.0])
    rates = (t[None, :, None] - events[:, None, None]) * slope  # linear: interpolation is exact
    ds = synthetic_trials(rates, events, np.zeros(3, int), dt)
    p = A.psth(ds, align="go_cue", window=(-0.1, 0.2))
    np.testing.assert_allclose(p.rates_mean.values[0], p.time.values[:, None] * slope, atol=1e-12)


def test_psth_smoothing_and_errors():
    dt = 0.01
    rates = np.zeros((2, 60, 1))
    rates[:, 30] = 1.0  # an impulse: the smoothed trial is the (edge-normalised) Gaussian
    ds = synthetic_trials(rates, [0.3, 0.3], [0, 0], dt)
    p = A.psth(ds, align="go_cue", window=(-0.1, 0.1), smooth=0.02)
    g = np.exp(-0.5 * (p.time.values / 0.02) ** 2) * (np.abs(p.time.values) <= 0.08 + 1e-9)
    np.testing.assert_allclose(p.rates_mean.values[0, :, 0], g / _kernel_sum(2.0), rtol=1e-10)
    # edge renormalisation: a constant trial stays constant up to its first and last sample
    flat = synthetic_trials(np.ones((1, 60, 1)), [0.0], [0], dt)
    q = A.psth(flat, align=None, window=None, smooth=0.05)
    np.testing.assert_allclose(q.rates_mean.values, 1.0, rtol=1e-12)
    with pytest.raises(ValueError, match="accepted: trial_start, go_cue"):
        A.psth(ds, align="target_onset")
    with pytest.raises(ValueError, match="`by` = 'direction'"):
        A.psth(ds, by="direction")


def _kernel_sum(sigma_steps):
    half = int(np.ceil(4 * sigma_steps))
    k = np.arange(-half, half + 1)
    return np.exp(-0.5 * (k / sigma_steps) ** 2).sum()


# ----------------------------------------------------------------------------- simulate


@pytest.mark.parametrize("name", tasks_param(TASKS))
def test_every_variable_has_units_and_long_name(name):
    task, model, ds = simulated(name)
    for vname, v in ds.variables.items():
        assert "units" in v.attrs, f"{name}: {vname} has no units"
        assert "long_name" in v.attrs, f"{name}: {vname} has no long_name"
    for key in ("task", "task_config", "model", "model_config", "versions", "trials"):
        assert key in ds.attrs, key
    assert ds.attrs["versions"]["jax"] and ds.attrs["task"] == task.name
    if task.recurrent:
        assert {"trial", "time", "neuron"} <= set(ds.dims)
        assert ds.rates.dims == ("trial", "time", "neuron")
        np.testing.assert_allclose(np.diff(ds.time.values), task.dt)
        assert ds.cell_type.shape == (ds.sizes["neuron"],)


@needs_reach
def test_reach_dataset_layout_and_events():
    task, model, ds = simulated("reach")
    assert ds.attrs["trials"] == "canonical"
    assert ds.sizes["trial"] == 8 * 4 and sorted(set(ds.condition.values)) == list(range(8))
    for name, dims, units in [
        ("hand_position", ("trial", "time", "axis"), "m"),
        ("hand_velocity", ("trial", "time", "axis"), "m s-1"),
        ("joint_angle", ("trial", "time", "joint"), "rad"),
        ("joint_velocity", ("trial", "time", "joint"), "rad s-1"),
        ("torque", ("trial", "time", "joint"), "N m"),
        ("muscle_activation", ("trial", "time", "muscle"), "1"),
        ("muscle_excitation", ("trial", "time", "muscle"), "1"),
    ]:
        assert ds[name].dims == dims and ds[name].attrs["units"] == units, name
    assert list(ds.muscle.values) == list(nd.plants.MUSCLE_NAMES)
    # the go cue is the first bin without the fixation input (time = bin start)
    fixation = ds.inputs.sel(input="fixation").values
    for i in range(ds.sizes["trial"]):
        go = ds.go_cue.values[i]
        before = ds.time.values < go - 1e-9
        assert np.all(fixation[i, before] == 1) and np.all(fixation[i, ~before] == 0)
    # the loop's own output is the hand state in the dataset
    np.testing.assert_allclose(ds.outputs.values[..., :2], ds.hand_position.values, rtol=1e-12)
    np.testing.assert_allclose(ds.hand_speed, np.linalg.norm(ds.hand_velocity, axis=-1))
    # Dale-free motor network: cell types present but "none"
    assert set(ds.cell_type.values) == {"none"}


@needs_reach
@pytest.mark.parametrize("plant", ["muscle", "torque"])
def test_closed_loop_control_reproduces_the_loop_step(plant, getkey):
    task = nd.tasks.get("reach", **dict(_SHORT_REACH, plant=plant))
    loop = task.default_model(key=getkey())
    batch = task.sample(key=getkey(), batch_size=1)
    noise = loop.sample_noise(getkey(), 5)

    @eqx.filter_jit
    def both(loop, carry, u, step_noise):
        new, _ = loop.step(carry, u, step_noise)
        output, control = _arm.closed_loop_control(loop, carry, u, step_noise)
        return new, output, control, loop.plant_step(carry.plant, control)

    carry = loop.initial_state()
    for t in range(5):
        step_noise = None if noise is None else jax.tree.map(lambda a: a[t], noise)
        new, output, control, replayed = both(loop, carry, batch.inputs[0, t], step_noise)
        np.testing.assert_allclose(replayed, new.plant, rtol=1e-12)
        if plant == "torque":
            np.testing.assert_allclose(control, output)
        carry = new


def test_kalman_oracle_matches_a_textbook_filter():
    task, _, ds = simulated("kalman")
    y, tau, b, beta = (ds[v].values[0] for v in ("observation", "tau", "bias", "beta"))
    switch = ds.switch.values[0]
    m, p, est = 0.0, 1.0, []
    for t in range(y.size):  # scalar Kalman filter, prior N(b, σ²) at every switch
        if switch[t]:
            m_pred, p_pred = b[t], task.sigma**2
        else:
            a = 1 - 1 / tau[t]
            m_pred = a * m + b[t] / tau[t]
            p_pred = a * a * p + task.sigma**2 * (2 / tau[t] - 1 / tau[t] ** 2)
        k = p_pred / (p_pred + beta[t] ** 2)
        m, p = m_pred + k * (y[t] - m_pred), (1 - k) * p_pred
        est.append(m)
    np.testing.assert_allclose(ds.oracle_estimate.values[0], est, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ds.latent, ds.targets.values[..., 0])


def test_digits_hidden_activity_explains_the_logits():
    task, model, ds = simulated("digits")
    logits = np.asarray(jax.vmap(model)(jnp.asarray(ds.inputs.values)))
    np.testing.assert_allclose(ds.outputs.values, logits, rtol=1e-12)
    hidden = ds.rates.values
    assert hidden.shape == (ds.sizes["trial"], 5) and np.all(hidden >= 0)  # ReLU units
    design = np.concatenate([hidden, np.ones((len(hidden), 1))], axis=1)
    coef, *_ = np.linalg.lstsq(design, logits, rcond=None)  # logits are affine in the units
    np.testing.assert_allclose(design @ coef, logits, atol=1e-9)
    assert np.mean(ds.prediction.values == ds.targets.values) == pytest.approx(
        np.mean(logits.argmax(-1) == np.asarray(task.y_test)[: ds.sizes["trial"]])
    )


@needs_reach
def test_simulate_trial_selection(getkey):
    task, model, _ = simulated("reach")
    # 32 trials either way: the shapes of the canonical run, so the rollout is not recompiled
    fresh = A.simulate(model, task, key=getkey(), n_trials=32, conditions=False)
    assert fresh.sizes["trial"] == 32 and "condition" not in fresh.coords
    assert fresh.attrs["trials"] == "fresh" and len(np.unique(fresh.angle.values)) == 32
    given = A.simulate(model, task, key=getkey(), n_trials=30, conditions=task.conditions())
    assert given.sizes["trial"] == 32 and given.attrs["trials"] == "given"
    assert np.all(given.condition.values == np.repeat(np.arange(8), 4))
    ff, ff_model, _ = simulated("flipflop")
    with pytest.raises(ValueError, match="no canonical evaluation conditions"):
        A.simulate(ff_model, ff, key=getkey(), conditions=True)
    with pytest.raises(ValueError, match="`n_trials` must be >= 1"):
        A.simulate(ff_model, ff, key=getkey(), n_trials=0)


# ----------------------------------------------------------------------------- trajectories


@needs_reach
def test_trajectories_mean_and_spread_by_condition():
    _, _, ds = simulated("reach")
    tr = A.trajectories(ds)
    assert tr.time.attrs["align"] == "go_cue"
    go, dt = ds.go_cue.values, ds.attrs["dt"]
    assert np.allclose(go, go[0])  # canonical trials share their timing
    first = int(round((go[0] + tr.time.values[0]) / dt))
    assert first == 0  # the whole trial, from its start
    for c in range(8):
        members = ds.hand_position.values[ds.condition.values == c]
        sel = members[:, first:]
        np.testing.assert_allclose(tr.hand_position_mean.values[c], sel.mean(0), rtol=1e-10)
        np.testing.assert_allclose(
            tr.hand_position_std.values[c], sel.std(0, ddof=1), rtol=1e-8, atol=1e-15
        )
    assert {"torque_mean", "muscle_activation_std", "hand_speed_mean"} <= set(tr.data_vars)
    assert tr.target.dims == ("condition", "axis")
    assert tr.target_onset.values == pytest.approx(-(ds.go_cue - ds.target_onset).values[0])


# ----------------------------------------------------------------------------- converters


def test_converters():
    rng = np.random.default_rng(1)
    conditions = np.array([0, 0, 1, 1, 1])
    ds = synthetic_trials(rng.normal(size=(5, 20, 4)), np.full(5, 0.05), conditions)
    p = A.psth(ds, align="go_cue", window=(0.0, 0.1))
    datas, times = A.to_jpca(p, return_times=True)
    assert len(datas) == 2 and datas[0].shape == (11, 4)
    np.testing.assert_allclose(datas[1], p.rates_mean.values[1])
    np.testing.assert_allclose(times, p.time.values)
    R = A.to_dpca(p)
    assert R.shape == (4, 2, 11)
    np.testing.assert_allclose(R[2, 1], p.rates_mean.values[1, :, 2])
    X = A.to_dpca(ds, align="go_cue", window=(0.0, 0.1))
    assert X.shape == (4, 2, 11, 3)
    assert np.all(np.isnan(X[:, 0, :, 2]))  # condition 0 has two trials
    np.testing.assert_allclose(np.nanmean(X, axis=-1), R)
    arrays = A.to_numpy(ds)
    assert arrays["rates"].shape == (5, 20, 4) and isinstance(arrays["condition"], np.ndarray)
    with pytest.raises(ValueError, match="average first"):
        A.to_jpca(ds, "rates")


# ----------------------------------------------------------------------------- netCDF


def test_save_load_round_trip_is_identical(tmp_path):
    _, _, ds = simulated("flipflop")
    ds = ds.copy()
    ds.attrs.update(
        flag=True,
        nothing=None,
        nested={"a": [1, 2], "b": {"c": None}},
        names=["x", "y"],
        matrix=np.arange(6.0).reshape(2, 3),
        mask=np.array([True, False]),
        scale=np.float32(2.5),
    )
    ds["rates"].attrs["frozen"] = False
    ds["rates32"] = ds["rates"].astype(np.float32)
    ds.coords["label"] = ("trial", np.array([f"t{i}" for i in range(ds.sizes["trial"])]))
    ds["label"].attrs.update(units="1", long_name="label")
    path = A.save(ds, tmp_path / "trials.nc")
    back = A.load(path)
    assert back.identical(ds)
    for name in ds.variables:
        assert back[name].dtype == ds[name].dtype, name
    assert back.attrs["flag"] is True and back.attrs["nothing"] is None
    assert back.attrs["nested"] == {"a": [1, 2], "b": {"c": None}}
    assert back.attrs["matrix"].shape == (2, 3) and back.attrs["mask"].dtype == bool
    assert back["rates"].attrs["frozen"] is False
    assert back.onset.dtype == bool and back.cell_type.dtype.kind == "U"
    assert not list(tmp_path.glob(".*tmp*"))  # atomic: no temporary file left
    import h5py

    with h5py.File(path) as f:
        assert f["rates"].compression == "gzip"
    # the file itself is plain: JSON text named in json_attributes, numbers as numbers
    import json

    import h5netcdf

    with h5netcdf.File(path, "r") as f:
        listed = f.attrs["json_attributes"].split()
        assert {"flag", "nothing", "nested", "names", "task_config", "versions"} <= set(listed)
        assert json.loads(f.attrs["nested"]) == {"a": [1, 2], "b": {"c": None}}
        assert json.loads(f.attrs["flag"]) is True and f.attrs["array_attributes"] == "matrix mask"
        assert float(f.attrs["scale"]) == 2.5 and f.attrs["Conventions"] == "CF-1.10"
        assert json.loads(f.variables["rates"].attrs["frozen"]) is False
        assert not any(k.startswith("_neurodyn") for k in f.variables["cell_type"].attrs)
    assert "json_attributes" not in back.attrs and "array_attributes" not in back.attrs


# ----------------------------------------------------------------------------- figures


def _check_png(fig, path):
    A.save_figure(fig, path)
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 300
    assert np.ptp(image[..., :3]) > 0.5  # not blank


FIGURES = [
    ("flipflop", A.plot_flipflop),
    ("kalman", A.plot_kalman_traces),
    ("kalman", A.plot_kalman_error),
    ("lorenz", A.plot_lorenz_attractor),
    ("oneshot", A.plot_oneshot),
    ("digits", A.plot_digits),
    ("reach", A.plot_hand_trajectories),
    ("reach", A.plot_motor_output),
    ("reach-torque", A.plot_hand_trajectories),
    ("reach-torque", A.plot_motor_output),
    ("double-reach", A.plot_hand_trajectories),
    ("double-reach", A.plot_motor_output),
]


@pytest.mark.parametrize(
    "name, plot",
    [pytest.param(n, f, marks=needs_reach) if "reach" in n else (n, f) for n, f in FIGURES],
    ids=[f"{n}-{f.__name__}" for n, f in FIGURES],
)
def test_figures_render(name, plot, tmp_path):
    _, _, ds = simulated(name)
    _check_png(plot(ds), tmp_path / "figure.png")


@needs_reach
@pytest.mark.parametrize("name", ["reach", "double-reach"])
def test_psth_grid_renders(name, tmp_path):
    _, _, ds = simulated(name)
    align = "go_cue" if name == "reach" else "go_cue1"
    p = A.psth(ds, align=align, window=(-0.1, 0.3))
    _check_png(A.plot_psth_grid(p, n_neurons=6), tmp_path / "psth.png")


def test_learning_curves_render(tmp_path):
    it = np.arange(1, 31)
    histories = {
        name: [
            xr.Dataset(
                {
                    "loss": ("iteration", np.exp(-it / (10 + s)) + 0.01),
                    "wall_time": ("iteration", 0.1 * it),
                },
                coords={"iteration": it},
            )
            for s in range(3)
        ]
        for name in ("sofo", "adam")
    }
    fig = A.plot_learning_curves(histories, title="test")
    assert fig.axes[0].get_yscale() == "log"  # a loss over decades
    _check_png(fig, tmp_path / "lc.png")
    accuracy = {
        "run": xr.Dataset(
            {"eval_percent_correct": ("iteration", 77 + 20 * (1 - np.exp(-it / 10)))},
            coords={"iteration": it},
        )
    }
    fig = A.plot_learning_curves(accuracy, metric="eval_percent_correct")
    assert fig.axes[0].get_yscale() == "linear"  # 77-97 %: a log axis would have no labels


# ----------------------------------------------------------------------------- command line

TINY = [
    "--iters",
    "2",
    "--batch-size",
    "2",
    "--n-tangents",
    "2",
    "--no-progress",
    "--set",
    "task.n_steps=20",
    "--set",
    "task.n_neurons=6",
]


@pytest.fixture(scope="module")
def flipflop_run(tmp_path_factory):
    """A tiny `neurodyn fit flipflop` run folder, written once for this module (read-only)."""
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["fit", "flipflop", "--out", str(out), *TINY]) == 0
    return out


def test_export_from_saved_run_matches_fit(flipflop_run, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(flipflop_run, out)
    for name in ("trials.nc", "figures/flipflop.png", "figures/learning_curve.png"):
        assert (out / name).exists(), name
    shutil.copy(out / "trials.nc", tmp_path / "trials_fit.nc")
    (out / "trials.nc").unlink()
    assert main(["export", str(out)]) == 0, capsys.readouterr().err
    written, rebuilt = A.load(tmp_path / "trials_fit.nc"), A.load(out / "trials.nc")
    assert rebuilt.identical(written)
    assert main(["export", str(out), "--n-trials", "3"]) == 0
    assert A.load(out / "trials.nc").sizes["trial"] == 3


def test_load_run_reads_the_whole_folder(flipflop_run):
    import json
    import tomllib

    run = A.load_run(flipflop_run)
    # against the files read by hand with the standard library and plain xarray
    assert run.config == tomllib.loads((flipflop_run / "config.toml").read_text())
    assert run.summary == json.loads((flipflop_run / "run.json").read_text())
    with xr.open_dataset(flipflop_run / "history.nc", engine="h5netcdf") as raw:
        np.testing.assert_array_equal(run.history.loss.values, raw.loss.values)
        assert json.loads(raw.attrs["versions"]) == run.history.attrs["versions"]
        assert "versions" in raw.attrs["json_attributes"].split()
    assert run.history.sizes["iteration"] == 2 and run.trials.sizes["trial"] > 0
    assert run.psth is None and run.trajectories is None  # flip-flop: no conditions, no arm
    assert set(run.figures) == {"learning_curve", "flipflop"}
    assert all(p.exists() for p in run.figures.values()) and len(run.checkpoints) >= 1
    # eval units come from the task: percent for the flip-flop's percent_correct
    assert run.history.eval_percent_correct.attrs["units"] == "percent"
    assert run.history.eval_mse.attrs["units"] == "1"
    task, model = run.model()  # the trained network: it reproduces the exported trials
    again = A.simulate(model, task, key=jr.fold_in(jr.PRNGKey(run.config["seed"]), 2))
    np.testing.assert_array_equal(again.rates.values, run.trials.rates.values)
    assert "flipflop" in repr(run) and "history" in repr(run)
    with pytest.raises(ValueError, match="not a run folder"):
        A.load_run(flipflop_run / "checkpoints")
    with pytest.raises(FileNotFoundError, match="`path`"):
        A.load_run(flipflop_run / "nothing")


def test_run_folder_is_cf_clean(flipflop_run):
    files = sorted(flipflop_run.glob("*.nc"))
    assert {p.name for p in files} == {"history.nc", "trials.nc"}
    units = {p.name: assert_cf_clean(p) for p in files}
    assert units["history.nc"]["wall_time"] == "s"
    assert units["trials.nc"]["time"] == "1"  # network steps: the flip-flop has no seconds


def test_metric_units_follow_the_metric_names():
    unit = pytest.importorskip("cf_units").Unit
    task = nd.tasks.get("flipflop")
    expect = {
        "endpoint_error_cm": ("cm", 2.0, "m", 0.02),
        "endpoint_speed_2_cm_s": ("cm s-1", 50.0, "m s-1", 0.5),
        "reaction_time_ms": ("ms", 250.0, "s", 0.25),
        "percent_correct": ("percent", 97.0, "1", 0.97),
        "fraction_within_2cm": ("1", 0.5, "1", 0.5),
        "test_mse": ("1", 0.1, "1", 0.1),
    }
    for name, (units, value, other, converted) in expect.items():
        assert task.metric_units(name) == units, name
        assert unit(units).convert(value, unit(other)) == pytest.approx(converted), name


@needs_reach
def test_export_run_reach_writes_psth_and_figures(tmp_path):
    task, model, _ = simulated("reach-torque")
    outputs = A.export_run(tmp_path, model, task, key=jr.PRNGKey(2), n_trials=16)
    for name in (
        "trials",
        "psth",
        "trajectories",
        "psth_figure",
        "hand_trajectories",
        "motor_output",
    ):
        assert (tmp_path / outputs[name]).exists(), name
    p = A.load(tmp_path / "psth.nc")
    assert p.rates_mean.dims == ("condition", "time", "neuron") and p.attrs["align"] == "go_cue"
    assert p.attrs["neurodyn_dataset"] == "psth"
    covered = p.n_trials.values > 0  # the short test trials do not span the whole window
    assert np.all(p.n_trials.values[covered] == 2) and covered.sum() > 0.5 * covered.size
    assert np.all(np.isfinite(p.rates_mean.values[covered]))
    assert np.all(np.isnan(p.rates_mean.values[~covered]))
    # CF: plain readers see UDUNITS units; the mixed-unit channels name theirs in a coordinate
    for name in ("trials.nc", "psth.nc", "trajectories.nc"):
        assert_cf_clean(tmp_path / name)
    ds = A.load(tmp_path / "trials.nc")
    assert ds.outputs.attrs["units"] == "1" and "output_units" in ds.outputs.attrs["long_name"]
    assert list(ds.output_units.values) == ["m", "m", "m s-1", "m s-1"]
    for i, var in [(0, "hand_position"), (2, "hand_velocity")]:
        assert ds[var].attrs["units"] == ds.output_units.values[i]
        np.testing.assert_allclose(ds.outputs.values[..., i : i + 2], ds[var].values)
    assert ds.inputs.attrs["units"] == "1" and list(ds.input_units.values) == ["1", "m", "m"]
