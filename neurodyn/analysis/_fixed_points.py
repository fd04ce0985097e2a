"""Fixed and slow points of a recurrent model, with their linearisations (Sussillo & Barak 2013).

A recurrent model is a map x ↦ F(x, u) = `model.step(x, u)[0]`. A fixed point satisfies
F(x*, u) = x*; the finder minimises the speed q(x) = ½‖F(x, u) − x‖² from many states sampled
along the model's own trajectories (all at once, one `jax.jit`-compiled `lax.scan` of an optax
optimizer), polishes the candidates with Newton steps on F(x) − x = 0, keeps those whose speed
is below a tolerance, merges duplicates and classifies each by the eigenvalues of the Jacobian
∂F/∂x at the point.
"""

from __future__ import annotations

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import xarray as xr
from jax.flatten_util import ravel_pytree

from ._simulate import var

STABILITY_LABELS: tuple[str, ...] = ("stable", "saddle", "unstable")
"""The labels of [`fixed_points`][neurodyn.analysis.fixed_points]' `stability` coordinate."""


def _trial_inputs(inputs) -> np.ndarray:
    """`[trial, time, input]` from a trials dataset, a task batch or an array."""
    if isinstance(inputs, xr.Dataset):
        if "inputs" not in inputs:
            raise ValueError(
                "`inputs` is a dataset without an `inputs` variable (trial, time, input)."
            )
        da = inputs["inputs"]
        if da.dims[:2] != ("trial", "time"):
            raise ValueError(
                f"`inputs['inputs']` must have dims (trial, time, ...); has {da.dims}."
            )
        arr = np.asarray(da.values)
    elif hasattr(inputs, "inputs") and not isinstance(inputs, (np.ndarray, jax.Array)):
        arr = np.asarray(inputs.inputs)
    else:
        arr = np.asarray(inputs)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"`inputs` must be real numbers; got dtype {arr.dtype}.")
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(
            "`inputs` must be trial inputs `[trial, time, input]` (or `[time, input]`), a trials "
            f"dataset or a task batch; got an array of shape {arr.shape}."
        )
    return arr


@eqx.filter_jit
def _rollout_states(model, inputs, keys):
    """Every flattened state visited by noiseless trials `[trial, time, state]`."""

    def one(u_seq, key):
        def body(x, u):
            x = model.step(x, u, None)[0]
            return x, ravel_pytree(x)[0]

        return jax.lax.scan(body, model.initial_state(key), u_seq)[1]

    return jax.vmap(one)(inputs, keys)


def _speed_fn(model, u, unravel):
    def residual(z):
        return ravel_pytree(model.step(unravel(z), u, None)[0])[0] - z

    def speed(z):
        r = residual(z)
        return 0.5 * jnp.sum(r * r)

    return residual, speed


@eqx.filter_jit
def _minimise(model, starts, u, unravel, optimizer, n_iters: int, n_newton: int):
    residual, speed = _speed_fn(model, u, unravel)
    grad = jax.vmap(jax.grad(speed))

    def body(carry, _):
        z, state = carry
        updates, state = optimizer.update(grad(z), state, z)
        return (optax.apply_updates(z, updates), state), None

    (z, _), _ = jax.lax.scan(body, (starts, optimizer.init(starts)), None, length=n_iters)
    q_opt = jax.vmap(speed)(z)

    def newton(z0):
        def step(z, _):
            jac = jax.jacfwd(residual)(z)
            new = z - jnp.linalg.solve(jac, residual(z))
            # keep a Newton step only where it lowers the speed (it may diverge off a slow point)
            ok = jnp.all(jnp.isfinite(new)) & (speed(new) < speed(z))
            return jnp.where(ok, new, z), None

        return jax.lax.scan(step, z0, None, length=n_newton)[0]

    polished = jax.vmap(newton)(z) if n_newton > 0 else z
    return z, q_opt, polished, jax.vmap(speed)(polished)


@eqx.filter_jit
def _linearise(model, points, u, unravel):
    def f(z):
        return ravel_pytree(model.step(unravel(z), u, None)[0])[0]

    def at(z):
        return jax.jacfwd(f)(z), model.step(unravel(z), u, None)[1]

    return jax.vmap(at)(points)


