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
# # 2 · Reaching with an arm: a network in closed loop
#
# A model of motor cortex does not output numbers on a screen: it drives muscles, the
# muscles move an arm, and the arm's state comes back to the brain as proprioceptive
# feedback. In this tutorial you will
#
# 1. look at the **delayed reach** task (a target appears, the network must wait for the go
#    cue, then reach to the remembered target and hold),
# 2. take apart the **closed loop** network → muscles → arm → feedback → network, one step
#    at a time,
# 3. **train** it with SOFO — the optimizer differentiates straight through the arm,
# 4. look at **hand trajectories** and **PSTHs** as labelled `xarray` datasets, and
# 5. **save** them to netCDF for analysis elsewhere.
#
# `NEURODYN_FAST=1` shrinks the run to a few iterations (the test suite's mode): the
# figures then show an untrained network. In full mode training takes several minutes on
# a 2-core laptop.

# %%
import os
import sys
import time
from pathlib import Path

import matplotlib

NOTEBOOK = "ipykernel" in sys.modules
if not NOTEBOOK:
    matplotlib.use("Agg")
import jax.numpy as jnp
import jax.random as jr
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.layout_engine import ConstrainedLayoutEngine

import neurodyn as nd

FAST = os.environ.get("NEURODYN_FAST", "0") not in ("", "0")
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(os.environ.get("NEURODYN_TUTORIAL_OUT", HERE / "_out")) / "02_reaching"
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
# `PLANT = "muscle"` is the six-muscle arm of Li & Todorov (2004): shoulder and elbow
# flexors and extensors plus two biarticular muscles, each with activation dynamics and
# force–length–velocity properties. `"torque"` is the paper's torque-driven arm (the
# network outputs the two joint torques directly); it is easier to control and trains to
# smaller errors in the same time, which is why it is the task's default.
#
# At the CPU size the network steps every 10 ms and the arm takes 5 Euler substeps of
# 2 ms per network step; a trial lasts 2 s (200 network steps). The fast mode shortens the
# trial to 1 s with shorter delays, uses 2 arm substeps of 5 ms and a 32-unit network.

# %%
PLANT = "muscle"
if FAST:
    sizes = dict(duration=1.0, idle_range=(0.05, 0.1), prep_range=(0.1, 0.2),
                 movement_time=0.3, arm_dt=0.005, n_neurons=32)
else:
    sizes = {}
task = nd.tasks.get("reach", plant=PLANT, **sizes)
print(f"T = {task.n_steps} steps of {task.dt * 1e3:.0f} ms, {task.n_substeps} arm substeps each")
batch = task.sample(key=jr.PRNGKey(0), batch_size=4)
print("inputs", batch.inputs.shape, "targets", batch.targets.shape, "weights", batch.weights.shape)
print("metadata:", sorted(batch.metadata))

# %% [markdown]
# One trial: the three inputs are a fixation signal and the (x, y) of the cue — first the
# central spot, then the target. At the go cue every input drops to zero, so the target
# must be remembered. The loss weight is 1 before the go cue (hold still at the centre),
# 0 for 0.6 s of free movement, then 4 (be at the target, with zero velocity).

# %%
t = np.arange(task.n_steps) * task.dt
fig, axes = plt.subplots(2, 1, figsize=(7, 4), sharex=True, constrained_layout=True)
for i, label in enumerate(["fixation", "cue x (m)", "cue y (m)"]):
    axes[0].plot(t, batch.inputs[0, :, i], label=label)
axes[0].legend(frameon=False, fontsize=8)
axes[0].set_ylabel("input")
axes[1].plot(t, batch.weights[0, :, 0], color="k")
axes[1].set_ylabel("loss weight")
axes[1].set_xlabel("time (s)")
for ax in axes:
    ax.axvline(batch.metadata["target_onset_time"][0], color="0.5", ls=":")
    ax.axvline(batch.metadata["go_cue_time"][0], color="0.2", ls="--")
axes[0].set_title("one trial: target onset (dotted), go cue (dashed)")
save(fig, "trial_structure")

# %% [markdown]
# ## The closed loop
#
# `task.default_model` returns a [`ClosedLoop`] — itself a recurrent model with one `step`,
# so every optimizer treats network + arm as a single system. Its pieces:
#
# - `loop.network`: a 64-unit (fast mode: 32) ReLU rate network with multiplicative rate noise and a
#   learnt initial state (`nd.models.motor_rnn`); its inputs are the 3 task inputs
#   followed by the feedback,
# - `loop.plant`: the arm (`nd.plants.MuscleArm` or `nd.plants.TwoJointArm`),
# - `loop.feedback`: which arm signals are fed back (joint angles and velocities),
#   optionally delayed (`feedback_delay`) and noisy (`sensory_noise`).

# %%
loop = task.default_model(key=jr.PRNGKey(1))
print(type(loop).__name__, "=", type(loop.network).__name__, "+", type(loop.plant).__name__)
print("feedback:", loop.feedback, "| substeps:", loop.n_substeps, f"of {loop.plant_dt} s")
print("P =", loop.n_params, "trained parameters (the arm has none)")

# %% [markdown]
# One step by hand, exactly what `loop.step` does:
#
# 1. sense: the feedback vector of the current arm state,
# 2. network: one Euler step with input [task input, feedback],
# 3. control: network output → muscle excitations in [0, 1) (or torques),
# 4. plant: `n_substeps` arm steps with the control held,
# 5. output: hand position and velocity.

