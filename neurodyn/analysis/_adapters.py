"""How `simulate` labels the abstract tasks: flip-flop, Kalman, Lorenz, one-shot, digits.

Each adapter reads the task's documented `Batch.metadata` keys and names, units and describes
every variable; no task file knows about analysis.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from ..models import rollout_problem
from ..tasks import (
    AbstractFlipFlopTask,
    Batch,
    DigitsTask,
    KalmanTask,
    LorenzTask,
    OneShotTask,
    TrialEnvTask,
)
from ._simulate import TaskAdapter, loss_weight, rates_variable, register_adapter, var


def _no_loss(y, x):
    return jnp.zeros((), jnp.result_type(*jax.tree.leaves(y)))


# ----------------------------------------------------------------------------- flip-flop


class FlipFlopAdapter(TaskAdapter):
    """Flip-flop: inputs, targets and outputs over (`trial`, `time`, `bit`), pulse onsets."""

    kind = "flipflop"
    default_n_trials = 16

    def variables(self, task, model, batch, observed, *, key):
        dims = ("trial", "time", "bit")
        md = batch.metadata
        return {
            "inputs": var(dims, batch.inputs, "1", "input pulses (+1/-1 for 3 steps)"),
            "targets": var(dims, batch.targets, "1", "target: sign of the last pulse (0 before)"),
            "outputs": var(dims, observed["outputs"], "1", "network output"),
            "rates": rates_variable(model, observed["rates"]),
            "onset": var(dims, np.asarray(md["onset"], bool), "1", "pulse onset"),
            "n_pulses": var(
                ("trial", "bit"),
                np.asarray(md["n_pulses"]),
                "1",
                "pulses in the trial",
                role="coord",
            ),
        }

    def coords(self, task, model, batch):
        return {"bit": var(("bit",), np.arange(task.n_bits), "1", "flip-flop channel")}


# ----------------------------------------------------------------------------- Kalman


class KalmanAdapter(TaskAdapter):
    """Kalman filtering: latent, observation, network and oracle estimates, contexts."""

    kind = "kalman"
    default_n_trials = 32

    def extras(self, task, model, batch, *, key):
        from ..tasks import oracle_filter

        md = batch.metadata
        oracle = jax.vmap(lambda *a: oracle_filter(*a, sigma=task.sigma))(
            batch.inputs[..., 0], md["tau"], md["bias"], md["beta"], md["switch"]
        )
        return {"oracle": oracle}

    def variables(self, task, model, batch, observed, *, key):
        md = batch.metadata
        dims = ("trial", "time")
        oracle = observed["oracle"]
        estimate = np.asarray(observed["outputs"])[..., 0]
        return {
            "inputs": var(("trial", "time", "input"), batch.inputs, "1", "network input"),
            "targets": var(("trial", "time", "output"), batch.targets, "1", "target output"),
            "outputs": var(("trial", "time", "output"), observed["outputs"], "1", "network output"),
            "rates": rates_variable(model, observed["rates"]),
            "latent": var(dims, np.asarray(batch.targets)[..., 0], "1", "true latent x"),
            "observation": var(
                dims, np.asarray(batch.inputs)[..., 0], "1", "observation y = x + beta*noise"
            ),
            "estimate": var(dims, estimate, "1", "network estimate of x"),
            "oracle_estimate": var(
                dims, oracle, "1", "oracle Kalman filter estimate (knows contexts and switches)"
            ),
            "tau": var(dims, md["tau"], "1", "context time constant tau (network steps)"),
            "bias": var(dims, md["bias"], "1", "context mean b"),
            "beta": var(dims, md["beta"], "1", "context observation noise std beta"),
            "switch": var(dims, np.asarray(md["switch"], bool), "1", "a context starts here"),
            "time_since_switch": var(
                dims,
                np.asarray(md["time_since_switch"]) * float(task.dt),
                "1",
                "time since the last context switch (network steps)",
            ),
        }


# ----------------------------------------------------------------------------- Lorenz


class LorenzAdapter(TaskAdapter):
    """Lorenz: long free runs of the network from points of the attractor, with the truth.

    Fresh trials are windows of the task's (z-scored) training trajectory, `n_steps` = 1500
    steps (15 time units) long, starting at random points; the network runs autonomously from
    the window's first point (the task's own problem, only longer).
    """

    kind = "lorenz"
    default_n_trials = 8
    n_steps = 1500

    def time_units(self, task):
        return "1", "time (Lorenz time units)"

    def fresh_trials(self, task, *, key, n_trials):
        n_steps = min(self.n_steps, task.trajectory.shape[0] - 1)
        start = jr.randint(key, (n_trials,), 0, task.trajectory.shape[0] - n_steps)
        windows = task.trajectory[start[:, None] + jnp.arange(n_steps + 1)]
        dtype = windows.dtype
        metadata = {"initial_state": windows[:, 0], "start_index": start.astype(jnp.int32)}
        return Batch(jnp.zeros((n_trials, n_steps, 0), dtype), windows[:, 1:], None, metadata)

    def problem(self, task, model, batch, *, key):
        return rollout_problem(
            model, batch.inputs, _no_loss, key=key, initial_state=batch.metadata["initial_state"]
        )

    def variables(self, task, model, batch, observed, *, key):
        dims = ("trial", "time", "axis")
        return {
            "targets": var(dims, batch.targets, "1", "true Lorenz state (z-scored)"),
            "outputs": var(
                dims, observed["outputs"], "1", "network state, free-running (z-scored)"
            ),
            "rates": rates_variable(model, observed["rates"], "hidden-layer activity"),
            "initial_state": var(
                ("trial", "axis"),
                batch.metadata["initial_state"],
                "1",
                "initial state (z-scored)",
                role="coord",
            ),
        }

    def coords(self, task, model, batch):
        return {"axis": var(("axis",), np.array(["x", "y", "z"]), "1", "Lorenz coordinate")}

    def attrs(self, task, model, batch):
        return {
            "zscore_mean": np.asarray(task.mean, np.float64),
            "zscore_std": np.asarray(task.std, np.float64),
        }


# ----------------------------------------------------------------------------- one-shot


class OneShotAdapter(TaskAdapter):
    """One-shot classification: stimuli, labels, logits and class probabilities."""

    kind = "oneshot"
    default_n_trials = 16

    def variables(self, task, model, batch, observed, *, key):
        md = batch.metadata
        logits = np.asarray(observed["outputs"])
        shifted = logits - logits.max(-1, keepdims=True)
        prob = np.exp(shifted) / np.exp(shifted).sum(-1, keepdims=True)
        dims = ("trial", "time")
        query_steps = np.asarray(md["query_steps"])
        return {
            "inputs": var(
                dims + ("input",), batch.inputs, "1", "network input (stimulus, label, cue)"
            ),
            "targets": var(dims, np.asarray(batch.targets), "1", "correct label of the item shown"),
            "outputs": var(dims + ("class",), logits, "1", "network output (logits)"),
            "probability": var(dims + ("class",), prob, "1", "softmax of the logits"),
            "rates": rates_variable(model, observed["rates"], "hidden-layer activity"),
            "item": var(dims, np.asarray(md["items"]), "1", "item shown"),
            "loss_weight": loss_weight(batch),
            "permutation": var(
                ("trial", "class"),
                np.asarray(md["permutation"]),
                "1",
                "label of each item in this trial",
                role="coord",
            ),
            "query_time": var(
                ("trial", "query"),
                query_steps * float(task.dt),
                "1",
                "scored (query) time (network steps)",
                role="coord",
            ),
        }

    def coords(self, task, model, batch):
        c = task.n_classes
        names = [f"stimulus_{i}" for i in range(c)] + [f"label_{i}" for i in range(c)] + ["cue"]
        return {
            "class": var(("class",), np.arange(c), "1", "class label"),
            "input": var(("input",), np.array(names), "1", "input channel"),
        }


# ----------------------------------------------------------------------------- digits


class DigitsAdapter(TaskAdapter):
    """Digits (feedforward): test images, labels, logits, and hidden-layer activity."""

    kind = "digits"
    default_n_trials = 1000

    def fresh_trials(self, task, *, key, n_trials):
        del key
        n = min(n_trials, task.x_test.shape[0])
        return Batch(task.x_test[:n], task.y_test[:n], None, {"index": jnp.arange(n)})

    def canonical_trials(self, task):
        return None

    def extras(self, task, model, batch, *, key):
        logits, hidden = _mlp_forward(model, batch.inputs)
        n = batch.inputs.shape[0]
        rates = jnp.concatenate(hidden, axis=-1) if hidden else jnp.zeros((n, 0), logits.dtype)
        return {"logits": logits, "hidden": rates}

    def variables(self, task, model, batch, observed, *, key):
        logits, rates = observed["logits"], observed["hidden"]
        shifted = logits - logits.max(-1, keepdims=True)
        prob = np.exp(shifted) / np.exp(shifted).sum(-1, keepdims=True)
        return {
            "inputs": var(("trial", "pixel"), batch.inputs, "1", "pixel intensity (0 to 1)"),
            "targets": var(("trial",), np.asarray(batch.targets), "1", "true digit"),
            "outputs": var(("trial", "class"), logits, "1", "network output (logits)"),
            "probability": var(("trial", "class"), prob, "1", "softmax of the logits"),
            "prediction": var(("trial",), logits.argmax(-1), "1", "predicted digit"),
            "rates": var(("trial", "neuron"), rates, "1", "hidden-unit activity"),
            "test_index": var(
                ("trial",),
                np.asarray(batch.metadata["index"]),
                "1",
                "row of the test set",
                role="coord",
            ),
        }

    def coords(self, task, model, batch):
        sizes = getattr(model, "sizes", ())
        layer = np.concatenate([np.full(h, i + 1) for i, h in enumerate(sizes[1:-1])] or [[]])
        return {
            "class": var(("class",), np.arange(task.n_classes), "1", "digit class"),
            "layer": var(("neuron",), layer.astype(np.int64), "1", "hidden layer of the unit"),
        }

    def attrs(self, task, model, batch):
        side = int(round(np.sqrt(task.n_inputs)))
        return {"image_shape": [side, side]}


def _mlp_forward(model, x):
    """The model's own logits and its hidden-layer activities.

    The hidden layers are recomputed from `model.weights`/`biases`; whether a weight is
    stored `(out, in)` or `(in, out)` is read off its shape, and when every layer is square
    the orientation that reproduces the model's logits is used.
    """
    logits = jax.vmap(model)(x)
    candidates = []
    for transpose in (True, False):
        h, hidden = x, []
        for i, (w, b) in enumerate(zip(model.weights, model.biases)):
            w = w.T if transpose else w
            if w.shape[0] != h.shape[-1]:
                break
            h = h @ w + b
            if i < len(model.weights) - 1:
                h = model.activation(h)
                hidden.append(h)
        else:
            candidates.append((jnp.max(jnp.abs(h - logits)), hidden))
    if len(candidates) == 1:
        return logits, candidates[0][1]
    (err_t, hid_t), (err_n, hid_n) = candidates
    return logits, [jnp.where(err_t <= err_n, a, b) for a, b in zip(hid_t, hid_n)]


class TrialEnvAdapter(TaskAdapter):
    """NeuroGym-style tasks: the generic variables, plus (discrete actions) the correct action
    `target_action` and the network's `choice` (arg-max of its outputs) at every step."""

    kind = "trial_env"

    def variables(self, task, model, batch, observed, *, key):
        out = super().variables(task, model, batch, observed, key=key)
        tt = ("trial", "time")
        if task.discrete:
            out["target_action"] = var(tt, batch.targets, "1", "correct action (ground truth)")
            out["choice"] = var(
                tt, np.asarray(observed["outputs"]).argmax(-1), "1", "arg-max of the outputs"
            )
        out["bank_index"] = var(
            ("trial",), batch.metadata["bank_index"], "1", "index in the task's trial bank"
        )
        return out


register_adapter(AbstractFlipFlopTask, FlipFlopAdapter())
register_adapter(TrialEnvTask, TrialEnvAdapter())
register_adapter(KalmanTask, KalmanAdapter())
register_adapter(LorenzTask, LorenzAdapter())
register_adapter(OneShotTask, OneShotAdapter())
register_adapter(DigitsTask, DigitsAdapter())

try:  # the reaching tasks (registered by `_arm.py`)
    from . import _arm  # noqa: F401
except ImportError:  # pragma: no cover - a build without the reaching tasks
    pass
