"""Models: every network under SOFO and jax.grad, constraints after updates, parameter counts,
hand-written Euler steps, constructor errors. Noise statistics are in test_models_noise.py."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import neurodyn as nd
from neurodyn.models import (
    MLP,
    KalmanRNN,
    LorenzMap,
    OneShotNet,
    RateRNN,
    flip_flop_rnn,
    motor_rnn,
    reservoir_rnn,
    rollout_problem,
)

B, T = 3, 6


def _full_rate_rnn(key):
    """Every RateRNN feature at once."""
    return RateRNN(
        8,
        2,
        2,
        tau=5.0,
        dt=1.0,
        activation="softplus",
        excitatory_fraction=0.75,
        spectral_radius=0.8,
        connectivity=0.6,
        self_connections=False,
        noise_std=0.2,
        rate_noise=0.3,
        learn_initial_state=True,
        initial_state_std=0.1,
        readout_from="excitatory",
        feedback=True,
        frozen=("b_out",),
        key=key,
    )


# name -> (builder(key) -> model, n_in, n_out, task-given initial state or None, loss)
NETWORKS = {
    "rate_rnn_constrained": (_full_rate_rnn, 2, 2, None, "mse"),
    "motor": (lambda k: motor_rnn(2, 2, 2, 8, key=k), 4, 2, None, "mse"),
    "flip_flop": (lambda k: flip_flop_rnn(2, 8, key=k), 2, 2, None, "mse"),
    "reservoir": (lambda k: reservoir_rnn(2, 8, key=k), 2, 2, None, "mse"),
    "lorenz": (lambda k: LorenzMap(3, 8, key=k), 0, 3, "normal", "mse"),
    "kalman": (lambda k: KalmanRNN(8, key=k), 1, 1, None, "mse"),
    "one_shot": (
        lambda k: OneShotNet(2, 2, n_latent=8, n_hidden=8, logits="linear", key=k),
        2,
        2,
        None,
        "ce",
    ),
}


def _problem(name, model, key):
    _, n_in, n_out, init, loss_kind = NETWORKS[name]
    k_u, k_y, k_0, k_p = jr.split(key, 4)
    inputs = jr.normal(k_u, (B, T, n_in))
    if loss_kind == "mse":
        target = jr.normal(k_y, (B, T, n_out))
        loss = nd.optim.mse(scale=1.0 / T)
    else:
        target = jax.nn.one_hot(jr.randint(k_y, (B, T), 0, n_out), n_out)
        loss = nd.optim.cross_entropy(scale=1.0 / T)
    initial_state = jr.normal(k_0, (B, n_out)) if init == "normal" else None
    return rollout_problem(
        model, inputs, loss, key=k_p, extra={"target": target}, initial_state=initial_state
    )


def _project(tangents, grads):
    """Vᵀg computed leaf by leaf from a reverse-mode gradient."""
    total = 0.0
    for v, g in zip(
        jax.tree.leaves(tangents, is_leaf=lambda x: x is None),
        jax.tree.leaves(eqx.filter(grads, eqx.is_inexact_array), is_leaf=lambda x: x is None),
    ):
        if v is not None:
            total = total + jnp.einsum("k...,...->k", v, g)
    return total


@pytest.mark.parametrize("name", list(NETWORKS))
def test_sofo_scan_agrees_with_reverse_mode(name, getkey):
    model = NETWORKS[name][0](getkey())
    problem = _problem(name, model, getkey())
    tangents = nd.sample_tangents(getkey(), model, 5, trainable=model.trainable())

    @eqx.filter_jit
    def both(model, tangents):
        sofo = nd.value_and_sofo_grad_scan(
            problem.step, problem.loss, damping=1e-3, time_axis=problem.time_axis
        )
        value, direction, info = sofo(model, tangents, problem.carry0, problem.xs)
        ref_value, grads = eqx.filter_value_and_grad(problem.value)(model)
        return value, info["vg"], ref_value, _project(tangents, grads), direction

    value, vg, ref_value, ref_vg, direction = both(model, tangents)
    assert np.isfinite(value)
    np.testing.assert_allclose(value, ref_value, rtol=1e-10)
    assert float(jnp.linalg.norm(ref_vg)) > 0
    np.testing.assert_allclose(vg, ref_vg, rtol=1e-8, atol=1e-12 * float(jnp.abs(ref_vg).max()))
    # the direction lives on the trained leaves only
    for d, v in zip(
        jax.tree.leaves(direction, is_leaf=lambda x: x is None),
        jax.tree.leaves(tangents, is_leaf=lambda x: x is None),
    ):
        assert (d is None) == (v is None)


def test_mlp_under_feedforward_sofo(getkey):
    model = MLP(6, 3, (5, 4), key=getkey())
    x = jr.normal(getkey(), (10, 6))
    batch = {"inputs": x, "target": jr.randint(getkey(), (10,), 0, 3)}
    loss = nd.optim.cross_entropy()

    def fun(model, batch):
        return jax.vmap(model)(batch["inputs"])

    tangents = nd.sample_tangents(getkey(), model, 4, trainable=model.trainable())

    @eqx.filter_jit
    def both(model, tangents, batch):
        value, _, info = nd.value_and_sofo_grad(fun, loss)(model, tangents, batch)
        ref_value, grads = eqx.filter_value_and_grad(lambda m: loss(fun(m, batch), batch))(model)
        return value, info["vg"], ref_value, _project(tangents, grads)

    value, vg, ref_value, ref_vg = both(model, tangents, batch)
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    np.testing.assert_allclose(vg, ref_vg, rtol=1e-8)
    # one example through the layers by hand
    h = np.maximum(np.asarray(x[0]) @ np.asarray(model.weights[0]) + np.asarray(model.biases[0]), 0)
    h = np.maximum(h @ np.asarray(model.weights[1]) + np.asarray(model.biases[1]), 0)
    out = h @ np.asarray(model.weights[2]) + np.asarray(model.biases[2])
    np.testing.assert_allclose(model(x[0]), out, rtol=1e-12)


# ------------------------------------------------------------------ parameter counts


@pytest.mark.parametrize(
    "build, expected",
    [
        (lambda k: LorenzMap(key=k), 2809),  # §3.1: W 400×3, C 3×400, b 400, A 3×3
        (lambda k: KalmanRNN(key=k), 10_300),  # §3.2: C 100², b, e, o
        (lambda k: flip_flop_rnn(key=k), 17_280),  # §3.3: J 129×128, B_in 3×128, W 128×3
        (lambda k: reservoir_rnn(key=k), 3000),  # §2.9: W 1000×3 only
        (lambda k: motor_rnn(key=k), 4800),  # §3.4 single reach: 3 task inputs
        (lambda k: motor_rnn(6, key=k), 4992),  # §3.4 double reach: 6 task inputs
        (lambda k: OneShotNet(key=k), 92_100),  # §3.7
        (lambda k: MLP(key=k), 79_510),  # §3.8: 784·100 + 100 + 100·10 + 10
    ],
)
def test_parameter_counts_at_paper_size(build, expected):
    model = build(jr.PRNGKey(0))
    assert model.n_params == expected
    # an independent count: the sizes of the trained leaves
    spec = model.trainable()
    if spec is True:
        leaves = jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))
        assert sum(leaf.size for leaf in leaves) == expected


def test_rate_rnn_parameter_count_by_hand():
    n, n_in, n_out = 8, 2, 2
    net = RateRNN(n, n_in, n_out, connectivity=0.5, learn_initial_state=True, key=jr.PRNGKey(1))
    n_synapses = int(np.asarray(net.recurrent_mask).sum())
    assert net.n_params == n_synapses + n * n_in + n + n_out * n + n_out + n
    frozen = RateRNN(n, n_in, n_out, frozen=("W_in", "b_out"), bias=False, key=jr.PRNGKey(1))
    assert frozen.n_params == n * n + n_out * n
    # Dale, masks, frozen W_in and b, E-only readout (6 of 8), learnt x0; F never counts
    constrained = _constrained_net(jr.PRNGKey(2))
    n_synapses = int(np.asarray(constrained.recurrent_mask).sum())
    assert constrained.n_params == n_synapses + n_out * 6 + n_out + n


# ------------------------------------------------------------------ Euler steps by hand


def test_rate_rnn_step_is_the_euler_update(getkey):
    net = _full_rate_rnn(getkey())
    x = np.asarray(jr.normal(getkey(), (8,)))
    u = np.asarray(jr.normal(getkey(), (2,)))
    noise = jax.tree.map(lambda a: a[3], net.sample_noise(getkey(), 5))
    new_x, y = net.step(jnp.asarray(x), jnp.asarray(u), noise)

    softplus = lambda z: np.log1p(np.exp(z))
    sign = np.where(np.arange(8) < 6, 1.0, -1.0)  # round(0.75·8) = 6 excitatory
    mask = np.asarray(net.recurrent_mask)
    # row convention: rows are presynaptic (x_post += r @ W)
    W = np.abs(np.asarray(net.W)) * sign[:, None] * mask
    W_out = np.asarray(net.W_out) * (sign > 0)[:, None]
    W_in, b, F = (np.asarray(a) for a in (net.W_in, net.b, net.F))
    eta, eta_next, xi = (np.asarray(noise[k]) for k in ("rate_now", "rate_next", "process"))
    a = 1.0 / 5.0
    r = eta * softplus(x)
    expected_x = (
        x + a * (-x + r @ W + u @ W_in + b + (r @ W_out) @ F) + 0.2 * np.sqrt(1 - (1 - a) ** 2) * xi
    )
    expected_y = (eta_next * softplus(expected_x)) @ W_out
    np.testing.assert_allclose(new_x, expected_x, rtol=1e-12)
    np.testing.assert_allclose(y, expected_y, rtol=1e-12)
    assert not np.any(np.diag(mask))


def test_plain_rate_rnn_step_and_noiseless_call(getkey):
    net = RateRNN(8, 2, 2, tau=4.0, dt=0.5, activation="rectified_tanh", key=getkey())
    x, u = jr.normal(getkey(), (8,)), jr.normal(getkey(), (2,))
    new_x, y = net.step(x, u)
    r = np.maximum(np.tanh(x), 0)
    ex = x + 0.125 * (-x + r @ net.W + u @ net.W_in + net.b)
    np.testing.assert_allclose(new_x, ex, rtol=1e-12)
    np.testing.assert_allclose(y, np.maximum(np.tanh(ex), 0) @ net.W_out + net.b_out, rtol=1e-12)
    assert net.sample_noise(getkey(), 4) is None
    np.testing.assert_allclose(net.rates(x), r)
    np.testing.assert_allclose(net.readout(new_x), y, rtol=1e-12)


def test_simulate_batches_the_per_trial_step(getkey):
    net = flip_flop_rnn(2, 8, key=getkey())
    inputs = jr.normal(getkey(), (2, 4, 2))
    key = getkey()
    states, outputs = nd.models.simulate(net, inputs, key=key)
    # replay trial 1 with a Python loop and the same initial-state key
    x = net.initial_state(jr.split(jr.split(key)[1], 2)[1])
    for t in range(4):
        x, y = net.step(x, inputs[1, t])
        np.testing.assert_allclose(states[1, t], x, rtol=1e-12)
        np.testing.assert_allclose(outputs[1, t], y, rtol=1e-12)


def test_paper_networks_step_by_hand(getkey):
    relu = lambda z: np.maximum(z, 0)
    lorenz = LorenzMap(3, 8, key=getkey())
    y0 = np.asarray(jr.normal(getkey(), (3,)))
    A, C, b, W = (np.asarray(a) for a in (lorenz.A, lorenz.C, lorenz.b, lorenz.W))
    np.testing.assert_allclose(lorenz.step(y0, None)[0], y0 @ A + relu(y0 @ C + b) @ W)
    np.testing.assert_allclose(A, 0.9 * np.eye(3))

    kalman = KalmanRNN(8, key=getkey())
    ys = np.asarray(jr.normal(getkey(), (3, 1)))
    W, W_in, e, o = (np.asarray(a) for a in (kalman.W, kalman.W_in, kalman.b, kalman.W_out))
    z = relu(ys[0] @ W_in + e)  # first step: no leak (§3.2)
    carry, xhat = kalman.step(kalman.initial_state(), ys[0])
    np.testing.assert_allclose(carry.z, z, rtol=1e-12)
    np.testing.assert_allclose(xhat, z @ o, rtol=1e-12)
    for y in ys[1:]:
        z = 0.75 * z + 0.25 * relu(z @ W + y @ W_in + e)
        carry, xhat = kalman.step(carry, y)
        np.testing.assert_allclose(carry.z, z, rtol=1e-12)
    np.testing.assert_allclose(o, W_in.T / np.sum(W_in**2), rtol=1e-10)  # o = bᵀ/‖b‖²

    net = OneShotNet(2, 2, 8, 8, key=getkey())
    z0, u = np.asarray(jr.normal(getkey(), (8,))), np.asarray(jr.normal(getkey(), (2,)))
    p = {k: np.asarray(getattr(net, k)) for k in ("A", "C", "e", "W", "W_in", "d", "W_out")}
    z1 = z0 @ p["A"] + relu(z0 @ p["C"] + p["e"]) @ p["W"] + u @ p["W_in"] + p["d"]
    new_z, logits = net.step(z0, u)
    np.testing.assert_allclose(new_z, z1, rtol=1e-12)
    np.testing.assert_allclose(logits, relu(z1 @ p["W_out"]), rtol=1e-12)
    assert not np.any(p["A"])


def test_paper_configurations():
    motor = motor_rnn(key=jr.PRNGKey(0))
    assert motor.activation_name == "relu" and motor.dt / motor.tau == pytest.approx(0.1)
    assert motor.rate_noise == pytest.approx(0.2 * np.sqrt(10.0))  # §3.4: ≈ 0.632
    assert motor.x0 is not None and not np.any(np.asarray(motor.x0))
    assert motor.b_out is None and motor.noise_std == 0
    flip = flip_flop_rnn(key=jr.PRNGKey(0))
    assert flip.F is not None and flip.b_out is None and flip.initial_state_std == 0.1
    assert np.all(np.abs(np.asarray(flip.F)) <= 1) and np.all(np.abs(np.asarray(flip.W_in)) <= 1)
    reservoir = reservoir_rnn(key=jr.PRNGKey(0))
    assert reservoir.activation_name == "tanh" and not np.any(np.asarray(reservoir.W_out))
    # J ~ N(0, g²/N), g = 0.5: the empirical std of the entries
    np.testing.assert_allclose(np.std(np.asarray(reservoir.W)) * np.sqrt(1000), 0.5, rtol=0.01)


# ------------------------------------------------------------------ constraints and training


def _constrained_net(key):
    return RateRNN(
        8,
        2,
        2,
        activation="tanh",
        excitatory_fraction=0.75,
        spectral_radius=1.2,
        connectivity=0.5,
        self_connections=False,
        readout_from="excitatory",
        frozen=("W_in", "b"),
        feedback=True,
        learn_initial_state=True,
        key=key,
    )


def _teacher_problem(model, key, n_steps=8):
    k_u, k_y, k_p = jr.split(key, 3)
    inputs = jr.normal(k_u, (4, n_steps, model.n_inputs))
    target = 3.0 * jr.normal(k_y, (4, n_steps, model.n_outputs))
    return rollout_problem(model, inputs, nd.optim.mse(), key=k_p, extra={"target": target})


def _check_dale_and_masks(model, reference):
    w = model.weights()
    W = np.asarray(w.W)
    exc = np.arange(8) < 6
    assert np.all(W[exc] >= 0) and np.all(W[~exc] <= 0)  # rows are presynaptic
    mask = np.asarray(reference.recurrent_mask)
    assert np.all(W[~mask] == 0)
    assert np.all(np.asarray(w.W_out)[~exc] == 0)
    # untrained entries never moved; fixed arrays unchanged
    np.testing.assert_array_equal(np.asarray(model.W)[~mask], np.asarray(reference.W)[~mask])
    np.testing.assert_array_equal(np.asarray(model.W_out)[~exc], np.asarray(reference.W_out)[~exc])
    np.testing.assert_array_equal(np.asarray(model.signs), np.asarray(reference.signs))
    np.testing.assert_array_equal(model.recurrent_mask, reference.recurrent_mask)


OPTIMIZERS = {
    "sofo": lambda: nd.optim.sofo(learning_rate=3.0, n_tangents=8, damping=1e-4),
    "fgd": lambda: nd.optim.fgd(learning_rate=3.0, n_tangents=8),
    "adam": lambda: nd.optim.adam(0.5),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_constraints_and_frozen_leaves_hold_after_ten_steps(name, getkey):
    model = _constrained_net(getkey())
    problem = _teacher_problem(model, getkey())
    opt = OPTIMIZERS[name]()
    trainable = model.trainable()
    state = opt.init(model, trainable)
    step = eqx.filter_jit(lambda m, s, k: opt.step(m, s, problem, key=k, trainable=trainable))
    new = model
    for k in jr.split(getkey(), 10):
        new, state, info = step(new, state, k)
    _check_dale_and_masks(new, model)
    for name in ("W_in", "b", "F"):  # frozen, and F is always fixed
        np.testing.assert_array_equal(getattr(new, name), getattr(model, name))
    for name in ("W_out", "b_out", "x0"):
        assert not np.array_equal(getattr(new, name), getattr(model, name)), name
    mask = np.asarray(model.recurrent_mask)
    moved = np.asarray(new.W)[mask] != np.asarray(model.W)[mask]
    assert moved.any()
    # the large steps pushed some free weights through zero: the constraint did the work
    assert (np.sign(np.asarray(new.W)[mask]) != np.sign(np.asarray(model.W)[mask])).any()


def test_dale_holds_after_any_update_of_the_float_leaves(getkey):
    """Signs are int8 and masks boolean: whatever an optimizer does to the floating-point
    leaves (here: large arbitrary changes to every one of them, as an optimizer given no
    filter spec could make), the effective weights still obey Dale's law and the masks."""
    model = _constrained_net(getkey())
    floats, rest = eqx.partition(model, eqx.is_inexact_array)
    leaves, treedef = jax.tree.flatten(floats)
    keys = jr.split(getkey(), len(leaves))
    moved = [a + 10.0 * jr.normal(k, a.shape, a.dtype) for a, k in zip(leaves, keys)]
    new = eqx.combine(jax.tree.unflatten(treedef, moved), rest)
    W = np.asarray(new.weights().W)
    assert np.all(W[:6] >= 0) and np.all(W[6:] <= 0)
    assert np.all(W[~np.asarray(model.recurrent_mask)] == 0)
    assert np.all(np.asarray(new.weights().W_out)[6:] == 0)


