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
# # 6 · Analysing trained dynamics: fixed points, jPCA, dPCA and similarity
#
# A trained network is a dynamical system, and the questions neuroscientists ask of
# recorded neurons apply to it too. You will
#
# 1. compute **PSTHs** of a network trained on the 3-bit flip-flop and draw its population
#    trajectories in PCA space,
# 2. find its **fixed points** with `nd.analysis.fixed_points` — the states where, without
#    input, the dynamics stop — and classify them as stable points or saddles by the
#    eigenvalues of the linearised dynamics,
# 3. look for **rotational dynamics** (`nd.analysis.jpca`) and **demixed components**
#    (`nd.analysis.dpca`) in the PSTHs of a network trained to reach,
# 4. compare a SOFO-trained and an Adam-trained network with **CCA, Procrustes shape
#    distance and dynamical similarity analysis** (`nd.analysis.similarity`).
#
# Sussillo & Barak (2013) showed that a network solving the 3-bit flip-flop stores its
# 2³ = 8 memories in stable fixed points (or slow points), with saddle points between them.
#
# `NEURODYN_FAST=1` shrinks the networks and trains for a few iterations only (the test
# suite's mode): the analyses then run on almost untrained networks and their numbers mean
# little; every figure says so in its title.

# %%
import os
import sys
from pathlib import Path

import matplotlib

NOTEBOOK = "ipykernel" in sys.modules
if not NOTEBOOK:
    matplotlib.use("Agg")
import jax.numpy as jnp
import jax.random as jr
import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA

import neurodyn as nd

FAST = os.environ.get("NEURODYN_FAST", "0") not in ("", "0")
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(os.environ.get("NEURODYN_TUTORIAL_OUT", HERE / "_out")) / "06_analysing_dynamics"
OUT.mkdir(parents=True, exist_ok=True)


TAG = " [fast mode: shrunken, briefly trained run]" if FAST else ""


def save(fig, name):
    """Write a figure to OUT (and keep it on screen in a notebook); in fast mode the title
    says that the run was shrunken and briefly trained."""
    if FAST:
        title = fig.get_suptitle()
        fig.suptitle((title + "\n" if title else "") + TAG.strip(" []"), fontsize=9)
        fig.tight_layout()
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
# (fast mode skips the evaluation trials: `eval_every=0` saves compiling them)
result = nd.fit(model, task, nd.optim.from_config("sofo", **hp), n_iters=hp["n_iters"],
                batch_size=hp["batch_size"], key=jr.PRNGKey(1), progress=not FAST,
                eval_every=0 if FAST else None)
net = result.model
print(result.final_metrics or "(not evaluated in fast mode)")

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
# `step` with u = 0). A fixed point satisfies F(x*) = x*. Following Sussillo & Barak,
# `nd.analysis.fixed_points` minimises the *speed*
#
# q(x) = ½ ‖F(x) − x‖²
#
# from many states sampled on the network's own trajectories (here: driven by the inputs
# of the trials dataset), all at once in one compiled optax loop; Newton steps polish the
# end points, those with q below `speed_tolerance` are kept and merged when closer than a
# tolerance, and each is linearised: J = ∂F/∂x at the point. The network is a
# discrete-time map, so a mode is unstable when |λ(J)| > 1: a *stable* point has none
# (an attractor: a memory), a *saddle* some.

# %%
N_STARTS = 64 if FAST else 512
fp = nd.analysis.fixed_points(net, ds, key=jr.PRNGKey(3), n_starts=N_STARTS,
                              n_iters=300 if FAST else 3000, start_noise=0.01)
print(f"speed q, median: {fp.attrs['start_speed_median']:.1e} at the starts, "
      f"{fp.attrs['optimised_speed_median']:.1e} after Adam, "
      f"{fp.attrs['end_speed_median']:.1e} after Newton")
counts = fp.stability.to_series().value_counts().to_dict()
print(f"{fp.sizes['fixed_point']} distinct fixed points from {N_STARTS} starts: {counts}")
print(fp[["speed", "n_unstable", "outputs"]].to_dataframe().head(12) if fp.sizes["fixed_point"]
      else "none")

