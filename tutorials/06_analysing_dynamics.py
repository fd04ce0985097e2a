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
# # 6 · Analysing trained dynamics: PSTHs, population trajectories and fixed points
#
# A trained network is a dynamical system, and the questions neuroscientists ask of
# recorded neurons apply to it too. On a network trained on the 3-bit flip-flop you will
#
# 1. compute **PSTHs**: re-align every trial on an event (an input pulse) and average per
#    condition (the pulse's sign),
# 2. project the population activity on its **principal components** and draw the
#    trajectories,
# 3. find the network's **fixed points** — the states where, without input, the dynamics
#    stop — and classify them by the eigenvalues of the linearised dynamics.
#
# Sussillo & Barak (2013) showed that a network solving the 3-bit flip-flop stores its
# 2³ = 8 memories in stable fixed points (or slow points), with saddle points between them.
#
# `NEURODYN_FAST=1` trains for a few iterations only (the test suite's mode): the analysis
# then runs on an almost untrained network and the fixed points mean little.

# %%
import os
import sys
from pathlib import Path

import matplotlib

NOTEBOOK = "ipykernel" in sys.modules
if not NOTEBOOK:
    matplotlib.use("Agg")
import jax
import jax.numpy as jnp
import jax.random as jr
import matplotlib.pyplot as plt
import numpy as np
import optax
from sklearn.decomposition import PCA

import neurodyn as nd

FAST = os.environ.get("NEURODYN_FAST", "0") not in ("", "0")
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(os.environ.get("NEURODYN_TUTORIAL_OUT", HERE / "_out")) / "06_analysing_dynamics"
OUT.mkdir(parents=True, exist_ok=True)


def save(fig, name):
    """Write a figure to OUT (and keep it on screen in a notebook)."""
    fig.savefig(OUT / f"{name}.png", dpi=100)
    if not NOTEBOOK:
        plt.close(fig)


# %% [markdown]
# ## A trained network
#
# The task's default network (64 ReLU-like rate units, τ = 10 steps) trained with SOFO at
# the task's recommended settings (`task.hyperparameters("sofo")`).

# %%
N_STEPS = 60 if FAST else 200
task = nd.tasks.get("flipflop", n_steps=N_STEPS)
model = task.default_model(key=jr.PRNGKey(0))
hp = task.hyperparameters("sofo")
if FAST:
    hp = dict(hp, n_iters=10, batch_size=8, n_tangents=8)
print(hp)
result = nd.fit(model, task, nd.optim.from_config("sofo", **hp), n_iters=hp["n_iters"],
                batch_size=hp["batch_size"], key=jr.PRNGKey(1), progress=not FAST)
net = result.model
print(result.final_metrics)

# %% [markdown]
# ## Trials as a dataset
#
# `nd.analysis.simulate` runs the network on fresh trials and returns an `xarray.Dataset`
# over (`trial`, `time`, `bit`, `neuron`). The flip-flop's `onset` variable marks the time
# steps where a pulse arrives on each bit.

# %%
N_TRIALS = 32 if FAST else 128
ds = nd.analysis.simulate(net, task, key=jr.PRNGKey(2), n_trials=N_TRIALS)
print(ds[["inputs", "rates", "onset"]])

# %% [markdown]
# ## PSTHs around a pulse
#
# We take, in every trial, the first pulse on bit 0, and label the trial by the pulse's
# sign. `nd.analysis.psth` accepts an array of event times (one per trial) as `align`,
# and any per-trial coordinate as `by`: the result averages the trials of each sign on a
# time axis relative to the pulse.

# %%
onset = ds.onset.sel(bit=0).values  # [trial, time] booleans
has_pulse = onset.any(axis=1)
first = onset.argmax(axis=1)
sub = ds.isel(trial=np.flatnonzero(has_pulse))
first = first[has_pulse]
sign = np.sign(sub.inputs.sel(bit=0).values[np.arange(sub.sizes["trial"]), first])
sub = sub.assign_coords(pulse_sign=("trial", sign.astype(int)))
pulse_time = sub.time.values[first]
print(f"{sub.sizes['trial']} trials with a pulse on bit 0; signs {np.unique(sign)}")

WINDOW = (-5.0, 20.0 if FAST else 40.0)  # in steps, around the pulse
p = nd.analysis.psth(sub, by="pulse_sign", align=pulse_time, window=WINDOW)
print(p)
save(nd.analysis.plot_psth_grid(p, n_neurons=8), "psth_bit0_pulse")

# %% [markdown]
# The neurons whose mean rate after the pulse differs most between the two signs are the
# ones that carry the memory of bit 0:

# %%
after = p.rates_mean.sel(time=slice(5.0, None)).mean("time")
if after.sizes["pulse_sign"] == 2:
    selectivity = (after.sel(pulse_sign=1) - after.sel(pulse_sign=-1)).values
    print("most selective neurons (+ minus −):", np.argsort(-np.abs(selectivity))[:8])

# %% [markdown]
# ## Population trajectories in PCA space
#
# Stack every (trial, time) sample of the rates into a matrix (samples × neurons), fit a
# PCA and project each trial on the first three components. The network state is then a
# point that moves when a pulse arrives and rests between pulses.

# %%
rates = ds.rates.values  # [trial, time, neuron]
pca = PCA(n_components=3).fit(rates.reshape(-1, rates.shape[-1]))
print("variance explained by PC1-3:", np.round(pca.explained_variance_ratio_, 3))
proj = pca.transform(rates.reshape(-1, rates.shape[-1])).reshape(*rates.shape[:2], 3)

fig = plt.figure(figsize=(5.5, 5))
ax = fig.add_subplot(projection="3d")
for i in range(min(8, N_TRIALS)):
    ax.plot(*proj[i].T, lw=0.8)
    ax.scatter(*proj[i, -1], s=12, color="k")
ax.set_xlabel("PC1")
ax.set_ylabel("PC2")
ax.set_zlabel("PC3")
ax.set_title("8 trials in PCA space (dots: last step)")
save(fig, "pca_trajectories")

# %% [markdown]
# ## Fixed points
#
# Without input the network is the map x ↦ F(x) = x + (dt/τ)(−x + φ(x) W + b) (its
# `step` with u = 0). A fixed point satisfies F(x*) = x*. Following Sussillo & Barak, we
# minimise the *speed*
#
# q(x) = ½ ‖F(x) − x‖²
#
# from many starting states taken on the trajectories, all at once (`jax.vmap`), with Adam
# (`optax`). Adam brings each start to a minimum of q — a fixed point (q = 0) or a *slow
# point* (q small but not zero). A few Newton steps on F(x) − x = 0 then polish the
# candidates: where a fixed point is nearby they converge to it to round-off. The finder is
# a dozen lines, and any recurrent model with a `step(carry, u)` method works.


# %%
def find_fixed_points(step, starts, u, *, n_iters=2000, learning_rate=1e-2, n_newton=10):
    """Minimise q(x) = ½‖F(x) − x‖², F(x) = step(x, u)[0], from every row of `starts`.

    Adam for `n_iters` steps, then `n_newton` Newton steps x ← x − (∂F/∂x − I)⁻¹(F(x) − x).
    Returns the Adam end points (slow-point candidates), the polished points, and the
    speed q of each `[n]`.
    """

    def residual(x):
        return step(x, u)[0] - x

    def speed(x):
        return 0.5 * jnp.sum(residual(x) ** 2)

    optimizer = optax.adam(learning_rate)
    grad = jax.vmap(jax.grad(speed))

    def body(carry, _):
        x, state = carry
        updates, state = optimizer.update(grad(x), state)
        return (optax.apply_updates(x, updates), state), None

    (slow, _), _ = jax.lax.scan(body, (starts, optimizer.init(starts)), None, length=n_iters)

    def newton(x):
        for _ in range(n_newton):
            x = x - jnp.linalg.solve(jax.jacfwd(residual)(x), residual(x))
        return x

    polished = jax.vmap(newton)(slow)
    return slow, jax.vmap(speed)(slow), polished, jax.vmap(speed)(polished)


def unique_points(points, tol):
    """Keep one of every group of points closer than `tol` to each other."""
    kept = []
    for x in points:
        if all(np.linalg.norm(x - y) > tol for y in kept):
            kept.append(x)
    return np.array(kept).reshape(-1, points.shape[-1])


N_STARTS = 64 if FAST else 512
# The dataset holds the rates φ(x); the finder needs states x, so we run the network on a
# batch of trials and keep every state it visits.
batch = task.sample(key=jr.PRNGKey(2), batch_size=N_TRIALS)


def rollout(inputs, key):
    """Every state x_1 … x_T of one noiseless trial from a random initial state."""
    return jax.lax.scan(lambda x, u_t: (net.step(x, u_t)[0],) * 2, net.initial_state(key),
                        inputs)[1]


keys = jr.split(jr.PRNGKey(3), N_TRIALS)
xs = np.asarray(jax.jit(jax.vmap(rollout))(batch.inputs, keys)).reshape(-1, net.n_neurons)
rng = np.random.default_rng(0)
starts = xs[rng.choice(len(xs), N_STARTS, replace=False)]
starts = starts + 0.01 * rng.standard_normal(starts.shape)  # a little off the trajectories
u0 = jnp.zeros(net.n_inputs)