def test_masked_entries_get_no_tangents(getkey):
    model = _constrained_net(getkey())
    tangents = nd.sample_tangents(getkey(), model, 5, trainable=model.trainable())
    mask = np.asarray(model.recurrent_mask)
    assert np.all(np.asarray(tangents.W)[:, ~mask] == 0)
    assert np.all(np.asarray(tangents.W_out)[:, 6:] == 0)
    assert tangents.F is None and tangents.b is None and tangents.W_in is None
    assert tangents.x0 is not None and tangents.b_out is not None


@pytest.mark.parametrize("dale", [None, 0.8])
@pytest.mark.parametrize("radius", [0.5, 1.5])
@pytest.mark.parametrize("connectivity", [1.0, 0.3])
def test_spectral_radius_at_initialisation(dale, radius, connectivity, getkey):
    net = RateRNN(
        60,
        excitatory_fraction=dale,
        spectral_radius=radius,
        connectivity=connectivity,
        key=getkey(),
    )
    W = np.asarray(net.weights().W)
    measured = np.max(np.abs(np.linalg.eigvals(W)))
    assert abs(measured - radius) <= 0.1 * radius
    if dale is not None:
        # balanced: for every postsynaptic neuron (a column) with both E and I inputs, the
        # excitation cancels the inhibition
        present = W != 0
        both = present[:48].any(axis=0) & present[48:].any(axis=0)
        assert both.mean() > 0.5
        np.testing.assert_allclose(W.sum(axis=0)[both], 0.0, atol=1e-10)
        assert np.all(W[:48] >= 0) and np.all(W[48:] <= 0)


