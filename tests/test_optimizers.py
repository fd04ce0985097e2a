"""Optimizers: conformance suite (init/step), memory in T, recompilation, convergence."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import neurodyn as nd
from neurodyn.optim import RecurrentProblem

from .test_sofo_core import NIN, B, N, rnn_params, rnn_step

T_TRAIN = 20


def teacher_problem(key, t=T_TRAIN, batch=16):
    """Regression on the outputs of a random teacher RNN of the same architecture."""
    kt, ku, kh = jr.split(key, 3)
    teacher = rnn_params(kt)
    u = jr.normal(ku, (t, batch, NIN))
    h0 = jnp.zeros((batch, N))

    def body(h, x):
        return rnn_step(teacher, h, x)

    targets = jax.lax.scan(body, h0, {"u": u})[1]
    return RecurrentProblem(rnn_step, nd.optim.mse(scale=1.0 / t), h0, {"u": u, "target": targets})


OPTIMIZERS = {
    "sofo": lambda: nd.optim.sofo(learning_rate=1.0, n_tangents=8, damping=1e-3),
    "sofo_adaptive": lambda: nd.optim.sofo(
        learning_rate=1.0, n_tangents=8, damping=1e-3, adaptive_damping=True
    ),
    "first_order_sofo": lambda: nd.optim.first_order_sofo(learning_rate=0.3, n_tangents=8),
    "fgd": lambda: nd.optim.fgd(learning_rate=0.01, n_tangents=8),
    "adam": lambda: nd.optim.adam(3e-2),
}


def run(opt, params, problem_key, n_iters, key, trainable=None, problem=None):
    problem = problem if problem is not None else teacher_problem(problem_key)
    state = opt.init(params, trainable)
    step = eqx.filter_jit(lambda p, s, k: opt.step(p, s, problem, key=k, trainable=trainable))
    losses = []
    for k in jr.split(key, n_iters):
        params, state, info = step(params, state, k)
        losses.append(float(info["loss"]))
    return params, state, np.array(losses), problem


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_each_optimizer_lowers_the_loss(name):
    params = rnn_params(jr.PRNGKey(1))
    _, _, losses, problem = run(OPTIMIZERS[name](), params, jr.PRNGKey(2), 60, jr.PRNGKey(3))
    assert np.all(np.isfinite(losses))
    assert losses[-5:].mean() < 0.7 * losses[0]


def test_sofo_beats_first_order_methods_at_equal_iterations():
    params = rnn_params(jr.PRNGKey(1))
    finals = {}
    for name in ("sofo", "first_order_sofo", "fgd"):
        p, _, _, problem = run(OPTIMIZERS[name](), params, jr.PRNGKey(2), 60, jr.PRNGKey(3))
        finals[name] = float(problem.value(p))
    assert finals["sofo"] < finals["first_order_sofo"]
    assert finals["sofo"] < finals["fgd"]


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_frozen_parameters_stay_frozen(name):
    params = rnn_params(jr.PRNGKey(1))
    mask = jnp.tril(jnp.ones((N, N), bool))
    trainable = {"W": mask, "W_in": False, "W_out": True, "b": True}
    new, _, _, _ = run(OPTIMIZERS[name](), params, jr.PRNGKey(2), 10, jr.PRNGKey(4), trainable)
    assert jnp.array_equal(new["W_in"], params["W_in"])
    assert jnp.array_equal(new["W"][~mask], params["W"][~mask])
    assert not jnp.array_equal(new["W_out"], params["W_out"])
    assert not jnp.array_equal(new["W"][mask], params["W"][mask])


def test_sofo_step_is_params_minus_lr_direction():
    params = rnn_params(jr.PRNGKey(1))
    problem = teacher_problem(jr.PRNGKey(2))
    opt = nd.optim.sofo(learning_rate=0.3, n_tangents=6, damping=1e-2)
    state = opt.init(params)
    key = jr.PRNGKey(5)
    new, _, info = opt.step(params, state, problem, key=key)
    v = nd.sample_tangents(key, params, 6, "normalized")
    value, direction, _ = nd.value_and_sofo_grad_scan(problem.step, problem.loss, damping=1e-2)(
        params, v, problem.carry0, problem.xs
    )
    expected = jax.tree.map(lambda p, d: p - 0.3 * d, params, direction)
    for k in params:
        np.testing.assert_allclose(new[k], expected[k], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(info["loss"], value, rtol=1e-12)


def test_sofo_direction_through_an_optax_transform():
    """Momentum and weight decay compose with the SOFO direction like any optax gradient."""
    params = rnn_params(jr.PRNGKey(1))
    problem = teacher_problem(jr.PRNGKey(2))
    transform = optax.chain(optax.add_decayed_weights(1e-2), optax.sgd(0.1, momentum=0.9))
    opt = nd.optim.sofo(n_tangents=6, damping=1e-2, transform=transform)
    state = opt.init(params)
    tx_state = transform.init(params)
    p_ref = params
    for key in jr.split(jr.PRNGKey(7), 3):
        params, state, _ = opt.step(params, state, problem, key=key)
        v = nd.sample_tangents(key, p_ref, 6)
        _, d, _ = nd.value_and_sofo_grad_scan(problem.step, problem.loss, damping=1e-2)(
            p_ref, v, problem.carry0, problem.xs
        )
        updates, tx_state = transform.update(d, tx_state, p_ref)
        p_ref = optax.apply_updates(p_ref, updates)
    for k in params:
        np.testing.assert_allclose(params[k], p_ref[k], rtol=1e-9, atol=1e-12)


def test_sofo_momentum_is_heavy_ball():
    """`momentum=β` is the heavy-ball trace m ← βm + Δ, θ ← θ − ηm (written out by hand here,
    without optax), which the docs describe: a persistent direction moves up to 1/(1 − β)
    further."""
    params = rnn_params(jr.PRNGKey(1))
    problem = teacher_problem(jr.PRNGKey(2))
    opt = nd.optim.sofo(learning_rate=0.1, n_tangents=6, damping=1e-2, momentum=0.9)
    state = opt.init(params)
    p_ref = params
    m = jax.tree.map(jnp.zeros_like, params)
    for key in jr.split(jr.PRNGKey(8), 3):
        params, state, _ = opt.step(params, state, problem, key=key)
        v = nd.sample_tangents(key, p_ref, 6)
        _, d, _ = nd.value_and_sofo_grad_scan(problem.step, problem.loss, damping=1e-2)(
            p_ref, v, problem.carry0, problem.xs
        )
        m = jax.tree.map(lambda a, b: 0.9 * a + b, m, d)
        p_ref = jax.tree.map(lambda p, a: p - 0.1 * a, p_ref, m)
    for k in params:
        np.testing.assert_allclose(params[k], p_ref[k], rtol=1e-9, atol=1e-12)


def test_fgd_is_unbiased():
    """E[ĝ] = g: the mean of many FGD estimates approaches the exact gradient."""
    params = rnn_params(jr.PRNGKey(1))
    problem = teacher_problem(jr.PRNGKey(2), t=5, batch=4)
    g = jax.grad(problem.value)(params)
    opt = nd.optim.fgd(learning_rate=1.0, n_tangents=50)
    state = opt.init(params)
    step = jax.jit(lambda k: opt.step(params, state, problem, key=k)[0])
    estimates = jax.vmap(step)(jr.split(jr.PRNGKey(3), 400))
    ghat = jax.tree.map(lambda p, new: (p - new).mean(0), params, estimates)
    flat_g = jnp.concatenate([a.ravel() for a in jax.tree.leaves(g)])
    flat_hat = jnp.concatenate([a.ravel() for a in jax.tree.leaves(ghat)])
    # 20,000 directions in total: the relative error of the mean is ~ sqrt(P / 20000)
    rel = jnp.linalg.norm(flat_hat - flat_g) / jnp.linalg.norm(flat_g)
    assert rel < 0.15


def test_adaptive_damping_moves_damping():
    """On a near-quadratic problem the model predicts well (ρ ≈ 1), so λ decreases."""
    params = {"A": jr.normal(jr.PRNGKey(0), (4, 3))}
    x = {"inputs": jr.normal(jr.PRNGKey(1), (30, 4)), "target": jr.normal(jr.PRNGKey(2), (30, 3))}
    problem = nd.optim.FeedforwardProblem(lambda p, x: x["inputs"] @ p["A"], nd.optim.mse(), (x,))
    opt = nd.optim.sofo(learning_rate=1.0, n_tangents=3, damping=1e-1, adaptive_damping=True)
    state = opt.init(params)
    for key in jr.split(jr.PRNGKey(3), 5):
        params, state, info = opt.step(params, state, problem, key=key)
        np.testing.assert_allclose(info["lm_ratio"], 1.0 / (1 + 0.0), rtol=0.3)
    assert float(state.damping) < 1e-1 * (2 / 3) ** 4


def test_non_finite_step_is_rejected():
    params = rnn_params(jr.PRNGKey(1))
    problem = teacher_problem(jr.PRNGKey(2))
    bad_xs = {**problem.xs, "target": problem.xs["target"].at[3].set(jnp.nan)}
    bad = RecurrentProblem(problem.step, problem.loss, problem.carry0, bad_xs)
    for name in ("sofo", "adam", "fgd"):
        opt = OPTIMIZERS[name]()
        state = opt.init(params)
        new, new_state, info = opt.step(params, state, bad, key=jr.PRNGKey(0))
        assert not bool(info["finite"])
        for k in params:
            assert jnp.array_equal(new[k], params[k])
        assert int(new_state.count) == 0


# ---------------------------------------------------------------- 7. recompilation


def test_jitted_step_does_not_recompile():
    params = rnn_params(jr.PRNGKey(1))
    opt = nd.optim.sofo(learning_rate=1.0, n_tangents=4)
    state = opt.init(params)
    traces = []

    @jax.jit
    def step(params, state, xs, key):
        traces.append(1)
        problem = RecurrentProblem(rnn_step, nd.optim.mse(), jnp.zeros((B, N)), xs)
        return opt.step(params, state, problem, key=key)

    xs1 = teacher_problem(jr.PRNGKey(2), batch=B).xs
    xs2 = teacher_problem(jr.PRNGKey(3), batch=B).xs
    params, state, _ = step(params, state, xs1, jr.PRNGKey(4))
    params, state, _ = step(params, state, xs2, jr.PRNGKey(5))
    assert len(traces) == 1
    assert step._cache_size() == 1


# ---------------------------------------------------------------- 6. memory


def _temp_bytes(fn, *args):
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def _float32_rnn(hidden, key):
    """The test RNN's parameters at width `hidden`, float32 (for XLA's memory analysis)."""
    return {
        "W": jr.normal(key, (hidden, hidden), jnp.float32) / hidden**0.5,
        "W_in": jr.normal(key, (NIN, hidden), jnp.float32),
        "W_out": jr.normal(key, (hidden, 2), jnp.float32),
        "b": jnp.zeros((hidden,), jnp.float32),
    }


def test_sofo_memory_is_flat_in_the_horizon_while_bptt_grows():
    hidden, batch, k = 32, 8, 8
    key = jr.PRNGKey(0)
    params = _float32_rnn(hidden, key)
    v = nd.sample_tangents(key, params, k)
    h0 = jnp.zeros((batch, hidden), jnp.float32)
    loss = nd.optim.mse()
    sizes = {}
    for t in (100, 10_000):
        xs = {
            "u": jnp.zeros((t, batch, NIN), jnp.float32),
            "target": jnp.zeros((t, batch, 2), jnp.float32),
        }
        sofo = nd.value_and_sofo_grad_scan(rnn_step, loss)
        problem = RecurrentProblem(rnn_step, loss, h0, xs)
        sizes[t] = (
            _temp_bytes(lambda p, v, xs: sofo(p, v, h0, xs)[:2], params, v, xs),
            _temp_bytes(
                lambda p, xs: jax.grad(RecurrentProblem(rnn_step, loss, h0, xs).value)(p),
                params,
                xs,
            ),
        )
        del problem
    sofo_ratio = sizes[10_000][0] / sizes[100][0]
    bptt_ratio = sizes[10_000][1] / sizes[100][1]
    assert sofo_ratio <= 1.2, sizes
    assert bptt_ratio >= 20, sizes


def test_cosine_schedule_matches_optax():
    lr = nd.optim.learning_rate_schedule(
        0.2, 1000, lr_schedule="cosine", lr_decay_start=0.3, lr_final=0.05
    )
    reference = optax.join_schedules(
        [optax.constant_schedule(0.2), optax.cosine_decay_schedule(0.2, 700, alpha=0.05)], [300]
    )
    counts = np.arange(0, 1300, 13)
    np.testing.assert_allclose([lr(k) for k in counts], [reference(k) for k in counts], atol=1e-7)
    assert float(lr(0)) == pytest.approx(0.2) and float(lr(5000)) == pytest.approx(0.01)
    # a stable repr: a resumed run recognises its own optimizer in the checkpoint
    again = nd.optim.from_config(
        "sofo",
        learning_rate=0.2,
        n_iters=1000,
        lr_schedule="cosine",
        lr_decay_start=0.3,
        lr_final=0.05,
    )
    assert repr(again.learning_rate) == repr(lr)
    assert nd.optim.learning_rate_schedule(0.2, 1000) == 0.2  # constant: the number itself


def test_sofo_steps_with_the_scheduled_learning_rate():
    """With a cosine schedule, step k moves the parameters by η(k)·direction."""
    params = rnn_params(jr.PRNGKey(1))
    problem = teacher_problem(jr.PRNGKey(2))
    opt = nd.optim.from_config(
        "sofo",
        learning_rate=0.3,
        n_tangents=6,
        damping=1e-2,
        n_iters=4,
        lr_schedule="cosine",
        lr_decay_start=0.0,
        lr_final=0.0,
    )
    state = opt.init(params)
    step = eqx.filter_jit(lambda p, s, k: opt.step(p, s, problem, key=k))
    etas = []
    for key in jr.split(jr.PRNGKey(5), 4):
        v = nd.sample_tangents(key, params, 6, "normalized")
        _, direction, _ = nd.value_and_sofo_grad_scan(problem.step, problem.loss, damping=1e-2)(
            params, v, problem.carry0, problem.xs
        )
        new, state, _ = step(params, state, key)
        ratio = (params["W_out"] - new["W_out"]) / direction["W_out"]
        etas.append(float(jnp.median(ratio)))
        params = new
    expected = [0.3 * 0.5 * (1 + np.cos(np.pi * k / 4)) for k in range(4)]
    np.testing.assert_allclose(etas, expected, rtol=1e-4)


def test_schedule_bad_arguments():
    with pytest.raises(ValueError, match="lr_schedule"):
        nd.optim.from_config("sofo", learning_rate=0.1, n_iters=10, lr_schedule="step")
    with pytest.raises(ValueError, match="lr_decay_start"):
        nd.optim.from_config("adam", n_iters=10, lr_schedule="cosine", lr_decay_start=1.0)
    with pytest.raises(ValueError, match="lr_final"):
        nd.optim.from_config("adam", n_iters=10, lr_schedule="constant", lr_final=-0.5)
    with pytest.raises(ValueError, match="n_iters"):
        nd.optim.from_config("sofo", learning_rate=0.1, lr_schedule="cosine")
    with pytest.raises(ValueError, match="learning_rate"):
        nd.optim.from_config("force", n_iters=10, lr_schedule="cosine")


@pytest.mark.parametrize("with_schedule", [False, True])
def test_adam_equals_optax_adam_over_many_steps(with_schedule):
    """nd.optim.adam must be optax.adam applied to the exact gradient, step after step (the
    step counts in the optax state, read by Adam's bias correction and by schedules, must
    advance; a rejected step must leave them alone)."""
    params = rnn_params(jr.PRNGKey(1))
    problem = teacher_problem(jr.PRNGKey(2))
    lr = optax.cosine_decay_schedule(3e-2, 10) if with_schedule else 3e-2
    opt = nd.optim.adam(lr)
    state = opt.init(params)
    tx = optax.adam(lr)
    tx_state = tx.init(params)
    ref = params
    step = eqx.filter_jit(lambda p, s: opt.step(p, s, problem))
    for _ in range(8):
        params, state, _ = step(params, state)
        grads = jax.grad(problem.value)(ref)
        updates, tx_state = tx.update(grads, tx_state, ref)
        ref = optax.apply_updates(ref, updates)
    for k in params:
        np.testing.assert_allclose(params[k], ref[k], rtol=2e-4, atol=1e-6)
    counts = [x for x in jax.tree.leaves(state.opt_state) if jnp.issubdtype(x.dtype, jnp.integer)]
    assert counts and all(int(c) == 8 for c in counts)


def test_adam_clip_norm_rescales_the_gradient_before_adam():
    """`clip_norm=c`: each step is Adam's on the gradient rescaled to global norm ≤ c —
    checked over two steps against optax.adam fed the exact gradient rescaled by hand (c well
    below the norms, so the clip acts; Adam's first step alone is blind to a rescaling)."""
    params = rnn_params(jr.PRNGKey(1))
    problem = teacher_problem(jr.PRNGKey(2))
    c = float(optax.tree.norm(jax.grad(problem.value)(params))) / 7.0
    opt = nd.optim.from_config("adam", learning_rate=1e-2, clip_norm=c)
    step = eqx.filter_jit(lambda p, s: opt.step(p, s, problem))
    tx = optax.adam(1e-2)
    ref, tx_state = params, tx.init(params)
    state = opt.init(params)
    for _ in range(2):
        grads = jax.grad(problem.value)(ref)
        norm = float(optax.tree.norm(grads))
        assert norm > c
        clipped = jax.tree.map(lambda g: g * (c / norm), grads)
        updates, tx_state = tx.update(clipped, tx_state, ref)
        ref = optax.apply_updates(ref, updates)
        params, state, info = step(params, state)
        assert float(info["grad_norm"]) == pytest.approx(norm, rel=1e-4)  # the raw norm
    for k in params:
        np.testing.assert_allclose(params[k], ref[k], rtol=2e-4, atol=1e-7)
    for bad in (0.0, -1.0, "1"):
        with pytest.raises(ValueError, match="clip_norm"):
            nd.optim.adam(1e-3, clip_norm=bad)


@pytest.mark.parametrize("every", [1, 7, 10, 64])
def test_checkpointed_value_and_gradient_equal_the_plain_ones(every):
    """Chunked `jax.checkpoint` (T = 20: chunks of 1, 7 with a remainder of 6, 10, and one
    chunk longer than T) changes neither the loss nor its gradient."""
    problem = teacher_problem(jr.PRNGKey(3))
    params = rnn_params(jr.PRNGKey(4))
    plain_v, plain_g = jax.value_and_grad(problem.value)(params)
    v, g = jax.value_and_grad(lambda p: problem.value(p, checkpoint_every=every))(params)
    np.testing.assert_allclose(v, plain_v, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(plain_g)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_checkpointed_bptt_keeps_a_fraction_of_the_memory_and_adam_steps_agree():
    """`adam(remat=True)` (chunks of ⌈√T⌉ steps): at T = 10,000 its reverse pass keeps
    ≈ 2√T states instead of T, so its temporary memory is a small fraction of plain BPTT's
    (the count an independent estimate: 100 boundary carries + 100 chunk steps vs 10,000
    steps); its Adam steps are the plain ones."""
    hidden, batch = 32, 8
    params = _float32_rnn(hidden, jr.PRNGKey(0))
    h0 = jnp.zeros((batch, hidden), jnp.float32)
    loss = nd.optim.mse()
    t = 10_000
    xs = {
        "u": jnp.zeros((t, batch, NIN), jnp.float32),
        "target": jnp.zeros((t, batch, 2), jnp.float32),
    }

    def grad_bytes(every):
        return _temp_bytes(
            lambda p, xs: jax.grad(
                lambda q: RecurrentProblem(rnn_step, loss, h0, xs).value(q, checkpoint_every=every)
            )(p),
            params,
            xs,
        )

    plain, chunked = grad_bytes(None), grad_bytes(100)
    assert chunked < plain / 10, (plain, chunked)

    problem = teacher_problem(jr.PRNGKey(1))
    start = rnn_params(jr.PRNGKey(2))
    p_plain, *_ = run(nd.optim.adam(3e-2), start, None, 5, jr.PRNGKey(5), problem=problem)
    p_remat, *_ = run(
        nd.optim.adam(3e-2, remat=True), start, None, 5, jr.PRNGKey(5), problem=problem
    )
    for a, b in zip(jax.tree.leaves(p_remat), jax.tree.leaves(p_plain)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("bad", [0, -3, 2.5, "yes"])
def test_adam_remat_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="remat"):
        nd.optim.adam(1e-3, remat=bad)
