"""Fits across devices (issue 21): host devices in a subprocess, since the host device count
must be set before JAX starts and this process has already started it."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import neurodyn as nd
from neurodyn.training._sharding import make_mesh, mesh_sizes

ROOT = Path(__file__).resolve().parents[1]


def _run_script(module, *args, timeout=600):
    out = subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return out


def _env():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("XLA_FLAGS", None)
    return env


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """Two `jax.distributed` processes, started first so that they run while the 4-device
    script compiles (the default tests' wall time is the longer of the two, not the sum)."""
    tmp = tmp_path_factory.mktemp("multiprocess")
    port = _free_port()
    procs, logs = [], []
    for i in range(2):
        logs.append(open(tmp / f"process{i}.log", "w+"))  # noqa: SIM115 - closed below
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests._multiprocess_script",
                    str(i),
                    "2",
                    str(port),
                    str(tmp / "mp.npz"),
                ],
                cwd=ROOT,
                env=_env(),
                stdout=logs[-1],
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        )
    yield procs, logs, tmp / "mp.npz"
    for p, log in zip(procs, logs):
        if p.poll() is None:
            p.kill()
            p.wait()
        log.close()


@pytest.fixture(scope="module")
def four_devices(two_processes, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sharding")
    cases = ("sofo", "adam", "adam-spike", "force", "resume:n1")
    _run_script("tests._sharding_script", 4, tmp / "out.npz", tmp, *cases)
    return dict(np.load(tmp / "out.npz"))


@pytest.fixture(scope="module")
def four_devices_more(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sharding_more")
    cases = ("sofo", "sofo:tangents", "sofo:2x2", "sofo-custom-loss", "digits", "resume:1n")
    _run_script("tests._sharding_script", 4, tmp / "out.npz", tmp, *cases)
    return dict(np.load(tmp / "out.npz"))


def _close(a, b, rtol):
    """Equal up to float32 round-off, relative to the size of the vector."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    assert a.shape == b.shape
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(b))
    err = np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-30)
    assert err < rtol, err


def _check_equal(out, name):
    assert int(out["devices"]) == 4  # the CLI's `use_host_cores(4)` made 4 CPU devices
    # the first update (SOFO: -η × its direction), the 20 losses and the final parameters
    assert np.any(out[f"{name}_u1"] != 0)
    _close(out[f"{name}_un"], out[f"{name}_u1"], 1e-4)
    assert out[f"{name}_loss1"].shape == (20,)
    _close(out[f"{name}_lossn"], out[f"{name}_loss1"], 1e-4)
    _close(out[f"{name}_pn"], out[f"{name}_p1"], 1e-4)
    # the fits learn: otherwise equality would prove little
    assert out[f"{name}_loss1"][-1] < out[f"{name}_loss1"][0]


@pytest.mark.parametrize("name", ["sofo", "adam", "force"])
def test_four_devices_equal_one_device(four_devices, name):
    _check_equal(four_devices, name)


def test_skipped_outlier_batches_are_the_same_on_four_devices(four_devices):
    """`max_loss_spike` judges the same batches on 4 devices as on 1."""
    out = four_devices
    assert out["adam-spike_loss1"].shape == (40,)
    _close(out["adam-spike_lossn"], out["adam-spike_loss1"], 1e-4)
    _close(out["adam-spike_pn"], out["adam-spike_p1"], 1e-4)
    assert int(out["adam-spike_skipped1"]) >= 1
    assert int(out["adam-spike_skippedn"]) == int(out["adam-spike_skipped1"])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sofo:tangents", "sofo:2x2", "sofo-custom-loss", "digits"])
def test_tangent_layouts_and_xla_partitioned_losses_equal_one_device(four_devices_more, name):
    """K split over 4 devices, a 2 × 2 mesh, a loss that is not a neurodyn loss (which XLA
    partitions, reducing at every step) and a feedforward task give the single-device fit."""
    _check_equal(four_devices_more, name)


def test_batch_or_tangents_that_do_not_divide_are_named(four_devices):
    errors = list(four_devices["errors"])
    assert len(errors) == 3
    assert "`batch_size` = 10" in errors[0] and "4 devices" in errors[0]
    assert "`n_tangents` = 6" in errors[1] and "4 devices" in errors[1]
    assert "optimizer with tangents" in errors[2] and "BPTT" in errors[2]


def test_checkpoint_written_on_four_devices_resumes_on_one(four_devices):
    out = four_devices
    _close(out["resume_n1_loss"], out["sofo_loss1"], 1e-4)
    _close(out["resume_n1_p"], out["sofo_p1"], 1e-4)


@pytest.mark.slow
def test_checkpoint_written_on_one_device_resumes_on_four(four_devices_more):
    out = four_devices_more
    _close(out["resume_1n_loss"], out["sofo_loss1"], 1e-4)
    _close(out["resume_1n_p"], out["sofo_p1"], 1e-4)


def test_default_devices_is_the_largest_count_that_divides(monkeypatch):
    from neurodyn.training import _sharding

    monkeypatch.setattr(_sharding.jax, "devices", lambda: [None] * 4)
    sofo = nd.optim.sofo(n_tangents=6)
    assert _sharding.default_devices(16, sofo) == 4
    assert _sharding.default_devices(6, sofo) == 3
    assert _sharding.default_devices(7, sofo) == 1
    assert _sharding.default_devices(16, sofo, "tangents") == 3
    assert _sharding.default_devices(16, sofo, (2, 2)) is None


def test_two_processes_equal_one_process(two_processes, four_devices):
    """`jax.distributed` with 2 processes on this machine (CPU collectives over loopback):
    the trials split over the processes' devices; same first update and history as the fit
    in one process on one device."""
    procs, logs, out = two_processes
    for p, log in zip(procs, logs):
        p.wait(timeout=600)
        log.seek(0)
        assert p.returncode == 0, log.read()[-4000:]
    mp = np.load(out)
    assert int(mp["devices"]) == 2
    _close(mp["update"], four_devices["sofo_u1"], 1e-4)
    _close(mp["loss"], four_devices["sofo_loss1"], 1e-4)
    _close(mp["params"], four_devices["sofo_p1"], 1e-4)


def test_one_device_mesh_and_bad_arguments():
    mesh = make_mesh(None)
    assert mesh_sizes(mesh) == (len(jax.devices()), 1)
    assert mesh_sizes(make_mesh(jax.devices()[:1], "tangents")) == (1, 1)
    with pytest.raises(ValueError, match="JAX sees"):
        make_mesh(len(jax.devices()) + 1)
    with pytest.raises(TypeError, match="`devices`"):
        make_mesh("cpu")
    with pytest.raises(ValueError, match="`layout`"):
        make_mesh(1, "rows")
    with pytest.raises(ValueError, match="product"):
        make_mesh(1, (2, 1))
    with pytest.raises(ValueError, match="axes"):
        make_mesh(jax.sharding.Mesh(np.asarray(jax.devices()[:1]), ("trials",)))


def test_cli_devices_flag(tmp_path, capsys):
    from neurodyn.cli import main, make_parser, use_host_cores

    args = make_parser().parse_args(["fit", "flipflop", "--devices", "2"])
    assert args.devices == 2
    assert main(["fit", "flipflop", "--devices", "0", "--out", str(tmp_path / "a")]) == 2
    assert "--devices must be >= 1" in capsys.readouterr().err
    n = len(jax.devices()) + 1
    code = main(["fit", "flipflop", "--iters", "1", "--devices", str(n), "--no-progress",
                 "--no-export", "--out", str(tmp_path / "b")])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"`devices` = {n}" in err
    assert use_host_cores() is None  # this process's backend has started: nothing changes


def _load_benchmark():
    import importlib.util

    path = ROOT / "benchmarks" / "scale_out.py"
    spec = importlib.util.spec_from_file_location("_bench_scale_out", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scale_out_table_speedups():
    bench = _load_benchmark()
    row = dict(method="sofo", layout="batch", mib_per_device=1.0, cpu_seconds=1.0)
    rows = [
        {**row, "devices": 1, "cores": 1, "seconds": 4.0},
        {**row, "devices": 1, "cores": 2, "seconds": 3.0},
        {**row, "devices": 2, "cores": 2, "seconds": 2.0},
    ]
    lines = bench.table(rows).splitlines()
    # speedup vs one device on both cores, vs one core, efficiency = vs 1 core / cores
    assert lines[-1].split("|")[6:9] == [" 1.50× ", " 2.00× ", " 100% "]
    assert lines[-2].split("|")[6:9] == [" 1.00× ", " 1.33× ", " 67% "]


@pytest.mark.slow
def test_scale_out_quick_runs(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("XLA_FLAGS", None)
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "scale_out.py"), "--quick", "--out",
         str(tmp_path / "q")],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    rows = __import__("json").loads((tmp_path / "q.json").read_text())["rows"]
    assert {r["devices"] for r in rows} == {1, 2}
    assert all(r["seconds"] > 0 and r["mib_per_device"] > 0 for r in rows)
