"""Similarity of two population datasets on the same conditions × time: CCA, Procrustes shape
distance (Williams et al. 2021) and dynamical similarity analysis (Ostrow et al. 2023)."""

from __future__ import annotations

import math

import jax.random as jr
import numpy as np
import xarray as xr

from ._population import pca_basis, population
from ._simulate import var

METHODS: tuple[str, ...] = ("cca", "procrustes", "dsa")
NULLS: tuple[str, ...] = ("time", "condition")


# ----------------------------------------------------------------------------- measures


def _centred(x: np.ndarray) -> np.ndarray:
    flat = x.reshape(-1, x.shape[-1])
    return flat - flat.mean(axis=0)


def _orthonormal_scores(x: np.ndarray, n_pcs: int) -> np.ndarray:
    x = x - x.mean(axis=0)
    axes, _ = pca_basis(x, min(n_pcs, x.shape[1]))
    return np.linalg.qr(x @ axes)[0]


def canonical_correlations(a: np.ndarray, b: np.ndarray, n_pcs: int) -> np.ndarray:
    """Canonical correlations of the top-`n_pcs` PC scores (at most all units) of `a` and `b`
    (rows: samples): the singular values of Q_aᵀ Q_b, Q orthonormal bases of the centred
    scores."""
    qa, qb = _orthonormal_scores(a, n_pcs), _orthonormal_scores(b, n_pcs)
    return np.clip(np.linalg.svd(qa.T @ qb, compute_uv=False), 0.0, 1.0)


def procrustes_angle(a: np.ndarray, b: np.ndarray) -> float:
    """Angular Procrustes shape distance arccos ‖Aᵀ B‖_* of the centred, unit-norm samples."""
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        raise ValueError("a dataset is constant over conditions and time: no shape to compare.")
    nuclear = np.linalg.svd((a / na).T @ (b / nb), compute_uv=False).sum()
    return float(np.arccos(np.clip(nuclear, -1.0, 1.0)))


def delay_operator(x: np.ndarray, n_pcs: int, n_delays: int, rank: int) -> np.ndarray:
    """DSA's linear operator of one dataset `[condition, time, unit]`.

    Top-`n_pcs` PC scores, delay-embedded per condition (h_t = [z_t, z_{t−1}, …,
    z_{t−d+1}]), projected on the top `rank` singular vectors of the pooled delay (Hankel)
    matrix (HAVOK-style), then the least-squares A with v_{t+1} ≈ A v_t + c (DMD, with an
    intercept c for the offset that centring adds) over every condition.
    """
    return _operator_of_scores(_pc_scores(x, n_pcs), n_delays, rank)


def _pc_scores(x: np.ndarray, n_pcs: int) -> np.ndarray:
    c, t, _ = x.shape
    flat = _centred(x)
    return (flat @ pca_basis(flat, n_pcs)[0]).reshape(c, t, -1)


def _operator_of_scores(z: np.ndarray, n_delays: int, rank: int) -> np.ndarray:
    t = z.shape[1]
    h = np.concatenate([z[:, n_delays - 1 - k : t - k] for k in range(n_delays)], axis=-1)
    modes, _ = pca_basis(h.reshape(-1, h.shape[-1]), rank)  # uncentred: z is centred
    v = h @ modes
    now = v[:, :-1].reshape(-1, rank)
    nxt = v[:, 1:].reshape(-1, rank)
    # an intercept absorbs the offset that centring adds to linear dynamics
    design = np.concatenate([now, np.ones((now.shape[0], 1))], axis=1)
    return np.linalg.lstsq(design, nxt, rcond=None)[0][:-1].T


def _cayley(w: np.ndarray) -> np.ndarray:
    """The rotations (I − W)⁻¹(I + W) of skew-symmetric matrices W `[..., r, r]`."""
    eye = np.eye(w.shape[-1])
    return np.linalg.solve(eye - w, eye + w)


def _random_orthogonal(rng: np.random.Generator, r: int) -> np.ndarray:
    q, upper = np.linalg.qr(rng.standard_normal((r, r)))
    return q * np.sign(np.diag(upper))


