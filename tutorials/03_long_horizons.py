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
# # 3 · Long horizons: an adaptive Kalman filter, and memory that does not grow with T
#
# Some tasks only make sense over long trials: a network that must *infer the statistics*
# of its input — and re-infer them whenever they change — needs thousands of time steps per
# trial. Backpropagation through time (BPTT) stores every step of the forward pass for the
# backward pass, so its memory grows linearly with the trial length T. SOFO differentiates
# forward: it carries K tangent directions along with the state and keeps nothing per step.
#
# In this tutorial you will
#
# 1. meet the **adaptive Kalman filtering** task and its optimal (oracle) solution,
# 2. **measure** the memory XLA allocates for one SOFO step and for one BPTT step as T
#    grows, from the compiled programs themselves,
# 3. **train** the paper's leaky ReLU network with SOFO and compare it with the oracle
#    Kalman filter, including on trials longer than it was trained on.
#
# `NEURODYN_FAST=1` uses short trials and a handful of iterations (the test suite's mode).

# %%
import os
import sys
import time
from pathlib import Path

import matplotlib

NOTEBOOK = "ipykernel" in sys.modules
if not NOTEBOOK:
    matplotlib.use("Agg")
import equinox as eqx
import jax
import jax.random as jr
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.layout_engine import ConstrainedLayoutEngine

import neurodyn as nd

FAST = os.environ.get("NEURODYN_FAST", "0") not in ("", "0")
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(os.environ.get("NEURODYN_TUTORIAL_OUT", HERE / "_out")) / "03_long_horizons"
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
# ## The task
#
# A one-dimensional latent x_t drifts towards a context mean b with time constant τ and is
# observed in noise of standard deviation β: y_t = x_t + β ν_t. The context (τ, b, β) is
# redrawn at random moments (after at least 100 steps, then with probability 1/100 per
# step), so a good filter must keep estimating the context from the observations. The
# network sees y_0 … y_t and must output x̂_t ≈ x_t at every step.
#
# The yardstick is the **oracle Kalman filter**, which is told the switch times and the
# parameters of every context: no filter can do better on average.

# %%
T_TRAIN = 150 if FAST else 1000
task = nd.tasks.get("kalman", n_steps=T_TRAIN)
batch = task.sample(key=jr.PRNGKey(0), batch_size=64)
baselines = task.baselines(batch, key=jr.PRNGKey(1))
latent = np.asarray(batch.targets[..., 0])
for name in ("oracle", "random_filter_consistent", "copy"):
    mse = np.mean((np.asarray(baselines[name]) - latent) ** 2)
    print(f"{name:>26s} filter MSE: {mse:.3f}")
print("context switches per trial:", float(batch.metadata["switch"].sum(1).mean()))

# %% [markdown]
# ## Memory of one training step, SOFO against BPTT
#
# JAX compiles a training step ahead of time into an XLA program, and the compiled program
# reports the memory it needs: `compiled.memory_analysis()`. Its `temp_size_in_bytes` is
# the scratch memory the step allocates beyond its inputs and outputs — for BPTT, above all
# the activations stored for the backward pass. The trials themselves (the inputs, T×B
# numbers) are an *argument* of the step and are the same for both methods.
#
# We build one step of each optimizer on the same batch and model, with the plain JAX API:
# `eqx.partition` separates the arrays (traced) from everything else (closed over).


# %%
def step_memory(optimizer, n_steps, batch_size, key=jr.PRNGKey(0)):
    """Temp and argument bytes of one compiled optimizer step at horizon `n_steps`."""
    task_t = nd.tasks.get("kalman", n_steps=n_steps)
    model = task_t.default_model(key=key)
    trainable = model.trainable()
    trials = task_t.sample(key=key, batch_size=batch_size)
    problem = task_t.problem(model, trials, key=key)
    state = optimizer.init(model, trainable)
    arrays, static = eqx.partition((model, state, problem), eqx.is_array)

    def one_step(arrays, key):
        model, state, problem = eqx.combine(arrays, static)
        new_model, new_state, info = optimizer.step(
            model, state, problem, key=key, trainable=trainable
        )
        return eqx.filter((new_model, new_state), eqx.is_array), info["loss"]

    compiled = jax.jit(one_step).lower(arrays, key).compile()
    memory = compiled.memory_analysis()
    return memory.temp_size_in_bytes, memory.argument_size_in_bytes


