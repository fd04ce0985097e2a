"""GGN scale conventions (SPEC §2.5, §2.7): a step size stated in a reference implementation's
convention gives that reference's update, checked against the reference GGN built by hand from a
dense `jax.jacfwd` Jacobian."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import neurodyn as nd
from neurodyn.optim import FeedforwardProblem, RecurrentProblem

T, B, NIN, N, D, K = 4, 5, 2, 6, 3, 7


def _params(key):
    k1, k2, k3 = jr.split(key, 3)
    return {
        "W": 0.5 * jr.normal(k1, (N, N)) / np.sqrt(N),
        "U": jr.normal(k2, (NIN, N)),
        "O": jr.normal(k3, (N, D)) / np.sqrt(N),
    }


def _step(p, h, x):
    h = jnp.tanh(h @ p["W"] + x["u"] @ p["U"])
    return h, h @ p["O"]


def _mse_problem(key, scale=0.5, reduction="mean"):
    ku, kt = jr.split(key)
    xs = {"u": jr.normal(ku, (T, B, NIN)), "target": jr.normal(kt, (T, B, D))}
    loss = nd.optim.mse(scale=scale, reduction=reduction)
    return RecurrentProblem(_step, loss, jnp.zeros((B, N)), xs)


def _outputs(problem, params):
    return problem.rollout(params)[1]  # [T, B, D]


def _reference_ggn(problem, params, convention, scale):
    """The reference implementation's full-parameter GGN, from its own formulas (SPEC §2.7)."""
    flat, unravel = ravel_pytree(params)
    jac = jax.jacfwd(lambda f: _outputs(problem, unravel(f)))(flat)  # [T, B, D, P]
    gram = jnp.einsum("tbdp,tbdq->pq", jac, jac)  # Σ_{t,b,d} J^T J
    if convention == "consistent":
        # the Hessian of s/(B·D) Σ (y − y*)² is 2s/(B·D); of s/B Σ (y − y*)² ("sum"), 2s/B
        averaged = D if problem.loss.reduction == "mean" else 1
        return 2 * scale / (B * averaged) * gram
    if convention == "ocaml2024":  # lib/loss.ml: 2s Σ_{b,dims} ẎẎᵀ, then ÷ batch size
        return 2 * scale * gram / B
    if convention == "jax2024":  # jax/api.py ggn_mse: mean over batch of Σ_dims ẎẎᵀ
        return scale * gram / B
    if convention == "ocaml2025":  # sofo/loss.ml mse_ggn: (2/K) Σ ẎẎᵀ
        return 2 * scale / K * gram
    raise AssertionError(convention)


def _reference_update(problem, params, tangents, convention, lr, damping, scale):
    """−η V (VᵀGV + λ·max eig I)⁻¹ Vᵀ∇L with the reference GGN, all from dense matrices."""
    flat, unravel = ravel_pytree(params)
    v = jnp.stack([ravel_pytree(jax.tree.map(lambda t: t[k], tangents))[0] for k in range(K)], 1)
    grad = jax.grad(lambda f: problem.value(unravel(f)))(flat)
    g_sub = v.T @ _reference_ggn(problem, params, convention, scale) @ v
    s = jnp.linalg.eigvalsh(g_sub)
    alpha = jnp.linalg.solve(g_sub + damping * s[-1] * jnp.eye(K), v.T @ grad)
    return -lr * (v @ alpha)


def _sofo_update(problem, params, key, **kwargs):
    opt = nd.optim.sofo(n_tangents=K, **kwargs)
    new, _, _ = opt.step(params, opt.init(params), problem, key=key)
    return ravel_pytree(new)[0] - ravel_pytree(params)[0]


@pytest.mark.parametrize(
    "convention, reduction",
    [
        ("consistent", "mean"),
        ("ocaml2024", "mean"),
        ("jax2024", "mean"),
        ("ocaml2025", "mean"),
        ("ocaml2024", "sum"),  # the 2024 reaching reference summed its weighted squared error
        ("ocaml2025", "sum"),
    ],
)
def test_a_step_size_in_a_reference_convention_gives_the_reference_update(
    getkey, convention, reduction
):
    params = _params(getkey())
    scale = 0.5
    problem = _mse_problem(getkey(), scale, reduction)
    key = getkey()
    tangents = nd.optim.sample_tangents(key, params, K, "normalized")
    lr, damping = 0.3, 1e-3
    expected = _reference_update(problem, params, tangents, convention, lr, damping, scale)
    got = _sofo_update(
        problem, params, key, learning_rate=lr, damping=damping, ggn_scale_convention=convention
    )
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-12)


