"""Fixed points, jPCA, dPCA and similarity measures against ground truth built by hand."""

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import scipy.linalg
import scipy.optimize

import neurodyn as nd

# ----------------------------------------------------------------------------- fixed points


class Linear(eqx.Module):
    """x ↦ A x + B u + c: one fixed point (I − A)⁻¹(B u + c), Jacobian A."""

    A: jnp.ndarray
    B: jnp.ndarray
    c: jnp.ndarray
    n_inputs: int = eqx.field(static=True)

    def initial_state(self, key=None):
        return jnp.zeros(self.A.shape[0])

    def step(self, x, u, noise=None):
        x = self.A @ x + self.B @ u + self.c
        return x, x[:1]


class Bistable(eqx.Module):
    """Independent units x_i ↦ x_i + α(−x_i + w tanh x_i + u_i): 3 fixed points per unit."""

    w: float = eqx.field(static=True)
    alpha: float = eqx.field(static=True)
    n: int = eqx.field(static=True)
    n_inputs: int = eqx.field(static=True)
    std: float = eqx.field(static=True)

    def initial_state(self, key=None):
        return self.std * jr.normal(key, (self.n,))

    def step(self, x, u, noise=None):
        x = x + self.alpha * (-x + self.w * jnp.tanh(x) + u)
        return x, jnp.tanh(x)

    def rates(self, x):
        return jnp.tanh(x)


def test_fixed_point_of_a_linear_map(getkey):
    # eigenvalues 1.2 (unstable), 0.5 and 0.3 ± 0.4i in a random basis
    Q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((4, 4)))
    block = np.array([[1.2, 0, 0, 0], [0, 0.5, 0, 0], [0, 0, 0.3, 0.4], [0, 0, -0.4, 0.3]])
    A = Q @ block @ np.linalg.inv(Q)
    B = np.random.default_rng(1).standard_normal((4, 2))
    c = np.array([0.5, -1.0, 0.2, 0.0])
    model = Linear(jnp.asarray(A), jnp.asarray(B), jnp.asarray(c), 2)
    u = np.array([0.3, -0.7])
    starts = np.random.default_rng(2).standard_normal((16, 4))
    fp = nd.analysis.fixed_points(model, None, states=starts, u=u, key=getkey(), n_iters=200)
    expected = np.linalg.solve(np.eye(4) - A, B @ u + c)
    assert fp.sizes["fixed_point"] == 1
    np.testing.assert_allclose(fp.state.values[0], expected, atol=1e-8)
    eig = fp.eigenvalue_real.values[0] + 1j * fp.eigenvalue_imag.values[0]
    np.testing.assert_allclose(
        np.sort_complex(eig), np.sort_complex(np.linalg.eigvals(A)), atol=1e-8
    )
    np.testing.assert_allclose(fp.jacobian.values[0], A, atol=1e-10)
    assert fp.stability.values[0] == "saddle" and int(fp.n_unstable[0]) == 1
    for name in fp.variables:
        if name in fp.data_vars:
            assert {"units", "long_name"} <= set(fp[name].attrs), name


def test_bistable_units_have_nine_fixed_points_with_the_right_labels(getkey):
    w, alpha = 2.0, 0.5
    model = Bistable(w, alpha, 2, 2, 1.5)
    x_star = scipy.optimize.brentq(lambda x: x - w * np.tanh(x), 1.0, 3.0)
    # starts sampled along trajectories from random initial states, without input
    inputs = np.zeros((64, 4, 2))
    fp = nd.analysis.fixed_points(model, inputs, key=getkey(), n_starts=256, n_iters=300)
    assert fp.sizes["fixed_point"] == 9
    expected = {(a, b) for a in (-x_star, 0.0, x_star) for b in (-x_star, 0.0, x_star)}
    found = fp.state.values
    for point in expected:
        assert np.min(np.linalg.norm(found - np.array(point), axis=1)) < 1e-6, point
    counts = fp.stability.to_series().value_counts().to_dict()
    assert counts == {"stable": 4, "saddle": 4, "unstable": 1}
    # eigenvalues: 1 + α(−1 + w sech²(x)) per unit, at each point
    for i, point in enumerate(found):
        lam = 1 + alpha * (-1 + w / np.cosh(point) ** 2)
        np.testing.assert_allclose(np.sort(fp.eigenvalue_real.values[i]), np.sort(lam), atol=1e-6)
        n_unstable = int((lam > 1).sum())
        assert int(fp.n_unstable[i]) == n_unstable
    np.testing.assert_allclose(fp.rates.values, np.tanh(found), atol=1e-12)
    assert np.all(fp.speed.values < 1e-10)
    fig = nd.analysis.plot_fixed_points(fp)
    assert len(fig.axes) == 2


