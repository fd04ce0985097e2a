"""Tasks from trial-based environments (the NeuroGym adapter).

A toy environment written here follows NeuroGym's trial protocol, so the mapping, the loss
and both kinds of metrics are checked without neurogym; the tests on real NeuroGym tasks run
when neurogym is installed (it is an optional extra: it pins numpy/matplotlib and imports
torch, so the test extra does not pull it)."""

import importlib.util
import sys
from types import SimpleNamespace

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import neurodyn as nd
from neurodyn.models import AbstractRecurrentModel

HAS_NEUROGYM = importlib.util.find_spec("neurogym") is not None and (
    importlib.util.find_spec("torch") is not None  # neurogym 2.x imports torch
)
needs_neurogym = pytest.mark.skipif(not HAS_NEUROGYM, reason="neurogym is not installed")


class ToyDecision:
    """Fixate for 3-5 steps, then report the cued side (1 or 2) for 2 steps; the cue is shown
    throughout. NeuroGym's protocol: `new_trial()` fills `ob`/`gt`, `step(action)` returns
    `(ob, reward, terminated, truncated, info)` with `new_trial` and `performance`."""

    def __init__(self, continuous=False):
        self.dt = 100
        self.continuous = continuous
        self.action_space = (
            SimpleNamespace(shape=(2,)) if continuous else SimpleNamespace(n=3, shape=())
        )
        self.rng = np.random.default_rng(0)

    def seed(self, seed):
        self.rng = np.random.default_rng(seed)

    def new_trial(self):
        n_fix = int(self.rng.integers(3, 6))
        side = int(self.rng.integers(1, 3))
        T = n_fix + 2
        self.ob = np.zeros((T, 3))
        self.ob[:n_fix, 0] = 1.0
        self.ob[:, side] = 1.0
        if self.continuous:
            self.gt = np.zeros((T, 2))
            self.gt[n_fix:, side - 1] = 1.0
        else:
            self.gt = np.zeros(T, int)
            self.gt[n_fix:] = side
        self.start_ind = {"fixation": 0, "decision": n_fix}
        self.end_ind = {"fixation": n_fix, "decision": T}
        self.t, self.performance = 0, 0.0
        return {"side": side}

    def reset(self, seed=None):
        if seed is not None:
            self.seed(seed)
        self.new_trial()
        return self.ob[0], {}

    def step(self, action):
        info, reward = {"new_trial": False}, 0.0
        if self.t == self.start_ind["decision"]:
            self.performance = float(np.all(np.asarray(action) == self.gt[self.t]))
        self.t += 1
        if self.t == len(self.gt):
            info.update(new_trial=True, performance=self.performance)
            reward = self.performance
            self.new_trial()
        return self.ob[self.t], reward, False, False, info


class Oracle(AbstractRecurrentModel):
    """Reads the answer off the observation: fixate while the fixation cue is on, then
    choose the cued side (or output the one-hot target, continuous)."""

    n_out: int = eqx.field(static=True, default=3)

    def initial_state(self, key=None):
        return jnp.zeros(1)

    def step(self, carry, u, noise=None):
        side = jnp.argmax(u[1:3])
        if self.n_out == 2:
            return carry, jnp.where(u[0] > 0.5, 0.0, 1.0) * jnp.eye(2)[side]
        label = jnp.where(u[0] > 0.5, 0, side + 1)
        return carry, 10.0 * jnp.eye(3)[label]


class AlwaysFixate(Oracle):
    def step(self, carry, u, noise=None):
        return carry, 10.0 * jnp.eye(self.n_out)[0]


def toy_task(**options):
    options = {"n_train": 40, "n_test": 30, "seed": 3, **options}
    return nd.tasks.trial_env_task(ToyDecision(), env_factory=ToyDecision, **options)


