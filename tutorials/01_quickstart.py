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
# # 1 · Quickstart: a Dale's-law network on the 3-bit flip-flop, SOFO against Adam
#
# In this tutorial you will
#
# 1. build a rate network that obeys **Dale's law** (every neuron is either excitatory or
#    inhibitory),
# 2. put it in the **3-bit flip-flop** task (Sussillo & Barak, 2013): three input channels
#    deliver occasional ±1 pulses, and each of the three outputs must hold the sign of the
#    latest pulse on its channel,
# 3. train it twice — with **SOFO** (second-order, forward-mode) and with **Adam**
#    (backpropagation through time) — and compare the learning curves,
# 4. look at a trained trial and check that the constraint survived training.
#
# The script runs as it is (`python tutorials/01_quickstart.py`) and opens as a notebook
# (`jupytext --to notebook tutorials/01_quickstart.py`). With the environment variable
# `NEURODYN_FAST=1` everything is shrunk so that it finishes in seconds (that is how the
# test suite runs it); the figures then show an untrained network.

# %%
import os
import sys
import time
from pathlib import Path

import matplotlib

NOTEBOOK = "ipykernel" in sys.modules
if not NOTEBOOK:
    matplotlib.use("Agg")  # a script draws into files only
import jax
import jax.numpy as jnp
import jax.random as jr
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.layout_engine import ConstrainedLayoutEngine

import neurodyn as nd

FAST = os.environ.get("NEURODYN_FAST", "0") not in ("", "0")
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(os.environ.get("NEURODYN_TUTORIAL_OUT", HERE / "_out")) / "01_quickstart"
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


print(f"neurodyn {nd.__version__}, jax {jax.__version__} on {jax.devices()[0].platform}")
print("fast mode" if FAST else "full mode", "- figures go to", OUT)

# %% [markdown]
# ## The task
#
# `nd.tasks.get(name)` builds a registered task at its CPU size. A task samples batches of
# trials from a key; every array is batch-first, `[trial, time, channel]`.

# %%
N_STEPS = 60 if FAST else 200  # trial length in network steps (the paper uses 200)
task = nd.tasks.get("flipflop", n_steps=N_STEPS)
batch = task.sample(key=jr.PRNGKey(0), batch_size=4)
print("inputs ", batch.inputs.shape, " targets", batch.targets.shape)
print("pulses per bit in the first trial:", np.asarray(batch.metadata["n_pulses"][0]))

# %% [markdown]
# ## A network with Dale's law
#
# [`nd.models.RateRNN`](../api/models.md) is a leaky firing-rate network,
# τ dx/dt = −x + r W + u W_in + b with rates r = φ(x), read out as y = r W_out.
# With `excitatory_fraction=0.8` the first 80 % of the neurons are excitatory and the
# rest inhibitory: the trained parameter is a free matrix, and the effective weight is
# |W| with the sign of the presynaptic neuron — so no optimizer step can break the rule.
# `spectral_radius=0.9` rescales the initial (balanced) weight matrix, and
# `readout_from="excitatory"` lets only excitatory neurons project to the output, as
# projection neurons in cortex do.

# %%
N_NEURONS = 24 if FAST else 64
net = nd.models.RateRNN(
    N_NEURONS,
    n_inputs=3,
    n_outputs=3,
    tau=10.0,  # time constant, in network steps
    dt=1.0,
    activation="relu",  # non-negative rates
    excitatory_fraction=0.8,
    spectral_radius=0.9,
    readout_from="excitatory",
    key=jr.PRNGKey(1),
)
print(f"{net.n_excitatory} excitatory and {N_NEURONS - net.n_excitatory} inhibitory neurons")
print("P =", net.n_params, "trained parameters")

# %% [markdown]
# ## Train with SOFO
#
# Each SOFO iteration draws K random directions in parameter space, pushes them through the
# network together with the forward pass (forward-mode differentiation: nothing is stored
# for a backward pass), and takes a damped Gauss–Newton step inside the K-dimensional
# subspace they span. Its three knobs are the learning rate η, the number of tangents K and
# the damping λ (relative to the largest curvature in the subspace). The task knows good
# values: `task.hyperparameters("sofo")`.

# %%
print(task.hyperparameters("sofo"))
if FAST:
    sofo_settings = dict(learning_rate=0.1, n_tangents=8, damping=1e-5)
    n_sofo, n_adam, batch_size = 15, 30, 8
