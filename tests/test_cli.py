"""The `neurodyn` command: end to end on a tiny configuration, and every user-error path."""

import json
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest

import neurodyn as nd
from neurodyn.cli import main

TINY = [
    "--iters",
    "3",
    "--batch-size",
    "4",
    "--n-tangents",
    "4",
    "--set",
    "task.n_steps=20",
    "--set",
    "task.n_neurons=8",
    "--no-progress",
]


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_fit_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = run(
        ["fit", "flipflop", "--out", str(out), "--lr", "0.1", "--damping", "1e-3", *TINY], capsys
    )
    assert code == 0, err
    for name in ("config.toml", "run.json", "history.nc", "figures/learning_curve.png"):
        assert (out / name).exists(), name
    assert list((out / "checkpoints").glob("ckpt_*.eqx"))
    history = nd.analysis.load(out / "history.nc")
    assert history.sizes["iteration"] == 3 and np.all(np.isfinite(history["loss"]))
    image = matplotlib.image.imread(out / "figures" / "learning_curve.png")
    assert image.ndim == 3 and image.shape[0] > 100
    summary = json.loads((out / "run.json").read_text())
    assert summary["seed"] == 0 and summary["task"] == "flipflop"
    assert summary["timings"]["iterations"] == 3
    assert "final metrics" in stdout and str(out) in stdout
    config = (out / "config.toml").read_text()
    assert "learning_rate = 0.1" in config and "n_steps = 20" in config

    # resume extends the same run; the config is read back from the folder
    code, _, err = run(
        ["fit", "flipflop", "--out", str(out), "--resume", "--iters", "5", "--no-progress"], capsys
    )
    assert code == 0, err
    assert nd.analysis.load(out / "history.nc").sizes["iteration"] == 5


def test_tasks_lists_every_task(capsys):
    code, out, _ = run(["tasks"], capsys)
    assert code == 0
    for name in nd.tasks.available():
        assert name in out
    assert "neurogym:<id>" in out  # the task families


@pytest.mark.parametrize(
    "argv, message",
    [
        (["fit", "no-such-task"], "unknown task 'no-such-task'; accepted:"),
        (["fit", "flipflop", "--optimizer", "lbfgs"], "unknown optimizer 'lbfgs'; accepted:"),
        (["fit", "flipflop", "--set", "optimizer.momentum"], "--set expects key=value"),
        (["fit", "flipflop", "--n-tangents", "0"], "n_tangents"),
        (["fit", "flipflop", "--set", "task.n_bits=0"], "n_bits"),
        (["fit", "flipflop", "--config", "/nonexistent/run.toml"], "does not exist"),
        (["compare", "flipflop", "--optimizers", "sofo,lbfgs"], "unknown optimizer 'lbfgs'"),
        (["export", "/nonexistent"], "is not a run folder"),
    ],
)
def test_user_errors_exit_2_with_one_line(tmp_path, capsys, argv, message):
    argv = [*argv]
    if argv[0] == "fit":  # the tiny settings first, so that the case's own flag wins
        argv = [*argv[:2], "--out", str(tmp_path / "run"), *TINY, *argv[2:]]
    code, _, err = run(argv, capsys)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_unreadable_config_and_existing_folder(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("optimizer = [unclosed\n")
    code, _, err = run(
        ["fit", "flipflop", "--config", str(bad), "--out", str(tmp_path / "a"), *TINY], capsys
    )
    assert code == 2 and "not valid TOML" in err
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("keep me")
    code, _, err = run(["fit", "flipflop", "--out", str(existing), *TINY], capsys)
    assert code == 2 and "--resume" in err and "--force" in err
    assert (existing / "notes.txt").read_text() == "keep me"


def test_installed_entry_point_help():
    for sub in ([], ["fit"], ["compare"], ["tasks"], ["export"]):
        proc = subprocess.run(
            [sys.executable, "-m", "neurodyn.cli", *sub, "--help"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert "usage: neurodyn" in proc.stdout


def test_models_lists_every_network_with_its_defaults(capsys):
    import inspect

    import equinox as eqx

    from neurodyn.cli import MODEL_NAMES

    # every concrete network class of nd.models is listed (the list cannot fall behind)
    for name in dir(nd.models):
        obj = getattr(nd.models, name)
        if inspect.isclass(obj) and issubclass(obj, eqx.Module) and not inspect.isabstract(obj):
            assert name in MODEL_NAMES, name
    code, out, _ = run(["models"], capsys)
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    for name in MODEL_NAMES:
        assert name in lines, name
    assert "tau=10, " in lines["RateRNN"] and "activation='tanh'" in lines["RateRNN"]
    assert "n_neurons=64" in lines["motor_rnn"] and "tau=0.02" in lines["motor_rnn"]
    assert "hidden_sizes=(100,)" in lines["MLP"] and "key=" not in out


def test_optimizers_lists_every_optimizer_with_its_defaults(capsys):
    code, out, _ = run(["optimizers"], capsys)
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    for name in nd.optim.optimizer_names():
        assert name in lines, name
    sofo = nd.optim.from_config("sofo")
    assert f"n_tangents={sofo.n_tangents}," in lines["sofo"]
    assert f"damping={sofo.damping:g}," in lines["sofo"]
    assert "b2=0.999" in lines["adam"] and "alpha=1" in lines["force"]
    # with a task: its recommendations replace the defaults
    code, out, _ = run(["optimizers", "--task", "flipflop"], capsys)
    hp = nd.tasks.get("flipflop").hyperparameters("sofo")
    line = next(x for x in out.splitlines() if x.startswith("sofo "))
    assert f"n_tangents={hp['n_tangents']}," in line and f"n_iters={hp['n_iters']}" in line
    code, _, err = run(["optimizers", "--task", "no-such-task"], capsys)
    assert code == 2 and "unknown task 'no-such-task'" in err and len(err.splitlines()) == 1


def test_max_loss_spike_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "run"
    tiny = TINY[:4] + TINY[6:]  # without --n-tangents
    argv = ["fit", "flipflop", "--out", str(out), "--optimizer", "adam", *tiny]
    code, _, err = run([*argv, "--set", "training.max_loss_spike=5"], capsys)
    assert code == 0, err
    assert "max_loss_spike = 5.0" in (out / "config.toml").read_text()
    history = nd.analysis.load(out / "history.nc")
    assert "recent_loss_median" in history and "loss_spike" in history
    # the double reach's Adam recipe carries it into [training], not into the optimizer
    config = nd.config.resolve_config("double-reach", base={"optimizer": {"name": "adam"}})
    assert config["training"]["max_loss_spike"] == 5.0
    assert "max_loss_spike" not in config["optimizer"]
