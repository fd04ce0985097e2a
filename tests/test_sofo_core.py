"""SOFO primitives against dense, independent computations (SPEC §2.10; issue 2 tests 1-8)."""

import jax
import jax.flatten_util
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import neurodyn as nd
from neurodyn.optim import RecurrentProblem

from .helpers import tree_max_relerr

N, B, T, D, NIN = 5, 3, 6, 2, 2


def rnn_params(key):
    k1, k2, k3, k4 = jr.split(key, 4)
    return {
        "W": jr.normal(k1, (N, N)) * 0.9 / jnp.sqrt(N),
        "W_in": jr.normal(k2, (NIN, N)),
        "W_out": jr.normal(k3, (N, D)) / jnp.sqrt(N),
        "b": 0.1 * jr.normal(k4, (N,)),
    }


def rnn_step(p, h, x):
    h = h + 0.3 * (-h + jnp.tanh(h) @ p["W"] + x["u"] @ p["W_in"] + p["b"])
    return h, jnp.tanh(h) @ p["W_out"]


def rnn_xs(key, t=T, d=D):
    k1, k2, k3 = jr.split(key, 3)
    return {
        "u": jr.normal(k1, (t, B, NIN)),
        "target": jr.normal(k2, (t, B, d)),
        "weight": jr.uniform(k3, (t, B, d)),
        "label": jr.randint(k3, (t, B), 0, d),
    }


def rollout_outputs(step, params, h0, xs):
    def body(h, x):
        h, y = step(params, h, x)
        return h, y

    return jax.lax.scan(body, h0, xs)[1]


def total_loss(step, loss, params, h0, xs):
    return RecurrentProblem(step, loss, h0, xs).value(params)


def flat(tree):
    return jax.flatten_util.ravel_pytree(tree)


def tangent_matrix(tangents):
    """V as a dense P×K matrix (columns in the order of ravel_pytree)."""
    k = jax.tree.leaves(tangents)[0].shape[0]
    return jnp.stack([flat(jax.tree.map(lambda v: v[i], tangents))[0] for i in range(k)], 1)


def poisson_loss(y, x):
    """Poisson negative log-likelihood with log link: convex in y, no closed form here."""
    return jnp.mean(jnp.sum(jnp.exp(y) - x["target"] * y, axis=-1))


LOSSES = {
    "mse": nd.optim.mse(),
    "weighted_mse": nd.optim.mse(weight="weight", scale=0.5, reduction="sum"),
    "cross_entropy": nd.optim.cross_entropy(target="label"),
    "poisson": poisson_loss,
}


# ---------------------------------------------------------------- 1. projected gradient