def test_learnable_and_random_initial_states(getkey):
    net = RateRNN(4, learn_initial_state=True, initial_state_std=0.5, key=getkey())
    net = eqx.tree_at(lambda m: m.x0, net, jnp.arange(4.0))
    key = getkey()
    expected = np.arange(4.0) + 0.5 * np.asarray(jr.normal(key, (4,)))
    np.testing.assert_allclose(net.initial_state(key), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="key"):
        net.initial_state()
    plain = RateRNN(4, key=getkey())
    np.testing.assert_array_equal(plain.initial_state(), np.zeros(4))


def test_activations_by_name_and_callable(getkey):
    x = np.linspace(-3, 3, 13)
    expected = {
        "tanh": np.tanh(x),
        "relu": np.maximum(x, 0),
        "softplus": np.log1p(np.exp(x)),
        "rectified_tanh": np.maximum(np.tanh(x), 0),
        "retanh": np.maximum(np.tanh(x), 0),
        "sigmoid": 1 / (1 + np.exp(-x)),
        "linear": x,
        (lambda z: z**3): x**3,
    }
    for activation, values in expected.items():
        net = RateRNN(13, activation=activation, key=getkey())
        np.testing.assert_allclose(net.rates(jnp.asarray(x)), values, rtol=1e-12)


