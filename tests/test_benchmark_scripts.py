"""The benchmark scripts' bookkeeping (their measurements run outside the test suite)."""

import importlib.util
import json
import math
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import jax.numpy as jnp
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


def _record(optimizer, error, label="", **extra):
    final = {
        "endpoint_error_cm": error,
        "noiseless_endpoint_error_cm": error / 2,
        "endpoint_bias_cm": 1.0,
        "endpoint_scatter_cm": 2.0,
        "fraction_within_2cm": 0.5,
        "peak_speed_cm_s": 70.0,
        "reaction_time_ms": 60.0,
    }
    return {
        "task": "reach", "plant": "torque", "optimizer": optimizer, "label": label,
        "iterations": 10, "train_seconds": 1.0, "compile_seconds": 1.0, "final": final,
        "first_below_2cm": None, "machine": "test machine", **extra,
    }  # fmt: skip


def test_reach_results_keeps_one_row_per_setting(tmp_path):
    rr = _load("reach_results")
    path = tmp_path / "runs.jsonl"
    lines = [
        _record("sofo", 3.0),
        _record("sofo", 1.8, label="K=128, margins", eval_repeats=64, adam_fixed=True),
        _record("sofo", 2.9),  # newer run of the default setting replaces the first
        _record(
            "adam",
            2.5,
            label="K=128, margins",
            adam_fixed=True,
            overrides={"task": {"angle_margin": 18}, "sofo": {"n_tangents": 128}, "adam": {}},
        ),  # fmt: skip
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    records, cli = rr.load_jsonl(path)
    assert [(r["optimizer"], r.get("label"), r["final"]["endpoint_error_cm"]) for r in records] == [
        ("sofo", "", 2.9),
        ("sofo", "K=128, margins", 1.8),
        ("adam", "K=128, margins", 2.5),
    ]
    text = rr.table(records, cli)
    assert "| reach | torque | sofo | 10 |" in text
    assert "| reach (K=128, margins; 64 repeats) | torque | sofo |" in text
    # the Adam row shares only the task's overrides with the labelled SOFO setting
    assert "| reach (angle_margin=18) | torque | adam |" in text
    assert rr._suffix("K=128, margins 18°/0.05 m") == "_K_128__margins_18__0_05_m"
    assert rr._suffix("") == ""


def test_reach_results_stops_sofo_at_its_time_budget():
    """`max_seconds` (`--sofo-budget`) ends an iteration-counted run once its training time
    reaches the budget, however many iterations were planned; the record counts what ran.
    The benchmark trains through `nd.fit` (here on the tiny teacher task)."""
    import jax.random as jr

    from tests._fit_fixtures import TeacherTask

    rr = _load("reach_results")
    metrics = {"endpoint_error_cm": 3.0, "fraction_within_2cm": 0.5}

    class Task(TeacherTask):
        def evaluate(self, model, *, key=None, n_trials=None, noise=True):
            return dict(metrics)

    task = Task(key=jr.PRNGKey(0))
    model = task.default_model(key=jr.PRNGKey(1))
    hp = {"batch_size": 4, "learning_rate": 0.1, "n_tangents": 4}
    _, rec = rr.train(
        task, model, "sofo", hp, n_iters=10**6, key=jr.PRNGKey(0), eval_every=10**6,
        max_seconds=0.5, log=lambda *a: None,
    )  # fmt: skip
    assert 0.5 <= rec["train_seconds"] < 30
    assert 2 <= rec["iterations"] < 10**6  # stopped by the budget, not by n_iters
    assert rec["eval_curve"][-1]["iteration"] == rec["iterations"]
    _, rec = rr.train(
        task, model, "sofo", hp, n_iters=5, key=jr.PRNGKey(0), eval_every=10**6,
        max_seconds=100.0, log=lambda *a: None,
    )  # fmt: skip
    assert rec["iterations"] == 5  # the budget never bites


@pytest.mark.slow
def test_sofo_sweep_quick_runs_and_records_every_run(tmp_path):
    """`benchmarks/sofo_sweep.py --quick`: two 3-iteration digits runs through nd.fit."""
    sweep = _load("sofo_sweep")
    out = tmp_path / "sweep"
    assert sweep.main(["--quick", "--out", str(out)]) == 0
    saved = json.loads(out.with_suffix(".json").read_text())
    (res,) = saved["results"]
    assert res["task"] == "digits"
    assert [r["learning_rate"] for r in res["runs"]] == sweep.GRIDS["digits"]["lrs"][:2]
    assert res["best"]["learning_rate"] in sweep.GRIDS["digits"]["lrs"][:2]
    assert all(r["n_iters"] == 3 and not r["blew_up"] for r in res["runs"])
    assert "| digits | 3 |" in out.with_suffix(".md").read_text()


@pytest.mark.slow
def test_time_to_solution_quick_sweeps_every_optimizer(tmp_path):
    """`benchmarks/time_to_solution.py --quick`: every optimizer's step size is swept (SOFO's
    damping too) with Adam's protocol before the seeds run at the best setting."""
    tts = _load("time_to_solution")
    out = tmp_path / "tts"
    assert tts.main(["--quick", "--out", str(out)]) == 0
    (res,) = json.loads(out.with_suffix(".json").read_text())["results"]
    assert set(res["sweeps"]) == set(tts.DEFAULT_OPTIMIZERS)
    for opt, entries in res["sweeps"].items():
        assert len(entries) >= 2, opt
        best = max(entries, key=lambda e: e["final"])  # digits: accuracy, higher is better
        assert res["hyperparameters"][opt]["learning_rate"] == best["learning_rate"], opt
    assert "sweep" in out.with_suffix(".md").read_text()


def test_step_size_sweep_goes_past_an_edge_of_its_grid_while_it_improves():
    """`_common.sweep_step_size`, the rule every tuning benchmark shares: the grid, then ×3 or
    ÷3 past an edge while the metric improves, at most `EDGE_STEPS` more runs."""
    common = _load("_common")
    calls = []

    def peaked(rate):  # best at 0.09 (higher is better)
        calls.append(rate)
        return {"learning_rate": rate, "final": -abs(math.log(rate / 0.09))}

    best, tried = common.sweep_step_size(peaked, [0.01, 0.03], "above")
    assert calls == [0.01, 0.03, 0.09, 0.27] and best["learning_rate"] == 0.09
    assert [e["learning_rate"] for e in tried] == calls
    calls.clear()
    best, _ = common.sweep_step_size(peaked, [0.03, 0.09, 0.27], "above")
    assert calls == [0.03, 0.09, 0.27] and best["learning_rate"] == 0.09  # interior: no more
    calls.clear()

    def falling(rate):  # lower is better, ever smaller rates: the extension stops at 2 runs
        calls.append(rate)
        return {"learning_rate": rate, "final": rate}

    best, _ = common.sweep_step_size(falling, [1.0, 3.0], "below")
    assert calls == [1.0, 3.0, 0.333, 0.111] and best["learning_rate"] == 0.111
    assert common.EDGE_STEPS == 2

    def diverging(rate):  # a non-finite metric never wins
        return {"learning_rate": rate, "final": math.nan if rate > 0.05 else 0.5}

    best, _ = common.sweep_step_size(diverging, [0.1, 0.03], "above")
    assert best["learning_rate"] == 0.03


@pytest.mark.slow
def test_lorenz_race_quick_runs_three_arms_by_one_protocol(tmp_path):
    """`benchmarks/lorenz_race.py --quick`: SOFO, Adam at equal iterations and Adam at SOFO's
    wall clock, each swept on seed 0 then run on seed 1, with both figures."""
    lr = _load("lorenz_race")
    out = tmp_path / "lr"
    assert lr.main(["--quick", "--out", str(out)]) == 0
    saved = json.loads(out.with_suffix(".json").read_text())
    assert list(saved["summary"]) == [
        "SOFO", "Adam, equal iterations", "Adam, equal wall clock"
    ]  # fmt: skip
    for name, s in saved["summary"].items():
        assert s["seeds"] == 2 and len(saved["sweeps"][name]) >= 3, name
    sofo = [r for r in saved["runs"] if r["arm"] == "SOFO"]
    adam_it = [r for r in saved["runs"] if r["arm"] == "Adam, equal iterations"]
    assert all(r["iterations"] == 20 for r in sofo + adam_it)
    walls = [r for r in saved["runs"] if r["arm"] == "Adam, equal wall clock"]
    assert all(r["train_seconds"] >= saved["wall_clock_budget_s"] for r in walls)
    for name in ("lr.png", "lr_attractor_sofo.png", "lr_attractor_adam.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_sofo_sweep_scoring_prefers_stable_runs():
    sweep = _load("sofo_sweep")
    stable = {"final": 0.5, "blew_up": False}
    blown = {"final": 0.9, "blew_up": True}
    assert min([blown, stable], key=lambda r: sweep._score(r, "above")) is stable
    low = {"final": 0.1, "blew_up": False}
    assert min([stable, low], key=lambda r: sweep._score(r, "below")) is low


def test_horizon_sweep_worker_keeps_every_argument_but_its_horizons_and_jobs():
    hs = _load("horizon_sweep")
    argv = ["--jobs", "2", "--budget", "25", "--horizons", "100", "500", "--seeds", "3"]
    assert hs.worker_argv(argv) == ["--budget", "25", "--seeds", "3"]
    assert hs.worker_argv(["--horizons=100", "--quick", "--jobs=2"]) == ["--quick"]


def test_horizon_sweep_runs_one_process_per_horizon_and_keeps_finished_ones(tmp_path, monkeypatch):
    """`_in_processes`: one worker per horizon, at most `--jobs` at once; a worker that fails
    stops the run with the horizons that finished kept, and the next attempt of the same
    command trains only the others (the kept part is read back, not run again); an attempt
    with other arguments trains its own."""
    hs = _load("horizon_sweep")
    launched, fail = [], {100}
    state = {"running": 0, "most": 0}

    class FakeWorker:
        def __init__(self, cmd):
            t = int(cmd[cmd.index("--horizons") + 1])
            self.part = Path(cmd[cmd.index("--part") + 1])
            self.t, self.polls, self.returncode = t, 0, None
            launched.append(t)
            state["running"] += 1
            state["most"] = max(state["most"], state["running"])

        def poll(self):
            self.polls += 1
            if self.polls < 2:
                return None
            if self.returncode is None:
                state["running"] -= 1
                self.returncode = 1 if self.t in fail else 0
                if not self.returncode:
                    self.part.write_text(json.dumps([{"T": self.t, "method": "sofo"}]))
            return self.returncode

        def wait(self):
            while self.poll() is None:
                pass

    monkeypatch.setattr(hs.subprocess, "Popen", FakeWorker)
    monkeypatch.setattr(hs.time, "sleep", lambda s: None)
    args = SimpleNamespace(horizons=[100, 500, 1000], jobs=2)
    out = tmp_path / "hs"
    with pytest.raises(SystemExit, match="T=100"):
        hs._in_processes(["--budget", "1"], args, out)
    assert state["most"] <= 2
    argv = ["--budget", "1"]
    kept = {t for t in (100, 500, 1000) if hs.part_path(out, t, argv).exists()}
    assert 100 not in kept and kept  # the longest horizons started first and finished
    launched.clear()
    fail.clear()
    other = hs._in_processes(["--budget", "2"], SimpleNamespace(horizons=[500], jobs=1), out)
    assert launched == [500] and other  # other settings never take these parts
    launched.clear()
    runs = hs._in_processes(argv, args, out)
    assert sorted(launched) == sorted({100, 500, 1000} - kept)
    assert [r["T"] for r in runs] == [100, 500, 1000]
    hs.remove_parts(out, args.horizons, argv)
    hs.remove_parts(out, [500], ["--budget", "2"])
    assert not list(tmp_path.glob("hs.T*.json"))


@pytest.mark.slow
def test_horizon_sweep_quick_tunes_every_method_by_one_protocol(tmp_path):
    """`benchmarks/horizon_sweep.py --quick`: each method's grid (2 settings each) is swept
    on seed 0 at an equal budget, checkpointed BPTT takes Adam's best setting, and every run
    is scored against the oracle (0) and random-parameter (1) filters on the same trials."""
    hs = _load("horizon_sweep")
    out = tmp_path / "hs"
    assert hs.main(["--quick", "--out", str(out)]) == 0
    saved = json.loads(out.with_suffix(".json").read_text())
    runs = saved["runs"]
    sweeps = {m: [r for r in runs if r["method"] == m and r["stage"] == "sweep"] for m in hs.GRIDS}
    assert all(len(v) == 2 for v in sweeps.values()), sweeps
    best_adam = min(sweeps["adam"], key=lambda r: r["normalised_mse"])["setting"]
    (remat,) = [r for r in runs if r["method"] == "adam-remat"]
    assert remat["setting"] == best_adam
    oracle = {r["oracle_mse"] for r in runs}
    assert len(oracle) == 1  # the same test trials for every method
    for r in runs:
        assert r["iterations"] > 0 and r["step_bytes"] > 0
        assert 0 < r["normalised_mse"] < 1.5, r
    assert {s["method"] for s in saved["summary"]} == set(hs.METHODS)
    assert out.with_suffix(".png").stat().st_size > 0
    assert "| 30 | sofo |" in out.with_suffix(".md").read_text()


@pytest.mark.slow
def test_flipflop_size_sweep_quick_sweeps_both_optimizers_then_every_size(tmp_path):
    """`benchmarks/flipflop_size_sweep.py --quick`: each optimizer's step size is swept at the
    largest size on seed 0, and its best is run at every size at equal iterations."""
    ff = _load("flipflop_size_sweep")
    out = tmp_path / "ff"
    assert ff.main(["--quick", "--out", str(out)]) == 0
    saved = json.loads(out.with_suffix(".json").read_text())
    runs = saved["runs"]
    for opt in ff.GRIDS:
        sweep = [r for r in runs if r["optimizer"] == opt and r["stage"] == "sweep"]
        assert [r["learning_rate"] for r in sweep] == ff.GRIDS[opt]
        best = max(sweep, key=lambda r: r["percent_correct"])["learning_rate"]
        sizes = [r for r in runs if r["optimizer"] == opt and r["stage"] == "size"]
        assert {r["n_neurons"] for r in sizes} == {4, 8}
        assert all(r["learning_rate"] == best and r["iterations"] == 5 for r in sizes)
        assert all(0 <= r["percent_correct"] <= 100 for r in sizes)
    assert len(saved["summary"]) == 4
    assert out.with_suffix(".png").stat().st_size > 0


@pytest.mark.slow
def test_contention_quick_times_both_settings_and_restores_the_affinity(tmp_path):
    """`benchmarks/contention.py --quick`: seconds per iteration of each optimizer with the
    other core idle and busy, the table and JSON written, and this process's CPU affinity as
    it was (the script pins itself to one core while it measures)."""
    import os

    ct = _load("contention")
    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    out = tmp_path / "c"
    assert ct.main(["--quick", "--out", str(out)]) == 0
    if before is not None:
        assert os.sched_getaffinity(0) == before
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert [(r["task"], r["optimizer"]) for r in rows] == [("digits", "sofo"), ("digits", "adam")]
    for r in rows:
        assert r["alone_s"] > 0 and r["other_core_busy_s"] > 0
        assert r["slowdown"] == pytest.approx(r["other_core_busy_s"] / r["alone_s"])
    assert "| digits | sofo |" in out.with_suffix(".md").read_text()


# A stand-in for the reference SOFO code (`--reference`), written here from the formulas of
# SPEC §2 with the reference's call signatures: per-step forward-mode lanes in a scan, the MSE
# GGN averaged over the batch, relative damping on the eigenvalues. `SCALE` ≠ 1 makes it wrong.
_STAND_IN = """
import jax, jax.numpy as jnp
SCALE = {scale}

def sample_v(tangent_size, params, rng):
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(rng, len(leaves))
    v = [jax.random.normal(k, (tangent_size,) + x.shape) for k, x in zip(keys, leaves)]
    norm = jnp.sqrt(sum(jnp.sum(x.reshape(tangent_size, -1) ** 2, 1) for x in v))
    return jax.tree.unflatten(treedef, [x / norm.reshape((-1,) + (1,) * (x.ndim - 1)) for x in v])

def value_and_sofo_grad_temporal(rnn, loss, tangent_size=100, damping=1e-5):
    def outer(z_init, batch):
        def inner(rng, params):
            v = sample_v(tangent_size, params, rng)
            def body(carry, xs):
                z, zdot, total, vg, ggn = carry
                u, target = xs
                f = lambda p, z: rnn(p, z, u)[0]
                lane = lambda vp, vz: jax.jvp(f, (params, z), (vp, vz))
                (z_new, y), (zdot_new, ydot) = jax.vmap(lane, out_axes=((None, None), 0))(v, zdot)
                value, g = jax.value_and_grad(loss)(y, target)
                vg = vg + jnp.einsum("bo,kbo->k", g, ydot)
                ggn = ggn + jnp.einsum("kbo,lbo->kl", ydot, ydot) / y.shape[0]
                return (z_new, zdot_new, total + value, vg, ggn), y
            k = tangent_size
            init = (z_init, jnp.zeros((k,) + z_init.shape), 0.0, jnp.zeros(k), jnp.zeros((k, k)))
            (_, _, total, vg, ggn), ys = jax.lax.scan(body, init, batch)
            s, u = jnp.linalg.eigh(ggn)
            alpha = u @ ((u.T @ vg) / (s + damping * jnp.max(s)))
            step = jax.tree.map(lambda x: SCALE * jnp.tensordot(alpha, x, 1), v)
            return total, step, ys
        return inner
    return outer
"""


def _stand_in(tmp_path, scale=1.0):
    path = tmp_path / f"api_{scale}.py"
    path.write_text(_STAND_IN.format(scale=scale))
    return path


def test_step_cost_reference_quick_agrees_and_writes_the_table(tmp_path):
    step_cost = _load("step_cost")
    out = tmp_path / "ref"
    argv = ["--reference", str(_stand_in(tmp_path)), "--quick", "--repeats", "2"]
    assert step_cost.main([*argv, "--out", str(out)]) == 0
    data = json.loads(out.with_suffix(".json").read_text())
    assert [(r["N"], r["T"], r["K"]) for r in data["rows"]] == [(16, 20, 4), (16, 20, 8)]
    for r in data["rows"]:
        assert r["cosine"] > 0.9999 and abs(r["norm_ratio"] - 1) < 1e-3
        assert r["loss"][0] == pytest.approx(r["loss"][1], rel=1e-5)
        assert len(r["ratios"]) == 2 and all(x > 0 for x in r["ratios"])
    assert "| 16 | 20 | 8 |" in out.with_suffix(".md").read_text()


def test_step_cost_reference_refuses_a_different_update_and_a_missing_file(tmp_path):
    step_cost = _load("step_cost")
    wrong = ["--reference", str(_stand_in(tmp_path, scale=1.5)), "--quick", "--repeats", "1"]
    with pytest.raises(SystemExit, match="disagree"):
        step_cost.main([*wrong, "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="no file"):
        step_cost.main(["--reference", str(tmp_path / "none.py"), "--quick"])


def test_step_profile_quick_names_the_matrix_products_and_sweeps_chunks(tmp_path):
    step_profile = _load("step_profile")
    out = tmp_path / "prof"
    argv = ["--quick", "--repeats", "2", "--chunk-sizes", "1", "2", "auto", "--out", str(out)]
    assert step_profile.main(argv) == 0
    data = json.loads(out.with_suffix(".json").read_text())
    (result,) = data["results"]
    kinds = {o["kind"] for o in result["ops"]}
    assert "matmul" in kinds  # the tangent products were found in the compiled HLO
    pattern = r"matmul f\d\d\[128,16\] × f\d\d\[16,16\]"  # float64 in the suite, 32 in scripts
    state = [o for o in result["ops"] if re.fullmatch(pattern, o["what"])]
    assert state and state[0]["gflops"] > 0  # K·B = 4·32 rows against W: the state tangents
    assert sum(o["share"] for o in result["ops"]) == pytest.approx(1.0)
    assert set(data["chunks"][0]["seconds"]) == {"1", "2", "auto"}


def test_auto_chunk_is_the_per_step_recursion_on_the_cpu(monkeypatch):
    from neurodyn.optim import _sofo

    carry = jnp.zeros((32, 128), jnp.float32)
    assert _sofo._auto_chunk(1000, 128, carry, 64 * 2**20) == 1
    monkeypatch.setattr(_sofo.jax, "default_backend", lambda: "gpu")
    # on an accelerator: the largest chunk ≤ 16 whose K drives (128 · 32·128·4 B) fit 64 MiB
    assert _sofo._auto_chunk(1000, 128, carry, 64 * 2**20) == 16
    assert _sofo._auto_chunk(1000, 128, carry, 4 * 2**20) == 2


def test_step_profile_task_mode_profiles_the_optimizer_iteration(tmp_path):
    step_profile = _load("step_profile")
    out = tmp_path / "task"
    argv = ["--task", "flipflop", "--tangents", "4", "--batch", "4", "--repeats", "1"]
    assert step_profile.main([*argv, "--out", str(out)]) == 0
    (result,) = json.loads(out.with_suffix(".json").read_text())["results"]
    assert (result["task"], result["B"], result["K"]) == ("flipflop", 4, 4)
    assert result["bound_flops"] > 0 and any(o["kind"] == "matmul" for o in result["ops"])
    assert "task flipflop (default model, B = 4), K = 4" in out.with_suffix(".md").read_text()


def test_double_reach_quick_trains_both_arms_then_reads_finished_runs_back(tmp_path, capsys):
    """`benchmarks/double_reach.py --quick`: the reference arm (Adam) and SOFO under its
    wall-clock budget, trained through the run layer into run folders; a second call reads the
    finished runs back instead of retraining; a run of another configuration is retrained."""
    dr = _load("double_reach")
    out, runs = tmp_path / "out", tmp_path / "runs"
    args = ["--quick", "--out", str(out), "--runs", str(runs)]
    assert dr.main(args) == 0
    saved = json.loads((out / "double_reach.json").read_text())
    assert [r["arm"] for r in saved["runs"]] == ["adam", "sofo"]
    adam, sofo = saved["runs"]
    assert adam["iterations"] == 3 and 1 <= sofo["iterations"] <= 3
    assert saved["budget_seconds"] == adam["train_seconds"]
    for r in saved["runs"]:
        assert 0 <= r["endpoint_error_1_cm"] < 100 and 0 <= r["endpoint_error_2_cm"] < 100
        assert r["endpoint_error_cm"] == pytest.approx(
            (r["endpoint_error_1_cm"] + r["endpoint_error_2_cm"]) / 2, rel=0.05
        )
        assert (runs / f"{r['arm']}_s0" / "run.json").exists()
    for name in ("double_reach.md", "double_reach.png", "double_reach_hand_paths.png"):
        assert (out / name).stat().st_size > 0
    capsys.readouterr()
    stamp = (runs / "adam_s0" / "history.nc").stat().st_mtime_ns
    assert dr.main(args) == 0
    assert capsys.readouterr().out.count("read back") == 2
    assert (runs / "adam_s0" / "history.nc").stat().st_mtime_ns == stamp
    config = dr.arm_config("adam", 0, quick=True, training={"n_iters": 2})
    assert dr.finished(runs / "adam_s0", config) is None  # another configuration: retrain
    with pytest.raises(SystemExit) as exc:
        dr.main([*args, "--reference", "fgd"])
    assert exc.value.code == 2
    # an arm on its own with a given budget: the reference is not trained
    assert dr.main([*args, "--arms", "sofo", "--budget", "5", "--seeds", "1"]) == 0
    saved = json.loads((out / "double_reach.json").read_text())
    assert [(r["arm"], r["seed"]) for r in saved["runs"]] == [("sofo", 1)]
    assert saved["budget_seconds"] == 5 and not (runs / "adam_s1").exists()


def test_double_reach_ranks_a_failed_run_last_and_says_why():
    """A run that stopped with a non-finite step counts as a seed that failed: its errors rank
    worst in the medians, it never counts as within the level, and the table gives the reason."""
    dr = _load("double_reach")

    def rec(seed, e1, e2, status="completed", reason=None):
        return {
            "arm": "adam", "seed": seed, "status": status, "reason": reason,
            "iterations": 10, "train_seconds": 1.0, "endpoint_error_1_cm": e1,
            "endpoint_error_2_cm": e2, "endpoint_error_cm": (e1 + e2) / 2,
            "fraction_within_2cm": 0.0 if math.isnan(e1) else 0.5,
        }  # fmt: skip

    nan = math.nan
    records = [
        rec(0, 2.0, 2.5),
        rec(1, 8.0, 6.0),
        rec(2, nan, nan, "failed", "iteration 7: NaN; more"),
    ]
    (row,) = dr.summarise(records, ["adam"])
    assert row["failed"] == 1 and row["seeds_within_3cm"] == 1 and row["seeds_at_level"] == 0
    assert row["endpoint_error_1_cm"] == (8.0, 2.0, math.inf)  # median over 3, the failed one last
    text = dr.table(records, [row])
    assert "failed: iteration 7: NaN |" in text and "more" not in text
    strict = json.loads(json.dumps(dr._finite_or_null([records, row]), allow_nan=False))
    assert (
        strict[0][2]["endpoint_error_1_cm"] is None and strict[1]["endpoint_error_1_cm"][2] is None
    )