def test_vg_matches_reverse_mode_recurrent(getkey):
    params = rnn_params(getkey())
    xs = rnn_xs(getkey())
    h0 = 0.1 * jr.normal(getkey(), (B, N))
    loss = LOSSES["mse"]
    v = nd.sample_tangents(getkey(), params, 7)
    value, _, info = nd.value_and_sofo_grad_scan(rnn_step, loss)(params, v, h0, xs)
    g = jax.grad(lambda p: total_loss(rnn_step, loss, p, h0, xs))(params)
    expected = nd.optim.project(v, g)
    np.testing.assert_allclose(info["vg"], expected, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(value, total_loss(rnn_step, loss, params, h0, xs), rtol=1e-12)


def mlp(p, x):
    return jnp.tanh(x["inputs"] @ p["W1"] + p["b1"]) @ p["W2"]


def mlp_data(key, n=8, din=4, dh=6, dout=3):
    k = jr.split(key, 5)
    params = {
        "W1": jr.normal(k[0], (din, dh)),
        "b1": jr.normal(k[1], (dh,)),
        "W2": jr.normal(k[2], (dh, dout)),
    }
    x = {
        "inputs": jr.normal(k[3], (n, din)),
        "target": jr.normal(k[4], (n, dout)),
        "label": jr.randint(k[4], (n,), 0, dout),
        "weight": jr.uniform(k[3], (n, dout)),
    }
    return params, x


def test_vg_matches_reverse_mode_feedforward(getkey):
    params, x = mlp_data(getkey())
    loss = LOSSES["cross_entropy"]
    v = nd.sample_tangents(getkey(), params, 5, "gaussian")
    value, _, info = nd.value_and_sofo_grad(mlp, loss)(params, v, x)
    g = jax.grad(lambda p: loss(mlp(p, x), x))(params)
    np.testing.assert_allclose(info["vg"], nd.optim.project(v, g), rtol=1e-8)
    np.testing.assert_allclose(value, loss(mlp(params, x), x), rtol=1e-12)


# ---------------------------------------------------------------- 2. subspace GGN


@pytest.mark.parametrize("loss_name", list(LOSSES))
def test_ggn_matches_dense_jacobian(getkey, loss_name):
    loss = LOSSES[loss_name]
    params = rnn_params(getkey())
    xs = rnn_xs(getkey())
    h0 = 0.1 * jr.normal(getkey(), (B, N))
    v = nd.sample_tangents(getkey(), params, 6, "gaussian")
    _, _, info = nd.value_and_sofo_grad_scan(rnn_step, loss)(params, v, h0, xs)

    theta, unravel = flat(params)
    jac = jax.jacfwd(lambda th: rollout_outputs(rnn_step, unravel(th), h0, xs))(theta)
    ys = rollout_outputs(rnn_step, params, h0, xs)
    dense = jnp.zeros((theta.size, theta.size))
    for t in range(T):
        x_t = jax.tree.map(lambda a: a[t], xs)
        hess = jax.hessian(lambda y: loss(y, x_t))(ys[t]).reshape(B * D, B * D)
        j_t = jac[t].reshape(B * D, -1)
        dense = dense + j_t.T @ hess @ j_t
    vmat = tangent_matrix(v)
    np.testing.assert_allclose(info["ggn"], vmat.T @ dense @ vmat, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("loss_name", ["mse", "weighted_mse", "cross_entropy"])
def test_closed_form_ggn_equals_generic(getkey, loss_name):
    loss = LOSSES[loss_name]
    params = rnn_params(getkey())
    xs = rnn_xs(getkey())
    h0 = jnp.zeros((B, N))
    v = nd.sample_tangents(getkey(), params, 5)
    closed = nd.value_and_sofo_grad_scan(rnn_step, loss)(params, v, h0, xs)
    generic = nd.value_and_sofo_grad_scan(rnn_step, loss, generic_ggn=True)(params, v, h0, xs)
    np.testing.assert_allclose(closed[0], generic[0], rtol=1e-12)
    np.testing.assert_allclose(closed[2]["vg"], generic[2]["vg"], rtol=1e-10)
    np.testing.assert_allclose(closed[2]["ggn"], generic[2]["ggn"], rtol=1e-10, atol=1e-14)


def test_quadratic_model_exact_for_linear_least_squares(getkey):
    """L(θ + εVz) = L + ε c̃ᵀz + ½ε² zᵀG̃z exactly when the model is linear (SPEC §2.10.3)."""
    params = {"A": jr.normal(getkey(), (4, 3)), "c": jr.normal(getkey(), (3,))}
    x = {"inputs": jr.normal(getkey(), (10, 4)), "target": jr.normal(getkey(), (10, 3))}
    fun = lambda p, x: x["inputs"] @ p["A"] + p["c"]
    loss = nd.optim.mse()
    v = nd.sample_tangents(getkey(), params, 5)
    value, _, info = nd.value_and_sofo_grad(fun, loss)(params, v, x)
    z = jr.normal(getkey(), (5,))
    for eps in (0.1, 1.0, 3.0):
        moved = jax.tree.map(lambda p, d: p + eps * d, params, nd.optim.combine_tangents(v, z))
        predicted = value + eps * info["vg"] @ z + 0.5 * eps**2 * z @ info["ggn"] @ z
        np.testing.assert_allclose(loss(fun(moved, x), x), predicted, rtol=1e-10)


# ---------------------------------------------------------------- 3. K = P


def test_full_subspace_equals_dense_damped_gauss_newton(getkey):
    params, x = mlp_data(getkey(), n=6, din=2, dh=3, dout=2)
    loss = nd.optim.mse()
    n_params = nd.optim.count_params(params)
    v = nd.sample_tangents(getkey(), params, n_params, "orthonormal")
    lam = 1e-2
    _, direction, _ = nd.value_and_sofo_grad(mlp, loss, damping=lam)(params, v, x)
    theta, unravel = flat(params)
    jac = jax.jacfwd(lambda th: mlp(unravel(th), x))(theta).reshape(-1, theta.size)
    y = mlp(params, x)
    hess = jax.hessian(lambda yy: loss(yy, x))(y).reshape(y.size, y.size)
    ggn = jac.T @ hess @ jac
    g = jax.grad(lambda th: loss(mlp(unravel(th), x), x))(theta)
    top = jnp.linalg.eigvalsh(ggn)[-1]
    expected = jnp.linalg.solve(ggn + lam * top * jnp.eye(theta.size), g)
    np.testing.assert_allclose(flat(direction)[0], expected, rtol=1e-7, atol=1e-10)


def test_one_step_solves_linear_least_squares(getkey):
    params = {"A": jr.normal(getkey(), (4, 2)), "c": jr.normal(getkey(), (2,))}
    x = {"inputs": jr.normal(getkey(), (20, 4)), "target": jr.normal(getkey(), (20, 2))}
    fun = lambda p, x: x["inputs"] @ p["A"] + p["c"]
    loss = nd.optim.mse()
    v = nd.sample_tangents(getkey(), params, nd.optim.count_params(params), "orthonormal")
    _, direction, _ = nd.value_and_sofo_grad(fun, loss, damping=0.0)(params, v, x)
    new = jax.tree.map(lambda p, d: p - d, params, direction)
    # independent minimum: numpy's least squares on [inputs, 1]
    design = np.concatenate([np.asarray(x["inputs"]), np.ones((20, 1))], axis=1)
    sol, *_ = np.linalg.lstsq(design, np.asarray(x["target"]), rcond=None)
    np.testing.assert_allclose(new["A"], sol[:4], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(new["c"], sol[4], rtol=1e-8, atol=1e-10)


# ---------------------------------------------------------------- 4. invariances


def test_scale_invariance_with_relative_damping(getkey):
    params = rnn_params(getkey())
    xs = rnn_xs(getkey())
    h0 = jnp.zeros((B, N))
    f = nd.value_and_sofo_grad_scan(rnn_step, LOSSES["mse"], damping=1e-2)
    v = nd.sample_tangents(getkey(), params, 6, "gaussian")
    _, d1, _ = f(params, v, h0, xs)
    _, d2, _ = f(params, jax.tree.map(lambda a: 37.0 * a, v), h0, xs)
    assert tree_max_relerr(d2, d1) < 1e-10


def test_span_invariance_without_damping(getkey):
    params = rnn_params(getkey())
    xs = rnn_xs(getkey())
    h0 = jnp.zeros((B, N))
    f = nd.value_and_sofo_grad_scan(rnn_step, LOSSES["mse"], damping=0.0, damping_mode="none")
    k = 6
    v = nd.sample_tangents(getkey(), params, k, "gaussian")
    mix = jr.normal(getkey(), (k, k)) + 3 * jnp.eye(k)  # invertible change of basis
    v_mixed = jax.tree.map(lambda a: jnp.tensordot(mix, a, axes=1), v)
    v_orth = nd.optim.orthonormalize(v)
    _, d1, _ = f(params, v, h0, xs)
    _, d2, _ = f(params, v_mixed, h0, xs)
    _, d3, _ = f(params, v_orth, h0, xs)
    assert tree_max_relerr(d2, d1) < 1e-7
    assert tree_max_relerr(d3, d1) < 1e-7


# ---------------------------------------------------------------- 5. scan vs feedforward


def test_scan_form_equals_feedforward_form(getkey):
    params = rnn_params(getkey())
    xs = rnn_xs(getkey())
    h0 = 0.1 * jr.normal(getkey(), (B, N))
    loss = LOSSES["weighted_mse"]
    v = nd.sample_tangents(getkey(), params, 5)
    scan_out = nd.value_and_sofo_grad_scan(rnn_step, loss, damping=1e-3)(params, v, h0, xs)

    def unrolled(p, xs):
        return rollout_outputs(rnn_step, p, h0, xs)

    def unrolled_loss(ys, xs):
        return sum(loss(ys[t], jax.tree.map(lambda a: a[t], xs)) for t in range(T))

    ff_out = nd.value_and_sofo_grad(unrolled, unrolled_loss, damping=1e-3)(params, v, xs)
    np.testing.assert_allclose(scan_out[0], ff_out[0], rtol=1e-12)
    np.testing.assert_allclose(scan_out[2]["ggn"], ff_out[2]["ggn"], rtol=1e-10)
    assert tree_max_relerr(scan_out[1], ff_out[1]) < 1e-9


def test_learnt_initial_state_gets_a_tangent(getkey):
    params = {**rnn_params(getkey()), "h0": 0.1 * jr.normal(getkey(), (N,))}
    xs = rnn_xs(getkey())
    carry0 = lambda p: jnp.broadcast_to(p["h0"], (B, N))
    loss = LOSSES["mse"]
    v = nd.sample_tangents(getkey(), params, 4)
    _, _, info = nd.value_and_sofo_grad_scan(rnn_step, loss)(params, v, carry0, xs)
    g = jax.grad(lambda p: RecurrentProblem(rnn_step, loss, carry0, xs).value(p))(params)
    np.testing.assert_allclose(info["vg"], nd.optim.project(v, g), rtol=1e-8)


def test_integer_carry_leaves_are_carried(getkey):
    """Non-float carry entries (a step counter) pass through without tangents."""
    params = rnn_params(getkey())
    xs = rnn_xs(getkey())

    def step(p, carry, x):
        h, t = carry
        h, y = rnn_step(p, h, x)
        return (h, t + 1), y * (t + 1)

    loss = LOSSES["mse"]
    v = nd.sample_tangents(getkey(), params, 3)
    carry0 = (jnp.zeros((B, N)), jnp.array(0))
    _, _, info = nd.value_and_sofo_grad_scan(step, loss)(params, v, carry0, xs)
    g = jax.grad(lambda p: RecurrentProblem(step, loss, carry0, xs).value(p))(params)
    np.testing.assert_allclose(info["vg"], nd.optim.project(v, g), rtol=1e-8)
    assert int(info["carry"][1]) == T


# ---------------------------------------------------------------- tangents


def test_tangent_kinds(getkey):
    params = rnn_params(getkey())
    v = nd.sample_tangents(getkey(), params, 8, "normalized")
    np.testing.assert_allclose(jnp.diag(nd.optim.tangent_gram(v)), 1.0, rtol=1e-12)
    v = nd.sample_tangents(getkey(), params, 8, "orthonormal")
    np.testing.assert_allclose(nd.optim.tangent_gram(v), jnp.eye(8), atol=1e-10)
    v = nd.sample_tangents(getkey(), params, 40, "gaussian")
    entries = jnp.concatenate([a.ravel() for a in jax.tree.leaves(v)])
    n = entries.size  # 4-sigma bounds on the sample mean and standard deviation of N(0, 1)
    assert abs(float(entries.mean())) < 4 / np.sqrt(n)
    assert abs(float(entries.std()) - 1) < 4 / np.sqrt(2 * n)


def test_frozen_and_masked_leaves_get_no_tangent(getkey):
    params = rnn_params(getkey())
    mask = jnp.triu(jnp.ones((N, N), bool))
    trainable = {"W": mask, "W_in": False, "W_out": True, "b": True}
    v = nd.sample_tangents(getkey(), params, 5, "orthonormal", trainable=trainable)
    assert v["W_in"] is None
    assert jnp.all(v["W"][:, ~mask] == 0)
    np.testing.assert_allclose(nd.optim.tangent_gram(v), jnp.eye(5), atol=1e-10)
    p_count = nd.optim.count_params(params, trainable)
    assert p_count == int(mask.sum()) + N * D + N


# ---------------------------------------------------------------- 8. bad input


def test_bad_inputs_raise_named_errors(getkey):
    params = rnn_params(getkey())
    xs = rnn_xs(getkey())
    h0 = jnp.zeros((B, N))
    loss = LOSSES["mse"]
    p_count = nd.optim.count_params(params)
    with pytest.raises(ValueError, match="n_tangents"):
        nd.sample_tangents(getkey(), params, 0)
    with pytest.raises(ValueError, match="n_tangents"):
        nd.sample_tangents(getkey(), params, p_count + 1)
    with pytest.raises(ValueError, match="kind"):
        nd.sample_tangents(getkey(), params, 2, kind="sobol")
    with pytest.raises(ValueError, match="damping"):
        nd.value_and_sofo_grad_scan(rnn_step, loss, damping=-1.0)
    with pytest.raises(ValueError, match="damping_mode"):
        nd.value_and_sofo_grad_scan(rnn_step, loss, damping_mode="sideways")
    v = nd.sample_tangents(getkey(), params, 3)
    bad_structure = {k: a for k, a in v.items() if k != "b"}
    with pytest.raises(ValueError, match="tangents"):
        nd.value_and_sofo_grad_scan(rnn_step, loss)(params, bad_structure, h0, xs)
    bad_shape = {**v, "b": v["b"][:, :2]}
    with pytest.raises(ValueError, match="tangents"):
        nd.value_and_sofo_grad_scan(rnn_step, loss)(params, bad_shape, h0, xs)
    ragged_k = {**v, "b": jnp.zeros((4, N))}
    with pytest.raises(ValueError, match="tangents"):
        nd.value_and_sofo_grad_scan(rnn_step, loss)(params, ragged_k, h0, xs)
    nonscalar = lambda y, x: (y - x["target"]) ** 2
    with pytest.raises(ValueError, match="loss"):
        nd.value_and_sofo_grad_scan(rnn_step, nonscalar)(params, v, h0, xs)
    mlp_params, x = mlp_data(getkey())
    v_mlp = nd.sample_tangents(getkey(), mlp_params, 3)
    with pytest.raises(ValueError, match="loss"):
        nd.value_and_sofo_grad(mlp, nonscalar)(mlp_params, v_mlp, x)
    mismatched = {**xs, "target": xs["target"][:-1]}
    with pytest.raises(ValueError, match="xs"):
        nd.value_and_sofo_grad_scan(rnn_step, loss)(params, v, h0, mismatched)
    with pytest.raises(ValueError, match="n_tangents"):
        nd.optim.sofo(n_tangents=0)
    with pytest.raises(ValueError, match="damping"):
        nd.optim.sofo(n_tangents=2, damping=-1e-3)
    with pytest.raises(ValueError, match="n_tangents"):
        nd.optim.sofo(n_tangents=p_count + 1).init(params)
    with pytest.raises(ValueError, match="learning_rate"):
        nd.optim.sofo(learning_rate=-1.0, n_tangents=2)
    with pytest.raises(TypeError, match="transform"):
        nd.optim.bptt("adam")


@pytest.mark.parametrize("chunk_size", [2, 4, T, None])
def test_chunked_scan_equals_per_step_scan(getkey, chunk_size):
    """Chunking re-associates the tangent recursion; the result must not change."""
    params = {**rnn_params(getkey()), "h0": 0.1 * jr.normal(getkey(), (N,))}
    xs = rnn_xs(getkey())

    def step(p, carry, x):
        h, t = carry
        h, y = rnn_step(p, h, x)
        return (h, t + 1), y

    carry0 = lambda p: (jnp.broadcast_to(p["h0"], (B, N)), jnp.array(0))
    loss = LOSSES["cross_entropy"]
    v = nd.sample_tangents(getkey(), params, 5)
    ref = nd.value_and_sofo_grad_scan(step, loss, chunk_size=1, return_outputs=True)
    new = nd.value_and_sofo_grad_scan(step, loss, chunk_size=chunk_size, return_outputs=True)
    (v1, d1, i1), (v2, d2, i2) = ref(params, v, carry0, xs), new(params, v, carry0, xs)
    np.testing.assert_allclose(v2, v1, rtol=1e-12)
    np.testing.assert_allclose(i2["vg"], i1["vg"], rtol=1e-10)
    np.testing.assert_allclose(i2["ggn"], i1["ggn"], rtol=1e-10)
    np.testing.assert_allclose(i2["outputs"], i1["outputs"], rtol=1e-12)
    assert int(i2["carry"][1]) == T
    assert tree_max_relerr(d2, d1) < 1e-9
