# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 5 · Inside SOFO: tangents, the subspace Gauss–Newton matrix, damping and K
#
# SOFO (Yu, Xia, Ma, Lengyel & Hennequin, NeurIPS 2024) takes, at every iteration, a damped
# Gauss–Newton step restricted to a random K-dimensional subspace of parameter space. With
# V = [v_1 … v_K] the P × K matrix of random directions, g the gradient and G the
# generalised Gauss–Newton (GGN) matrix of the loss, one forward-mode pass gives
#
# - the projected gradient c̃ = Vᵀ g (K numbers),
# - the subspace GGN G̃ = Vᵀ G V (K × K),
#
# and the step is θ ← θ − η Δ with Δ = V (G̃ + γ I)⁻¹ c̃, γ = λ · max eig(G̃).
#
# Here we take the primitive `nd.value_and_sofo_grad` apart on a problem small enough to
# build every matrix densely, and check each quantity against an independent computation
# with `jax.grad`, `jax.jacfwd` and `jax.hessian`. In float64, so that agreement is to
# round-off. This tutorial is cheap in both modes; `NEURODYN_FAST=1` only shortens the
# training runs at the end and compares two values of K instead of four.

# %%
import os
import sys
from pathlib import Path

import matplotlib

NOTEBOOK = "ipykernel" in sys.modules
if not NOTEBOOK:
    matplotlib.use("Agg")
import jax

jax.config.update("jax_enable_x64", True)  # exact comparisons
import jax.numpy as jnp
import jax.random as jr
import matplotlib.pyplot as plt
import numpy as np
from jax.flatten_util import ravel_pytree
from matplotlib.layout_engine import ConstrainedLayoutEngine

import neurodyn as nd

FAST = os.environ.get("NEURODYN_FAST", "0") not in ("", "0")
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(os.environ.get("NEURODYN_TUTORIAL_OUT", HERE / "_out")) / "05_inside_sofo"
OUT.mkdir(parents=True, exist_ok=True)


FAST_NOTE = "fast mode (NEURODYN_FAST=1): a shrunken network,\nbriefly trained (not the tutorial's result)"


def save(fig, name):
    """Write a figure to OUT (and keep it on screen in a notebook). In fast mode its title
    says that it comes from a shrunken, briefly trained run."""
    if FAST:
        title = fig.get_suptitle()
        fig.suptitle(f"{FAST_NOTE}\n{title}" if title else FAST_NOTE, color="firebrick", size="small")
        if not isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine):
            fig.tight_layout()  # make room for the note
    fig.savefig(OUT / f"{name}.png", dpi=100, metadata={"Title": fig.get_suptitle()})
    if not NOTEBOOK:
        plt.close(fig)


# %% [markdown]
# ## A small problem
#
# A one-hidden-layer network, 3 → 8 → 2, fitted by least squares to a fixed random
# teacher. The parameters are a plain dict of arrays — any pytree works.

# %%
k_data, k_teacher, k_init, k_v = jr.split(jr.PRNGKey(0), 4)


def init(key, n_in=3, n_hidden=8, n_out=2):
    k1, k2 = jr.split(key)
    return {
        "W1": jr.normal(k1, (n_in, n_hidden)) / np.sqrt(n_in),
        "b1": jnp.zeros(n_hidden),
        "W2": jr.normal(k2, (n_hidden, n_out)) / np.sqrt(n_hidden),
        "b2": jnp.zeros(n_out),
    }


def fun(params, x, target):
    """The model on a whole batch: y = tanh(x W1 + b1) W2 + b2."""
    return jnp.tanh(x @ params["W1"] + params["b1"]) @ params["W2"] + params["b2"]


def loss(y, x, target):
    """Batch-mean squared error (any loss convex in y works)."""
    return 0.5 * jnp.mean(jnp.sum((y - target) ** 2, axis=-1))


x = jr.normal(k_data, (64, 3))
target = fun(init(k_teacher), x, None) + 0.05 * jr.normal(k_teacher, (64, 2))
params = init(k_init)
flat, unravel = ravel_pytree(params)
P = flat.size
print("P =", P, "parameters")


