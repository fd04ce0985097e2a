"""Bad input, as a new user gives it: each case gets one clear line, the right exit code, and
leaves every file inside and outside the output folder exactly as it was.

The command-line cases run `neurodyn` in-process from a folder holding one finished tiny run
(`run/`), a user's own folder (`mine/` with `notes.txt`) and a plain file (`afile`); the tree
is hashed before and after each case. The Python API cases check the same promises for
`nd.fit` and the optimizers.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import neurodyn as nd
from neurodyn.cli import main
from neurodyn.training import CheckpointError, FitError, list_checkpoints
from tests.test_cli import TINY as CLI_TINY

# the tiny flip-flop run of test_cli.py, two iterations, no export
TINY = ["--iters", "2", *CLI_TINY[2:], "--no-export"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One tiny finished flip-flop run, made once."""
    root = tmp_path_factory.mktemp("finished")
    assert main(["fit", "flipflop", "--out", str(root / "run"), *TINY]) == 0
    return root / "run"


@pytest.fixture
def workdir(tmp_path, finished_run, monkeypatch):
    shutil.copytree(finished_run, tmp_path / "run")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("a user's own work\n")
    (tmp_path / "afile").write_text("not a folder\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def snapshot(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "<dir>"
    return out


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


# (id, argv, expected message fragment); every case exits with 2. `{tmp}` is the workdir.
CLI_CASES = [
    # --force never loses a user's work, and is checked after everything else
    (
        "force-bad-optimizer",
        ["fit", "flipflop", "--optimizer", "nosuch", "--force", "--out", "run"],
        "unknown optimizer 'nosuch'; accepted:",
    ),
    (
        "force-bad-set",
        ["fit", "flipflop", "--set", "optimizer.damping=-1", "--force", "--out", "run"],
        "damping",
    ),
    ("force-cwd", ["fit", "flipflop", *TINY, "--force", "--out", "."], "current folder"),
    ("force-parent", ["fit", "flipflop", *TINY, "--force", "--out", ".."], "current folder"),
    (
        "force-user-folder",
        ["fit", "flipflop", *TINY, "--force", "--out", "mine"],
        "replaces only a neurodyn run folder",
    ),
    (
        "force-resume",
        ["fit", "flipflop", *TINY, "--force", "--resume", "--out", "run"],
        "exclude each other",
    ),
    ("nonempty-without-force", ["fit", "flipflop", *TINY, "--out", "mine"], "is not empty"),
    # --out that cannot be a folder
    ("out-under-a-file", ["fit", "flipflop", *TINY, "--out", "afile/sub"], "is a file"),
    ("out-is-a-file", ["fit", "flipflop", *TINY, "--out", "afile"], "is not a folder"),
    # honest resume
    (
        "resume-changed-task",
        ["fit", "flipflop", "--resume", "--out", "run", "--set", "task.n_steps=30"],
        "task.n_steps: the run has 20, now 30",
    ),
    (
        "resume-changed-lr",
        ["fit", "flipflop", "--resume", "--out", "run", "--lr", "0.5"],
        "optimizer.learning_rate",
    ),
    (
        "resume-changed-optimizer",
        ["fit", "flipflop", "--resume", "--out", "run", "--optimizer", "adam"],
        "optimizer.name",
    ),
    (
        "resume-changed-seed",
        ["fit", "flipflop", "--resume", "--out", "run", "--seed", "3"],
        "seed: the run has 0, now 3",
    ),
    (
        "resume-fewer-iters",
        ["fit", "flipflop", "--resume", "--out", "run", "--iters", "1"],
        "--iters must be >= 2",
    ),
    ("resume-not-a-run", ["fit", "flipflop", "--resume", "--out", "mine"], "holds no run"),
    ("resume-missing", ["fit", "flipflop", "--resume", "--out", "nowhere"], "holds no run"),
    # the configuration: every key known, every value of the accepted type and range
    (
        "model-section",
        ["fit", "flipflop", *TINY, "--set", "model.dt=20", "--out", "new"],
        "no [model] section",
    ),
    (
        "model-section-tau",
        ["fit", "flipflop", *TINY, "--set", "model.tau=10", "--out", "new"],
        "no [model] section",
    ),
    (
        "iters-float",
        ["fit", "flipflop", *TINY, "--set", "training.n_iters=3.7", "--out", "new"],
        "training.n_iters must be an integer >= 1; got float 3.7",
    ),
    (
        "batch-bool",
        ["fit", "flipflop", *TINY, "--set", "training.batch_size=true", "--out", "new"],
        "training.batch_size must be an integer >= 1; got a boolean",
    ),
    (
        "eval-every-negative",
        ["fit", "flipflop", *TINY, "--eval-every", "-1", "--out", "new"],
        "training.eval_every must be an integer >= 0",
    ),
    (
        "checkpoint-every-zero",
        ["fit", "flipflop", *TINY, "--checkpoint-every", "0", "--out", "new"],
        "training.checkpoint_every must be an integer >= 1",
    ),
    (
        "log-every-zero",
        ["fit", "flipflop", *TINY, "--set", "training.log_every=0", "--out", "new"],
        "training.log_every must be an integer >= 1",
    ),
    (
        "iters-zero",
        ["fit", "flipflop", *TINY, "--iters", "0", "--out", "new"],
        "training.n_iters must be an integer >= 1; got 0",
    ),
    (
        "loss-spike-below-one",
        ["fit", "flipflop", *TINY, "--set", "training.max_loss_spike=0.5", "--out", "new"],
        "training.max_loss_spike must be a number >= 1; got float 0.5",
    ),
    (
        "loss-spike-string",
        ["fit", "flipflop", *TINY, "--set", "training.max_loss_spike=high", "--out", "new"],
        "training.max_loss_spike must be a number >= 1; got str 'high'",
    ),
    (
        "loss-spike-nan",
        ["fit", "flipflop", *TINY, "--set", "training.max_loss_spike=nan", "--out", "new"],
        "training.max_loss_spike must be a number >= 1; got float nan",
    ),
    (
        "unknown-training-key",
        ["fit", "flipflop", *TINY, "--set", "training.foo=1", "--out", "new"],
        "unknown key training.foo",
    ),
    (
        "unknown-top-key",
        ["fit", "flipflop", *TINY, "--set", "foo=1", "--out", "new"],
        "unknown key 'foo'",
    ),
    (
        "unknown-optimizer-key",
        ["fit", "flipflop", *TINY, "--set", "optimizer.foo=1", "--out", "new"],
        "does not take foo",
    ),
    (
        "unknown-task-option",
        ["fit", "flipflop", *TINY, "--set", "task.foo=1", "--out", "new"],
        "task 'flipflop' has no option 'foo'; accepted: n_bits",
    ),
    (
        "misplaced-training-key",
        ["fit", "flipflop", *TINY, "--set", "optimizer.batch_size=8", "--out", "new"],
        "optimizer.batch_size belongs in [training]",
    ),
    (
        "adam-string-with-tangents",
        ["fit", "flipflop", *TINY, "--config", "{tmp}/adam.toml", "--out", "new"],
        "'adam' does not take n_tangents",
    ),
    (
        "config-other-task",
        ["fit", "flipflop", *TINY, "--config", "{tmp}/kalman.toml", "--out", "new"],
        "the config is for task 'kalman', not 'flipflop'",
    ),
    (
        "config-missing",
        ["fit", "flipflop", "--config", "nope.toml", "--out", "new"],
        "does not exist",
    ),
    (
        "config-not-toml",
        ["fit", "flipflop", "--config", "{tmp}/bad.toml", "--out", "new"],
        "is not valid TOML",
    ),
    (
        "set-without-value",
        ["fit", "flipflop", "--set", "optimizer.momentum", "--out", "new"],
        "--set expects key=value",
    ),
    ("lr-negative", ["fit", "flipflop", *TINY, "--lr", "-1", "--out", "new"], "learning_rate"),
    ("lr-nan", ["fit", "flipflop", *TINY, "--lr", "nan", "--out", "new"], "learning_rate"),
    (
        "lr-string",
        ["fit", "flipflop", *TINY, "--set", 'optimizer.learning_rate="0.3"', "--out", "new"],
        "`learning_rate` must be a number",
    ),
    ("damping-negative", ["fit", "flipflop", *TINY, "--damping", "-1", "--out", "new"], "damping"),
    (
        "momentum-too-big",
        ["fit", "flipflop", *TINY, "--set", "optimizer.momentum=1.5", "--out", "new"],
        "`momentum` must be a number in [0, 1)",
    ),
    (
        "tangents-zero",
        ["fit", "flipflop", *TINY, "--n-tangents", "0", "--out", "new"],
        "n_tangents",
    ),
    (
        "tangents-above-params",
        ["fit", "flipflop", *TINY, "--n-tangents", "100000", "--out", "new"],
        "n_tangents",
    ),
    (
        "lr-schedule-unknown",
        ["fit", "flipflop", *TINY, "--set", 'optimizer.lr_schedule="step"', "--out", "new"],
        "lr_schedule",
    ),
    (
        "task-option-zero",
        ["fit", "flipflop", *TINY, "--set", "task.n_bits=0", "--out", "new"],
        "n_bits",
    ),
    (
        "task-option-float",
        ["fit", "flipflop", *TINY, "--set", "task.n_steps=20.5", "--out", "new"],
        "n_steps",
    ),
    (
        "seed-negative",
        ["fit", "flipflop", *TINY, "--seed", "-1", "--out", "new"],
        "seed must be an integer >= 0",
    ),
    (
        "seed-float",
        ["fit", "flipflop", *TINY, "--set", "seed=1.5", "--out", "new"],
        "seed must be an integer >= 0",
    ),
    (
        "size-unknown",
        ["fit", "flipflop", *TINY, "--set", 'size="gpu"', "--out", "new"],
        "size must be one of cpu, paper",
    ),
    ("task-path", ["fit", "../../x", *TINY], "unknown task '../../x'"),
    ("task-unknown", ["fit", "no-such-task", *TINY], "unknown task 'no-such-task'; accepted:"),
    (
        "compare-unknown",
        ["compare", "flipflop", "--optimizers", "sofo,lbfgs", "--out", "new"],
        "unknown optimizer 'lbfgs'",
    ),
    (
        "compare-seeds",
        ["compare", "flipflop", "--optimizers", "sofo", "--seeds", "0", "--out", "new"],
        "--seeds must be >= 1",
    ),
    (
        "compare-bad-set",
        [
            "compare",
            "flipflop",
            "--optimizers",
            "sofo,adam",
            "--set",
            "training.n_iters=-3",
            "--out",
            "new",
        ],
        "training.n_iters",
    ),
    ("export-not-a-run", ["export", "mine"], "is not a run folder"),
    ("export-bad-trials", ["export", "run", "--n-trials", "0"], "--n-trials must be >= 1"),
]


@pytest.mark.parametrize("case_id, argv, message", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input_changes_nothing(workdir, capsys, case_id, argv, message):
    write(workdir / "adam.toml", 'optimizer = "adam"\n')
    write(workdir / "kalman.toml", 'task = "kalman"\n')
    write(workdir / "bad.toml", "this is = = not toml\n")
    argv = [a.replace("{tmp}", str(workdir)) for a in argv]
    before = snapshot(workdir)
    code = main(argv)
    _, err = capsys.readouterr()
    assert code == 2, err
    assert message in err, err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("neurodyn: error: "), err
    assert "Traceback" not in err
    assert snapshot(workdir) == before  # nothing made, changed or removed, anywhere


def test_argparse_errors_exit_2(workdir, capsys):
    before = snapshot(workdir)
    for argv in (
        ["fit", "flipflop", "--size", "huge"],
        ["fit", "flipflop", "--plant", "wings"],
        ["fit", "flipflop", "--iters", "many"],
    ):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        assert "invalid" in capsys.readouterr().err
    assert snapshot(workdir) == before


def test_resume_without_checkpoints_is_an_error(workdir, capsys):
    shutil.rmtree(workdir / "run" / "checkpoints")
    before = snapshot(workdir)
    assert main(["fit", "flipflop", "--resume", "--out", "run", "--iters", "4"]) == 2
    assert "holds no checkpoint" in capsys.readouterr().err
    assert snapshot(workdir) == before


def test_edited_checkpoint_header_is_detected(workdir, capsys):
    ckpt = list_checkpoints(workdir / "run" / "checkpoints")[-1]
    header, _, payload = ckpt.read_bytes().partition(b"\n")
    fields = json.loads(header)
    fields["iteration"] = 1  # the history still ends at iteration 2
    ckpt.write_bytes(json.dumps(fields).encode() + b"\n" + payload)
    before = snapshot(workdir)
    assert main(["fit", "flipflop", "--resume", "--out", "run", "--iters", "4", *TINY[4:]]) == 2
    assert "corrupt" in capsys.readouterr().err
    assert snapshot(workdir) == before


def test_force_moves_the_old_run_aside(workdir, capsys):
    old = snapshot(workdir / "run")
    assert main(["fit", "flipflop", *TINY, "--seed", "1", "--force", "--out", "run"]) == 0
    out = capsys.readouterr().out
    moved = [p for p in workdir.iterdir() if p.name.startswith("run.replaced-")]
    assert len(moved) == 1 and f"moved to {moved[0].name}" in out.replace(str(workdir) + "/", "")
    assert snapshot(moved[0]) == old  # the previous run, intact
    assert json.loads((workdir / "run" / "run.json").read_text())["seed"] == 1


def test_stale_temp_files_are_removed_on_resume(workdir, capsys):
    stale = workdir / "run" / "checkpoints" / ".ckpt_00000004.eqx.tmp-12345"
    stale.write_bytes(b"half a checkpoint")
    assert main(["fit", "flipflop", "--resume", "--out", "run", "--iters", "3", *TINY[4:]]) == 0
    assert not stale.exists()
    assert nd.analysis.load(workdir / "run" / "history.nc").sizes["iteration"] == 3


def test_divergence_leaves_a_record(workdir, capsys):
    code = main(["fit", "flipflop", *TINY, "--lr", "1e8", "--out", "diverged"])
    err = capsys.readouterr().err
    assert code == 1 and "training stopped: iteration 1" in err
    summary = json.loads((workdir / "diverged" / "run.json").read_text())
    assert summary["status"] == "failed" and "retries" in summary["reason"]
    assert "last_checkpoint" in summary
    assert (workdir / "diverged" / "config.toml").exists()


# ------------------------------------------------------------------ the Python API


@pytest.fixture(scope="module")
def tiny():
    task = nd.tasks.get("flipflop", n_steps=12, n_neurons=8)
    return task, task.default_model(key=jr.PRNGKey(0))


def _fit(task, model, **kwargs):
    args = dict(n_iters=2, batch_size=4, key=jr.PRNGKey(1), progress=False, eval_every=0)
    args.update(kwargs)
    opt = args.pop("optimizer", nd.optim.sofo(n_tangents=4, learning_rate=0.1))
    return nd.fit(model, task, opt, **args)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"key": 42}, TypeError, "`key` must be a JAX PRNG key"),
        ({"key": "seed"}, TypeError, "`key` must be a JAX PRNG key"),
        ({"n_iters": 3.5}, TypeError, "`n_iters` must be an int"),
        ({"batch_size": 0}, ValueError, "`batch_size` must be >= 1"),
        ({"eval_every": -1}, ValueError, "`eval_every` must be >= 0"),
        ({"log_every": True}, TypeError, "`log_every` must be an int"),
        ({"time_budget": -1.0}, ValueError, "`time_budget`"),
        ({"max_loss_increase": 0.5}, ValueError, "`max_loss_increase`"),
        ({"max_loss_spike": 0.5}, ValueError, "`max_loss_spike`"),
        ({"max_loss_spike": "5"}, TypeError, "`max_loss_spike`"),
        ({"max_retries": -1}, ValueError, "`max_retries` must be >= 0"),
        ({"optimizer": "sofo"}, TypeError, "`optimizer` must be a neurodyn optimizer"),
        ({"callbacks": [1]}, TypeError, "`callbacks`"),
    ],
)
def test_fit_rejects_bad_arguments(tiny, kwargs, error, message):
    task, model = tiny
    with pytest.raises(error, match=re.escape(message)):
        _fit(task, model, **kwargs)