def _check_u(u, n_in: int) -> np.ndarray:
    u = np.zeros(n_in) if u is None else np.asarray(u, dtype=np.float64)
    if u.shape != (n_in,):
        raise ValueError(f"`u` must be one input vector of shape ({n_in},); got {u.shape}.")
    return u


def _unique(points: np.ndarray, order: np.ndarray, tol: float) -> np.ndarray:
    """Indices (into `points`) of one representative per group closer than `tol`, in `order`."""
    kept: list[int] = []
    for i in order:
        if not kept or np.min(np.linalg.norm(points[kept] - points[i], axis=1)) > tol:
            kept.append(int(i))
    return np.asarray(kept, dtype=int)


def fixed_points(
    model,
    inputs,
    *,
    key,
    u=None,
    states=None,
    n_starts: int = 256,
    n_iters: int = 2000,
    learning_rate: float = 1e-2,
    start_noise: float = 0.0,
    n_newton: int = 10,
    speed_tolerance: float = 1e-10,
    unique_tolerance: float | None = None,
    eigenvalue_tolerance: float = 1e-6,
) -> xr.Dataset:
    r"""Fixed points of a recurrent model at a constant input, with their stability.

    The model is the map $x \mapsto F(x, u)$ = `model.step(x, u)[0]` (its noiseless step).
    From `n_starts` states sampled along noiseless trajectories driven by `inputs`, the finder
    minimises the speed

    $$q(x) = \tfrac12\,\lVert F(x, u) - x\rVert^2$$

    with Adam (optax) for `n_iters` steps, all starts at once in one compiled program; then
    `n_newton` Newton steps $x \leftarrow x - (\partial F/\partial x - I)^{-1}(F(x) - x)$
    polish every end point (a step is kept only where it lowers q, so slow points are not
    thrown far away). Points with q below `speed_tolerance` are kept, duplicates closer than
    `unique_tolerance` are merged (the slowest one is kept), and each is linearised: the
    eigenvalues λ of $J = \partial F/\partial x$ at the point classify it. The model is a
    *discrete-time* map, so a mode is unstable when |λ| > 1 + `eigenvalue_tolerance`:
    `"stable"` (no unstable mode), `"saddle"` (some) or `"unstable"` (all). For a model
    stepped with forward Euler, x + α(f(x) − x), the continuous-time eigenvalues are
    (λ − 1)/α.

    Any model with `initial_state(key)` and `step(carry, u, noise=None) -> (carry, y)` works
    (a [`neurodyn.models.RateRNN`][], a closed loop); a pytree carry is flattened into one
    state vector.

    **Arguments:**

    - `model`: the recurrent model.
    - `inputs`: the trials whose states seed the search: a trials dataset
      ([`neurodyn.analysis.simulate`][], its `inputs` variable), a task `Batch`, or an
      array `[trial, time, input]` (or `[time, input]`). Ignored when `states` is given
      (pass `None`).
    - `key`: drives the initial states of the trials, the choice of starts and `start_noise`.
    - `u`: the constant input at which fixed points are sought `[input]` (default zeros: the
      network without input).
    - `states`: explicit starting states `[n, state]` instead of sampling trajectories.
    - `n_starts`: number of starts drawn (without replacement where possible) from the
      trajectories.
    - `n_iters`, `learning_rate`: Adam iterations and step size.
    - `start_noise`: std of a Gaussian perturbation added to each start (Sussillo & Barak
      perturb the starts so that they do not all begin on the trajectories).
    - `n_newton`: Newton polishing steps (0 to skip).
    - `speed_tolerance`: the largest q of a kept point (absolute, in squared state units).
      Raise it (e.g. 1e-4) to keep slow points too.
    - `unique_tolerance`: distance below which two points are one (default 10⁻³ × the
      median norm of the sampled states, or 10⁻³ if that is 0).
    - `eigenvalue_tolerance`: margin around |λ| = 1 for calling a mode unstable.

    **Returns:** an `xarray.Dataset` over `fixed_point` (sorted by speed), `neuron` (the
    state's dim for a model whose carry is one value per neuron, `state_variable`
    otherwise), `mode` (eigenvalues sorted by decreasing modulus) and `output`, with
    `state` (the point),
    `speed` (q), `eigenvalue_real`, `eigenvalue_imag`, `eigenvalue_abs`, `n_unstable`,
    `jacobian` (`fixed_point, neuron, neuron_in`), `outputs` (the model's output at the
    point), `rates` (`fixed_point, neuron`, when the model has `rates` and a vector carry),
    `input` (u), the coordinate `stability` ("stable" / "saddle" / "unstable"), and attrs
    `n_starts`, `n_below_tolerance` (starts that ended below the speed tolerance), the
    settings, and `start_speed_median` / `end_speed_median` (q at the starts and after the
    search).

    **Raises:** `ValueError`/`TypeError` for a model without `step`/`initial_state`, badly
    shaped `inputs`, `u` or `states`, or non-positive sizes and tolerances.

    **Example:**

    ```python
    ds = nd.analysis.simulate(net, task, key=jr.PRNGKey(2), n_trials=64)
    fp = nd.analysis.fixed_points(net, ds, key=jr.PRNGKey(3), n_starts=512)
    fp.stability.to_series().value_counts()      # stable / saddle / unstable
    nd.analysis.plot_fixed_points(fp, trials=ds)
    ```

    ??? cite "Reference"
        Sussillo & Barak, *Opening the black box: low-dimensional dynamics in
        high-dimensional recurrent neural networks*, Neural Computation 25 (2013).
    """
    for name in ("step", "initial_state"):
        if not callable(getattr(model, name, None)):
            raise TypeError(
                f"`model` must be a recurrent model with `step(carry, u, noise)` and "
                f"`initial_state(key)`; {type(model).__name__} has no `{name}`."
            )
    for name, value in (("n_starts", n_starts), ("n_iters", n_iters)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer; got {value!r}.")
    if isinstance(n_newton, bool) or not isinstance(n_newton, (int, np.integer)) or n_newton < 0:
        raise ValueError(f"`n_newton` must be a non-negative integer; got {n_newton!r}.")
    for name, value in (
        ("learning_rate", learning_rate),
        ("speed_tolerance", speed_tolerance),
    ):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"`{name}` must be a positive number; got {value!r}.")
    if not (isinstance(start_noise, (int, float)) and start_noise >= 0):
        raise ValueError(f"`start_noise` must be a number >= 0; got {start_noise!r}.")
    if unique_tolerance is not None and not unique_tolerance > 0:
        raise ValueError(f"`unique_tolerance` must be positive or None; got {unique_tolerance!r}.")

    k_init, k_pick, k_noise = jr.split(key, 3)
    carry0 = model.initial_state(k_init)
    flat0, unravel = ravel_pytree(carry0)
    dtype = flat0.dtype
    n_state = flat0.shape[0]
    n_in = getattr(model, "n_inputs", None)

    if states is None:
        if inputs is None:
            raise ValueError("pass trial `inputs` to sample starts from, or explicit `states`.")
        trial_inputs = _trial_inputs(inputs)
        if n_in is not None and trial_inputs.shape[-1] != n_in:
            raise ValueError(
                f"`inputs` have {trial_inputs.shape[-1]} input channels; the model takes {n_in}."
            )
        n_in = trial_inputs.shape[-1]
        _check_u(u, n_in)
        keys = jr.split(k_init, trial_inputs.shape[0])
        visited = np.asarray(_rollout_states(model, jnp.asarray(trial_inputs, dtype), keys))
        visited = visited.reshape(-1, n_state)
        rng = np.random.default_rng(np.asarray(jr.randint(k_pick, (), 0, 2**31 - 1)).item())
        pick = rng.choice(len(visited), n_starts, replace=n_starts > len(visited))
        starts = visited[pick]
    else:
        starts = np.asarray(states, dtype=np.result_type(dtype, np.float32))
        if starts.ndim != 2 or starts.shape[1] != n_state or starts.shape[0] < 1:
            raise ValueError(
                f"`states` must be an array `[n, {n_state}]` (flattened model states); got shape "
                f"{starts.shape}."
            )
        visited = starts
    if n_in is None:
        raise ValueError("the model has no `n_inputs`; pass `u` (the constant input) explicitly.")
    u = jnp.asarray(_check_u(u, n_in), dtype)
    starts = jnp.asarray(starts, dtype)
    if start_noise > 0:
        starts = starts + start_noise * jr.normal(k_noise, starts.shape, dtype)

    scale = float(np.median(np.linalg.norm(visited, axis=1)))
    tol = unique_tolerance if unique_tolerance is not None else 1e-3 * (scale if scale > 0 else 1.0)

    _, speed = _speed_fn(model, u, unravel)
    q_start = np.asarray(jax.jit(jax.vmap(speed))(starts))
    _, q_opt, polished, q_end = _minimise(
        model, starts, u, unravel, optax.adam(learning_rate), int(n_iters), int(n_newton)
    )
    polished, q_end = np.asarray(polished), np.asarray(q_end)
    good = np.isfinite(q_end) & (q_end < speed_tolerance)
    idx = np.flatnonzero(good)
    keep = idx[_unique(polished[idx], np.argsort(q_end[idx], kind="stable"), tol)]
    points = polished[keep]

    n_points = len(points)
    if n_points:
        jac, outputs = _linearise(model, jnp.asarray(points, dtype), u, unravel)
        jac, outputs = np.asarray(jac), np.asarray(outputs)
    else:
        jac = np.zeros((0, n_state, n_state))
        outputs = np.zeros((0, *np.shape(model.step(carry0, u, None)[1])))
    eig = np.linalg.eigvals(jac) if n_points else np.zeros((0, n_state), complex)
    eig = np.take_along_axis(eig, np.argsort(-np.abs(eig), axis=1, kind="stable"), axis=1)
    n_unstable = (np.abs(eig) > 1.0 + eigenvalue_tolerance).sum(axis=1)
    labels = np.where(
        n_unstable == 0, "stable", np.where(n_unstable == n_state, "unstable", "saddle")
    ).astype("<U8")

    # a vector carry of one value per neuron (a RateRNN) is labelled by neuron
    per_neuron = isinstance(carry0, jax.Array) and n_state == getattr(model, "n_neurons", None)
    sdim = "neuron" if per_neuron else "state_variable"
    data = {
        "state": var(("fixed_point", sdim), points, "1", "state of the fixed point"),
        "speed": var(("fixed_point",), q_end[keep], "1", "speed q = ½‖F(x, u) − x‖²"),
        "eigenvalue_real": var(
            ("fixed_point", "mode"), eig.real, "1", "real part of the Jacobian's eigenvalue"
        ),
        "eigenvalue_imag": var(
            ("fixed_point", "mode"), eig.imag, "1", "imaginary part of the Jacobian's eigenvalue"
        ),
        "eigenvalue_abs": var(
            ("fixed_point", "mode"), np.abs(eig), "1", "modulus of the Jacobian's eigenvalue"
        ),
        "n_unstable": var(
            ("fixed_point",), n_unstable.astype(np.int64), "1", "eigenvalues with |λ| > 1"
        ),
        "jacobian": var(
            ("fixed_point", sdim, f"{sdim}_in"), jac, "1", "Jacobian ∂F/∂x at the point"
        ),
        "input": var(("input",), np.asarray(u), "1", "constant input u"),
    }
    outputs = np.asarray(outputs)
    if outputs.ndim == 2:
        data["outputs"] = var(("fixed_point", "output"), outputs, "1", "model output at the point")
    rates_fn = getattr(model, "rates", None)
    if callable(rates_fn) and isinstance(carry0, jax.Array):
        rates = np.asarray(jax.vmap(rates_fn)(jnp.asarray(points, dtype).reshape(-1, n_state)))
        if rates.ndim == 2:
            rdim = "neuron" if per_neuron or rates.shape[1] != n_state else "state_variable"
            data["rates"] = var(("fixed_point", rdim), rates, "1", "firing rate at the point")
    return xr.Dataset(
        data,
        coords={
            "fixed_point": np.arange(n_points),
            "stability": ("fixed_point", labels),
        },
        attrs={
            "kind": "fixed_points",
            "n_starts": int(len(starts)),
            "n_below_tolerance": int(good.sum()),
            "speed_tolerance": float(speed_tolerance),
            "unique_tolerance": float(tol),
            "eigenvalue_tolerance": float(eigenvalue_tolerance),
            "n_iters": int(n_iters),
            "learning_rate": float(learning_rate),
            "n_newton": int(n_newton),
            "start_noise": float(start_noise),
            "start_speed_median": float(np.median(q_start)),
            "optimised_speed_median": float(np.median(np.asarray(q_opt))),
            "end_speed_median": float(np.median(q_end)),
        },
    )