def test_fixed_points_of_a_linear_rate_rnn(getkey):
    # linear activation: x* solves x = x W + b (rows presynaptic), J = (1−α) I + α Wᵀ
    net = nd.models.RateRNN(6, 2, 1, tau=4.0, dt=1.0, activation="linear", key=getkey())
    b = jnp.linspace(-0.5, 0.5, 6)
    net = eqx.tree_at(lambda m: m.b, net, b)
    W = np.asarray(net.weights().W)
    fp = nd.analysis.fixed_points(net, np.zeros((4, 10, 2)), key=getkey(), n_starts=8, n_iters=50)
    assert fp.sizes["fixed_point"] == 1
    np.testing.assert_allclose(fp.state.values[0], np.linalg.solve((np.eye(6) - W).T, b), atol=1e-8)
    lam = 0.75 + 0.25 * np.linalg.eigvals(W)
    got = fp.eigenvalue_real.values[0] + 1j * fp.eigenvalue_imag.values[0]
    np.testing.assert_allclose(np.sort_complex(got), np.sort_complex(lam), atol=1e-8)
    assert fp.stability.values[0] == "stable"  # spectral radius 0.9 < 1


def test_fixed_points_rejects_bad_arguments(getkey):
    net = nd.models.RateRNN(4, 2, 1, key=getkey())
    with pytest.raises(ValueError, match="`inputs`"):
        nd.analysis.fixed_points(net, np.zeros((3, 2, 2, 2)), key=getkey())
    with pytest.raises(ValueError, match="input channels"):
        nd.analysis.fixed_points(net, np.zeros((3, 5, 3)), key=getkey())
    with pytest.raises(ValueError, match="`u`"):
        nd.analysis.fixed_points(net, np.zeros((3, 5, 2)), u=np.zeros(3), key=getkey())
    with pytest.raises(ValueError, match="`states`"):
        nd.analysis.fixed_points(net, None, states=np.zeros((3, 5)), key=getkey())
    with pytest.raises(ValueError, match="`n_starts`"):
        nd.analysis.fixed_points(net, np.zeros((3, 5, 2)), n_starts=0, key=getkey())
    with pytest.raises(TypeError, match="`model`"):
        nd.analysis.fixed_points(object(), np.zeros((3, 5, 2)), key=getkey())


# ----------------------------------------------------------------------------- jPCA


def _rotations(rng, n_conditions=8, n_times=60, n_units=20, dt=0.01, noise=0.0):
    """Two rotation planes (ω = 6 and 2 rad/s; the first with larger amplitude) in N units."""
    t = np.arange(n_times) * dt
    Q, _ = np.linalg.qr(rng.standard_normal((n_units, 4)))
    latent = np.zeros((n_conditions, n_times, 4))
    for k, (omega, amp) in enumerate([(6.0, 3.0), (2.0, 1.0)]):
        phase = rng.uniform(0, 2 * np.pi, n_conditions)[:, None]
        radius = amp * rng.uniform(0.5, 1.5, n_conditions)[:, None]
        latent[:, :, 2 * k] = radius * np.cos(omega * t + phase)
        latent[:, :, 2 * k + 1] = radius * np.sin(omega * t + phase)
    x = latent @ Q.T + 5.0 + noise * rng.standard_normal((n_conditions, n_times, n_units))
    return x, Q, t


def test_skew_symmetric_fit_matches_an_explicit_least_squares():
    rng = np.random.default_rng(0)
    x, dx = rng.standard_normal((50, 4)), rng.standard_normal((50, 4))
    m = nd.analysis._jpca.skew_symmetric_fit(x, dx)
    # independent: least squares over the 6 free entries of a skew matrix
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    design = []
    for i, j in pairs:
        e = np.zeros((4, 4))
        e[i, j], e[j, i] = 1.0, -1.0
        design.append((x @ e).ravel())
    k = np.linalg.lstsq(np.stack(design, axis=1), dx.ravel(), rcond=None)[0]
    expected = np.zeros((4, 4))
    for (i, j), v in zip(pairs, k):
        expected[i, j], expected[j, i] = v, -v
    np.testing.assert_allclose(m, expected, atol=1e-10)