def test_fit_rejects_a_task_or_model_of_the_wrong_kind(tiny):
    task, model = tiny
    with pytest.raises(TypeError, match="`task` must be a neurodyn task"):
        nd.fit(model, "flipflop", n_iters=1, batch_size=2, key=jr.PRNGKey(0))
    with pytest.raises(TypeError, match="`model` must be an equinox Module"):
        nd.fit(lambda x: x, task, n_iters=1, batch_size=2, key=jr.PRNGKey(0))


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: nd.optim.sofo(learning_rate="0.3"), "`learning_rate` must be a number"),
        (lambda: nd.optim.sofo(damping="1e-3"), "`damping` must be a number"),
        (lambda: nd.optim.sofo(momentum=1.0), "`momentum` must be a number in [0, 1)"),
        (lambda: nd.optim.adam("1e-3"), "`learning_rate` must be a number"),
        (lambda: nd.optim.adam(1e-3, b1=1.2), "`b1`"),
        (lambda: nd.optim.first_order_sofo(learning_rate=True), "`learning_rate` must be"),
    ],
)
def test_optimizers_check_their_numbers(build, message):
    with pytest.raises((TypeError, ValueError), match=re.escape(message)):
        build()


def test_outputs_that_do_not_match_the_targets(tiny):
    task, _ = tiny  # 3 bits: inputs and targets [B, T, 3]
    one_output = nd.models.RateRNN(8, 3, 1, key=jr.PRNGKey(0))
    with pytest.raises(ValueError, match=r"outputs of shape \(4, 1\).*targets have shape \(4, 3\)"):
        _fit(task, one_output)
    one_input = nd.models.RateRNN(8, 1, 3, key=jr.PRNGKey(0))
    with pytest.raises(ValueError, match="cannot run one step of the task's trials"):
        _fit(task, one_input)