def _spectral_start(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """C = U D Vᵀ mapping the eigenvectors of B's symmetric part onto A's (exact for
    conjugate matrices with distinct eigenvalues), with the signs D chosen by greedy flips."""
    _, u = np.linalg.eigh(0.5 * (a + a.T))
    _, v = np.linalg.eigh(0.5 * (b + b.T))
    at, bt = u.T @ a @ u, v.T @ b @ v
    w = at * bt  # ⟨A, C B Cᵀ⟩ = Σ_ij w_ij d_i d_j
    d = np.ones(a.shape[0])
    for _ in range(4 * a.shape[0]):
        gains = -2 * d * ((w + w.T) @ d - 2 * np.diag(w) * d)  # change from flipping d_i
        i = int(np.argmax(gains))
        if gains[i] <= 1e-15:
            break
        d[i] = -d[i]
    return u @ np.diag(d) @ v.T


def conjugacy_cosines(a, bs, *, key, n_restarts: int = 4, n_iters: int = 300) -> np.ndarray:
    """max over orthogonal C of ⟨A, C B Cᵀ⟩ / (‖A‖‖B‖) for every B of `bs` `[m, r, r]`.

    Riemannian gradient ascent on the orthogonal group (C ← C·cayley(ηΩ/2), Ω the skew part
    of Cᵀ∇f; η grows ×1.5 after an accepted step and halves after a rejected one) from an
    eigenvector match of the symmetric parts, C = I, a reflection, and `n_restarts` − 1
    random orthogonal C of each sign of the determinant, for at most `n_iters` steps; all
    starts of all B run as one batch. A local search: each value is a lower bound of the
    maximum.
    """
    a = np.asarray(a, np.float64)
    bs = np.asarray(bs, np.float64)
    a = a / np.linalg.norm(a)
    bs = bs / np.linalg.norm(bs, axis=(1, 2), keepdims=True)
    r = a.shape[0]
    rng = np.random.default_rng(np.asarray(jr.randint(key, (), 0, 2**31 - 1)).item())
    reflection = np.diag([-1.0] + [1.0] * (r - 1))
    shared = [np.eye(r), reflection]
    for _ in range(max(n_restarts, 1) - 1):
        q = _random_orthogonal(rng, r)
        shared += [q, reflection @ q]
    c = np.stack([np.stack([_spectral_start(a, b), *shared]) for b in bs])  # [m, s, r, r]
    b4 = bs[:, None]

    def f(c):
        return np.einsum("ij,msij->ms", a, c @ b4 @ np.swapaxes(c, -1, -2))

    value = f(c)
    eta = np.full(value.shape, 0.5)
    active = np.ones(value.shape, bool)
    for _ in range(n_iters):
        grad = a @ c @ np.swapaxes(b4, -1, -2) + a.T @ c @ b4
        omega = np.swapaxes(c, -1, -2) @ grad
        omega = 0.5 * (omega - np.swapaxes(omega, -1, -2))
        active &= (np.linalg.norm(omega, axis=(-2, -1)) > 1e-9) & (eta > 1e-12)
        if not active.any():
            break
        trial = c @ _cayley(0.5 * eta[..., None, None] * omega)
        new = f(trial)
        accept = active & (new > value)
        gain = np.where(accept, new - value, np.inf)
        c = np.where(accept[..., None, None], trial, c)
        value = np.where(accept, new, value)
        eta = np.where(accept, eta * 1.5, eta * 0.5)
        active &= gain > 1e-13
    return value.max(axis=1)


def _dsa_angles(a_op, b_ops, *, key, n_restarts: int, n_iters: int) -> np.ndarray:
    cos = conjugacy_cosines(a_op, np.stack(b_ops), key=key, n_restarts=n_restarts, n_iters=n_iters)
    return np.arccos(np.clip(cos, -1.0, 1.0))


# ----------------------------------------------------------------------------- entry point


def similarity(
    a,
    b,
    method: str = "cca",
    *,
    key,
    n_shuffles: int = 100,
    null: str = "time",
    n_pcs: int | None = None,
    n_delays: int = 5,
    rank: int | None = None,
    n_restarts: int = 4,
    n_iters: int = 500,
    variable: str | None = None,
) -> xr.Dataset:
    r"""How similar two population datasets on the same conditions × time are, with a null.

    Both datasets are laid out as samples (condition × time) × units (their unit counts may
    differ) and centred. Methods:

    - `"cca"` — canonical correlation analysis of the top `n_pcs` principal components of
      each (default min(10, units)): the score is the **mean canonical correlation**
      (1 = the same subspace up to any invertible linear map; invariant to rotation and
      scale).
    - `"procrustes"` — the angular Procrustes shape distance of Williams et al. (2021):
      with each dataset centred and scaled to unit Frobenius norm,
      $d = \arccos \max_{Q^\top Q = I} \langle A, BQ\rangle = \arccos\lVert A^\top B\rVert_*$
      (radians in [0, π/2]; 0 = equal up to rotation, reflection, translation and scale).
      All units are used unless `n_pcs` is given.
    - `"dsa"` — dynamical similarity analysis (Ostrow et al. 2023), our implementation:
      each dataset is reduced to its top `n_pcs` PCs (default min(10, units)),
      delay-embedded with `n_delays` lags per condition, projected on the top `rank`
      singular vectors of the delay matrix (default `n_pcs`) and fitted with the linear
      operator A of v_{t+1} ≈ A v_t + c (a DMD of the HAVOK-style embedding, with an
      intercept). Two operators
      are compared up to an orthogonal change of basis,
      $d = \arccos \max_{C^\top C = I} \langle A, C B C^\top\rangle / (\lVert A\rVert
      \lVert B\rVert)$ (radians; 0 = conjugate dynamics), the maximum searched by
      Riemannian gradient ascent on the orthogonal group (Cayley retraction, backtracking
      step) from a match of the eigenvectors of the operators' symmetric parts, the identity,
      a reflection and `n_restarts` − 1 random orthogonal
      matrices of each determinant sign, at most `n_iters` steps each (a local search:
      the value is a lower bound of the maximum, hence the distance an upper bound). Unlike CCA and
      Procrustes it compares the dynamics, not the states: conditions are pooled and
      their order does not matter.

    The null distribution recomputes the measure after shuffling `b` `n_shuffles` times:
    `null="time"` permutes the time bins of each condition independently (destroys the
    temporal structure: the right null for DSA), `"condition"` permutes the condition
    labels (tests whether the per-condition correspondence matters; DSA is invariant to
    it). `p_value` = (1 + #null at least as similar as observed) / (1 + n_shuffles).

    **Arguments:**

    - `a`, `b`: PSTH or trials datasets, DataArrays or arrays `[condition, time, unit]`
      with the same conditions and times (see `neurodyn.analysis._population`).
    - `method`: `"cca"`, `"procrustes"` or `"dsa"`.
    - `key`: drives the shuffles and DSA's random restarts.
    - `n_shuffles`: size of the null (0 for none).
    - `null`: `"time"` or `"condition"`.
    - `n_pcs`, `n_delays`, `rank`, `n_restarts`, `n_iters`: as above.
    - `variable`: the dataset variable (default `rates_mean`, else `rates`).

    **Returns:** an `xarray.Dataset` with `score` (the observed value; units "1" for CCA,
    "rad" for the distances), `null` (`shuffle`), `p_value`, for CCA
    `canonical_correlation` (`component`), for DSA `operator_a`, `operator_b` (`mode,
    mode_in`); attrs `method`, `higher_is_more_similar`, the settings.

    **Raises:** `ValueError` for an unknown method or null, datasets whose conditions or
    times differ in number, too few samples for `n_pcs`, or a constant dataset.

    **Example:**

    ```python
    s = nd.analysis.similarity(p_sofo, p_adam, "procrustes", key=jr.PRNGKey(0))
    float(s.score), float(s.p_value)
    nd.analysis.plot_similarity([s, s_cca, s_dsa])
    ```

    ??? cite "References"
        Williams, Kunz, Kornblith & Linderman, *Generalized shape metrics on neural
        representations*, NeurIPS 2021. Ostrow, Eisen, Kozachkov & Fiete, *Beyond
        geometry: comparing the temporal structure of computation in neural circuits with
        dynamical similarity analysis*, NeurIPS 2023.
    """
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}; got {method!r}.")
    if null not in NULLS:
        raise ValueError(f"`null` must be one of {NULLS}; got {null!r}.")
    if (
        isinstance(n_shuffles, bool)
        or not isinstance(n_shuffles, (int, np.integer))
        or n_shuffles < 0
    ):
        raise ValueError(f"`n_shuffles` must be an integer >= 0; got {n_shuffles!r}.")
    pa = population(a, variable, name="a")
    pb = population(b, variable, name="b")
    if pa.values.shape[:2] != pb.values.shape[:2]:
        raise ValueError(
            "`a` and `b` must cover the same conditions × time; got (condition, time) = "
            f"{pa.values.shape[:2]} and {pb.values.shape[:2]}."
        )
    xa, xb = pa.values, pb.values
    c, t = xa.shape[:2]
    n_min = min(xa.shape[2], xb.shape[2])
    if n_pcs is None:
        n_pcs_used = None if method == "procrustes" else min(10, n_min)
    else:
        if isinstance(n_pcs, bool) or not isinstance(n_pcs, (int, np.integer)) or n_pcs < 1:
            raise ValueError(f"`n_pcs` must be a positive integer or None; got {n_pcs!r}.")
        if n_pcs > n_min:
            raise ValueError(f"`n_pcs` = {n_pcs} exceeds the units of `a` or `b` ({n_min}).")
        n_pcs_used = int(n_pcs)
    if n_pcs_used is not None and n_pcs_used >= c * t:
        raise ValueError(f"`n_pcs` = {n_pcs_used} needs more than {c * t} samples.")
    if method == "dsa":
        if not (isinstance(n_delays, (int, np.integer)) and 1 <= n_delays < t - 1):
            raise ValueError(f"`n_delays` must be an integer in [1, {t - 2}]; got {n_delays!r}.")
        rank = n_pcs_used if rank is None else rank
        if not (isinstance(rank, (int, np.integer)) and 1 <= rank <= n_pcs_used * n_delays):
            raise ValueError(
                f"`rank` must be an integer in [1, n_pcs·n_delays = {n_pcs_used * n_delays}]; "
                f"got {rank!r}."
            )

    k_shuffle, k_dsa = jr.split(key)
    rng = np.random.default_rng(np.asarray(jr.randint(k_shuffle, (), 0, 2**31 - 1)).item())
    # Shuffles permute the (condition, time) samples of b. A permutation of samples leaves
    # b's centring, PCA axes and orthonormal bases unchanged, so each is computed once and
    # only the prepared scores are permuted (the same numbers as recomputing from scratch).
    perms = []
    for _ in range(int(n_shuffles)):
        if null == "time":
            perms.append(np.concatenate([i * t + rng.permutation(t) for i in range(c)]))
        else:
            perms.append((rng.permutation(c)[:, None] * t + np.arange(t)).ravel())

    extra = {}
    if method == "cca":
        k = min(n_pcs_used, n_min)
        qa, qb = _orthonormal_scores(_centred(xa), k), _orthonormal_scores(_centred(xb), k)

        def mean_cc(q):
            return np.clip(np.linalg.svd(qa.T @ q, compute_uv=False), 0.0, 1.0)

        ccs = mean_cc(qb)
        score = float(np.mean(ccs))
        nulls = np.array([float(np.mean(mean_cc(qb[p]))) for p in perms])
        extra["canonical_correlation"] = var(("component",), ccs, "1", "canonical correlation")
        units, higher = "1", True
    elif method == "procrustes":

        def reduce(x):
            flat = _centred(x)
            if n_pcs_used is None:
                return flat
            return flat @ pca_basis(flat, n_pcs_used)[0]

        ra, rb = reduce(xa), reduce(xb)
        score = procrustes_angle(ra, rb)
        nulls = np.array([procrustes_angle(ra, rb[p]) for p in perms])
        units, higher = "rad", False
    else:
        op_a = delay_operator(xa, n_pcs_used, int(n_delays), int(rank))
        zb = _pc_scores(xb, n_pcs_used)
        flat_b = zb.reshape(c * t, -1)
        ops = [_operator_of_scores(zb, int(n_delays), int(rank))] + [
            _operator_of_scores(flat_b[p].reshape(zb.shape), int(n_delays), int(rank))
            for p in perms
        ]
        angles = _dsa_angles(op_a, ops, key=k_dsa, n_restarts=n_restarts, n_iters=n_iters)
        score, nulls = float(angles[0]), angles[1:]
        extra["operator_a"] = var(("mode", "mode_in"), op_a, "1", "DSA operator of a")
        extra["operator_b"] = var(("mode", "mode_in"), ops[0], "1", "DSA operator of b")
        units, higher = "rad", False

    if len(nulls):
        as_similar = nulls >= score if higher else nulls <= score
        p_value = (1.0 + float(np.sum(as_similar))) / (1.0 + len(nulls))
    else:
        p_value = math.nan
    names = {
        "cca": "mean canonical correlation",
        "procrustes": "angular Procrustes distance",
        "dsa": "DSA angular distance between operators",
    }
    return xr.Dataset(
        {
            "score": var((), score, units, names[method]),
            "null": var(
                ("shuffle",),
                np.asarray(nulls, np.float64),
                units,
                f"{names[method]} after shuffling b ({null})",
            ),
            "p_value": var((), p_value, "1", "fraction of the null at least as similar (with +1)"),
            **extra,
        },
        attrs={
            "kind": "similarity",
            "method": method,
            "higher_is_more_similar": bool(higher),
            "null_kind": null,
            "n_shuffles": int(n_shuffles),
            "n_pcs": "all" if n_pcs_used is None else int(n_pcs_used),
            **({"n_delays": int(n_delays), "rank": int(rank)} if method == "dsa" else {}),
        },
    )


