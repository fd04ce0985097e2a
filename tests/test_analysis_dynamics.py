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
        np.testing.assert_allclose(
            np.sort(fp.eigenvalue_real.values[i]), np.sort(lam), atol=1e-6
        )
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
    fp = nd.analysis.fixed_points(
        net, np.zeros((4, 10, 2)), key=getkey(), n_starts=8, n_iters=50
    )
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