K, B = (8, 8) if FAST else (32, 32)
horizons = (50, 400) if FAST else (100, 300, 1000, 3000, 10000)
sofo = nd.optim.sofo(learning_rate=0.3, n_tangents=K, damping=1e-5)
bptt = nd.optim.adam(1e-3)
memory = {"SOFO": [], "BPTT + Adam": []}
arguments = []
t0 = time.perf_counter()
for n_steps in horizons:
    temp_sofo, args = step_memory(sofo, n_steps, B)
    temp_bptt, _ = step_memory(bptt, n_steps, B)
    memory["SOFO"].append(temp_sofo)
    memory["BPTT + Adam"].append(temp_bptt)
    arguments.append(args)
    print(f"T = {n_steps:>6d}: SOFO {temp_sofo / 2**20:8.2f} MiB   "
          f"BPTT {temp_bptt / 2**20:8.2f} MiB   (trials: {args / 2**20:6.2f} MiB)")
print(f"compiling {2 * len(horizons)} steps took {time.perf_counter() - t0:.0f} s")

# %% [markdown]
# The BPTT step's scratch memory grows in proportion to T; SOFO's does not change (it holds
# the K tangents of the state, K × B × N numbers, and the K × P tangent directions,
# whatever the trial length). On a GPU the same two lines report device memory, which is
# what limits BPTT there.

# %%
fig, ax = plt.subplots(figsize=(5.5, 4), constrained_layout=True)
for label, values in memory.items():
    ax.plot(horizons, np.array(values) / 2**20, marker="o", label=f"{label} (temp)")
ax.plot(horizons, np.array(arguments) / 2**20, color="0.6", ls="--", label="the trials (argument)")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("trial length T (steps)")
ax.set_ylabel("memory of one training step (MiB)")
ax.set_title(f"Kalman RNN (N = 100), B = {B}, K = {K}")
ax.grid(alpha=0.3, which="both")
ax.legend(frameon=False)
save(fig, "memory_vs_T")

# %% [markdown]
# ## Training the network
#
# The network is the paper's leaky ReLU RNN (100 units; P = 10,300): it starts by copying
# the observation (MSE ≈ E[β²] ≈ 3) and must learn to average over the right time scale
# and to reset after a switch. The task's CPU defaults (500 SOFO iterations with K = 32 and
# B = 32) train it in a few minutes.

# %%
model = task.default_model(key=jr.PRNGKey(1))
hp = task.hyperparameters("sofo")
if FAST:
    hp = dict(hp, n_iters=10, batch_size=8, n_tangents=8)
print(hp)
t0 = time.perf_counter()
result = nd.fit(model, task, nd.optim.from_config("sofo", **hp), n_iters=hp["n_iters"],
                batch_size=hp["batch_size"], key=jr.PRNGKey(2), eval_trials=16 if FAST else None)
print(f"trained in {time.perf_counter() - t0:.0f} s")
save(nd.analysis.plot_learning_curves(result.history, title=f"Kalman filtering, T = {T_TRAIN}"),
     "learning_curve")

# %% [markdown]
# ## The network against the oracle filter
#
# `task.evaluate` scores the network and the baseline filters on the same trials:
# `mse_vs_oracle` is the ratio of the network's error to the oracle's (1 is optimal), and
# `mse_since_switch_*` split the network's error by time since the last switch — right
# after a switch the context is unknown, and the error is larger for every filter.

# %%
metrics = task.evaluate(result.model, key=jr.PRNGKey(4), n_trials=16 if FAST else None)
for name, value in metrics.items():
    print(f"{name:>32s}: {value:.3f}")

# %% [markdown]
# A recurrent network is not tied to the trial length it was trained on. We run it, and
# the oracle, on trials five times as long.

# %%
long_task = nd.tasks.get("kalman", n_steps=5 * T_TRAIN)
ds = nd.analysis.simulate(result.model, long_task, key=jr.PRNGKey(5), n_trials=4 if FAST else 32)
err_net = float(((ds.estimate - ds.latent) ** 2).mean())
err_kf = float(((ds.oracle_estimate - ds.latent) ** 2).mean())
print(f"T = {5 * T_TRAIN}: network MSE {err_net:.3f}, oracle {err_kf:.3f}")
save(nd.analysis.plot_kalman_traces(ds, trial=0, window=(0, min(600, 5 * T_TRAIN))), "traces")
save(nd.analysis.plot_kalman_error(ds, max_lag=min(300, 5 * T_TRAIN)), "error_since_switch")

# %% [markdown]
# ## Summary
#
# - SOFO's memory per step is flat in T, BPTT's linear: the longer the trials, the more
#   this matters. Measured on this network with B = 32 and K = 32
#   (`benchmarks/results/memory.md`): from T = 100 to T = 50,000, SOFO's XLA scratch memory
#   stays at 7.93 MiB while BPTT's grows from 2.84 MiB to 1,398 MiB.
# - `neurodyn fit kalman --size paper` trains at the paper's T = 5000.

# %%
print("figures:", sorted(f.name for f in OUT.glob("*.png")))
