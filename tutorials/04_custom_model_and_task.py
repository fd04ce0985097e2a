# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4 · Your own model and your own task
#
# neurodyn's networks and tasks are ordinary Equinox modules behind two small interfaces.
# Anything that follows them trains with every optimizer (`nd.fit`, SOFO, Adam, ...) and
# goes through the analysis tools. In this tutorial you will write
#
# 1. a **task**: perceptual decision making with a delay — integrate a noisy stimulus,
#    wait, then report the sign of its mean — by subclassing `nd.tasks.AbstractTask`;
# 2. a **network**: a *low-rank* rate network (connectivity W = M Nᵀ / N, as in
#    Mastrogiuseppe & Ostojic, 2018) with learnable, positive, per-neuron time constants,
#    by subclassing `nd.models.AbstractRecurrentModel`;
# 3. and train it with `nd.fit`, then look at what it learnt.
#
# `NEURODYN_FAST=1` shrinks the network and the run (the test suite's mode).

# %%
import os
import sys
from pathlib import Path
from typing import ClassVar

import matplotlib

NOTEBOOK = "ipykernel" in sys.modules
if not NOTEBOOK:
    matplotlib.use("Agg")
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.layout_engine import ConstrainedLayoutEngine

import neurodyn as nd

FAST = os.environ.get("NEURODYN_FAST", "0") not in ("", "0")
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(os.environ.get("NEURODYN_TUTORIAL_OUT", HERE / "_out")) / "04_custom_model_and_task"
OUT.mkdir(parents=True, exist_ok=True)


FAST_NOTE = "fast mode (NEURODYN_FAST=1): a shrunken network,\nbriefly trained (not the tutorial's result)"


def save(fig, name):
    """Write a figure to OUT (and keep it on screen in a notebook). In fast mode its title
    says that it comes from a shrunken, briefly trained run."""
    if FAST:
        title = fig.get_suptitle()
        fig.suptitle(f"{FAST_NOTE}\n{title}" if title else FAST_NOTE, color="firebrick", size="small")
        if not isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine):
            fig.tight_layout()  # make room for the note
    fig.savefig(OUT / f"{name}.png", dpi=100, metadata={"Title": fig.get_suptitle()})
    if not NOTEBOOK:
        plt.close(fig)


# %% [markdown]
# ## The model contract
#
# A recurrent model is written for **one trial**; neurodyn batches it with `jax.vmap` and
# rolls it out with `lax.scan`. It defines
#
# | method | returns |
# |---|---|
# | `initial_state(key=None)` | the trial's initial carry (any pytree) |
# | `step(carry, u, noise=None)` | `(new_carry, y)`: one time step with input vector `u` |
# | `sample_noise(key, n_steps)` | every noise sample of one trial (leading time axis), or `None` |
# | `rates(carry)` | the firing rates, for analysis |
# | `trainable()` | which leaves are trained (default: every floating-point array) |
#
# Noise is drawn by `sample_noise` *outside* the step and passed in, so that SOFO can push
# all its tangent directions through the same noisy trial.
#
# Our network: x_{t+1} = x_t + α ⊙ (−x_t + φ(x_t) M Nᵀ / N + u_t W_in) + σ √α ξ_t, with
# φ = tanh, readout y_t = φ(x_{t+1}) w / N, and per-neuron leak α = dt / τ. The time
# constants must stay above dt (otherwise Euler is unstable), so, as for Dale's law in
# `RateRNN`, we store a free parameter and map it to the constrained one in exactly one
# place: τ = dt + softplus(ρ) ≥ dt.