else:
    sofo_settings = dict(learning_rate=0.1, n_tangents=64, damping=1e-5)
    n_sofo, n_adam, batch_size = 400, 4000, 32

sofo = nd.optim.sofo(**sofo_settings)
t0 = time.perf_counter()
sofo_run = nd.fit(net, task, sofo, n_iters=n_sofo, batch_size=batch_size, key=jr.PRNGKey(2))
print(f"SOFO: {n_sofo} iterations in {time.perf_counter() - t0:.0f} s", sofo_run.final_metrics)

# %% [markdown]
# ## Train with Adam (backpropagation through time)
#
# `nd.optim.adam` computes the exact gradient by reverse mode through the whole trial and
# feeds it to Adam. The same `nd.fit` call trains it: the loop, the batches (drawn from the
# same key) and the evaluation are identical, only the optimizer changes.

# %%
adam = nd.optim.adam(learning_rate=1e-3 if not FAST else 1e-2)
t0 = time.perf_counter()
adam_run = nd.fit(net, task, adam, n_iters=n_adam, batch_size=batch_size, key=jr.PRNGKey(2))
print(f"Adam: {n_adam} iterations in {time.perf_counter() - t0:.0f} s", adam_run.final_metrics)

# %% [markdown]
# ## Learning curves
#
# `FitResult.history` is an `xarray.Dataset` over iterations: the loss, the wall-clock time
# and the optimizer's diagnostics (for SOFO: the damping and the top eigenvalue of the
# subspace curvature). `nd.analysis.plot_learning_curves` draws the loss against iterations
# and against wall-clock time. Per iteration SOFO is far ahead; per second the comparison
# depends on the hardware: an iteration costs about K forward passes on a CPU, whereas on a
# GPU the K tangents run in parallel (see the [benchmarks](../benchmarks.md)).

# %%
print(sofo_run.history)
fig = nd.analysis.plot_learning_curves(
    {"SOFO": sofo_run.history, "Adam (BPTT)": adam_run.history},
    title="3-bit flip-flop, Dale's-law RNN",
)
save(fig, "learning_curves")

# %% [markdown]
# ## A trained trial
#
# `nd.analysis.simulate` runs the trained network on fresh trials and returns an
# `xarray.Dataset` with labelled dimensions (`trial`, `time`, `bit`, `neuron`); every
# variable carries `units` and `long_name`.

# %%
ds = nd.analysis.simulate(sofo_run.model, task, key=jr.PRNGKey(3), n_trials=8)
print(ds[["inputs", "outputs", "rates"]])
save(nd.analysis.plot_flipflop(ds, trial=0), "trained_trial")

# %% [markdown]
# ## Dale's law after training
#
# `RateRNN.weights()` is the one place where the free parameters are mapped to the
# effective weights. Rows are presynaptic: every row of an excitatory neuron must be
# non-negative and every row of an inhibitory neuron non-positive.

# %%
for name, run in (("SOFO", sofo_run), ("Adam", adam_run)):
    W = np.asarray(run.model.weights().W)
    exc = np.asarray(run.model.signs) > 0
    ok = bool((W[exc] >= 0).all() and (W[~exc] <= 0).all())
    print(f"{name}: Dale's law holds: {ok}")
    assert ok

fig, ax = plt.subplots(figsize=(4.2, 3.6), constrained_layout=True)
W = np.asarray(sofo_run.model.weights().W)
lim = np.abs(W).max()
im = ax.imshow(W, cmap="RdBu_r", vmin=-lim, vmax=lim)
ax.axhline(net.n_excitatory - 0.5, color="k", lw=0.8)
ax.set_xlabel("postsynaptic neuron")
ax.set_ylabel("presynaptic neuron")
ax.set_title("trained W (E rows above the line)")
fig.colorbar(im, ax=ax, shrink=0.8)
save(fig, "weights")

# %% [markdown]
# ## What next
#
# - The same three lines train any task: `nd.tasks.available()` lists them, and
#   `neurodyn fit flipflop` does all of the above from the command line.
# - [Tutorial 2](02_reaching.py) puts a network in closed loop with an arm;
#   [tutorial 5](05_inside_sofo.py) opens SOFO up.

# %%
print(jnp.asarray(sofo_run.history.loss.values[[0, -1]]), "(SOFO loss, first and last)")
print("figures:", sorted(p.name for p in OUT.glob("*.png")))