def test_jpca_recovers_known_rotation_planes():
    x, Q, t = _rotations(np.random.default_rng(1), noise=0.01)
    import xarray as xr

    da = xr.DataArray(x, dims=("condition", "time", "neuron"), coords={"time": t})
    jp = nd.analysis.jpca(da, n_pcs=4)
    assert float(jp.r2_skew) > 0.95 and float(jp.r2_full) >= float(jp.r2_skew) - 1e-12
    np.testing.assert_allclose(jp.frequency.values, [6.0, 2.0], rtol=0.02)
    for k in range(2):
        plane = jp.jpcs.values[:, 2 * k : 2 * k + 2]
        angles = scipy.linalg.subspace_angles(plane, Q[:, 2 * k : 2 * k + 2])
        assert np.max(angles) < 0.05, (k, angles)
    M = jp.M_skew.values
    np.testing.assert_allclose(M, -M.T, atol=1e-12)
    assert jp.projection.dims == ("condition", "time", "jpc")
    # the first plane rotates counter-clockwise from jPC1 to jPC2
    p = jp.projection.values[..., :2]
    cross = p[:, :-1, 0] * p[:, 1:, 1] - p[:, :-1, 1] * p[:, 1:, 0]
    assert np.all(cross > 0)
    fig = nd.analysis.plot_jpca(jp)
    assert fig.axes


def test_jpca_on_non_rotational_dynamics_gives_low_skew_r2():
    rng = np.random.default_rng(2)
    t = np.arange(60) * 0.01
    rates = np.array([1.0, 3.0, 6.0, 10.0])  # pure decay along 4 orthogonal axes
    Q, _ = np.linalg.qr(rng.standard_normal((20, 4)))
    latent = rng.standard_normal((8, 1, 4)) * np.exp(-rates * t[:, None])[None]
    jp = nd.analysis.jpca(latent @ Q.T, n_pcs=4)
    assert float(jp.r2_full) > 0.99
    assert float(jp.r2_skew) < 0.2


def test_jpca_rejects_bad_arguments():
    x, _, _ = _rotations(np.random.default_rng(3))
    with pytest.raises(ValueError, match="even"):
        nd.analysis.jpca(x, n_pcs=3)
    with pytest.raises(ValueError, match="exceeds"):
        nd.analysis.jpca(x[:, :, :4], n_pcs=6)
    with pytest.raises(ValueError, match="NaN"):
        bad = x.copy()
        bad[0, 0, 0] = np.nan
        nd.analysis.jpca(bad)
    with pytest.raises(ValueError, match=r"\[condition, time, unit\]"):
        nd.analysis.jpca(np.zeros((2, 3, 4, 5)))


# ----------------------------------------------------------------------------- similarity


def _smooth_random(rng, shape, width=4):
    """Smooth random trajectories (Gaussian-filtered white noise along time)."""
    import scipy.ndimage

    return scipy.ndimage.gaussian_filter1d(rng.standard_normal(shape), width, axis=1) * 5


def test_similarity_of_a_rotated_scaled_copy_and_of_unrelated_data(getkey):
    rng = np.random.default_rng(4)
    a, _, _ = _rotations(rng, n_conditions=6, n_times=40, n_units=15, noise=0.05)
    a = a + _smooth_random(rng, a.shape)
    Q, _ = np.linalg.qr(rng.standard_normal((15, 15)))
    copy = 3.0 * a @ Q + 7.0
    other = rng.standard_normal((6, 40, 12))  # unrelated: white noise
    s = {}
    for method in ("cca", "procrustes", "dsa"):
        s[method] = nd.analysis.similarity(a, copy, method, key=getkey(), n_shuffles=10)
        s[method + "_other"] = nd.analysis.similarity(a, other, method, key=getkey(), n_shuffles=0)
    assert float(s["cca"].score) > 1 - 1e-8
    assert float(s["procrustes"].score) < 1e-6
    assert float(s["dsa"].score) < 1e-3
    assert float(s["cca_other"].score) < 0.7
    assert float(s["procrustes_other"].score) > 0.7
    assert float(s["dsa_other"].score) > 0.2
    for method in ("cca", "procrustes", "dsa"):
        assert float(s[method].p_value) == pytest.approx(1 / 11)  # beats every shuffle
    assert s["cca"].canonical_correlation.sizes["component"] == 10
    fig = nd.analysis.plot_similarity(s)
    assert len(fig.axes) == 6
    assert np.isnan(float(s["cca_other"].p_value))