def test_the_batch_is_the_environment_s_trials():
    task = toy_task(period_weights={"decision": 4.0})
    # the same trials drawn again, by hand, from a fresh environment with the same seed
    env = ToyDecision()
    env.seed(3)
    trials = []
    for _ in range(40):
        env.new_trial()
        trials.append((env.ob.copy(), env.gt.copy(), env.start_ind["decision"]))
    assert task.n_steps == max(len(ob) for ob, _, _ in trials) == 7
    assert task.dt == 0.1 and task.n_actions == 3 and task.discrete and task.name == "ToyDecision"
    batch = task.sample(key=jr.PRNGKey(0), batch_size=16)
    for b, i in enumerate(np.asarray(batch.metadata["bank_index"])):
        ob, gt, decision = trials[i]
        T = len(ob)
        np.testing.assert_array_equal(batch.inputs[b, :T], ob)
        np.testing.assert_array_equal(batch.targets[b, :T], gt)
        assert np.all(batch.inputs[b, T:] == 0) and np.all(batch.weights[b, T:] == 0)
        expected = np.where(np.arange(T) >= decision, 4.0, 1.0)
        np.testing.assert_array_equal(batch.weights[b, :T], expected)


def test_the_loss_is_the_weighted_cross_entropy(getkey):
    task = toy_task(noise_std=0.0, period_weights={"decision": 2.0})
    model = task.default_model(key=getkey())
    batch = task.sample(key=getkey(), batch_size=8)
    value = float(task.problem(model, batch, key=getkey()).value(model))
    _, y = nd.models.simulate(model, batch.inputs, key=getkey())
    y = np.asarray(y, np.float64)
    logp = y - np.log(np.exp(y).sum(-1, keepdims=True))
    ce = -np.take_along_axis(logp, np.asarray(batch.targets)[..., None], -1)[..., 0]
    expected = np.sum(np.asarray(batch.weights) * ce) / (8 * task.n_steps)
    np.testing.assert_allclose(value, expected, rtol=1e-10)


def test_metrics_offline_and_in_closed_loop():
    task = toy_task()
    perfect = task.evaluate(Oracle(), key=jr.PRNGKey(0))
    assert perfect["accuracy"] == perfect["final_accuracy"] == perfect["performance"] == 1.0
    assert perfect["reward"] == 1.0 and perfect["loss"] < 1e-3
    lazy = task.evaluate(AlwaysFixate(), key=jr.PRNGKey(0))
    gt, w = np.asarray(task.test_targets), np.asarray(task.test_weights)
    assert lazy["accuracy"] == pytest.approx(np.mean(gt[w > 0] == 0))  # the fixation steps
    assert lazy["final_accuracy"] == lazy["performance"] == lazy["reward"] == 0.0
    assert task.run_in_environment(Oracle(), key=jr.PRNGKey(1), n_trials=5)["performance"] == 1
    # without a way to re-create the environment: the offline metrics only
    offline = nd.tasks.trial_env_task(ToyDecision(), n_train=8, n_test=8)
    assert set(offline.evaluate(Oracle(), key=jr.PRNGKey(0))) == {
        "loss",
        "accuracy",
        "final_accuracy",
    }


def test_continuous_actions_use_the_squared_error():
    env = ToyDecision(continuous=True)
    task = nd.tasks.trial_env_task(env, n_train=20, n_test=10, noise_std=0.0)
    assert not task.discrete and task.n_actions == 2 and task.weights.shape[-1] == 1
    assert task.evaluate(Oracle(n_out=2), key=jr.PRNGKey(0))["mse"] == 0.0
    assert task.evaluate(AlwaysFixate(n_out=2), key=jr.PRNGKey(0))["mse"] > 0.1


def test_sofo_trains_a_dale_network_on_the_toy_environment(getkey):
    task = toy_task(n_train=256, n_neurons=24, online_trials=20)
    model = task.default_model(key=getkey())
    assert model.excitatory_fraction == 0.8  # Dale's law
    hp = task.hyperparameters("sofo")
    optimizer = nd.optim.sofo(
        learning_rate=hp["learning_rate"], n_tangents=16, damping=hp["damping"]
    )
    result = nd.fit(model, task, optimizer, n_iters=30, batch_size=16, key=getkey())
    metrics = result.final_metrics
    assert metrics["final_accuracy"] > 0.9 and metrics["performance"] > 0.9, metrics
    W, signs = np.asarray(result.model.weights().W), np.asarray(result.model.signs)
    assert np.all(W * signs[:, None] >= 0) and W.min() < 0 < W.max()  # Dale's law holds