def total_loss(p):
    return loss(fun(p, x, target), x, target)


# %% [markdown]
# ## Tangents
#
# `nd.sample_tangents(key, params, K, kind)` returns a pytree with the structure of the
# parameters and a leading axis of size K on every leaf. Three kinds:
# `"gaussian"` (entries N(0, 1), the paper's Algorithm 1), `"normalized"` (the default:
# every direction scaled to unit global norm) and `"orthonormal"` (whitened so that
# VᵀV = I). Their Gram matrices VᵀV show the difference.

# %%
K = 6


def as_matrix(tangents):
    """The K × P matrix Vᵀ of a tangent pytree (rows: directions)."""
    return jax.vmap(lambda v: ravel_pytree(v)[0])(tangents)


for kind in nd.optim.TANGENT_KINDS:
    V = nd.sample_tangents(k_v, params, K, kind)
    gram = nd.optim.tangent_gram(V)
    print(f"{kind:>11s}: VᵀV diagonal {np.round(np.diag(gram), 2)}, "
          f"largest off-diagonal {np.abs(gram - np.diag(np.diag(gram))).max():.2f}")
V = nd.sample_tangents(k_v, params, K, "normalized")
Vt = as_matrix(V)  # K × P
print("tangent leaf shapes:", {k: v.shape for k, v in V.items()})

# %% [markdown]
# ## c̃ = Vᵀ g
#
# `nd.value_and_sofo_grad(fun, loss, damping)` returns a function of
# `(params, tangents, *args)`. Its `info["vg"]` is the projected gradient, obtained from K
# forward-mode directional derivatives — no backward pass. We compare it with Vᵀ times the
# reverse-mode gradient of `jax.grad`.

# %%
sofo_fn = jax.jit(nd.value_and_sofo_grad(fun, loss, damping=1e-3))
value, direction, info = sofo_fn(params, V, x, target)
g = ravel_pytree(jax.grad(total_loss)(params))[0]
print("loss:", float(value), "=", float(total_loss(params)))
print("c̃ (SOFO)     :", np.round(info["vg"], 6))
print("Vᵀ jax.grad   :", np.round(Vt @ g, 6))
print("max difference:", float(jnp.abs(info["vg"] - Vt @ g).max()))
assert jnp.allclose(info["vg"], Vt @ g, rtol=1e-10, atol=1e-12)

# %% [markdown]
# ## G̃ = Vᵀ G V against the dense GGN
#
# The GGN is G = Jᵀ H J, with J = ∂y/∂θ the Jacobian of all outputs (64 trials × 2) with
# respect to all P parameters and H = ∂²ℓ/∂y² the Hessian of the loss in output space.
# Unlike the Hessian of the loss in θ, it is positive semi-definite whenever the loss is
# convex in y. We build J with `jax.jacfwd` and H with `jax.hessian`.

# %%
y0 = fun(params, x, target)
J = jax.jacfwd(lambda th: fun(unravel(th), x, target))(flat).reshape(-1, P)  # (B·d) × P
H = jax.hessian(lambda y: loss(y, x, target))(y0).reshape(y0.size, y0.size)
G = J.T @ H @ J  # P × P
G_sub = Vt @ G @ Vt.T
print("max |G̃ − VᵀGV| =", float(jnp.abs(info["ggn"] - G_sub).max()),
      " (G̃ entries up to", float(jnp.abs(G_sub).max()), ")")
assert jnp.allclose(info["ggn"], G_sub, rtol=1e-10, atol=1e-12)
print("eigenvalues of G̃:", np.round(info["eigenvalues"], 5))

# %% [markdown]
# ## The step
#
# The direction returned is Δ = V α with α = (G̃ + γ I)⁻¹ c̃ and γ = λ · max eig(G̃)
# (relative damping, the default). Relative damping makes the step independent of the
# scale of V: doubling every tangent doubles c̃ and quadruples G̃ and γ, so Δ is unchanged.