# %%
carry = loop.initial_state()
u = batch.inputs[0, 0]  # the first input of the first trial
feedback = loop.sense(carry.plant)
x, net_out = loop.network.step(carry.network, jnp.concatenate([u, feedback]))
control = loop.control(net_out)
arm = loop.plant_step(carry.plant, control)
by_hand = loop.hand(arm)
new_carry, y = loop.step(carry, u)
print("feedback (angles, velocities):", np.round(feedback, 3))
print("control:", np.round(control, 3))
print("hand after one step:", np.round(by_hand, 4), "| loop.step gives the same:", y.tolist())
assert jnp.allclose(by_hand, y)

# %% [markdown]
# ## Training
#
# `nd.fit` rolls the batched loop out for the whole trial inside SOFO's forward-mode pass:
# the K tangent directions travel through the network, the muscle model and the arm
# mechanics, and back through the feedback. Nothing is stored per time step.

# %%
hp = task.hyperparameters("sofo")
print("recommended:", hp)
if FAST:
    hp = dict(hp, n_iters=1, batch_size=8, n_tangents=4)
else:
    hp = dict(hp, n_iters=300, batch_size=32)
optimizer = nd.optim.from_config("sofo", **hp)
t0 = time.perf_counter()
result = nd.fit(loop, task, optimizer, n_iters=hp["n_iters"], batch_size=hp["batch_size"],
                key=jr.PRNGKey(2))
print(f"{hp['n_iters']} iterations in {time.perf_counter() - t0:.0f} s")
for name, value in result.final_metrics.items():
    print(f"  {name:>22s}: {value:.3g}")
save(nd.analysis.plot_learning_curves(result.history, title=f"reach ({PLANT} arm)"),
     "learning_curve")

# %% [markdown]
# ## Hand trajectories
#
# `nd.analysis.simulate` runs the trained loop on the task's canonical conditions — the
# 8 centre-out directions at 20 cm — each repeated with its own noise, and returns an
# `xarray.Dataset`: rates, hand position and velocity, joint angles, torques and (muscle
# arm) excitations, activations and forces, all labelled and with units.

# %%
ds = nd.analysis.simulate(result.model, task, key=jr.PRNGKey(3), n_trials=8 if FAST else 32)
print(ds.hand_position)
save(nd.analysis.plot_hand_trajectories(ds), "hand_trajectories")
save(nd.analysis.plot_motor_output(ds), "motor_output")

# %% [markdown]
# Because everything is labelled, questions are one line of xarray. For example, the peak
# hand speed per direction, and the hand's final distance from its target:

# %%
peak = ds.hand_speed.max("time").groupby("direction").mean()
final = ds.hand_position.isel(time=-1)
error_cm = 100 * np.sqrt(((final - ds.target) ** 2).sum("axis"))
print("peak speed (m/s) by direction:", np.round(peak.values, 2))
print("endpoint error (cm) by direction:",
      np.round(error_cm.groupby("direction").mean().values, 1))

# %% [markdown]
# ## PSTHs
#
# `nd.analysis.psth` re-aligns every trial on an event (here the go cue), groups trials by
# condition and averages: the result is again a dataset, over (`condition`, `time`,
# `neuron`), with the mean, the standard error and the number of trials; `time` is now
# relative to the go cue.

# %%
WINDOW = (-0.1, 0.6) if FAST else (-0.3, 0.8)  # seconds around the go cue
p = nd.analysis.psth(ds, align="go_cue", window=WINDOW, smooth=0.02)
print(p)
print("rates of neuron 0, direction 0, at the go cue:",
      float(p.rates_mean.sel(condition=0, neuron=0, time=0.0)))
save(nd.analysis.plot_psth_grid(p, n_neurons=8), "psth")

# %% [markdown]
# ## Saving to netCDF
#
# `nd.analysis.save` writes any of these datasets to a compressed netCDF-4 file (atomically:
# a crash never leaves half a file), and `nd.analysis.load` reads it back identical —
# attributes such as the task configuration included. The files open in any netCDF
# reader (`xarray.open_dataset`, MATLAB's `ncread`, R's `ncdf4`).

# %%
nd.analysis.save(ds, OUT / "trials.nc")
nd.analysis.save(p, OUT / "psth.nc")
back = nd.analysis.load(OUT / "trials.nc")
print("round trip identical:", back.identical(ds))
print({f.name: f"{f.stat().st_size / 1e6:.1f} MB" for f in OUT.glob("*.nc")})

# %% [markdown]
# For tools outside xarray, the converters give plain arrays: one (time × neuron) matrix
# per condition for jPCA, neuron-first arrays for dPCA.

# %%
jpca_data, jpca_times = nd.analysis.to_jpca(p, return_times=True)
dpca_trials = nd.analysis.to_dpca(ds, align="go_cue", window=WINDOW)
print(len(jpca_data), "conditions of", jpca_data[0].shape, "for jPCA;",
      "dPCA single trials:", dpca_trials.shape, "(neuron, condition, time, trial)")

# %% [markdown]
# `neurodyn fit reach --plant muscle` does all of this from the command line and writes the
# same files into a run folder (see *Getting started* in the documentation).

# %%
print("figures:", sorted(f.name for f in OUT.glob("*.png")))
