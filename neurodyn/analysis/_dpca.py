"""Demixed principal component analysis (Kobak et al. 2016), our own implementation.

The PyPI package `dpca` (1.0.5, 2020) is not used: it declares a dependency on the
deprecated `sklearn` PyPI name, which no longer installs, and needs numba.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import xarray as xr

from ._population import UNIT_DIMS, population
from ._simulate import var


def _as_dataarray(data, variable: str | None, dims) -> tuple[xr.DataArray, str]:
    if isinstance(data, xr.DataArray) or dims is not None:
        if not isinstance(data, xr.DataArray):
            arr = np.asarray(data, np.float64)
            if len(dims) != arr.ndim:
                raise ValueError(f"`dims` names {len(dims)} axes; `data` has {arr.ndim}.")
            data = xr.DataArray(arr, dims=tuple(dims))
        unit_dim = next((d for d in UNIT_DIMS if d in data.dims), None)
        if unit_dim is None:
            raise ValueError(f"`data` must have a `neuron` or `unit` dim; got dims {data.dims}.")
        if data.ndim < 2:
            raise ValueError(f"`data` needs at least one dim besides {unit_dim!r}.")
        da = data.astype(np.float64)
    else:
        pop = population(data, variable)
        da = xr.DataArray(pop.values, dims=(pop.condition_dim, "time", pop.unit_dim))
        da = da.assign_coords(pop.coords())
        unit_dim = pop.unit_dim
    if not np.all(np.isfinite(da.values)):
        raise ValueError("`data` holds NaN or inf; average trials first (e.g. np.nanmean).")
    return da.transpose(unit_dim, ...), unit_dim


def marginalize(x: np.ndarray, n_params: int) -> dict[tuple[int, ...], np.ndarray]:
    """The marginalisations X_S of centred `x [unit, p_1, …, p_k]`, for every non-empty
    subset S of the parameter axes (numbered 0…k−1): X_S = Σ_{T ⊆ S} (−1)^{|S|−|T|} M_T,
    M_T the average over the axes not in T (Möbius inversion), so that Σ_S X_S = x."""
    means: dict[tuple[int, ...], np.ndarray] = {}
    for size in range(n_params + 1):
        for subset in combinations(range(n_params), size):
            others = tuple(1 + i for i in range(n_params) if i not in subset)
            means[subset] = x.mean(axis=others, keepdims=True)
    out = {}
    for size in range(1, n_params + 1):
        for subset in combinations(range(n_params), size):
            total = np.zeros_like(x)
            for k in range(size + 1):
                for t in combinations(subset, k):
                    total = total + (-1) ** (size - k) * means[t]
            out[subset] = np.broadcast_to(total, x.shape)
    return out


def dpca(
    data,
    n_components: int = 3,
    *,
    variable: str | None = None,
    dims=None,
    join_time: bool = True,
    regularizer: float = 1e-6,
) -> xr.Dataset:
    r"""Demixed PCA: components that each capture one marginalisation of the data.

    The data X (units × parameters, e.g. condition × time; centred per unit) are split into
    marginalisations X_S, one per non-empty set S of parameters, by averaging and
    inclusion–exclusion, so that X = Σ_S X_S and the parts are orthogonal. With
    `join_time` each S without `time` is joined with S ∪ {time} (Kobak et al.'s practice:
    "condition" holds the condition-dependent activity at every time, "time" the
    condition-independent part). For each (joined) marginalisation φ the encoder F and the
    decoder D minimise the regularised reduced-rank regression

    $$\lVert X_\varphi - F D X\rVert^2 + \lambda \lVert F D\rVert^2,\qquad
      \lambda = \texttt{regularizer}\cdot\lVert X\rVert^2,$$

    solved in closed form: B = X_φ Xᵀ(XXᵀ + λI)⁻¹, F = the top `n_components` left singular
    vectors of B[X, √λ I], D = Fᵀ B. The regularizer is fixed, not cross-validated (raise it
    when units outnumber the samples or the data are noisy).

    **Arguments:**

    - `data`: a PSTH or trials dataset (marginalisations over its condition and `time`), an
      `xarray.DataArray` with a unit dim (`neuron` or `unit`) and any parameter dims (e.g.
      `stimulus`, `decision`, `time`), or an array with `dims` naming its axes.
    - `n_components`: components per marginalisation.
    - `variable`: the dataset variable (default `rates_mean`, else `rates`).
    - `dims`: axis names of a plain array (one of them `neuron` or `unit`).
    - `join_time`: join every marginalisation with its interaction with `time`.
    - `regularizer`: λ relative to ‖X‖².

    **Returns:** an `xarray.Dataset` over `component` (coordinate `marginalization` per
    component), the unit dim, the parameter dims and `marginalization`: `encoder`,
    `decoder` (unit, component), `projection` (component, parameters: D X),
    `explained_variance` (component: 1 − ‖X − f d X‖²/‖X‖²), `variance_split`
    (component, marginalization: how each component's projected variance ‖d X_ψ‖² splits
    over the marginalisations ψ — 1 on its own one means perfect demixing), and
    `marginal_variance` (marginalization: ‖X_ψ‖²/‖X‖², the data's own split).

    **Raises:** `ValueError` for data without a unit dim or with NaN, bad `dims`, or
    `n_components` larger than the units.

    **Example:**

    ```python
    p = nd.analysis.psth(ds, align="go_cue", window=(-0.2, 0.6))
    dp = nd.analysis.dpca(p, n_components=3)
    dp.variance_split.sel(marginalization="condition")
    nd.analysis.plot_dpca(dp)
    ```

    ??? cite "Reference"
        Kobak, Brendel, Constantinidis, Feierstein, Kepecs, Mainen, Qi, Romo, Uchida &
        Machens, *Demixed principal component analysis of neural population data*, eLife 5
        (2016).
    """
    da, unit_dim = _as_dataarray(data, variable, dims)
    params = [d for d in da.dims if d != unit_dim]
    n_units = da.sizes[unit_dim]
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)):
        raise ValueError(f"`n_components` must be a positive integer; got {n_components!r}.")
    if not 1 <= n_components <= n_units:
        raise ValueError(
            f"`n_components` must be in [1, {n_units}] (the units); got {n_components}."
        )
    if not regularizer >= 0:
        raise ValueError(f"`regularizer` must be >= 0; got {regularizer!r}.")

    x = da.values - da.values.reshape(n_units, -1).mean(axis=1).reshape(
        (n_units,) + (1,) * len(params)
    )
    parts = marginalize(x, len(params))
    groups: dict[str, np.ndarray] = {}
    time_axis = params.index("time") if join_time and "time" in params else None
    for subset, part in parts.items():
        key = subset
        if time_axis is not None and time_axis in subset and len(subset) > 1:
            key = tuple(i for i in subset if i != time_axis)
        name = "×".join(params[i] for i in key)
        groups[name] = groups.get(name, 0) + part
    names = list(groups)

    flat = x.reshape(n_units, -1)
    total = float(np.sum(flat**2))
    if total == 0:
        raise ValueError("`data` is constant: nothing to decompose.")
    lam = regularizer * total
    gram = flat @ flat.T + lam * np.eye(n_units)
    encoders, decoders, labels = [], [], []
    for name in names:
        xphi = groups[name].reshape(n_units, -1)
        b = np.linalg.solve(gram, flat @ xphi.T).T  # X_φ Xᵀ (XXᵀ + λI)⁻¹ (gram symmetric)
        fitted = np.concatenate([b @ flat, np.sqrt(lam) * b], axis=1)
        u, _, _ = np.linalg.svd(fitted, full_matrices=False)
        f = u[:, :n_components]
        d = f.T @ b
        # sign: the decoder's projection of X_φ has a positive largest-|value| sample
        z = d @ xphi
        signs = np.sign(z[np.arange(len(z)), np.abs(z).argmax(axis=1)])
        signs[signs == 0] = 1.0
        encoders.append(f * signs)
        decoders.append(d * signs[:, None])
        labels += [name] * n_components
    enc = np.concatenate(encoders, axis=1)
    dec = np.concatenate(decoders, axis=0)
    proj = dec @ flat
    explained = np.array(
        [
            1.0 - np.sum((flat - np.outer(enc[:, k], proj[k])) ** 2) / total
            for k in range(len(labels))
        ]
    )
    split = np.stack(
        [np.sum((dec @ groups[n].reshape(n_units, -1)) ** 2, axis=1) for n in names], axis=1
    )
    split = split / np.maximum(split.sum(axis=1, keepdims=True), 1e-300)
    marginal = np.array([np.sum(groups[n] ** 2) / total for n in names])

    comp_names = [f"{lab} {k % n_components + 1}" for k, lab in enumerate(labels)]
    coords = {d: da[d] for d in da.dims if d in da.coords}
    coords.update({"component": comp_names, "marginalization": names})
    ds = xr.Dataset(
        {
            "encoder": var((unit_dim, "component"), enc, "1", "encoder axis (unit loadings)"),
            "decoder": var((unit_dim, "component"), dec.T, "1", "decoder axis"),
            "projection": var(
                ("component", *params),
                proj.reshape(len(labels), *x.shape[1:]),
                "1",
                "data projected on the decoder",
            ),
            "explained_variance": var(
                ("component",), explained, "1", "fraction of the data's variance explained"
            ),
            "variance_split": var(
                ("component", "marginalization"),
                split,
                "1",
                "split of the component's variance over the marginalisations",
            ),
            "marginal_variance": var(
                ("marginalization",),
                marginal,
                "1",
                "fraction of the data's variance in each marginalisation",
            ),
        },
        coords=coords,
        attrs={
            "kind": "dpca",
            "n_components": int(n_components),
            "regularizer": float(regularizer),
            "join_time": bool(join_time),
        },
    )
    return ds.assign_coords(component_marginalization=("component", np.asarray(labels)))


def plot_dpca(dp: xr.Dataset, *, n_components: int = 3, title: str | None = None):
    """dPCA components over time, one row per marginalisation, and their variance split.

    **Arguments:** `dp` — a dataset of [`neurodyn.analysis.dpca`][]; `n_components` — the
    components drawn per marginalisation; `title` — figure title.

    **Returns:** a matplotlib Figure: one line per combination of the non-time parameters
    (against `time`, or against the first parameter when there is no time), the component's
    explained variance in each panel title; last column, the variance split of each
    component as stacked bars.

    **Example:** `save_figure(plot_dpca(dp), "figures/dpca.png")`
    """
    from ._plots import _pyplot

    plt = _pyplot()
    names = list(dp["marginalization"].values)
    labels = dp["component_marginalization"].values
    n_cols = min(n_components, int(dp.attrs.get("n_components", n_components)))
    fig, axes = plt.subplots(
        len(names), n_cols + 1, figsize=(3.0 * (n_cols + 1), 2.4 * len(names)), squeeze=False
    )
    proj = dp["projection"]
    params = [d for d in proj.dims if d != "component"]
    x_dim = "time" if "time" in params else params[0]
    for row, name in enumerate(names):
        idx = np.flatnonzero(labels == name)[:n_cols]
        for col, k in enumerate(idx):
            ax = axes[row, col]
            p = proj.isel(component=k).transpose(x_dim, ...)
            xs = p[x_dim].values if x_dim in p.coords else np.arange(p.sizes[x_dim])
            ax.plot(xs, p.values.reshape(p.sizes[x_dim], -1), lw=1)
            ax.set_title(
                f"{dp.component.values[k]} ({100 * float(dp.explained_variance[k]):.1f}%)",
                fontsize=9,
            )
            if row == len(names) - 1:
                ax.set_xlabel(x_dim)
        ax = axes[row, -1]
        if row == 0:
            split = dp["variance_split"].values * dp["explained_variance"].values[:, None]
            bottom = np.zeros(len(labels))
            for j, n in enumerate(names):
                ax.bar(np.arange(len(labels)), split[:, j], bottom=bottom, label=n, color=f"C{j}")
                bottom += split[:, j]
            ax.set_xlabel("component")
            ax.set_ylabel("explained variance")
            ax.legend(frameon=False, fontsize=7)
        else:
            ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