# ------------------------------------------------------------------ constructor errors

BAD_RATE_RNN = [
    (dict(n_neurons=0), ValueError, "n_neurons"),
    (dict(n_neurons=2.5), TypeError, "n_neurons"),
    (dict(n_neurons=True), TypeError, "n_neurons"),
    (dict(n_inputs=-1), ValueError, "n_inputs"),
    (dict(n_outputs=0), ValueError, "n_outputs"),
    (dict(excitatory_fraction=1.2), ValueError, "excitatory_fraction"),
    (dict(excitatory_fraction=-0.1), ValueError, "excitatory_fraction"),
    (dict(dt=0.0), ValueError, "dt"),
    (dict(dt=-1.0), ValueError, "dt"),
    (dict(dt=2.0, tau=1.0), ValueError, "dt > tau"),
    (dict(tau=0.0), ValueError, "tau"),
    (dict(activation="gelu"), ValueError, "'tanh', 'relu', 'softplus', 'rectified_tanh'"),
    (dict(activation=3), TypeError, "activation"),
    (dict(spectral_radius=-0.5), ValueError, "spectral_radius"),
    (dict(noise_std=-0.1), ValueError, "noise_std"),
    (dict(rate_noise=-0.1), ValueError, "rate_noise"),
    (dict(initial_state_std=-1.0), ValueError, "initial_state_std"),
    (dict(connectivity=0.0), ValueError, "connectivity"),
    (dict(connectivity=1.5), ValueError, "connectivity"),
    (dict(readout_from="excitatory"), ValueError, "excitatory_fraction"),
    (dict(readout_from="inhibitory"), ValueError, "readout_from"),
    (dict(readout_from="excitatory", excitatory_fraction=0.0), ValueError, "excitatory"),
    (dict(frozen=("W", "J")), ValueError, "frozen"),
    (dict(mask=np.ones((3, 3), bool)), ValueError, "mask"),
    (dict(mask=np.ones((4, 4))), ValueError, "mask"),
    (dict(feedback=np.ones((4, 3))), ValueError, "feedback"),
]