q_start = np.asarray(jax.vmap(lambda x: 0.5 * jnp.sum((net.step(x, u0)[0] - x) ** 2))(starts))
finder = jax.jit(lambda x, u: find_fixed_points(net.step, x, u, n_iters=300 if FAST else 3000))
slow, q_slow, polished, q_polished = (np.asarray(a) for a in finder(jnp.asarray(starts), u0))
print(f"speed q, median: {np.median(q_start):.1e} at the starts, {np.median(q_slow):.1e} "
      f"after Adam, {np.median(q_polished):.1e} after Newton")
assert np.median(q_slow) < np.median(q_start), "the finder must reduce the speed"

# a polished point counts if it is a fixed point to round-off and Newton did not jump far
scale = np.median(np.linalg.norm(xs, axis=1))  # typical size of a state
exact = (q_polished < 1e-10 * scale**2) & (np.linalg.norm(polished - slow, axis=1) < 0.1 * scale)
fixed = unique_points(polished[exact], tol=1e-3 * scale)
print(f"{exact.sum()} of {N_STARTS} starts end on a fixed point: {len(fixed)} distinct ones")

# %% [markdown]
# ## Stability
#
# Near a fixed point the dynamics are linear: δx_{t+1} ≈ J δx_t with J = ∂F/∂x at x*
# (`jax.jacfwd`). If every eigenvalue of J lies inside the unit circle the point is
# stable (an attractor: a memory); with some outside it is a saddle (or a repeller).
# The read-out at a stable point tells which memory it holds: the signs of the three
# outputs are the three bits.

# %%
kinds, patterns = [], set()
for x_star in fixed:
    J = jax.jacfwd(lambda x: net.step(x, u0)[0])(jnp.asarray(x_star))
    n_unstable = int((np.abs(np.linalg.eigvals(np.asarray(J))) > 1.0 + 1e-6).sum())
    kinds.append("stable" if n_unstable == 0 else f"{n_unstable} unstable mode(s)")
    out = np.asarray(net.readout(jnp.asarray(x_star)))
    if n_unstable == 0:
        patterns.add(tuple(np.sign(out).astype(int)))
    print(f"{kinds[-1]:>18s}   output {np.round(out, 2)}")
print(f"{kinds.count('stable')} stable fixed points, holding {len(patterns)} of the 8 "
      "bit patterns")

# %% [markdown]
# A network need not store every memory in an exact fixed point: a slow point, where the
# state drifts too slowly to matter over a trial, holds a memory as well. The Adam end points
# with a small speed are those candidates; the sign patterns of their read-outs show which
# memories they hold.

# %%
slow_ok = q_slow < np.percentile(q_slow, 25)
slow_patterns = {tuple(np.sign(np.asarray(net.readout(jnp.asarray(x)))).astype(int))
                 for x in slow[slow_ok]}
print(f"{slow_ok.sum()} slowest Adam end points hold {len(slow_patterns)} of the 8 patterns")

# %% [markdown]
# Drawn in the PCA space of the trajectories (the fixed points are states x; the PCA was
# fitted on the rates φ(x), so we project φ(x*)):

# %%
fig = plt.figure(figsize=(5.5, 5))
ax = fig.add_subplot(projection="3d")
for i in range(min(8, N_TRIALS)):
    ax.plot(*proj[i].T, lw=0.6, color="0.7")
sp = pca.transform(np.asarray(jax.vmap(net.rates)(jnp.asarray(slow[slow_ok]))))
ax.scatter(*sp.T, s=8, color="C0", alpha=0.4, label="slow points")
if len(fixed):
    fp = pca.transform(np.asarray(jax.vmap(net.rates)(jnp.asarray(fixed))))
    stable = np.array([k == "stable" for k in kinds])
    ax.scatter(*fp[stable].T, s=40, color="k", label="stable fixed points")
    ax.scatter(*fp[~stable].T, s=40, facecolor="none", edgecolor="r", label="unstable")
ax.legend(frameon=False, fontsize=8)
ax.set_xlabel("PC1")
ax.set_ylabel("PC2")
ax.set_zlabel("PC3")
ax.set_title("fixed and slow points without input")
save(fig, "fixed_points")

# %% [markdown]
# ## Where to go from here
#
# - The same steps apply to any model: `nd.analysis.psth` works on every task's trials
#   dataset, and the fixed-point finder only needs a `step(carry, u)`.
# - For the reaching tasks, `nd.analysis.to_jpca` and `nd.analysis.to_dpca` hand the PSTHs
#   to jPCA and dPCA (tutorial 2).

# %%
print("figures:", sorted(f.name for f in OUT.glob("*.png")))