def test_initial_parameters_must_be_finite(tiny):
    task, model = tiny
    bad = eqx.tree_at(lambda m: m.W, model, model.W.at[0, 0].set(jnp.nan))
    with pytest.raises(ValueError, match=r"initial parameters are not finite: `\.W`"):
        _fit(task, bad)


def test_resume_needs_a_checkpoint(tiny, tmp_path):
    task, model = tiny
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        _fit(task, model, checkpoint_dir=tmp_path, resume=True)


def test_a_catastrophic_finite_step_is_rejected(tiny):
    task, model = tiny
    huge = nd.optim.sofo(n_tangents=4, learning_rate=1e6, damping=1e-3)
    with pytest.raises(FitError, match="above 10x its value before the step") as info:
        _fit(task, model, optimizer=huge, max_retries=1)
    err = info.value
    assert err.iteration == 1 and err.history is not None
    # the parameters are the last accepted ones: the initial model, untouched
    assert np.array_equal(np.asarray(err.model.W), np.asarray(model.W))
    # without the guard the same step is taken and blows the parameters up
    result = _fit(
        task, model, optimizer=huge, max_loss_increase=None, max_norm_growth=None, n_iters=1
    )
    assert float(jnp.max(jnp.abs(result.model.W))) > 1e3 * float(jnp.max(jnp.abs(model.W)))


def test_a_nan_metric_is_kept_in_the_final_metrics():
    history = nd.training.build_history(
        [{"iteration": 1, "loss": 1.0}, {"iteration": 2, "loss": 0.5}],
        {"test_loss": {1: 0.3, 2: float("nan")}},
        [(2, 1.0)],
    )
    assert np.isnan(nd.training.final_metrics(history)["test_loss"])


def test_a_nan_pixel_in_a_digits_file_is_named(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (10, 28, 28)).astype(float)
    x[3, 4, 5] = np.nan
    y = rng.integers(0, 10, 10)
    path = tmp_path / "digits.npz"
    np.savez(path, x_train=x, y_train=y, x_test=x[:4], y_test=y[:4])
    with pytest.raises(ValueError, match="x_train` holds 1 NaN or infinite values"):
        nd.tasks.load_mnist(path)