def test_errors_name_the_problem(monkeypatch):
    with pytest.raises(TypeError, match="new_trial"):
        nd.tasks.trial_env_task(SimpleNamespace(action_space=SimpleNamespace(n=2, shape=())))
    with pytest.raises(ValueError, match="period_weights"):
        toy_task(period_weights={"decision": -1.0})
    with pytest.raises(ValueError, match="action_space"):
        env = ToyDecision()
        env.action_space = None
        nd.tasks.trial_env_task(env)
    with pytest.raises(ValueError, match="neurogym:<id>"):
        nd.tasks.get("no-such-task")
    monkeypatch.setitem(sys.modules, "neurogym", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r'pip install "neurodyn\[neurogym\]"'):
        nd.tasks.get("neurogym:GoNogo-v0")


# ----------------------------------------------------------------------------- NeuroGym

NEUROGYM_ENVS = ("PerceptualDecisionMaking-v0", "GoNogo-v0", "DelayMatchSample-v0")


@needs_neurogym
@pytest.mark.parametrize("env_id", NEUROGYM_ENVS)
def test_neurogym_tasks_are_their_environment_s_trials(env_id):
    import neurogym

    task = nd.tasks.get(f"neurogym:{env_id}", n_train=32, n_test=16, seed=5, online_trials=5)
    env = neurogym.make(env_id)
    env.unwrapped.seed(5)
    for i in range(32):
        env.unwrapped.new_trial()
        ob, gt = env.unwrapped.ob, env.unwrapped.gt
        np.testing.assert_allclose(task.inputs[i, : len(ob)], ob, rtol=1e-6)
        np.testing.assert_array_equal(task.targets[i, : len(gt)], gt)
    assert task.n_actions == env.action_space.n and task.dt == env.unwrapped.dt / 1000
    metrics = task.evaluate(task.default_model(key=jr.PRNGKey(0)), key=jr.PRNGKey(1))
    assert 0.0 <= metrics["performance"] <= 1.0 and 0.0 <= metrics["final_accuracy"] <= 1.0


@needs_neurogym
@pytest.mark.slow  # importing neurogym imports torch; the CLI compiles a fit and an export
def test_neurodyn_fit_neurogym_end_to_end(tmp_path, capsys):
    from neurodyn.cli import main

    out = tmp_path / "run"
    argv = ["fit", "neurogym:GoNogo-v0", "--out", str(out), "--iters", "3", "--no-progress"]
    argv += ["--batch-size", "4", "--n-tangents", "4", "--set", "task.n_train=16"]
    argv += ["--set", "task.n_neurons=8", "--set", "task.online_trials=3"]
    argv += ["--set", "task.period_weights.decision=2.0"]
    assert main(argv) == 0, capsys.readouterr().err
    run = nd.analysis.load_run(out)
    assert run.config["task"] == "neurogym:GoNogo-v0"
    assert "eval_performance" in run.history and run.trials.rates.dims[-1] == "neuron"
    assert run.trials.time.attrs["units"] == "s"
    task, model = run.model()
    assert task.name == "neurogym:GoNogo-v0" and model.n_neurons == 8


def test_simulated_trials_label_actions_and_choices(tmp_path):
    from .helpers import assert_cf_clean

    task = toy_task()
    ds = nd.analysis.simulate(Oracle(), task, key=jr.PRNGKey(0), n_trials=6)
    scored = ds.loss_weight.values > 0
    np.testing.assert_array_equal(ds.choice.values[scored], ds.target_action.values[scored])
    index = ds.bank_index.values
    np.testing.assert_array_equal(ds.inputs.values, np.asarray(task.inputs)[index])
    assert ds.time.attrs["units"] == "s" and np.allclose(np.diff(ds.time.values), 0.1)
    assert_cf_clean(nd.analysis.save(ds, tmp_path / "trials.nc"))