# %% [markdown]
# The read-out at a stable point tells which memory it holds: the signs of the three
# outputs are the three bits. In our full-mode run (SOFO, 700 iterations, 99.7 % of the
# outputs correct; 512 starts) the finder returned 21 fixed points, 6 stable and 15
# saddles: the stable points held 6 of the 8 patterns, and the other two were held by slow
# points (next cell).

# %%
stable = fp.where(fp.stability == "stable", drop=True) if fp.sizes["fixed_point"] else fp
patterns = {tuple(np.sign(o).astype(int)) for o in stable["outputs"].values} if (
    "outputs" in stable) else set()
print(f"{stable.sizes['fixed_point']} stable fixed points, holding {len(patterns)} of the 8 "
      "bit patterns")

# %% [markdown]
# A network need not store every memory in an exact fixed point: a slow point, where the
# state drifts too slowly to matter over a trial, holds a memory as well. Raising the speed
# tolerance keeps them (full mode: 471 points with q < 10⁻⁴, holding all 8 patterns).

# %%
slow = nd.analysis.fixed_points(net, ds, key=jr.PRNGKey(3), n_starts=N_STARTS,
                                n_iters=300 if FAST else 3000, start_noise=0.01,
                                n_newton=0, speed_tolerance=1e-4)
slow_patterns = {tuple(np.sign(o).astype(int)) for o in slow["outputs"].values} if (
    "outputs" in slow) else set()
print(f"{slow.sizes['fixed_point']} fixed and slow points (q < 1e-4) hold "
      f"{len(slow_patterns)} of the 8 patterns")

# %% [markdown]
# Drawn in the PCA plane of the trials' rates, with the eigenvalues of every point's
# Jacobian (the unit circle separates stable from unstable modes):

# %%
fig = nd.analysis.plot_fixed_points(fp, trials=ds)
fig.suptitle(f"3-bit flip-flop: {counts.get('stable', 0)} stable points, "
             f"{counts.get('saddle', 0)} saddles")
save(fig, "fixed_points")

# %% [markdown]
# ## Rotational dynamics in a reaching network: jPCA
#
# Churchland et al. (2012) found that the motor cortex's population activity during
# reaching rotates: its derivative is well predicted by a skew-symmetric linear map of the
# state. `nd.analysis.jpca` fits that map in the top principal components of the PSTHs and
# reports the R² of the skew-symmetric fit next to that of an unconstrained one (the skew
# fit can at most match it). We train the reaching task's network (torque-driven arm) with
# SOFO and take its PSTHs around the go cue.

# %%
reach_sizes = (dict(duration=1.0, idle_range=(0.05, 0.1), prep_range=(0.1, 0.2),
                    movement_time=0.3, arm_dt=0.005, n_neurons=32) if FAST else {})
reach = nd.tasks.get("reach", plant="torque", **reach_sizes)
rhp = reach.hyperparameters("sofo")
rhp = dict(rhp, n_iters=1, batch_size=8, n_tangents=4) if FAST else dict(rhp, batch_size=32)
loop = reach.default_model(key=jr.PRNGKey(4))
reach_result = nd.fit(loop, reach, nd.optim.from_config("sofo", **rhp), n_iters=rhp["n_iters"],
                      batch_size=rhp["batch_size"], key=jr.PRNGKey(5), progress=not FAST,
                      eval_every=0 if FAST else None)
print({k: round(float(v), 4) for k, v in reach_result.final_metrics.items()} or "(not evaluated)")
reach_ds = nd.analysis.simulate(reach_result.model, reach, key=jr.PRNGKey(6),
                                n_trials=8 if FAST else 32)
reach_psth = nd.analysis.psth(reach_ds, align="go_cue", window=(-0.05, 0.3 if FAST else 0.5))
jp = nd.analysis.jpca(reach_psth, n_pcs=6)
print(f"jPCA: R² skew {float(jp.r2_skew):.3f}, unconstrained {float(jp.r2_full):.3f}; "
      f"rotation frequencies {np.round(jp.frequency.values, 1)} rad/s")
save(nd.analysis.plot_jpca(jp), "jpca")

# %% [markdown]
# In our full-mode run (1500 SOFO iterations at batch size 32, endpoint error 7.8 cm: not
# yet a good reacher) the skew-symmetric fit reached R² = 0.41 against 0.58 for the
# unconstrained one, with the fastest plane rotating at 6.9 rad/s (≈ 1.1 Hz) and holding
# 32 % of the PSTHs' variance: the rotational fit explains about 70 % of what the best
# linear fit explains.

