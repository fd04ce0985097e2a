"""`nd.fit`: every optimizer, history, retries on non-finite steps, checkpoints and resume."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import neurodyn as nd
from neurodyn.training import CheckpointError, FitError, list_checkpoints

from ._fit_fixtures import TeacherTask, TinyRNN

REPO = Path(__file__).resolve().parents[1]

OPTIMIZERS = {
    "sofo": lambda: nd.optim.sofo(learning_rate=1.0, n_tangents=16, damping=1e-3),
    "first-order-sofo": lambda: nd.optim.first_order_sofo(learning_rate=0.3, n_tangents=16),
    "fgd": lambda: nd.optim.fgd(learning_rate=0.01, n_tangents=16),
    "adam": lambda: nd.optim.adam(1e-2),
}


@pytest.fixture(scope="module")
def task():
    return TeacherTask(key=jr.PRNGKey(0))


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_fit_lowers_the_loss_with_every_optimizer(task, name):
    model = task.default_model(key=jr.PRNGKey(1))
    before = task.evaluate(model, key=jr.PRNGKey(9))["mse"]
    result = nd.fit(
        model,
        task,
        OPTIMIZERS[name](),
        n_iters=40,
        batch_size=16,
        key=jr.PRNGKey(2),
        progress=False,
        eval_every=20,
    )
    after = result.final_metrics["mse"]
    assert after < 0.8 * before, (before, after)
    assert np.all(np.isfinite(result.history["loss"].values))


def test_history_has_the_documented_variables(task):
    model = task.default_model(key=jr.PRNGKey(1))
    result = nd.fit(
        model,
        task,
        OPTIMIZERS["sofo"](),
        n_iters=12,
        batch_size=8,
        key=jr.PRNGKey(2),
        progress=False,
        eval_every=5,
        log_every=4,
    )
    h = result.history
    assert list(h["iteration"].values) == list(range(1, 13))
    for name in (
        "loss",
        "finite",
        "retries",
        "wall_time",
        "damping",
        "top_eigenvalue",
        "learning_rate",
        "eval_mse",
    ):
        assert name in h, name
        assert "units" in h[name].attrs and "long_name" in h[name].attrs
    assert np.all(np.diff(h["wall_time"].values) >= 0)
    evaluated = np.isfinite(h["eval_mse"].values)
    assert list(h["iteration"].values[evaluated]) == [5, 10, 12]
    assert np.all(h["learning_rate"].values == 1.0)


def test_same_seed_same_run(task):
    runs = [
        nd.fit(
            task.default_model(key=jr.PRNGKey(1)),
            task,
            OPTIMIZERS["sofo"](),
            n_iters=8,
            batch_size=8,
            key=jr.PRNGKey(3),
            progress=False,
            eval_every=0,
        )
        for _ in range(2)
    ]
    assert np.array_equal(runs[0].model.W, runs[1].model.W)
    assert np.array_equal(runs[0].history["loss"].values, runs[1].history["loss"].values)


def test_non_finite_losses_are_rejected_and_retried():
    task = TeacherTask(key=jr.PRNGKey(0), p_nan=0.3)
    model = task.default_model(key=jr.PRNGKey(1))
    seen = []
    result = nd.fit(
        model,
        task,
        OPTIMIZERS["sofo"](),
        n_iters=30,
        batch_size=8,
        key=jr.PRNGKey(2),
        progress=False,
        eval_every=0,
        log_every=1,
        callbacks=[lambda it, recs, m: seen.append(bool(jnp.isfinite(m.W).all()))],
    )
    retries = result.history["retries"].values
    assert retries.sum() > 0  # some batches were NaN and were redrawn
    assert np.all(result.history["finite"].values)
    assert all(seen)
    assert np.all(np.isfinite(np.asarray(result.model.W)))


def test_always_non_finite_stops_with_a_clear_error():
    task = TeacherTask(key=jr.PRNGKey(0), p_nan=1.0)
    model = task.default_model(key=jr.PRNGKey(1))
    with pytest.raises(FitError, match="not finite after 2 retries"):
        nd.fit(
            model,
            task,
            OPTIMIZERS["sofo"](),
            n_iters=5,
            batch_size=8,
            key=jr.PRNGKey(2),
            progress=False,
            eval_every=0,
            max_retries=2,
        )


@pytest.mark.parametrize("name", ["sofo", "adam"])
def test_a_dead_network_stops_with_a_clear_error(task, name):
    """All weights zero: the hidden state stays 0 and the read-out is 0, so the output does
    not depend on any parameter (exact zero gradient) while the loss stays positive. `fit`
    stops after `zero_gradient_patience` such steps instead of running on unchanged."""
    model = task.default_model(key=jr.PRNGKey(1))
    model = jax.tree.map(jnp.zeros_like, model)
    kwargs = dict(n_iters=30, batch_size=8, key=jr.PRNGKey(2), progress=False, eval_every=0)
    with pytest.raises(FitError, match="exactly zero for 5 iterations"):
        nd.fit(model, task, OPTIMIZERS[name](), zero_gradient_patience=5, log_every=1, **kwargs)
    result = nd.fit(model, task, OPTIMIZERS[name](), zero_gradient_patience=None, **kwargs)
    assert all(r == 0 for r in result.history["vg_norm" if name == "sofo" else "grad_norm"].values)
    with pytest.raises(ValueError, match="zero_gradient_patience"):
        nd.fit(model, task, OPTIMIZERS[name](), zero_gradient_patience=0, **kwargs)


def test_bad_arguments(task):
    model = task.default_model(key=jr.PRNGKey(1))
    with pytest.raises(ValueError, match="batch_size"):
        nd.fit(model, task, n_iters=1, batch_size=0, key=jr.PRNGKey(0), progress=False)
    with pytest.raises(TypeError, match="n_iters"):
        nd.fit(model, task, n_iters=1.5, batch_size=2, key=jr.PRNGKey(0), progress=False)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        nd.fit(model, task, n_iters=1, batch_size=2, key=jr.PRNGKey(0), resume=True, progress=False)
    with pytest.raises(TypeError, match="optimizer"):
        nd.fit(model, task, "adam", n_iters=1, batch_size=2, key=jr.PRNGKey(0))


class CountingTask(TeacherTask):
    """Counts how often `sample` is traced (a trace-time side effect)."""

    def sample(self, *, key, batch_size):
        TRACES.append(1)
        return super().sample(key=key, batch_size=batch_size)


TRACES = []


def test_no_recompilation_after_the_first_step():
    task = CountingTask(key=jr.PRNGKey(0))
    model = task.default_model(key=jr.PRNGKey(1))
    TRACES.clear()
    nd.fit(
        model,
        task,
        OPTIMIZERS["sofo"](),
        n_iters=6,
        batch_size=8,
        key=jr.PRNGKey(2),
        progress=False,
        eval_every=0,
        log_every=2,
        max_retries=0,
    )
    assert len(TRACES) == 1


class LeakyTinyRNN(TinyRNN):
    """A model with a plain Python float among its leaves (as an arm's `dt` or masses)."""

    leak: float

    def __init__(self, *, key, leak=0.3):
        super().__init__(key=key)
        self.leak = leak

    def step(self, carry, u, noise=None):
        h = carry + self.leak * (-carry + jnp.tanh(carry) @ self.W + u @ self.W_in + self.b)
        return h, jnp.tanh(h) @ self.W_out


def test_python_number_leaves_survive_the_retry_loop():
    task = CountingTask(key=jr.PRNGKey(0))
    model = LeakyTinyRNN(key=jr.PRNGKey(1))
    traces = []
    for n_iters in (1, 6):
        TRACES.clear()
        result = nd.fit(
            model,
            task,
            OPTIMIZERS["sofo"](),
            n_iters=n_iters,
            batch_size=8,
            key=jr.PRNGKey(2),
            progress=False,
            eval_every=0,
            log_every=2,
            max_retries=2,
        )
        traces.append(len(TRACES))
        assert type(result.model.leak) is float
    # one compilation (the first attempt and the retry loop's body each trace `sample`):
    # five more steps after the first trace nothing new
    assert traces[1] == traces[0]


# ---------------------------------------------------------------- checkpoints


def _run_script(ckpt_dir, out, n_iters, resume=False, slow=False, wait=True):
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    cmd = [
        sys.executable,
        str(REPO / "tests" / "_resume_script.py"),
        str(ckpt_dir),
        str(out),
        str(n_iters),
        "1" if resume else "0",
        "1" if slow else "0",
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if wait:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-3000:]
    return proc


def test_kill_and_resume_is_bit_identical(tmp_path):
    n_iters = 24
    _run_script(tmp_path / "full", tmp_path / "full.npz", n_iters)
    proc = _run_script(tmp_path / "killed", tmp_path / "killed.npz", n_iters, slow=True, wait=False)
    deadline = time.time() + 240
    while time.time() < deadline:
        ckpts = list_checkpoints(tmp_path / "killed")
        if ckpts and int(ckpts[-1].name[5:13]) >= 9:
            break
        if proc.poll() is not None:
            pytest.fail("the training process ended before it could be killed")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    last = int(list_checkpoints(tmp_path / "killed")[-1].name[5:13])
    assert 9 <= last < n_iters
    assert not (tmp_path / "killed.npz").exists()
    _run_script(tmp_path / "killed", tmp_path / "killed.npz", n_iters, resume=True)
    full, resumed = np.load(tmp_path / "full.npz"), np.load(tmp_path / "killed.npz")
    assert np.array_equal(full["W"], resumed["W"])
    assert np.array_equal(full["W_out"], resumed["W_out"])
    assert np.array_equal(full["loss"], resumed["loss"])


def test_corrupt_checkpoint_is_named_and_previous_kept(task, tmp_path):
    model = task.default_model(key=jr.PRNGKey(1))
    kwargs = dict(
        batch_size=8,
        key=jr.PRNGKey(2),
        progress=False,
        eval_every=0,
        checkpoint_dir=tmp_path,
        checkpoint_every=2,
    )
    nd.fit(model, task, OPTIMIZERS["sofo"](), n_iters=6, **kwargs)
    ckpts = list_checkpoints(tmp_path)
    assert [p.name for p in ckpts] == ["ckpt_00000004.eqx", "ckpt_00000006.eqx"]
    data = bytearray(ckpts[-1].read_bytes())
    data[-10] ^= 0xFF
    ckpts[-1].write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        nd.fit(model, task, OPTIMIZERS["sofo"](), n_iters=8, resume=True, **kwargs)
    assert ckpts[0].exists()
    ckpts[-1].write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(CheckpointError, match="truncated"):
        nd.fit(model, task, OPTIMIZERS["sofo"](), n_iters=8, resume=True, **kwargs)


def test_mismatched_checkpoint_says_what_differs(task, tmp_path):
    model = task.default_model(key=jr.PRNGKey(1))
    kwargs = dict(
        key=jr.PRNGKey(2), progress=False, eval_every=0, checkpoint_dir=tmp_path, checkpoint_every=2
    )
    nd.fit(model, task, OPTIMIZERS["sofo"](), n_iters=2, batch_size=8, **kwargs)
    with pytest.raises(CheckpointError, match="batch_size"):
        nd.fit(model, task, OPTIMIZERS["sofo"](), n_iters=4, batch_size=4, resume=True, **kwargs)
    with pytest.raises(CheckpointError, match="seed"):
        nd.fit(
            model,
            task,
            OPTIMIZERS["sofo"](),
            n_iters=4,
            batch_size=8,
            resume=True,
            **{**kwargs, "key": jr.PRNGKey(99)},
        )


def test_progress_line_leads_with_the_task_metric_and_its_level():
    """After an evaluation the progress bar shows the task's success metric against its level
    first (a reach run shows its endpoint error in cm), then two more metrics."""
    from neurodyn.training._fit import _progress_metrics

    task = nd.tasks.get("reach")
    metrics = {"loss": 0.5, "hold_error_cm": 4.0, "endpoint_error_cm": 3.21, "x": 1.0, "y": 2.0}
    shown = _progress_metrics(task, metrics)
    assert list(shown) == ["endpoint_error_cm", "loss", "hold_error_cm"]
    assert shown["endpoint_error_cm"] == "3.21 (<=2)"
    # a task whose metric is missing from the evaluation still shows three metrics
    assert list(_progress_metrics(task, {"a": 1, "b": 2, "c": 3, "d": 4})) == ["a", "b", "c"]


# ---------------------------------------------------------------- loss spikes


def _spike_fit(task, max_loss_spike, n_iters=80, **kwargs):
    model = task.default_model(key=jr.PRNGKey(1))
    return nd.fit(
        model,
        task,
        nd.optim.adam(1e-2),
        n_iters=n_iters,
        batch_size=16,
        key=jr.PRNGKey(2),
        progress=False,
        eval_every=0,
        max_loss_spike=max_loss_spike,
        **kwargs,
    )


def _over_recent_median(history, factor):
    """Accepted losses above `factor` × the median of the 64 accepted before them (counted
    once 16 are known), recomputed from the history alone."""
    accepted = history["loss"].values[history["finite"].values.astype(bool)]
    return [
        float(loss)
        for i, loss in enumerate(accepted)
        if i >= 16 and loss > factor * np.median(accepted[max(0, i - 64) : i])
    ]


def test_max_loss_spike_rejects_outlier_batches_and_retries_them():
    task = TeacherTask(key=jr.PRNGKey(0), p_spike=0.15)
    plain = _spike_fit(task, None)
    assert len(_over_recent_median(plain.history, 5.0)) >= 3  # the outliers get through
    guarded = _spike_fit(task, 5.0)
    h = guarded.history
    assert _over_recent_median(h, 5.0) == []
    rejected = int(h["rejected_blowups"].values.sum())
    assert rejected >= 3 and int(h["loss_spike"].values.sum()) == 0  # no outlier taken
    assert np.all(h["finite"].values)
    median = h["recent_loss_median"].values
    assert np.isnan(median[0]) and np.all(np.isfinite(median[1:]))
    clean = task.evaluate(guarded.model, key=jr.PRNGKey(9))
    assert np.isfinite(clean["mse"])


def test_max_loss_spike_resumes_bit_identically(tmp_path):
    task = TeacherTask(key=jr.PRNGKey(0), p_spike=0.15)
    full = _spike_fit(task, 5.0, n_iters=40)
    kwargs = dict(checkpoint_dir=tmp_path, checkpoint_every=20, log_every=3)
    _spike_fit(task, 5.0, n_iters=20, **kwargs)
    resumed = _spike_fit(task, 5.0, n_iters=40, resume=True, **kwargs)
    assert int(full.history["rejected_blowups"].values[20:].sum()) >= 1  # after the resume
    np.testing.assert_array_equal(full.history["loss"].values, resumed.history["loss"].values)
    np.testing.assert_array_equal(np.asarray(full.model.W), np.asarray(resumed.model.W))


def test_after_max_retries_outliers_the_step_is_taken(monkeypatch):
    """A loss level far above the recent median on every batch (here: a median of 1e-9
    planted in the guard's memory) costs retries, never a stop."""
    from neurodyn.training import _fit

    monkeypatch.setattr(_fit, "recent_losses", lambda records=(): jnp.full(64, 1e-9))
    result = _spike_fit(TeacherTask(key=jr.PRNGKey(0)), 5.0, n_iters=3, max_retries=2)
    h = result.history
    assert list(h["retries"].values) == [2, 2, 2]
    assert list(h["rejected_blowups"].values) == [2, 2, 2]
    assert np.all(h["loss_spike"].values)  # each taken on an outlier batch, retries spent
    assert np.all(h["finite"].values) and np.all(h["recent_loss_median"].values < 1e-6)


def test_recent_losses_keeps_the_last_accepted_ones():
    from neurodyn.training._fit import LOSS_SPIKE_WINDOW, recent_losses

    records = [{"loss": float(i), "finite": i % 3 != 0} for i in range(200)]
    recent = np.asarray(recent_losses(records))
    accepted = [float(i) for i in range(200) if i % 3 != 0]
    assert recent.dtype == np.float32 and recent.shape == (LOSS_SPIKE_WINDOW,)
    np.testing.assert_array_equal(recent, accepted[-LOSS_SPIKE_WINDOW:])
    short = np.asarray(recent_losses(records[:5]))
    assert np.all(np.isnan(short[:-3])) and list(short[-3:]) == [1.0, 2.0, 4.0]