def test_similarity_measures_match_textbook_formulas():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((3, 30, 6))
    b = a @ rng.standard_normal((6, 5)) + 0.5 * rng.standard_normal((3, 30, 5))
    fa, fb = a.reshape(-1, 6), b.reshape(-1, 5)
    fa, fb = fa - fa.mean(0), fb - fb.mean(0)
    # CCA: canonical correlations² are the eigenvalues of Σaa⁻¹ Σab Σbb⁻¹ Σba
    saa, sbb, sab = fa.T @ fa, fb.T @ fb, fa.T @ fb
    ev = np.linalg.eigvals(np.linalg.solve(saa, sab) @ np.linalg.solve(sbb, sab.T)).real
    expected = np.sqrt(np.sort(np.clip(ev, 0, None))[::-1][:5])
    cc = nd.analysis._similarity.canonical_correlations(fa, fb, 6)
    np.testing.assert_allclose(cc, expected, atol=1e-8)
    # Procrustes: cos d = max over orthogonal R of <A, B R> (scipy's orthogonal Procrustes)
    b6 = np.concatenate([fb, np.zeros((fb.shape[0], 1))], axis=1)  # pad to equal widths
    A, B = fa / np.linalg.norm(fa), b6 / np.linalg.norm(b6)
    R, _ = scipy.linalg.orthogonal_procrustes(B, A)
    d = nd.analysis._similarity.procrustes_angle(fa, fb)
    np.testing.assert_allclose(np.cos(d), np.sum(A * (B @ R)), atol=1e-10)


def test_dsa_operator_recovers_known_linear_dynamics():
    # latent linear dynamics z_{t+1} = M z_t: with one delay and full rank DSA's operator is
    # conjugate to M (same eigenvalues)
    rng = np.random.default_rng(6)
    th = 0.2
    M = np.array(
        [
            [0.95 * np.cos(th), -0.95 * np.sin(th), 0],
            [0.95 * np.sin(th), 0.95 * np.cos(th), 0],
            [0, 0, 0.8],
        ]
    )
    z = np.zeros((5, 30, 3))
    z[:, 0] = rng.standard_normal((5, 3))
    for k in range(1, 30):
        z[:, k] = z[:, k - 1] @ M.T
    x = z @ rng.standard_normal((3, 8))
    op = nd.analysis._similarity.delay_operator(x, 3, 1, 3)
    np.testing.assert_allclose(
        np.sort_complex(np.linalg.eigvals(op)), np.sort_complex(np.linalg.eigvals(M)), atol=1e-8
    )


def test_similarity_rejects_bad_arguments(getkey):
    a = np.random.default_rng(7).standard_normal((3, 20, 5))
    with pytest.raises(ValueError, match="`method`"):
        nd.analysis.similarity(a, a, "rsa", key=getkey())
    with pytest.raises(ValueError, match="same conditions"):
        nd.analysis.similarity(a, a[:, :10], key=getkey())
    with pytest.raises(ValueError, match="`null`"):
        nd.analysis.similarity(a, a, null="units", key=getkey())
    with pytest.raises(ValueError, match="`n_pcs`"):
        nd.analysis.similarity(a, a, n_pcs=9, key=getkey())


# ----------------------------------------------------------------------------- dPCA


def _mixed_selectivity(rng, noise=0.01):
    """Units mixing a time signal, a stimulus signal (4 levels) and a decision signal (2)
    along overlapping encoder axes; each signal lies in its own marginalisation."""
    import xarray as xr

    n, t = 30, np.linspace(0, 1, 25)
    u_t = rng.standard_normal(n)
    u_s = u_t + 0.7 * rng.standard_normal(n)
    u_d = u_s + 0.7 * rng.standard_normal(n)
    axes = [u / np.linalg.norm(u) for u in (u_t, u_s, u_d)]
    a = np.sin(2 * np.pi * t)  # time: the same in every condition
    stim = (np.arange(4) - 1.5)[:, None, None] * t[None, None, :] * 2  # mean 0 over stimulus
    dec = np.array([-1.0, 1.0])[None, :, None] * np.sqrt(t)[None, None, :]
    x = (
        axes[0][:, None, None, None] * a
        + axes[1][:, None, None, None] * stim[None]
        + axes[2][:, None, None, None] * dec[None]
    )
    x = x + noise * rng.standard_normal(x.shape) + 3.0
    da = xr.DataArray(x, dims=("neuron", "stimulus", "decision", "time"), coords={"time": t})
    return da, axes