# %%
class LowRankRNN(nd.models.AbstractRecurrentModel):
    """Rank-R tanh rate network with learnable per-neuron time constants (one trial)."""

    M: jax.Array  # (N, R) left connectivity vectors
    N_vec: jax.Array  # (N, R) right connectivity vectors
    W_in: jax.Array  # (n_in, N)
    w_out: jax.Array  # (N, n_out)
    rho: jax.Array  # (N,) free parameter of the time constants
    dt: float = eqx.field(static=True)
    noise_std: float = eqx.field(static=True)

    def __init__(self, n_neurons, n_inputs, n_outputs, rank=2, *, tau=0.1, dt=0.02,
                 noise_std=0.05, key):
        k_m, k_n, k_in, k_out = jr.split(key, 4)
        self.M = jr.normal(k_m, (n_neurons, rank))
        self.N_vec = jr.normal(k_n, (n_neurons, rank))
        self.W_in = jr.normal(k_in, (n_inputs, n_neurons))
        self.w_out = jr.normal(k_out, (n_neurons, n_outputs))
        # softplus(rho) = tau - dt: every neuron starts at the same time constant
        self.rho = jnp.full((n_neurons,), np.log(np.expm1(tau - dt)))
        self.dt = dt
        self.noise_std = noise_std

    def time_constants(self):
        """The one place where the constraint is applied: τ = dt + softplus(ρ) ≥ dt."""
        return self.dt + jax.nn.softplus(self.rho)

    def initial_state(self, key=None):
        return jnp.zeros(self.M.shape[0])

    def sample_noise(self, key, n_steps):
        if self.noise_std == 0:
            return None
        return jr.normal(key, (n_steps, self.M.shape[0]))

    def rates(self, carry):
        return jnp.tanh(carry)

    def step(self, carry, u, noise=None):
        x = carry
        n = x.shape[0]
        alpha = self.dt / self.time_constants()
        r = jnp.tanh(x)
        drive = (r @ self.M) @ self.N_vec.T / n + u @ self.W_in
        x = x + alpha * (drive - x)
        if noise is not None:
            x = x + self.noise_std * jnp.sqrt(alpha) * noise
        y = jnp.tanh(x) @ self.w_out / n
        return x, y


net = LowRankRNN(16, n_inputs=2, n_outputs=1, key=jr.PRNGKey(0))
x, y = net.step(net.initial_state(), jnp.array([0.5, 0.0]))
print("one step:", x.shape, y.shape, "| trained parameters P =", net.n_params)

# %% [markdown]
# ## The task contract
#
# A task is an `eqx.Module` with
#
# | method | does |
# |---|---|
# | `sample(*, key, batch_size)` | a `nd.tasks.Batch` of trials, batch-first: `inputs` `[B, T, n_in]`, `targets`, per-step loss `weights`, and `metadata` (conditions, event times) |
# | `loss(y, x)` | the loss of one step, batch mean; `x` holds that step's `target` and `weight` |
# | `evaluate(model, *, key, n_trials)` | a dict of metrics on fresh trials |
# | `default_model(*, key)` | the network this task is usually solved with |
# | `hyperparameters(optimizer)` | recommended settings per optimizer name |
#
# The loss must be convex in the outputs (SOFO builds a Gauss–Newton matrix from its
# curvature). `nd.optim.mse` is such a loss, with a closed-form curvature that SOFO uses
# directly: returning it from `loss_function()` is all it takes.
#
# Our trial (time in s, steps of 20 ms): fixation; from 0.2 s to 1.2 s a stimulus
# u_t = c + noise with a random coherence c; a delay; at the go cue (1.6 s) a second input
# channel turns on and, from then on, the output must be sign(c). Only the response period
# is scored.


# %%
class DelayedDecisionTask(nd.tasks.AbstractTask):
    """Integrate a noisy stimulus, hold the decision over a delay, report its sign."""

    dt: float = eqx.field(static=True, default=0.02)
    n_steps: int = eqx.field(static=True, default=100)
    stim_on: int = eqx.field(static=True, default=10)
    stim_off: int = eqx.field(static=True, default=60)
    go_cue: int = eqx.field(static=True, default=80)
    max_coherence: float = eqx.field(static=True, default=0.2)
    stim_noise: float = eqx.field(static=True, default=0.5)
    n_neurons: int = eqx.field(static=True, default=128)

    name: ClassVar[str] = "delayed-decision"
    description: ClassVar[str] = "integrate a noisy stimulus, report the sign of its mean"

    def sample(self, *, key, batch_size):
        k_c, k_noise = jr.split(key)
        coherence = jr.uniform(k_c, (batch_size,), minval=-self.max_coherence,
                               maxval=self.max_coherence)
        t = jnp.arange(self.n_steps)
        stim = (t >= self.stim_on) & (t < self.stim_off)
        noise = self.stim_noise * jr.normal(k_noise, (batch_size, self.n_steps))
        evidence = jnp.where(stim, coherence[:, None] + noise, 0.0)
        go = jnp.broadcast_to(t >= self.go_cue, evidence.shape).astype(evidence.dtype)
        inputs = jnp.stack([evidence, go], axis=-1)
        targets = jnp.broadcast_to(jnp.sign(coherence)[:, None, None], (batch_size,
                                                                          self.n_steps, 1))
        weights = jnp.broadcast_to((t >= self.go_cue)[None, :, None], targets.shape)
        metadata = {"coherence": coherence,
                    "go_cue": jnp.full((batch_size,), self.go_cue, jnp.int32)}
        return nd.tasks.Batch(inputs, targets, weights.astype(inputs.dtype), metadata)

    def loss_function(self):
        n_scored = self.n_steps - self.go_cue  # mean over the scored steps
        return nd.optim.mse(target="target", weight="weight", scale=1.0 / n_scored)

    def loss(self, y, x):
        return self.loss_function()(y, x)

    def evaluate(self, model, *, key, n_trials=None):
        k_trials, k_noise = jr.split(key)
        batch = self.sample(key=k_trials, batch_size=n_trials or 512)
        choice, coherence = _choices(model, batch, k_noise, self.go_cue)
        correct = np.sign(choice) == np.sign(coherence)
        strong = np.abs(coherence) > self.max_coherence / 2
        return {"accuracy": float(correct.mean()),
                "accuracy_strong": float(correct[strong].mean())}

    def default_model(self, *, key):
        return LowRankRNN(self.n_neurons, 2, 1, dt=self.dt, key=key)

    def hyperparameters(self, optimizer="sofo"):
        table = {
            "sofo": dict(n_iters=300, batch_size=64, learning_rate=0.1, n_tangents=32,
                         damping=1e-2),
            "adam": dict(n_iters=3000, batch_size=64, learning_rate=3e-3),
        }
        return dict(table[optimizer])