def plot_similarity(results, *, labels=None, title: str | None = None):
    """The observed value of each similarity against its shuffle null.

    **Arguments:** `results` — one dataset of [`neurodyn.analysis.similarity`][], or a list
    or dict of them (one panel each); `labels` — panel titles (default: the method and the
    p-value); `title` — figure title.

    **Returns:** a matplotlib Figure (histogram of the null, a red line at the observed
    value).

    **Example:** `plot_similarity({"SOFO vs Adam, CCA": s1, "Procrustes": s2})`
    """
    from ._plots import _pyplot

    plt = _pyplot()
    if isinstance(results, xr.Dataset):
        results = [results]
    if isinstance(results, dict):
        labels = labels or list(results)
        results = list(results.values())
    results = list(results)
    if not results or not all(isinstance(r, xr.Dataset) and "score" in r for r in results):
        raise ValueError("`results` must be similarity datasets (or a list or dict of them).")
    fig, axes = plt.subplots(1, len(results), figsize=(3.6 * len(results), 3.2), squeeze=False)
    for i, (ax, r) in enumerate(zip(axes[0], results)):
        if r.sizes.get("shuffle", 0):
            ax.hist(r["null"].values, bins=20, color="0.7", label="shuffle null")
        ax.axvline(float(r["score"]), color="C3", lw=2, label="observed")
        ax.set_xlabel(f"{r['score'].attrs['long_name']} ({r['score'].attrs['units']})", fontsize=8)
        p = float(r["p_value"])
        name = labels[i] if labels else r.attrs["method"]
        ax.set_title(f"{name}\nobserved {float(r['score']):.3f}, p = {p:.3g}", fontsize=9)
        ax.legend(frameon=False, fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