def test_marginalizations_sum_to_the_data_and_are_orthogonal():
    x = np.random.default_rng(8).standard_normal((5, 3, 2, 4))
    x = x - x.mean(axis=(1, 2, 3), keepdims=True)
    parts = nd.analysis._dpca.marginalize(x, 3)
    assert len(parts) == 7
    np.testing.assert_allclose(sum(parts.values()), x, atol=1e-12)
    flat = [p.reshape(5, -1) for p in parts.values()]
    for i in range(len(flat)):
        for j in range(i):
            np.testing.assert_allclose(np.sum(flat[i] * flat[j], axis=1), 0, atol=1e-12)
    # the stimulus marginal is the stimulus average, centred (a textbook average)
    expected = x.mean(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(parts[(0,)], np.broadcast_to(expected, x.shape), atol=1e-12)


def test_dpca_demixes_known_marginal_structure():
    da, axes = _mixed_selectivity(np.random.default_rng(9))
    dp = nd.analysis.dpca(da, n_components=2)
    assert list(dp.marginalization.values) == ["stimulus", "decision", "time", "stimulus×decision"]
    np.testing.assert_allclose(dp.marginal_variance.sum(), 1.0, atol=1e-12)
    for name, axis in zip(("time", "stimulus", "decision"), axes):
        first = f"{name} 1"
        split = dp.variance_split.sel(component=first)
        assert float(split.sel(marginalization=name)) > 0.99, (name, split.values)
        enc = dp.encoder.sel(component=first).values
        assert abs(enc @ axis) > 0.99, name
        assert float(dp.explained_variance.sel(component=first)) > 0.05
    # the signals' variance lies in their marginalisations; interaction holds only noise
    assert float(dp.marginal_variance.sel(marginalization="stimulus×decision")) < 1e-3
    np.testing.assert_allclose(dp.variance_split.sum("marginalization"), 1.0, atol=1e-9)
    fig = nd.analysis.plot_dpca(dp, n_components=2)
    assert len(fig.axes) == 4 * 3


def test_dpca_on_a_psth_like_array_and_bad_input():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((4, 20, 8))  # condition, time, unit
    dp = nd.analysis.dpca(x, n_components=2)
    assert list(dp.marginalization.values) == ["condition", "time"]
    assert dp.projection.dims == ("component", "condition", "time")
    with pytest.raises(ValueError, match="neuron"):
        nd.analysis.dpca(x, dims=("a", "b", "c"))
    with pytest.raises(ValueError, match="n_components"):
        nd.analysis.dpca(x, n_components=9)


# ----------------------------------------------------------------------------- CLI


@pytest.mark.slow  # trains a tiny run first: ~15 s on an idle core, minutes on a busy one
def test_cli_analyse_writes_results_and_figures(tmp_path, capsys):
    from neurodyn.cli import main

    out = tmp_path / "run"
    tiny = ["--iters", "2", "--batch-size", "4", "--n-tangents", "4", "--no-progress"]
    sizes = ["--set", "task.n_steps=20", "--set", "task.n_neurons=8"]
    assert main(["fit", "flipflop", "--out", str(out), *tiny, *sizes]) == 0
    capsys.readouterr()
    argv = ["analyse", str(out), "--fixed-points", "--jpca", "--dpca", "--n-starts", "8"]
    code = main([*argv, "--fp-iters", "20", "--n-pcs", "2"])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    for name in ("fixed_points", "jpca", "dpca"):
        ds = nd.analysis.load(out / "analysis" / f"{name}.nc")
        assert ds.attrs["kind"] == name
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
        assert name in stdout
    fp = nd.analysis.load(out / "analysis" / "fixed_points.nc")
    assert fp.sizes["neuron"] == 8 and fp.attrs["n_starts"] == 8
    # errors: one line on stderr, exit status 2
    assert main(["analyse", str(tmp_path / "nothing")]) == 2
    assert "is not a run folder" in capsys.readouterr().err
    assert main(["analyse", str(out), "--n-pcs", "3", "--jpca"]) == 2
    assert "even" in capsys.readouterr().err


def test_similarity_null_equals_recomputing_on_shuffled_data(getkey):
    # the null permutes prepared scores; it must equal the measure recomputed from scratch
    rng = np.random.default_rng(11)
    a = _smooth_random(rng, (4, 30, 9))
    b = a @ rng.standard_normal((9, 7)) + _smooth_random(rng, (4, 30, 7))
    key = getkey()
    for method in ("cca", "procrustes", "dsa"):
        for null in ("time", "condition"):
            s = nd.analysis.similarity(a, b, method, key=key, n_shuffles=3, null=null, n_pcs=5)
            k_shuffle = jr.split(key)[0]
            seed = np.asarray(jr.randint(k_shuffle, (), 0, 2**31 - 1)).item()
            shuffle = np.random.default_rng(seed)
            for i in range(3):
                if null == "time":
                    perm = np.stack([shuffle.permutation(30) for _ in range(4)])
                    bs = np.take_along_axis(b, perm[:, :, None], axis=1)
                else:
                    bs = b[shuffle.permutation(4)]
                again = nd.analysis.similarity(a, bs, method, key=key, n_shuffles=0, n_pcs=5)
                np.testing.assert_allclose(s.null.values[i], float(again.score), atol=1e-9)