@eqx.filter_jit
def _choices(model, batch, key, go_cue):
    """Mean output over the response period of every trial, and the trials' coherences."""
    _, outputs = nd.models.simulate(model, batch.inputs, key=key)
    return outputs[:, go_cue:, 0].mean(1), batch.metadata["coherence"]


# %% [markdown]
# Registering the class makes `nd.tasks.get("delayed-decision")` build it by name (the
# guard keeps a notebook cell re-runnable: a name can be registered only once).

# %%
if DelayedDecisionTask.name not in nd.tasks.available():
    nd.tasks.register(DelayedDecisionTask.name)(DelayedDecisionTask)
task = nd.tasks.get("delayed-decision", n_neurons=32 if FAST else 128)
batch = task.sample(key=jr.PRNGKey(1), batch_size=4)
print("inputs", batch.inputs.shape, "targets", batch.targets.shape,
      "coherences", np.round(batch.metadata["coherence"], 3))

fig, axes = plt.subplots(3, 1, figsize=(7, 5), sharex=True, constrained_layout=True)
t = np.arange(task.n_steps) * task.dt
axes[0].plot(t, batch.inputs[0, :, 0], color="0.5")
axes[0].set_ylabel("evidence")
axes[1].plot(t, batch.inputs[0, :, 1], color="k")
axes[1].set_ylabel("go cue")
axes[2].plot(t, batch.targets[0, :, 0] * batch.weights[0, :, 0], color="C1")
axes[2].set_ylabel("scored target")
axes[2].set_xlabel("time (s)")
axes[0].set_title(f"one trial, coherence {float(batch.metadata['coherence'][0]):+.3f}")
save(fig, "trial")

# %% [markdown]
# ## Training
#
# `nd.fit` needs nothing else: it samples batches from the task, builds the problem with
# `task.problem` (which batches the per-trial model and hands the rollout to the optimizer),
# steps the optimizer and calls `task.evaluate` at the end.

# %%
model = task.default_model(key=jr.PRNGKey(2))
hp = task.hyperparameters("sofo")
if FAST:
    hp = dict(hp, n_iters=10, batch_size=16, n_tangents=8)
before = task.evaluate(model, key=jr.PRNGKey(3), n_trials=256)
result = nd.fit(model, task, nd.optim.from_config("sofo", **hp), n_iters=hp["n_iters"],
                batch_size=hp["batch_size"], key=jr.PRNGKey(4), eval_trials=256)
print("before training:", before)
print("after training: ", result.final_metrics)
save(nd.analysis.plot_learning_curves(result.history, title="delayed decision, low-rank RNN"),
     "learning_curve")

# %% [markdown]
# The constraint held: no learnt time constant is below dt (softplus(ρ) ≥ 0; it is 0 only
# in float32 round-off, for very negative ρ).