# %% [markdown]
# ## Demixed components: dPCA
#
# `nd.analysis.dpca` splits the PSTHs into a condition-independent part (`time`) and a
# condition-dependent part (`direction` joined with its interaction with time), and finds
# for each the components that capture it and little else.

# %%
dp = nd.analysis.dpca(reach_psth, n_components=3)
print("data variance per marginalisation:",
      dict(zip(dp.marginalization.values, np.round(dp.marginal_variance.values, 3))))
print("explained variance of each component:",
      dict(zip(dp.component.values, np.round(dp.explained_variance.values, 3))))
save(nd.analysis.plot_dpca(dp, title="reach: dPCA of the PSTHs"), "dpca")

# %% [markdown]
# ## Comparing two networks: SOFO against Adam
#
# Do two networks trained on the same task with different optimizers solve it the same
# way? We train the flip-flop network again with Adam, run both on the same trials (the
# same inputs: `simulate` with the same key) and compare their population activity,
# trial × time being the shared conditions × time:
#
# - **CCA** — mean canonical correlation of their top PCs (1: the same subspace up to a
#   linear map);
# - **Procrustes** — angular shape distance (0: the same geometry up to rotation and
#   scale);
# - **DSA** — the distance between their linear dynamics operators fitted on
#   delay-embedded PCs, up to an orthogonal change of basis (0: conjugate dynamics).
#
# Each comes with a shuffle null (the time bins of the second network permuted), and an
# untrained network gives a baseline (without a null).

# %%
ahp = task.hyperparameters("adam")
ahp = dict(ahp, n_iters=10, batch_size=8) if FAST else ahp
adam_result = nd.fit(task.default_model(key=jr.PRNGKey(0)), task,
                     nd.optim.from_config("adam", **ahp), n_iters=ahp["n_iters"],
                     batch_size=ahp["batch_size"], key=jr.PRNGKey(1), progress=not FAST,
                     eval_every=0 if FAST else None)
print("Adam:", {k: round(float(v), 4) for k, v in adam_result.final_metrics.items()}
      or "(not evaluated in fast mode)")
# the SOFO network's trials dataset `ds` is reused: same key, same trials, same inputs
adam_ds = nd.analysis.simulate(adam_result.model, task, key=jr.PRNGKey(2), n_trials=N_TRIALS)
untrained_ds = nd.analysis.simulate(task.default_model(key=jr.PRNGKey(8)), task,
                                    key=jr.PRNGKey(2), n_trials=N_TRIALS)
assert np.array_equal(ds.inputs.values, adam_ds.inputs.values)
results, rows = {}, []
for method in ("cca", "procrustes", "dsa"):
    n_shuffles = (10 if FAST else 50) if method == "dsa" else (20 if FAST else 100)
    s = nd.analysis.similarity(ds, adam_ds, method, key=jr.PRNGKey(9), n_shuffles=n_shuffles)
    results[f"SOFO vs Adam: {method}"] = s
    base = nd.analysis.similarity(ds, untrained_ds, method, key=jr.PRNGKey(9), n_shuffles=0)
    rows.append((method, float(s.score), float(s.p_value), float(base.score),
                 float(np.median(s.null))))
print(f"{'method':<11}{'SOFO–Adam':>11}{'p':>8}{'SOFO–untrained':>16}{'null median':>13}")
for method, score, p_value, base, null in rows:
    print(f"{method:<11}{score:>11.3f}{p_value:>8.3f}{base:>16.3f}{null:>13.3f}")
save(nd.analysis.plot_similarity(results), "similarity")

# %% [markdown]
# ## Where to go from here
#
# - `neurodyn analyse RUN --fixed-points --jpca --dpca` writes the same analyses of a
#   trained run folder (`analysis/*.nc`, `figures/*.png`).
# - Every function here takes our PSTH and trials datasets or plain arrays
#   `[condition, time, unit]`, and returns a labelled `xarray.Dataset` that
#   `nd.analysis.save` writes to netCDF.
# - `nd.analysis.to_jpca` and `nd.analysis.to_dpca` still export PSTHs to other
#   implementations.

# %%
print("figures:", sorted(f.name for f in OUT.glob("*.png")))
