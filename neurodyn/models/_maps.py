"""The paper's small maps: the Lorenz map, the one-shot network and the MNIST MLP.

The networks of Yu et al. (2024) and the authors' code. All are written, like that code, with
row vectors (`h W`, weights of shape `(in, out)`), the convention of
[`neurodyn.models.RateRNN`][] (see there for the measured speed reason).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from .._validation import check_choice, check_real, check_size
from ..optim import count_params
from ._activations import resolve_activation
from ._base import AbstractRecurrentModel
from ._init import normal_blocks


class LorenzMap(AbstractRecurrentModel):
    r"""Autonomous two-layer recurrent map whose state is its output (the paper's Lorenz task).

    $$y_{t+1} = y_t\,A + \mathrm{relu}(y_t\,C + b)\,W,$$

    with state dimension d (3 for the Lorenz attractor) and a hidden layer of width H.
    `step(y_t, u, noise) -> (y_{t+1}, y_{t+1})`: the carry is the state `[state]`, the output
    is the new state. The map is autonomous: `u` is ignored (tasks pass inputs of shape
    `[B, T, 0]`) and it is noiseless. The Lorenz task gives the initial states through
    `rollout_problem(..., initial_state=...)`; alone, `initial_state(key)` draws y_0 ~ N(0, I)
    (the scale of the z-scored data), or returns 0 without a key.

    **Arguments:**

    - `n_state`: d (default 3). `n_hidden`: H (default 400, the paper's size: P = 2809).
    - `linear_init`: A = `linear_init`·I at initialisation (0.9 in the paper-era code; 1.0 in
      sofo-raven).
    - `key`: PRNG key (required, keyword-only).

    Initialisation (the authors' code): A = 0.9 I; C ~ N(0, 1/d); W ~ N(0, (0.1/√H)²); b = 0.

    ??? cite "Reference"
        Yu, Xia, Ma, Lengyel & Hennequin, *Second-order forward-mode optimization of
        recurrent neural networks for neuroscience*, NeurIPS 2024, §4.1.
    """

    A: Float[Array, "state state"]
    C: Float[Array, "state hidden"]
    b: Float[Array, " hidden"]
    W: Float[Array, "hidden state"]
    n_state: int = eqx.field(static=True)
    n_hidden: int = eqx.field(static=True)

    def __init__(
        self,
        n_state: int = 3,
        n_hidden: int = 400,
        *,
        linear_init: float = 0.9,
        key: PRNGKeyArray,
    ):
        d = self.n_state = check_size(n_state, "n_state")
        h = self.n_hidden = check_size(n_hidden, "n_hidden")
        linear_init = check_real(linear_init, "linear_init")
        z_c, z_w = normal_blocks(key, [(h, d), (d, h)])
        self.A = linear_init * jnp.eye(d)
        self.C = z_c.T / math.sqrt(d)
        self.b = jnp.zeros(h)
        self.W = z_w.T * (0.1 / math.sqrt(h))

    def initial_state(self, key: PRNGKeyArray | None = None) -> Float[Array, " state"]:
        if key is None:
            return jnp.zeros(self.n_state, self.A.dtype)
        return jr.normal(key, (self.n_state,), self.A.dtype)

    def rates(self, carry: Float[Array, " state"]) -> Float[Array, " hidden"]:
        """Hidden-layer activity relu(C y + b)."""
        return jax.nn.relu(carry @ self.C + self.b)

    def step(self, carry, u=None, noise=None):
        del u, noise
        y = carry @ self.A + self.rates(carry) @ self.W
        return y, y


class OneShotNet(AbstractRecurrentModel):
    r"""Recurrent network of the one-shot (meta-learned) classification task (Yu et al. 2024).

    $$z_{t+1} = z_t A + \mathrm{relu}(z_t C + e)\,W + u_t W_{\rm in} + d,\qquad
      \ell_t = \mathrm{relu}(z_{t+1} W_{\rm out})\ \text{(reference) or}\ z_{t+1} W_{\rm out}.$$

    `step(z_t, u_t, noise) -> (z_{t+1}, logits_t)`; the carry is the latent state
    `[latent]`, starting at 0. Noiseless.

    **Arguments:**

    - `n_classes`: C_l (default 5). `n_inputs`: defaults to 2·C_l + 1 = 11 (stimulus, label,
      cue); add one for the 2025 bias channel.
    - `n_latent`: r (default 100). `n_hidden`: c' (default 400). Paper size: P = 91,500 at
      C = 3 (92,100 at C = 5).
    - `logits`: `"relu"` (the reference's relu(z O)) or `"linear"` (our option:
      rectified logits cannot express "this class is less likely than that one" below 0).
    - `key`: PRNG key (required, keyword-only).

    Initialisation (the authors' code): A = 0; C ~ N(0, 1/r); W ~ N(0, 1/c'); W_in (the
    code's B_in) ~ N(0, 1/n_in); W_out (the code's O) ~ N(0, 1/r); e = d = 0.

    ??? cite "Reference"
        Yu et al., NeurIPS 2024 (code: `examples/random_class.ml`).
    """

    A: Float[Array, "latent latent"]
    C: Float[Array, "latent hidden"]
    e: Float[Array, " hidden"]
    W: Float[Array, "hidden latent"]
    W_in: Float[Array, "input latent"]
    d: Float[Array, " latent"]
    W_out: Float[Array, "latent class"]
    n_classes: int = eqx.field(static=True)
    n_inputs: int = eqx.field(static=True)
    n_latent: int = eqx.field(static=True)
    n_hidden: int = eqx.field(static=True)
    logits: str = eqx.field(static=True)

    def __init__(
        self,
        n_classes: int = 5,
        n_inputs: int | None = None,
        n_latent: int = 100,
        n_hidden: int = 400,
        *,
        logits: Literal["relu", "linear"] = "relu",
        key: PRNGKeyArray,
    ):
        c = self.n_classes = check_size(n_classes, "n_classes")
        n_in = self.n_inputs = check_size(2 * c + 1 if n_inputs is None else n_inputs, "n_inputs")
        r = self.n_latent = check_size(n_latent, "n_latent")
        h = self.n_hidden = check_size(n_hidden, "n_hidden")
        self.logits = check_choice(logits, "logits", ("relu", "linear"))
        z_c, z_w, z_in, z_out = normal_blocks(key, [(h, r), (r, h), (r, n_in), (c, r)])
        self.A = jnp.zeros((r, r))
        self.C = z_c.T / math.sqrt(r)
        self.e = jnp.zeros(h)
        self.W = z_w.T / math.sqrt(h)
        self.W_in = z_in.T / math.sqrt(n_in)
        self.d = jnp.zeros(r)
        self.W_out = z_out.T / math.sqrt(r)

    def initial_state(self, key: PRNGKeyArray | None = None) -> Float[Array, " latent"]:
        del key
        return jnp.zeros(self.n_latent, self.A.dtype)

    def rates(self, carry: Float[Array, " latent"]) -> Float[Array, " hidden"]:
        """Hidden-layer activity relu(C z + e)."""
        return jax.nn.relu(carry @ self.C + self.e)

    def step(self, carry, u, noise=None):
        del noise
        z = carry @ self.A + self.rates(carry) @ self.W + u @ self.W_in + self.d
        logits = z @ self.W_out
        if self.logits == "relu":
            logits = jax.nn.relu(logits)
        return z, logits


class MLP(eqx.Module):
    r"""Multilayer perceptron for one example, h_{k+1} = φ(h_k W_k + b_k), linear last layer.

    The MNIST network of the authors' `jax/mnist.py` is the default: 784-100-10 with ReLU,
    P = 79,510. `__call__(x)` maps one example (`[in]`) to its outputs (`[out]`); batch with
    `jax.vmap`.

    **Arguments:**

    - `in_size` (784), `out_size` (10), `hidden_sizes` (`(100,)`).
    - `activation`: as for [`neurodyn.models.RateRNN`][] (default `"relu"`).
    - `key`: PRNG key (required, keyword-only).

    Initialisation (our choice; the reference's is not recorded): He-normal weights
    N(0, 2/fan_in) before a ReLU layer (LeCun N(0, 1/fan_in) for the linear output layer and
    other activations), zero biases.
    """

    weights: tuple[Float[Array, "in out"], ...]
    biases: tuple[Float[Array, " out"], ...]
    sizes: tuple[int, ...] = eqx.field(static=True)
    activation: Callable = eqx.field(static=True)
    activation_name: str = eqx.field(static=True)

    def __init__(
        self,
        in_size: int = 784,
        out_size: int = 10,
        hidden_sizes: Sequence[int] = (100,),
        *,
        activation: str | Callable = "relu",
        key: PRNGKeyArray,
    ):
        if isinstance(hidden_sizes, int) or not isinstance(hidden_sizes, Sequence):
            raise TypeError(f"`hidden_sizes` must be a sequence of ints; got {hidden_sizes!r}.")
        sizes = (
            check_size(in_size, "in_size"),
            *(check_size(h, "hidden_sizes") for h in hidden_sizes),
            check_size(out_size, "out_size"),
        )
        self.sizes = sizes
        self.activation_name, self.activation = resolve_activation(activation)
        normals = normal_blocks(key, list(zip(sizes[1:], sizes[:-1])))
        weights, biases = [], []
        for i, (z, fan_in, fan_out) in enumerate(zip(normals, sizes[:-1], sizes[1:])):
            hidden = i < len(sizes) - 2
            gain = 2.0 if hidden and self.activation_name == "relu" else 1.0
            weights.append(z.T * math.sqrt(gain / fan_in))
            biases.append(jnp.zeros(fan_out))
        self.weights, self.biases = tuple(weights), tuple(biases)

    def __call__(self, x: Float[Array, " in"]) -> Float[Array, " out"]:
        if jnp.shape(x) != (self.sizes[0],):
            raise ValueError(
                f"`x` must be one example of shape ({self.sizes[0]},); got {jnp.shape(x)}. "
                "Batch examples with jax.vmap."
            )
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = x @ w + b
            if i < len(self.weights) - 1:
                x = self.activation(x)
        return x

    def trainable(self) -> bool:
        """Filter spec: `True` (every weight and bias is trained).

        A plain bool rather than an MLP-shaped pytree of bools: the MLP is callable, and the
        optimizers read a callable spec as a filter function.
        """
        return True

    @property
    def n_params(self) -> int:
        """P, the number of trained scalars."""
        return count_params(self, self.trainable())