# %%
gamma = 1e-3 * info["eigenvalues"].max()
alpha = jnp.linalg.solve(info["ggn"] + gamma * jnp.eye(K), info["vg"])
print("Δ = V α:", bool(jnp.allclose(ravel_pytree(direction)[0], Vt.T @ alpha)))
V2 = jax.tree.map(lambda v: 2.0 * v, V)
_, direction2, _ = sofo_fn(params, V2, x, target)
print("same Δ with 2V:", bool(jnp.allclose(ravel_pytree(direction2)[0],
                                           ravel_pytree(direction)[0])))

# %% [markdown]
# ## With K = P, SOFO is the damped Gauss–Newton method
#
# Take as tangents the P coordinate axes (V = I). Then G̃ = G, c̃ = g, and the SOFO
# direction must equal the full damped Gauss–Newton direction (G + γ I)⁻¹ g, computed here
# with a dense solve.

# %%
V_full = jax.vmap(unravel)(jnp.eye(P))  # P directions, one per parameter
_, direction_full, info_full = jax.jit(nd.value_and_sofo_grad(fun, loss, damping=1e-3))(
    params, V_full, x, target
)
gamma = 1e-3 * jnp.linalg.eigvalsh(G).max()
gauss_newton = jnp.linalg.solve(G + gamma * jnp.eye(P), g)
difference = jnp.abs(ravel_pytree(direction_full)[0] - gauss_newton).max()
print(f"max |Δ(K = P) − (G + γI)⁻¹ g| = {float(difference):.2e}"
      f"  (|Δ| up to {float(jnp.abs(gauss_newton).max()):.2f})")
assert jnp.allclose(ravel_pytree(direction_full)[0], gauss_newton, rtol=1e-8, atol=1e-10)

# %% [markdown]
# ## Damping
#
# λ interpolates between a Gauss–Newton step (λ → 0: large steps, exact on a quadratic,
# but trusting the curvature even along directions where it is tiny) and a short step
# along the projected gradient (λ → ∞: Δ ≈ V c̃ / γ). We take one full step (η = 1) in the
# same subspace for a range of λ and compare the actual decrease of the loss with the
# decrease predicted by the local quadratic model. The solve in the subspace is its own
# function, `nd.optim.damped_solve(G̃, c̃, λ)`, and `nd.optim.combine_tangents(V, α)` forms
# Δ = V α: one forward pass serves every λ.

# %%
K_damp = 16
V_damp = nd.sample_tangents(jr.PRNGKey(1), params, K_damp)
_, _, info_damp = sofo_fn(params, V_damp, x, target)  # c̃ and G̃ do not depend on λ
lambdas = np.logspace(-6, 1, 15)
actual, predicted = [], []
for lam in lambdas:
    solution = nd.optim.damped_solve(info_damp["ggn"], info_damp["vg"], float(lam))
    d = nd.optim.combine_tangents(V_damp, solution.alpha)  # Δ = V α
    new = jax.tree.map(lambda p, dp: p - dp, params, d)
    actual.append(float(total_loss(params) - total_loss(new)))
    predicted.append(float(solution.predicted_decrease))
fig, ax = plt.subplots(figsize=(5.5, 3.8), constrained_layout=True)
ax.semilogx(lambdas, actual, "o-", label="actual decrease")
ax.semilogx(lambdas, predicted, "s--", label="predicted by the quadratic model")
ax.axhline(0, color="0.5", lw=0.8)
ax.set_xlabel("damping λ (relative to the top eigenvalue of G̃)")
ax.set_ylabel("loss decrease after one step (η = 1)")
ax.set_title(f"one SOFO step, K = {K_damp}, P = {P}")
ax.legend(frameon=False)
ax.grid(alpha=0.3)
save(fig, "damping")
print("λ with the largest decrease:", lambdas[int(np.argmax(actual))])