def test_the_same_step_stated_in_either_convention_gives_the_same_update(getkey):
    params = _params(getkey())
    problem = _mse_problem(getkey())
    key = getkey()
    # c = d, d/2, B·d/K for the MSE (d = 3 outputs, B = 5 trials, K = 7 tangents)
    factors = {"ocaml2024": D, "jax2024": D / 2, "ocaml2025": B * D / K}
    consistent = _sofo_update(problem, params, key, learning_rate=0.2, damping=1e-4)
    for convention, c in factors.items():
        got = _sofo_update(
            problem,
            params,
            key,
            learning_rate=0.2 * c,
            damping=1e-4,
            ggn_scale_convention=convention,
        )
        np.testing.assert_allclose(got, consistent, rtol=1e-9, atol=1e-13)
        converted = nd.optim.convert_learning_rate(
            0.2 * c,
            problem.loss,
            (B, D),
            from_convention=convention,
            n_tangents=K,
        )
        assert converted == pytest.approx(0.2)
    # an explicit factor is the same as the named convention it equals
    explicit = _sofo_update(
        problem, params, key, learning_rate=0.2 * D, damping=1e-4, ggn_scale_convention=float(D)
    )
    np.testing.assert_allclose(explicit, consistent, rtol=1e-9, atol=1e-13)


def test_cross_entropy_factors_against_the_reference_formulas(getkey):
    """2025 OCaml's cross-entropy GGN is (2/B)·Σ_b Ẏᵀ(diag p − ppᵀ)Ẏ: twice the consistent one."""
    kw, kx, ky = jr.split(getkey(), 3)
    params = {"W": jr.normal(kw, (4, 3))}
    x = jr.normal(kx, (B, 4))
    labels = jr.randint(ky, (B,), 0, 3)
    loss = nd.optim.cross_entropy(target=lambda a: a[1])
    problem = FeedforwardProblem(lambda p, xx, yy: xx @ p["W"], loss, (x, labels))
    flat, unravel = ravel_pytree(params)
    jac = jax.jacfwd(lambda f: x @ unravel(f)["W"])(flat)  # [B, 3, P]
    p = jax.nn.softmax(x @ params["W"], -1)
    h = jax.vmap(lambda q: jnp.diag(q) - jnp.outer(q, q))(p)
    reference = 2.0 / B * jnp.einsum("bip,bij,bjq->pq", jac, h, jac)
    key = getkey()
    tangents = nd.optim.sample_tangents(key, params, 5, "normalized")
    v = jnp.stack([ravel_pytree(jax.tree.map(lambda t: t[k], tangents))[0] for k in range(5)], 1)
    grad = jax.grad(lambda f: problem.value(unravel(f)))(flat)
    g_sub = v.T @ reference @ v
    top = jnp.linalg.eigvalsh(g_sub)[-1]
    expected = -0.5 * v @ jnp.linalg.solve(g_sub + 1e-3 * top * jnp.eye(5), v.T @ grad)
    opt = nd.optim.sofo(
        learning_rate=0.5, n_tangents=5, damping=1e-3, ggn_scale_convention="ocaml2025"
    )
    new, _, _ = opt.step(params, opt.init(params), problem, key=key)
    np.testing.assert_allclose(new["W"].ravel() - params["W"].ravel(), expected, rtol=1e-8)
    assert nd.optim.ggn_scale_factor(loss, (B, 3), "ocaml2024", 5) == 1.0
    assert nd.optim.ggn_scale_factor(loss, (B, 3), "jax2024", 5) == 1.0


def test_bad_conventions_are_clear_errors(getkey):
    with pytest.raises(ValueError, match="ggn_scale_convention"):
        nd.optim.sofo(ggn_scale_convention="pytorch")
    with pytest.raises(ValueError, match="ggn_scale_convention"):
        nd.optim.sofo(ggn_scale_convention=-1.0)
    with pytest.raises(TypeError, match="ggn_scale_convention"):
        nd.optim.sofo(ggn_scale_convention=None)
    params = _params(getkey())
    problem = _mse_problem(getkey())
    generic = RecurrentProblem(
        _step, lambda y, x: jnp.mean((y - x["target"]) ** 2), problem.carry0, problem.xs
    )
    opt = nd.optim.sofo(n_tangents=K, ggn_scale_convention="ocaml2024")
    with pytest.raises(ValueError, match="MeanSquaredError or SoftmaxCrossEntropy"):
        opt.step(params, opt.init(params), generic, key=getkey())


def test_paper_step_sizes_are_the_converted_reference_values():
    """SPEC §4's Kalman and one-shot η, converted (docs/concepts/sofo-conventions.md)."""
    kalman = nd.tasks.get("kalman", size="paper")
    hp = kalman.hyperparameters("sofo")
    loss, shape = kalman.loss_function(), (hp["batch_size"], 1)
    for eta, convention in ((0.05, "ocaml2024"), (0.1, "ocaml2025")):  # c5d617e, 3c62b01
        converted = nd.optim.convert_learning_rate(
            eta, loss, shape, from_convention=convention, n_tangents=hp["n_tangents"]
        )
        assert hp["learning_rate"] == pytest.approx(converted)
    oneshot = nd.tasks.get("oneshot", size="paper")
    hp = oneshot.hyperparameters("sofo")
    converted = nd.optim.convert_learning_rate(
        0.1,  # c5d617e
        oneshot.loss_function(),
        (hp["batch_size"], oneshot.n_classes),
        from_convention="ocaml2024",
        n_tangents=hp["n_tangents"],
    )
    assert hp["learning_rate"] == pytest.approx(converted)