@pytest.mark.parametrize("kwargs, error, match", BAD_RATE_RNN)
def test_rate_rnn_constructor_errors(kwargs, error, match):
    kwargs = {"n_neurons": 4, "n_inputs": 1, "n_outputs": 2, **kwargs}
    with pytest.raises(error, match=match):
        RateRNN(**kwargs, key=jr.PRNGKey(0))


@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda k: LorenzMap(n_hidden=0, key=k), ValueError, "n_hidden"),
        (lambda k: LorenzMap(n_state=-1, key=k), ValueError, "n_state"),
        (lambda k: KalmanRNN(alpha=0.0, key=k), ValueError, "alpha"),
        (lambda k: KalmanRNN(alpha=1.5, key=k), ValueError, "alpha"),
        (lambda k: KalmanRNN(n_outputs=2, key=k), ValueError, "n_outputs"),
        (lambda k: OneShotNet(n_classes=0, key=k), ValueError, "n_classes"),
        (lambda k: OneShotNet(logits="softmax", key=k), ValueError, "logits"),
        (lambda k: MLP(hidden_sizes=(0,), key=k), ValueError, "hidden_sizes"),
        (lambda k: MLP(hidden_sizes=100, key=k), TypeError, "hidden_sizes"),
        (lambda k: motor_rnn(dt=0.05, key=k), ValueError, "dt"),
        (lambda k: motor_rnn(n_feedback=-1, key=k), ValueError, "n_feedback"),
        (lambda k: flip_flop_rnn(gain=-1.0, key=k), ValueError, "gain"),
        (lambda k: reservoir_rnn(n_bits=0, key=k), ValueError, "n_bits"),
    ],
)
def test_paper_network_constructor_errors(build, error, match):
    with pytest.raises(error, match=match):
        build(jr.PRNGKey(0))


def test_key_is_required_and_keyword_only():
    for cls in (RateRNN, LorenzMap, KalmanRNN, OneShotNet, MLP):
        with pytest.raises(TypeError):
            cls()
    with pytest.raises(TypeError):
        motor_rnn()


def test_wrong_input_shape_is_a_clear_error(getkey):
    net = RateRNN(8, 2, 2, key=getkey())
    with pytest.raises(ValueError, match="n_inputs"):
        net.step(net.initial_state(), jnp.ones(3))
    with pytest.raises(ValueError, match="vmap"):
        MLP(4, 2, (3,), key=getkey())(jnp.ones((5, 4)))
