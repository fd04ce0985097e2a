"""jPCA: rotational dynamics in the top principal components (Churchland et al. 2012)."""

from __future__ import annotations

import numpy as np
import scipy.linalg
import xarray as xr

from ._population import pca_basis, population
from ._simulate import var


def skew_symmetric_fit(x: np.ndarray, dx: np.ndarray) -> np.ndarray:
    r"""The skew-symmetric M (Mᵀ = −M) minimising ‖dx − x M‖_F, in closed form.

    Setting the skew part of the gradient to zero gives the Sylvester equation
    $C M + M C = x^\top dx - dx^\top x$ with $C = x^\top x$, solved exactly (unique when C
    is positive definite).
    """
    c = x.T @ x
    rhs = x.T @ dx - dx.T @ x
    m = scipy.linalg.solve_sylvester(c, c, rhs)
    return 0.5 * (m - m.T)


def _r2(dx, x, m) -> float:
    return float(1.0 - np.sum((dx - x @ m) ** 2) / np.sum(dx**2))


def jpca(
    data,
    n_pcs: int = 6,
    *,
    variable: str | None = None,
    subtract_mean: bool = True,
    soft_normalize: float | None = None,
) -> xr.Dataset:
    r"""jPCA: the best rotational (skew-symmetric) linear dynamics in the top PCs.

    The data X (conditions × time × units) are optionally soft-normalised (each unit divided
    by its range + `soft_normalize`), the cross-condition mean at each time is removed, and
    the samples are projected on their top `n_pcs` principal components. With
    $\dot X \approx (X_{t+1} - X_t)/\Delta t$ paired with the midpoint $(X_t + X_{t+1})/2$,
    two linear models $\dot X = X M$ are fitted by least squares:

    - unconstrained M (`M_full`),
    - skew-symmetric M (`M_skew`, $M^\top = -M$: pure rotation), in closed form (a
      Sylvester equation; Churchland et al. used an iterative solver for the same optimum).

    R² = 1 − ‖Ẋ − XM‖² / ‖Ẋ‖² of each fit. The eigenvalues of `M_skew` come in pairs ±iω;
    the eigenvector of +iω, v = a + ib, spans a rotation plane, with jPC1 ∝ a and
    jPC2 ∝ b oriented so that the rotation runs counter-clockwise from jPC1 to jPC2, and jPC1 is
    then turned within the plane onto the largest spread of the conditions' first states.
    Planes are sorted by decreasing ω (the fastest rotation first, as in the paper).

    **Arguments:**

    - `data`: a PSTH dataset, a trials dataset, a DataArray or an array
      `[condition, time, unit]` (see `neurodyn.analysis._population`); use a window that
      covers the epoch to fit (for reaching, around movement onset).
    - `n_pcs`: number of PCs (even, ≥ 2, at most the number of units and of samples).
    - `variable`: the dataset variable (default `rates_mean`, else `rates`).
    - `subtract_mean`: remove the cross-condition mean at each time (Churchland et al.).
    - `soft_normalize`: `None` or the constant c of the soft normalisation x / (range + c)
      (the paper used 5 spikes/s).

    **Returns:** an `xarray.Dataset` with `projection` (`condition, time, jpc`), `jpcs`
    (unit loadings, `<unit dim>, jpc`), `pcs` (`<unit dim>, pc`), `pc_variance` (`pc`),
    `M_skew` and `M_full` (`pc, pc_in`), `frequency` (ω of each `plane`, rad per time
    unit), `plane_variance` (fraction of the data's variance in each plane), and the scalars
    `r2_skew`, `r2_full` (also attrs).

    **Raises:** `ValueError` for an odd or out-of-range `n_pcs`, fewer than 3 time points,
    an uneven time axis, or unusable data.

    **Example:**

    ```python
    p = nd.analysis.psth(ds, align="go_cue", window=(-0.05, 0.4))
    jp = nd.analysis.jpca(p, n_pcs=6)
    float(jp.r2_skew), float(jp.r2_full)
    nd.analysis.plot_jpca(jp)
    ```

    ??? cite "Reference"
        Churchland, Cunningham, Kaufman, Foster, Nuyujukian, Ryu & Shenoy, *Neural population
        dynamics during reaching*, Nature 487 (2012).
    """
    pop = population(data, variable)
    c, t, n = pop.values.shape
    if isinstance(n_pcs, bool) or not isinstance(n_pcs, (int, np.integer)) or n_pcs < 2:
        raise ValueError(f"`n_pcs` must be an even integer >= 2; got {n_pcs!r}.")
    if n_pcs % 2:
        raise ValueError(f"`n_pcs` must be even (jPCA pairs components into planes); got {n_pcs}.")
    if n_pcs > min(n, c * (t - 1)):
        raise ValueError(
            f"`n_pcs` = {n_pcs} exceeds the units ({n}) or the samples ({c * (t - 1)}) of `data`."
        )
    if t < 3:
        raise ValueError(f"jPCA needs at least 3 time points; `data` has {t}.")
    steps = np.diff(pop.times)
    if not np.allclose(steps, steps[0], rtol=1e-6, atol=0) or steps[0] <= 0:
        raise ValueError("the time axis of `data` must be increasing and evenly spaced.")
    if soft_normalize is not None and not soft_normalize >= 0:
        raise ValueError(f"`soft_normalize` must be None or >= 0; got {soft_normalize!r}.")
    dt = float(steps[0])

    x = pop.values.copy()
    if soft_normalize is not None:
        rng = x.max(axis=(0, 1)) - x.min(axis=(0, 1))
        x = x / (rng + soft_normalize)
    if subtract_mean:
        x = x - x.mean(axis=0, keepdims=True)
    flat = x.reshape(-1, n)
    center = flat.mean(axis=0)
    pcs, pc_var = pca_basis(flat - center, n_pcs)
    z = (x - center) @ pcs  # [condition, time, pc]
    dz = (np.diff(z, axis=1) / dt).reshape(-1, n_pcs)
    zm = (0.5 * (z[:, 1:] + z[:, :-1])).reshape(-1, n_pcs)
    m_full = np.linalg.lstsq(zm, dz, rcond=None)[0]
    m_skew = skew_symmetric_fit(zm, dz)

    evals, evecs = np.linalg.eig(m_skew)
    order = [i for i in np.argsort(-evals.imag, kind="stable") if evals[i].imag > 0]
    order = order[: n_pcs // 2]
    basis, freqs = [], []
    for i in order:
        # dz = z M (rows): the column dynamics A = Mᵀ = −M take a ↦ ωb, b ↦ −ωa, so the
        # rotation runs counter-clockwise from a to b
        a, b = evecs[:, i].real, evecs[:, i].imag
        a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
        first = z[:, 0] @ np.stack([a, b], axis=1)  # conditions' first states in the plane
        first = first - first.mean(axis=0)
        if np.any(first):
            _, _, vt = np.linalg.svd(first, full_matrices=False)
            theta = np.arctan2(vt[0, 1], vt[0, 0])
            a, b = np.cos(theta) * a + np.sin(theta) * b, -np.sin(theta) * a + np.cos(theta) * b
        basis += [a, b]
        freqs.append(evals[i].imag)
    while len(basis) < n_pcs:  # ω = 0 modes (a degenerate fit): fill with an orthonormal rest
        q = scipy.linalg.null_space(np.stack(basis)) if basis else np.eye(n_pcs)
        basis.append(q[:, 0])
        if len(basis) % 2 == 0:
            freqs.append(0.0)
    basis = np.stack(basis, axis=1)  # [pc, jpc]
    proj = z @ basis
    total = float(np.sum((x - center) ** 2))
    plane_var = [
        float(np.sum(proj[..., 2 * k : 2 * k + 2] ** 2)) / total for k in range(n_pcs // 2)
    ]

    r2_skew, r2_full = _r2(dz, zm, m_skew), _r2(dz, zm, m_full)
    jpc_names = [f"jPC{i + 1}" for i in range(n_pcs)]
    pc_names = [f"PC{i + 1}" for i in range(n_pcs)]
    coords = pop.coords()
    coords.update(
        {"jpc": jpc_names, "pc": pc_names, "pc_in": pc_names, "plane": np.arange(1, n_pcs // 2 + 1)}
    )
    u = pop.unit_dim
    per_time = f"1/{pop.time_units}" if pop.time_units != "1" else "1"
    ds = xr.Dataset(
        {
            "projection": var(
                (pop.condition_dim, "time", "jpc"), proj, "1", "data projected on the jPCs"
            ),
            "jpcs": var((u, "jpc"), pcs @ basis, "1", "jPC loadings on the units"),
            "pcs": var((u, "pc"), pcs, "1", "principal axes"),
            "pc_variance": var(("pc",), pc_var, "1", "fraction of variance of each PC"),
            "M_skew": var(
                ("pc", "pc_in"), m_skew.T, per_time, "skew-symmetric dynamics matrix (dz/dt = M z)"
            ),
            "M_full": var(
                ("pc", "pc_in"), m_full.T, per_time, "unconstrained dynamics matrix (dz/dt = M z)"
            ),
            "frequency": var(
                ("plane",), np.asarray(freqs), f"rad/{pop.time_units}", "rotation frequency ω"
            ),
            "plane_variance": var(
                ("plane",),
                np.asarray(plane_var),
                "1",
                "fraction of the data's variance in the plane",
            ),
            "r2_skew": var((), r2_skew, "1", "R² of the skew-symmetric fit"),
            "r2_full": var((), r2_full, "1", "R² of the unconstrained fit"),
        },
        coords=coords,
        attrs={
            "kind": "jpca",
            "n_pcs": int(n_pcs),
            "r2_skew": r2_skew,
            "r2_full": r2_full,
            "subtract_mean": bool(subtract_mean),
            "soft_normalize": "none" if soft_normalize is None else float(soft_normalize),
        },
    )
    return ds


def plot_jpca(jp: xr.Dataset, plane: int = 1, *, title: str | None = None):
    """Every condition's trajectory in one jPCA plane (dot: first time point).

    **Arguments:** `jp` — a dataset of [`neurodyn.analysis.jpca`][]; `plane` — which plane
    (1 = the fastest rotation); `title` — figure title (default: the R² of both fits).

    **Returns:** a matplotlib Figure.

    **Example:** `save_figure(plot_jpca(jp), "figures/jpca.png")`
    """
    from ._plots import _pyplot

    plt = _pyplot()
    n_planes = jp.sizes["plane"]
    if not 1 <= plane <= n_planes:
        raise ValueError(f"`plane` must be in 1..{n_planes}; got {plane!r}.")
    proj = jp["projection"].values[..., 2 * plane - 2 : 2 * plane]
    fig, ax = plt.subplots(figsize=(5, 5))
    cmap = plt.get_cmap("hsv")
    n_cond = proj.shape[0]
    for i in range(n_cond):
        color = cmap(i / max(n_cond, 1))
        ax.plot(proj[i, :, 0], proj[i, :, 1], color=color, lw=1.2)
        ax.scatter(proj[i, 0, 0], proj[i, 0, 1], color=color, s=15)
        ax.annotate(
            "", xy=proj[i, -1], xytext=proj[i, -2], arrowprops=dict(arrowstyle="->", color=color)
        )
    ax.set_xlabel(f"jPC{2 * plane - 1}")
    ax.set_ylabel(f"jPC{2 * plane}")
    ax.set_aspect("equal", adjustable="datalim")
    omega = float(jp["frequency"].values[plane - 1])
    ax.set_title(
        title
        or f"jPCA plane {plane}: R² skew {float(jp.r2_skew):.2f}, full {float(jp.r2_full):.2f}\n"
        f"ω = {omega:.3g} {jp['frequency'].attrs['units']}, "
        f"{100 * float(jp['plane_variance'][plane - 1]):.0f}% of the variance",
        fontsize=9,
    )
    fig.tight_layout()
    return fig