def plot_fixed_points(
    fp: xr.Dataset,
    trials: xr.Dataset | Any = None,
    *,
    variable: str = "rates",
    n_trials: int = 8,
    title: str | None = None,
):
    """Fixed points in the PCA plane of the trajectories, and their eigenvalue spectra.

    **Arguments:**

    - `fp`: a dataset of [`neurodyn.analysis.fixed_points`][].
    - `trials`: optional trials dataset (its `rates`, `[trial, time, neuron]`) or array of
      the same layout: its PCA defines the plane and a few trials are drawn in grey.
      Without it the PCA of the points themselves is used.
    - `variable`: what of the points to project: `"rates"` (match the trials' rates) or
      `"state"`.
    - `n_trials`: trials drawn.
    - `title`: figure title.

    **Returns:** a matplotlib Figure: left, PC1–PC2 with stable points (filled black),
    saddles (open red) and unstable points (red crosses); right, every point's Jacobian
    eigenvalues in the complex plane with the unit circle.

    **Example:** `save_figure(plot_fixed_points(fp, trials=ds), "figures/fixed_points.png")`
    """
    from ._plots import _pyplot

    plt = _pyplot()
    if variable == "rates" and "rates" not in fp:
        variable = "state"  # a model without rates, or no point found
    if variable not in fp:
        raise ValueError(
            f"`variable` must be a variable of `fp` ({list(fp.data_vars)}); got {variable!r}."
        )
    pts = np.asarray(fp[variable].values, np.float64)
    traj = None
    if trials is not None:
        traj = np.asarray(trials["rates"].values if isinstance(trials, xr.Dataset) else trials)
        if traj.ndim != 3 or traj.shape[-1] != pts.shape[-1]:
            if variable == "state" and "rates" not in fp:
                traj = None  # nothing comparable to draw
        if traj is not None and (traj.ndim != 3 or traj.shape[-1] != pts.shape[-1]):
            raise ValueError(
                f"`trials` must hold `[trial, time, {pts.shape[-1]}]` rates; got {traj.shape}."
            )
    basis_data = traj.reshape(-1, traj.shape[-1]) if traj is not None else pts
    mean = basis_data.mean(axis=0) if len(basis_data) else np.zeros(pts.shape[-1])
    if len(basis_data) > 1:
        _, _, vt = np.linalg.svd(basis_data - mean, full_matrices=False)
    else:
        vt = np.eye(pts.shape[-1])
    vt = np.vstack([vt, np.zeros((max(0, 2 - len(vt)), pts.shape[-1]))])[:2]

    fig, (ax, ax_eig) = plt.subplots(1, 2, figsize=(10, 4.5))
    if traj is not None:
        for tr in traj[:n_trials]:
            p = (tr - mean) @ vt.T
            ax.plot(p[:, 0], p[:, 1], color="0.75", lw=0.7, zorder=1)
    proj = (pts - mean) @ vt.T if len(pts) else np.zeros((0, 2))
    kinds = fp["stability"].values
    style = {
        "stable": dict(marker="o", s=45, color="k", label="stable"),
        "saddle": dict(marker="o", s=45, facecolor="none", edgecolor="C3", label="saddle"),
        "unstable": dict(marker="x", s=45, color="C3", label="unstable"),
    }
    for kind, kw in style.items():
        sel = kinds == kind
        n = int(sel.sum())
        if n:
            ax.scatter(
                proj[sel, 0], proj[sel, 1], zorder=3, **{**kw, "label": f"{kw['label']} ({n})"}
            )
    ax.set_xlabel("PC1")
    ax.set_ylabel("PC2")
    ax.set_title(f"{fp.sizes['fixed_point']} fixed points ({variable}, PCA plane)")
    if fp.sizes["fixed_point"]:
        ax.legend(frameon=False, fontsize=8)

    theta = np.linspace(0, 2 * np.pi, 200)
    ax_eig.plot(np.cos(theta), np.sin(theta), color="0.6", lw=0.8)
    for kind in style:
        sel = kinds == kind
        if sel.any():
            re = fp["eigenvalue_real"].values[sel].ravel()
            im = fp["eigenvalue_imag"].values[sel].ravel()
            color = "k" if kind == "stable" else "C3"
            ax_eig.scatter(re, im, s=6, color=color, alpha=0.5, label=kind)
    ax_eig.set_aspect("equal")
    ax_eig.set_xlabel("Re λ")
    ax_eig.set_ylabel("Im λ")
    ax_eig.set_title("Jacobian eigenvalues (unit circle: |λ| = 1)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
