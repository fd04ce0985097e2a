"""Batched FORCE: the RLS update against textbook RLS and a direct least-squares solve."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import neurodyn as nd
from neurodyn.optim import rls_update


def test_batch_of_one_equals_sequential_textbook_rls(getkey):
    n, m, alpha = 6, 2, 2.0
    P = jnp.eye(n) / alpha
    W = jnp.zeros((n, m))
    P_ref, W_ref = np.eye(n) / alpha, np.zeros((n, m))
    for _ in range(20):
        r = jr.normal(getkey(), (1, n))
        y = jr.normal(getkey(), (1, m))
        P, W = rls_update(P, W, r, r @ W - y)
        # textbook RLS: gain k = P r / (1 + rᵀ P r), error before the update
        rv, e = np.asarray(r[0]), np.asarray(r[0] @ W_ref - y[0])
        k = P_ref @ rv / (1 + rv @ P_ref @ rv)
        W_ref = W_ref - np.outer(k, e)
        P_ref = P_ref - np.outer(k, rv @ P_ref)
    np.testing.assert_allclose(P, P_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(W, W_ref, rtol=1e-10, atol=1e-12)


def test_batched_rls_solves_the_accumulated_normal_equations(getkey):
    n, m, batch, alpha = 8, 3, 5, 0.5
    W_true = jr.normal(getkey(), (n, m))
    P, W = jnp.eye(n) / alpha, jnp.zeros((n, m))
    gram, cross = alpha * np.eye(n), np.zeros((n, m))
    for _ in range(30):
        R = jr.normal(getkey(), (batch, n))
        Y = R @ W_true + 0.1 * jr.normal(getkey(), (batch, m))
        P, W = rls_update(P, W, R, R @ W - Y)
        gram += np.asarray(R.T @ R) / batch
        cross += np.asarray(R.T @ Y) / batch
    np.testing.assert_allclose(W, np.linalg.solve(gram, cross), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(P, np.linalg.inv(gram), rtol=1e-9, atol=1e-12)


def test_P_stays_symmetric_positive_definite_in_float32():
    n, batch = 20, 8
    update = jax.jit(lambda P, W, R: rls_update(P, W, R, jnp.zeros((batch, 1), jnp.float32)))
    P, W = jnp.eye(n, dtype=jnp.float32), jnp.zeros((n, 1), jnp.float32)

    def body(carry, key):
        P, W = carry
        R = jr.normal(key, (batch, n), jnp.float32) * jr.uniform(key, (), jnp.float32, 0.1, 3)
        return update(P, W, R), None

    (P, W), _ = jax.lax.scan(body, (P, W), jr.split(jr.PRNGKey(0), 10_000))
    assert P.dtype == jnp.float32
    np.testing.assert_array_equal(P, P.T)
    assert np.linalg.eigvalsh(np.asarray(P, np.float64)).min() > 0


def test_bad_alpha_is_rejected():
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="alpha"):
            nd.optim.force(alpha=bad)
    with pytest.raises(TypeError, match="alpha"):
        nd.optim.force(alpha="1")


def test_force_needs_a_rate_rnn_readout():
    model = nd.models.KalmanRNN(8, key=jr.PRNGKey(0))
    with pytest.raises(TypeError, match="RateRNN"):
        nd.optim.force().init(model)


def test_force_learns_the_flip_flop_readout_through_fit():
    task = nd.tasks.get("flipflop", n_steps=60, n_neurons=100)
    model = nd.models.reservoir_rnn(n_neurons=100, key=jr.PRNGKey(0))
    before = task.evaluate(model, key=jr.PRNGKey(5), n_trials=64)["mse"]
    result = nd.fit(
        model,
        task,
        nd.optim.force(alpha=1.0),
        n_iters=5,
        batch_size=16,
        key=jr.PRNGKey(1),
        progress=False,
        eval_every=0,
    )
    after = task.evaluate(result.model, key=jr.PRNGKey(5), n_trials=64)["mse"]
    assert after < 0.7 * before
    # only the readout moved
    assert jnp.array_equal(result.model.W, model.W)
    assert jnp.array_equal(result.model.W_in, model.W_in)
