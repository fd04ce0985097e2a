"""The paper's recurrent networks: the Kalman leaky-ReLU net and three `RateRNN`
configurations — the motor controller, the flip-flop net, the reservoir.

The networks of Yu et al. (2024) as the authors' code builds them. Like that code, these
networks use row vectors (`z W`, rows presynaptic), the convention of
[`neurodyn.models.RateRNN`][] (see there for the measured reason).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from .._validation import check_real, check_size, check_time_constants
from ._base import AbstractRecurrentModel
from ._init import normal_blocks, uniform_blocks
from ._rate_rnn import RateRNN


class KalmanRNNState(NamedTuple):
    """Carry of [`neurodyn.models.KalmanRNN`][]: the rates `z` and whether no step was taken."""

    z: Float[Array, " neuron"]
    first: Bool[Array, ""]


class KalmanRNN(AbstractRecurrentModel):
    r"""Leaky ReLU network of the adaptive Kalman filtering task (Yu et al. 2024).

    $$z_0 = \mathrm{relu}(y_0 W_{\rm in} + b),\qquad
      z_t = (1-\alpha)\,z_{t-1} + \alpha\,\mathrm{relu}(z_{t-1} W + y_t W_{\rm in} + b),
      \qquad \hat x_t = z_t W_{\rm out} .$$

    The first step is the leaky update with leak 1 from z = 0 (the reference "starts from
    z = 0" without the α factor); the carry [`neurodyn.models.KalmanRNNState`][] `(z, first)`
    records it (`first` is boolean, so it gets no tangents). `step(carry, y_t, noise)` returns
    `(carry, x̂_t)`: the estimate uses y_0 … y_t (filtering). Noiseless.

    **Arguments:**

    - `n_neurons`: N (default 100: P = 10,300). `n_inputs`: the observation dimension
      (default 1); `n_outputs` must equal it (the readout is initialised to repeat the
      observation).
    - `alpha`: leak α ∈ (0, 1] (default 0.25).
    - `key`: PRNG key (required, keyword-only).

    Initialisation (the authors' code): W ~ N(0, 1/N) (the code's C); W_in ~ N(0, 1) (its
    b); b = 0 (its e); W_out = pinv(W_in), which for one observation is bᵀ/‖b‖²: the readout inverts
    the input projection (W_in W_out = I), the reference's "repeat the observation"
    initialisation. It
    is exact for a linear network; through the ReLU about half of the projection passes, so
    x̂ starts near a scaled copy of the observation.

    ??? cite "Reference"
        Yu et al., NeurIPS 2024 (code: `examples/kalman_rnn_no_gain.ml`).
    """

    W: Float[Array, "pre post"]
    W_in: Float[Array, "input neuron"]
    b: Float[Array, " neuron"]
    W_out: Float[Array, "neuron output"]
    n_neurons: int = eqx.field(static=True)
    n_inputs: int = eqx.field(static=True)
    n_outputs: int = eqx.field(static=True)
    alpha: float = eqx.field(static=True)

    def __init__(
        self,
        n_neurons: int = 100,
        n_inputs: int = 1,
        n_outputs: int = 1,
        *,
        alpha: float = 0.25,
        key: PRNGKeyArray,
    ):
        n = self.n_neurons = check_size(n_neurons, "n_neurons")
        self.n_inputs = check_size(n_inputs, "n_inputs")
        self.n_outputs = check_size(n_outputs, "n_outputs")
        if self.n_outputs != self.n_inputs:
            raise ValueError(
                "`n_outputs` must equal `n_inputs` (the readout is initialised to repeat the "
                f"observation); got n_inputs = {n_inputs}, n_outputs = {n_outputs}."
            )
        self.alpha = check_real(alpha, "alpha", minimum=0.0, maximum=1.0, strict_minimum=True)
        z_w, z_in = normal_blocks(key, [(n, n), (self.n_inputs, n)])
        self.W = z_w / math.sqrt(n)
        self.W_in = z_in
        self.b = jnp.zeros(n)
        self.W_out = jnp.linalg.pinv(self.W_in)

    def initial_state(self, key: PRNGKeyArray | None = None) -> KalmanRNNState:
        del key
        return KalmanRNNState(jnp.zeros(self.n_neurons, self.W.dtype), jnp.array(True))

    def rates(self, carry: KalmanRNNState) -> Float[Array, " neuron"]:
        return carry.z

    def step(self, carry: KalmanRNNState, u: Float[Array, " input"], noise=None):
        del noise
        z, first = carry
        leak = jnp.where(first, 1.0, self.alpha)
        z = (1.0 - leak) * z + leak * jax.nn.relu(z @ self.W + u @ self.W_in + self.b)
        return KalmanRNNState(z, jnp.zeros_like(first)), z @ self.W_out


def motor_rnn(
    n_inputs: int = 3,
    n_feedback: int = 4,
    n_outputs: int = 2,
    n_neurons: int = 64,
    *,
    tau: float = 0.02,
    dt: float = 0.002,
    rate_noise: float | None = None,
    key: PRNGKeyArray,
) -> RateRNN:
    r"""The motor-cortex controller of the reaching tasks (Yu et al. 2024), as a `RateRNN`.

    N = 64 ReLU units, τ = 20 ms, dt = 2 ms (times in seconds), multiplicative rate noise with
    σ_n = 0.2·√(τ/dt) ≈ 0.632, a learnt initial state shared by all trials (initialised at 0),
    a recurrent bias and a linear readout without bias (torques). The input vector is the task
    inputs followed by the arm feedback (joint angles and angular velocities); a closed-loop
    module concatenates them. Standalone, the network takes any input of size
    `n_inputs + n_feedback`.

    Initialisation (the authors' code): W ~ randn·0.5/N (spectral radius ≈ 0.06); task-input weights
    randn·0.1/√n_inputs; feedback weights N(0, 0.1²); readout randn·0.1/N; bias = x0 = 0.
    P = 4800 with 3 task inputs (single reach), 4992 with 6 (double reach).

    **Arguments:** `n_inputs` (task inputs, 3), `n_feedback` (arm feedback, 4), `n_outputs`
    (torques, 2), `n_neurons` (64), `tau`, `dt`, `rate_noise` (σ_n; `None` for
    0.2·√(τ/dt)), `key`.

    **Returns:** a [`neurodyn.models.RateRNN`][]; `step` returns `(x, torques)`, the carry is
    the state `[neuron]`.
    """
    n_inputs = check_size(n_inputs, "n_inputs", minimum=0)
    n_feedback = check_size(n_feedback, "n_feedback", minimum=0)
    n = check_size(n_neurons, "n_neurons")
    tau, dt = check_time_constants(tau, dt)
    if rate_noise is None:
        rate_noise = 0.2 * math.sqrt(tau / dt)  # the authors' code
    k_net, k_init = jr.split(key)
    net = RateRNN(
        n,
        n_inputs + n_feedback,
        n_outputs,
        tau=tau,
        dt=dt,
        activation="relu",
        spectral_radius=None,
        rate_noise=rate_noise,
        learn_initial_state=True,
        bias=True,
        readout_bias=False,
        key=k_net,
    )
    z_w, z_in, z_fb, z_out = normal_blocks(
        k_init, [(n, n), (n, n_inputs), (n, n_feedback), (net.n_outputs, n)]
    )
    W = z_w * (0.5 / n)
    W_in = jnp.concatenate([z_in * (0.1 / math.sqrt(max(n_inputs, 1))), 0.1 * z_fb], axis=1)
    W_out = z_out * (0.1 / n)
    return eqx.tree_at(lambda m: (m.W, m.W_in, m.W_out), net, (W.T, W_in.T, W_out.T))


def flip_flop_rnn(
    n_bits: int = 3,
    n_neurons: int = 128,
    *,
    tau: float = 10.0,
    dt: float = 1.0,
    gain: float = 0.5,
    key: PRNGKeyArray,
) -> RateRNN:
    r"""The small trained flip-flop network (the authors' code), as a `RateRNN`.

    z ← z + (dt/τ)(−z + J φ(z) + b + F W_out φ(z) + B_in u), o = W_out φ(z), with N = 128
    ReLU units, τ = 10 steps, dt = 1. Trained: J and its bias row (`W`, `b`), B_in (`W_in`)
    and the readout (`W_out`, no bias); fixed: the feedback F. z_0 = 0.1·N(0, I) per trial.

    Initialisation (the authors' code): W, b ~ N(0, g²/N) with g = `gain` = 0.5; W_in, F ~ U(−1, 1);
    W_out ~ N(0, 1/N). P = 17,280 for 3 bits.

    **Returns:** a [`neurodyn.models.RateRNN`][] with `feedback`; the carry is the state.
    """
    n_bits = check_size(n_bits, "n_bits")
    n = check_size(n_neurons, "n_neurons")
    gain = check_real(gain, "gain", minimum=0.0)
    k_net, k_normal, k_uniform = jr.split(key, 3)
    net = RateRNN(
        n,
        n_bits,
        n_bits,
        tau=tau,
        dt=dt,
        activation="relu",
        spectral_radius=None,
        initial_state_std=0.1,
        bias=True,
        readout_bias=False,
        feedback=True,
        key=k_net,
    )
    z_w, z_b, z_out = normal_blocks(k_normal, [(n, n), (n,), (n_bits, n)])
    W = z_w * (gain / math.sqrt(n))
    b = z_b * (gain / math.sqrt(n))
    (W_in,) = uniform_blocks(k_uniform, [(n, n_bits)])
    W_out = z_out / math.sqrt(n)
    return eqx.tree_at(lambda m: (m.W, m.b, m.W_in, m.W_out), net, (W.T, b, W_in.T, W_out.T))


def reservoir_rnn(
    n_bits: int = 3,
    n_neurons: int = 1000,
    *,
    tau: float = 10.0,
    dt: float = 1.0,
    gain: float = 0.5,
    key: PRNGKeyArray,
) -> RateRNN:
    r"""The reservoir of the authors' FORCE comparison, as a `RateRNN`.

    z ← z + (dt/τ)(−z + J tanh(z) + F W_out tanh(z) + B_in u), o = W_out tanh(z), with
    N = 1000, τ = 10 steps, dt = 1. Only the readout `W_out` is trained (P = 3000 for 3
    bits); J (`W`), B_in (`W_in`) and F are fixed; no biases. z_0 = 0.1·N(0, I) per trial.

    Initialisation (the authors' code): J ~ N(0, g²/N) with g = `gain` = 0.5 (the reference;
    1.5 is FORCE's chaotic regime, Sussillo & Abbott 2009); B_in, F ~ U(−1, 1); W_out = 0.

    **Returns:** a [`neurodyn.models.RateRNN`][] with `feedback` and `frozen=("W", "W_in")`.
    """
    n_bits = check_size(n_bits, "n_bits")
    n = check_size(n_neurons, "n_neurons")
    gain = check_real(gain, "gain", minimum=0.0)
    k_net, k_w, k_in = jr.split(key, 3)
    net = RateRNN(
        n,
        n_bits,
        n_bits,
        tau=tau,
        dt=dt,
        activation="tanh",
        spectral_radius=None,
        initial_state_std=0.1,
        bias=False,
        readout_bias=False,
        feedback=True,
        frozen=("W", "W_in"),
        key=k_net,
    )
    (z_w,) = normal_blocks(k_w, [(n, n)])
    W = z_w * (gain / math.sqrt(n))
    (W_in,) = uniform_blocks(k_in, [(n, n_bits)])
    W_out = jnp.zeros((n_bits, n))
    return eqx.tree_at(lambda m: (m.W, m.W_in, m.W_out), net, (W.T, W_in.T, W_out.T))