# %% [markdown]
# ## The effect of K
#
# The optimizer `nd.optim.sofo` wraps the primitive: it draws fresh tangents every
# iteration and applies Δ through an optax transform. A `nd.optim.FeedforwardProblem`
# tells it what to minimise. With K = P every step is a full damped Gauss–Newton step;
# smaller K gives cheaper, noisier steps. The cost of one iteration grows with K (K tangent
# lanes in the forward pass), so in practice K is a small fraction of P.

# %%
problem = nd.optim.FeedforwardProblem(fun, loss, (x, target))
n_iters = 30 if FAST else 150
curves = {}
for k in (4, P) if FAST else (1, 4, 16, P):
    opt = nd.optim.sofo(learning_rate=1.0 if k == P else 0.5, n_tangents=k, damping=1e-3)
    state = opt.init(params)
    step = jax.jit(lambda p, s, key, opt=opt: opt.step(p, s, problem, key=key))
    p, losses = params, []
    for i in range(n_iters):
        p, state, info = step(p, state, jr.fold_in(jr.PRNGKey(2), i))
        losses.append(float(info["loss"]))
    curves[k] = losses
fig, ax = plt.subplots(figsize=(5.5, 3.8), constrained_layout=True)
for k, losses in curves.items():
    ax.semilogy(losses, label=f"K = {k}" + (" (= P)" if k == P else ""))
ax.set_xlabel("iteration")
ax.set_ylabel("loss")
ax.set_title("SOFO on the small problem")
ax.legend(frameon=False)
ax.grid(alpha=0.3, which="both")
save(fig, "effect_of_K")
print({k: f"{v[-1]:.2e}" for k, v in curves.items()}, "(final losses)")

# %% [markdown]
# ## The recurrent form
#
# For a recurrent system written as `step(params, carry, x_t) -> (carry, y_t)` with a
# per-step loss, `nd.value_and_sofo_grad_scan` runs the forward pass inside `lax.scan` and
# carries the K tangents of the state along: Ṡ_{t+1} = ∂F/∂s · Ṡ_t + ∂F/∂θ · V. It
# accumulates the loss, c̃ and G̃ step by step and stores nothing per step, which is why
# its memory does not depend on the horizon (tutorial 3). Same check as above, on a tiny
# tanh RNN.

# %%
T, N = 20, 5
k1, k2, k3 = jr.split(jr.PRNGKey(3), 3)
rnn = {"W": 0.9 * jr.normal(k1, (N, N)) / np.sqrt(N), "U": jr.normal(k2, (1, N)),
       "w": jr.normal(k3, (N, 1)) / np.sqrt(N)}
u = jnp.sin(jnp.linspace(0, 6, T))[:, None, None] * jnp.ones((T, 8, 1))  # [T, B, 1]
xs = {"u": u, "target": jnp.roll(u, 3, axis=0)}  # reproduce the input 3 steps later


def rnn_step(p, h, x_t):
    h = jnp.tanh(h @ p["W"] + x_t["u"] @ p["U"])
    return h, h @ p["w"]


def step_loss(y_t, x_t):
    return jnp.mean((y_t - x_t["target"]) ** 2) / T


def rnn_loss(p):
    def body(h, x_t):
        h, y_t = rnn_step(p, h, x_t)
        return h, step_loss(y_t, x_t)

    return jax.lax.scan(body, jnp.zeros((8, N)), xs)[1].sum()


V_rnn = nd.sample_tangents(jr.PRNGKey(4), rnn, 8)
value, _, info = nd.value_and_sofo_grad_scan(rnn_step, step_loss)(rnn, V_rnn, jnp.zeros((8, N)),
                                                                  xs)
g_rnn = ravel_pytree(jax.grad(rnn_loss)(rnn))[0]
print("loss", float(value), "=", float(rnn_loss(rnn)))
print("max |c̃ − Vᵀ jax.grad| =", float(jnp.abs(info["vg"] - as_matrix(V_rnn) @ g_rnn).max()))
assert jnp.allclose(info["vg"], as_matrix(V_rnn) @ g_rnn, rtol=1e-10, atol=1e-12)

# %%
print("figures:", sorted(f.name for f in OUT.glob("*.png")))