# %%
tau = np.asarray(result.model.time_constants())
print(f"time constants: {tau.min() * 1e3:.0f}-{tau.max() * 1e3:.0f} ms",
      f"(dt = {task.dt * 1e3:.0f} ms)")
assert (tau >= task.dt).all()

# %% [markdown]
# ## What the network learnt
#
# A psychometric curve (fraction of "+" choices against coherence), and the network's
# activity projected on its connectivity vectors M: for a low-rank network these few
# latent variables κ = φ(x) M / N carry the whole recurrent dynamics. A network that
# integrates shows κ ramping during the stimulus with a slope set by the coherence, and
# holding its value through the delay.

# %%
trials = task.sample(key=jr.PRNGKey(5), batch_size=400)
choice, coherence = _choices(result.model, trials, jr.PRNGKey(6), task.go_cue)
choice, coherence = np.asarray(choice), np.asarray(coherence)
edges = np.linspace(-task.max_coherence, task.max_coherence, 9)
centers = (edges[1:] + edges[:-1]) / 2
which = np.clip(np.digitize(coherence, edges) - 1, 0, len(centers) - 1)
p_plus = [np.mean(choice[which == i] > 0) for i in range(len(centers))]

states, _ = nd.models.simulate(result.model, trials.inputs, key=jr.PRNGKey(6))
kappa = np.tanh(np.asarray(states)) @ np.asarray(result.model.M) / result.model.M.shape[0]

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
ax1.plot(centers, p_plus, "o-")
ax1.set_xlabel("coherence")
ax1.set_ylabel("P(choice +)")
ax1.set_ylim(-0.02, 1.02)
ax1.grid(alpha=0.3)
ax1.set_title("psychometric curve")
cmap = plt.get_cmap("coolwarm")
for i in range(len(centers)):
    members = which == i
    if members.any():
        ax2.plot(t, kappa[members, :, 0].mean(0), color=cmap(i / (len(centers) - 1)))
for s in (task.stim_on, task.stim_off, task.go_cue):
    ax2.axvline(s * task.dt, color="0.5", ls=":")
ax2.set_xlabel("time (s)")
ax2.set_ylabel("κ₁ (first latent)")
ax2.set_title("latent activity by coherence (blue −, red +)")
save(fig, "psychometric_and_latents")

# %% [markdown]
# ## The analysis tools work too
#
# `nd.analysis.simulate` has adapters for the built-in tasks; for a new task it uses the
# generic one (inputs, targets, outputs, rates, loss weights). Register a
# `nd.analysis.TaskAdapter` subclass with `nd.analysis.register_adapter` to add
# task-specific variables and event times.

# %%
ds = nd.analysis.simulate(result.model, task, key=jr.PRNGKey(7), n_trials=8)
print(ds)
nd.analysis.save(ds, OUT / "trials.nc")

# %% [markdown]
# ## Tasks from NeuroGym
#
# Writing a task is one way; [NeuroGym](https://neurogym.github.io) already has dozens of
# cognitive tasks (perceptual decisions, working memory, go/no-go, timing...). With the
# optional extra (`pip install "neurodyn[neurogym]"`), any of them is a neurodyn task:
# `nd.tasks.get("neurogym:<env id>")` draws a bank of trials from the environment, maps its
# observations, ground-truth actions and periods to inputs, targets and loss weights, and
# evaluates with NeuroGym's own `performance`, the network acting in closed loop. The
# default network is a Dale's-law `RateRNN`. From the command line:
# `neurodyn fit neurogym:PerceptualDecisionMaking-v0`. (Skipped when neurogym is absent.)

# %%
import importlib.util

if importlib.util.find_spec("neurogym") is not None:
    ng_task = nd.tasks.get(
        "neurogym:PerceptualDecisionMaking-v0",
        n_train=128 if FAST else 1024,
        online_trials=20 if FAST else 200,
    )
    ng_hp = ng_task.hyperparameters("sofo")
    if FAST:
        ng_hp = dict(ng_hp, n_iters=5, n_tangents=8)
    ng_result = nd.fit(ng_task.default_model(key=jr.PRNGKey(8)), ng_task,
                       nd.optim.from_config("sofo", **ng_hp), n_iters=ng_hp["n_iters"],
                       batch_size=ng_hp["batch_size"], key=jr.PRNGKey(9))
    print(ng_task.name, ng_result.final_metrics)
else:
    print("neurogym is not installed: pip install 'neurodyn[neurogym]'")

# %%
print("figures:", sorted(f.name for f in OUT.glob("*.png")))
