"""The leaky firing-rate network with biological constraints."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import ClassVar, Literal, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .._validation import check_choice, check_real, check_size, check_time_constants
from ._activations import resolve_activation
from ._base import AbstractRecurrentModel
from ._constraints import (
    apply_dale,
    balance_dale,
    connectivity_mask,
    dale_signs,
    n_excitatory,
    scale_to_spectral_radius,
)
from ._init import normal_blocks

PARAMETER_NAMES: tuple[str, ...] = ("W", "W_in", "b", "W_out", "b_out", "x0")
"""Names of the parameters a `RateRNN` may train (those `frozen=` accepts)."""

READOUTS: tuple[str, ...] = ("all", "excitatory")


class RateRNNWeights(NamedTuple):
    """The effective (constrained) weights of a [`neurodyn.models.RateRNN`][].

    Row convention (rows are presynaptic): `W` is `(neuron_pre, neuron_post)`, `W_in`
    `(input, neuron)`, `W_out` `(neuron, output)`, `F` `(output, neuron)`; `b`, `b_out`, `F`
    are `None` when absent.
    """

    W: Float[Array, "pre post"]
    W_in: Float[Array, "input neuron"]
    b: Float[Array, " neuron"] | None
    W_out: Float[Array, "neuron output"]
    b_out: Float[Array, " output"] | None
    F: Float[Array, "output neuron"] | None


class RateRNN(AbstractRecurrentModel):
    r"""Leaky firing-rate network, one trial at a time (batch with `jax.vmap`).

    $$\tau\,\dot x = -x + r\,W + u\,W_{\rm in} + b\;[+\,y\,F]\;+\text{noise},\qquad
      r = \eta\odot\phi(x),\qquad y = r\,W_{\rm out} + b_{\rm out},$$

    discretised with forward Euler, α = dt/τ:

    $$x_{t+1} = x_t + \alpha\,\big(-x_t + r_t W + u_t W_{\rm in} + b + y_{t-1} F\big)
      + \sigma\sqrt{1-(1-\alpha)^2}\;\xi_t,\qquad y_t = r_{t+1} W_{\rm out} + b_{\rm out}.$$

    `step(x_t, u_t, noise_t) -> (x_{t+1}, y_t)`: the output of step t reads the *updated*
    state, so y_t depends on u_0 … u_t (one Euler step of latency, as a filter should), and the
    carry is the state vector x alone (`[neuron]`). The feedback term F y_{t-1} is
    (r_t W_out + b_out) F, recomputed from the current rates, so it needs no extra carry.

    **Conventions.**

    - *Rows are presynaptic* (the row-vector convention of the authors' code): `r @ W` with
      `W` of shape `(N_pre, N_post)`, `W_in (n_in, N)`, `W_out (N, n_out)`, `F (n_out, N)`.
      Measured reason: SOFO pushes K tangents through these products, and in this
      orientation both the state tangents `[K, B, N] @ W` and the weight tangents (laid out
      `[N_pre, K, N_post]` by SOFO) are plain GEMMs whose outputs need no transpose; the
      column convention `W @ r` ran the SOFO step of a 128-unit network 3–4× slower
      (`benchmarks/step_cost.py`).
    - *Dale's law* (`excitatory_fraction`): the first round(f·N) neurons are excitatory and
      the rest inhibitory; the free parameter `W` is mapped to |W| ⊙ sign(pre) in
      [`neurodyn.models.RateRNN.weights`][] (the only place constraints are applied). The sign
      vector is an `int8` array, so no optimizer can change it; signs therefore hold after
      any update. External inputs (`W_in`) and the readout are not constrained (they are not
      synapses of this population); `readout_from="excitatory"` restricts the readout to the
      excitatory neurons, as projection neurons are excitatory.
    - *Additive process noise* (`noise_std` = σ): each step adds σ√(1−(1−α)²) ξ,
      ξ ~ N(0, 1). For the leak alone this makes the stationary variance of x exactly σ²
      for every dt (the Euler map x ← (1−α)x + sξ has variance s²/(1−(1−α)²)); it tends to
      σ√(2 dt/τ) ξ, the Euler–Maruyama discretisation of an Ornstein–Uhlenbeck process with
      stationary std σ, as dt → 0. σ is in the units of x. The same convention as the
      Kalman task's latent process.
    - *Multiplicative rate noise* (`rate_noise` = σ_n, as in the authors' motor RNN):
      r = η ⊙ φ(x) with η ~ U(1−σ_n, 1+σ_n) clipped at 0, independent per time step and unit.
      The same noisy rates drive the recurrence, the readout and the feedback. `rates(carry)`
      returns the noiseless φ(x).
    - Noise comes from `sample_noise(key, n_steps)`, outside the differentiated step;
      `step(..., noise=None)` runs the noiseless network.

    **Arguments:**

    - `n_neurons`, `n_inputs`, `n_outputs`: sizes N, n_in, n_out (`n_inputs = 0` is an
      autonomous network).
    - `tau`, `dt`: time constant and Euler step, in any one unit (only dt/τ enters);
      0 < dt <= tau.
    - `activation`: `"tanh"`, `"relu"`, `"softplus"`, `"rectified_tanh"` (`"retanh"`),
      `"sigmoid"`, `"linear"`, or any elementwise callable.
    - `excitatory_fraction`: fraction f ∈ [0, 1] of excitatory neurons (e.g. 0.8), or
      `None` (no Dale's law).
    - `spectral_radius`: the spectral radius of the effective W at initialisation (≥ 0): the
      random matrix is rescaled exactly to it (eigenvalues computed once, on the host). With
      Dale's law the matrix is balanced first (each row sums to zero, see
      [`neurodyn.models.balanced_dale_weights`][]). `None` skips the eigendecomposition and
      leaves entries of scale N(0, 1/(pN)) (radius ≈ 1 for large N without Dale).
    - `connectivity`: probability p ∈ (0, 1] that each recurrent synapse exists.
    - `mask`: explicit boolean `(N, N)` mask of allowed synapses, `mask[pre, post]` (combined with
      `connectivity`). `self_connections=False` removes autapses. Absent synapses are zero in
      `weights()` and untrained: `trainable()` gives W a boolean-array leaf, so SOFO never even
      perturbs them.
    - `noise_std`: σ ≥ 0, stationary std of the additive process noise (see above).
    - `rate_noise`: σ_n ≥ 0, half-width of the multiplicative rate noise.
    - `learn_initial_state`: train x0 (shared by all trials, initialised at 0).
    - `initial_state_std`: std of a per-trial Gaussian perturbation of the initial state
      (x_0 = x0 + std·N(0, I), with x0 = 0 unless learnt); needs a key in `initial_state`.
    - `bias`, `readout_bias`: include b and b_out.
    - `readout_from`: `"all"` or `"excitatory"` (Dale's law only).
    - `feedback`: `False`, `True` (a fixed F with entries U(−1, 1), as in the authors'
      flip-flop nets) or an `(n_out, N)` array; x receives y_{t−1} F. F is never trained.
    - `frozen`: names among `"W"`, `"W_in"`, `"b"`, `"W_out"`, `"b_out"`, `"x0"` that are
      not trained (no tangents, no gradients).
    - `key`: PRNG key for the initialisation (required, keyword-only).

    Initialisation: W as described under `spectral_radius`; W_in ~ N(0, 1/n_in) (unit-scale
    drive for unit-variance inputs); W_out ~ N(0, 1/N_read) over the N_read neurons read out;
    b = b_out = x0 = 0.

    **Raises:** `ValueError`/`TypeError` naming the argument for bad sizes, `dt <= 0`,
    `dt > tau`, `excitatory_fraction` outside [0, 1], a negative `spectral_radius` or noise
    std, an unknown activation (the message lists the accepted names), a bad mask or feedback
    shape, unknown `frozen` names, or `readout_from="excitatory"` without excitatory neurons.

    **Example:**

    ```python
    import jax.random as jr
    import neurodyn as nd

    net = nd.models.RateRNN(
        200, 3, 2, tau=20.0, dt=2.0, activation="relu", excitatory_fraction=0.8,
        spectral_radius=0.9, noise_std=0.1, key=jr.PRNGKey(0),
    )
    opt = nd.optim.sofo(n_tangents=128, learning_rate=0.1)
    state = opt.init(net, net.trainable())  # always pass net.trainable() to optimizers
    ```

    ??? cite "References"
        Song, Yang & Wang, *Training excitatory-inhibitory recurrent neural networks for
        cognitive tasks: a simple and flexible framework*, PLoS Comput. Biol. 12 (2016).
        Yu, Xia, Ma, Lengyel & Hennequin, *Second-order forward-mode optimization of
        recurrent neural networks for neuroscience*, NeurIPS 2024.
    """

    W: Float[Array, "pre post"]
    W_in: Float[Array, "input neuron"]
    b: Float[Array, " neuron"] | None
    W_out: Float[Array, "neuron output"]
    b_out: Float[Array, " output"] | None
    x0: Float[Array, " neuron"] | None
    F: Float[Array, "output neuron"] | None
    signs: Int[Array, " neuron"] | None
    recurrent_mask: Bool[Array, "pre post"] | None

    n_neurons: int = eqx.field(static=True)
    n_inputs: int = eqx.field(static=True)
    n_outputs: int = eqx.field(static=True)
    tau: float = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    activation: Callable = eqx.field(static=True)
    activation_name: str = eqx.field(static=True)
    excitatory_fraction: float | None = eqx.field(static=True)
    noise_std: float = eqx.field(static=True)
    rate_noise: float = eqx.field(static=True)
    initial_state_std: float = eqx.field(static=True)
    readout_from: str = eqx.field(static=True)
    frozen: tuple[str, ...] = eqx.field(static=True)

    linear_readout: ClassVar[bool] = True
    """Outputs are `rates(state) @ W_out (+ b_out)`: what FORCE's online least squares
    trains (`nd.optim.force`)."""

    def __init__(
        self,
        n_neurons: int = 100,
        n_inputs: int = 1,
        n_outputs: int = 1,
        *,
        tau: float = 10.0,
        dt: float = 1.0,
        activation: str | Callable = "tanh",
        excitatory_fraction: float | None = None,
        spectral_radius: float | None = 0.9,
        connectivity: float = 1.0,
        mask: Bool[Array, "neuron neuron"] | None = None,
        self_connections: bool = True,
        noise_std: float = 0.0,
        rate_noise: float = 0.0,
        learn_initial_state: bool = False,
        initial_state_std: float = 0.0,
        bias: bool = True,
        readout_bias: bool = True,
        readout_from: Literal["all", "excitatory"] = "all",
        feedback: bool | Float[Array, "neuron output"] = False,
        frozen: Sequence[str] = (),
        key: PRNGKeyArray,
    ):
        n = self.n_neurons = check_size(n_neurons, "n_neurons")
        self.n_inputs = check_size(n_inputs, "n_inputs", minimum=0)
        self.n_outputs = check_size(n_outputs, "n_outputs")
        self.tau, self.dt = check_time_constants(tau, dt)
        self.activation_name, self.activation = resolve_activation(activation)
        if excitatory_fraction is not None:
            excitatory_fraction = check_real(
                excitatory_fraction, "excitatory_fraction", minimum=0.0, maximum=1.0
            )
        self.excitatory_fraction = excitatory_fraction
        if spectral_radius is not None:
            spectral_radius = check_real(spectral_radius, "spectral_radius", minimum=0.0)
        connectivity = check_real(
            connectivity, "connectivity", minimum=0.0, maximum=1.0, strict_minimum=True
        )
        self.noise_std = check_real(noise_std, "noise_std", minimum=0.0)
        self.rate_noise = check_real(rate_noise, "rate_noise", minimum=0.0)
        self.initial_state_std = check_real(initial_state_std, "initial_state_std", minimum=0.0)
        self.readout_from = check_choice(readout_from, "readout_from", READOUTS)
        if isinstance(frozen, str):
            frozen = (frozen,)
        unknown = [name for name in frozen if name not in PARAMETER_NAMES]
        if unknown:
            raise ValueError(
                f"`frozen` must name parameters among {PARAMETER_NAMES} (F, the Dale signs and "
                f"the masks are always fixed); got unknown {unknown}."
            )
        self.frozen = tuple(dict.fromkeys(frozen))
        if mask is not None:
            if not hasattr(mask, "dtype") or mask.dtype != bool or mask.shape != (n, n):
                raise ValueError(
                    f"`mask` must be a boolean array of shape (n_neurons, n_neurons) = ({n}, {n});"
                    f" got {getattr(mask, 'dtype', type(mask).__name__)} "
                    f"{getattr(mask, 'shape', '')}."
                )
            mask = jnp.asarray(mask).T  # built below in (post, pre) form, stored transposed

        k_normal, k_mask, k_fb = jr.split(key, 3)
        z_rec, z_in, z_out = normal_blocks(
            k_normal, [(n, n), (n, self.n_inputs), (self.n_outputs, n)]
        )
        # construction in (post, pre) form; every array is transposed once at the end
        recurrent_mask = connectivity_mask(
            k_mask, n, connectivity=connectivity, mask=mask, self_connections=self_connections
        )
        self.recurrent_mask = None if recurrent_mask is None else recurrent_mask.T
        if excitatory_fraction is None:
            if readout_from == "excitatory":
                raise ValueError(
                    '`readout_from="excitatory"` needs Dale\'s law: set `excitatory_fraction`.'
                )
            self.signs = None
            present = recurrent_mask
            density = 1.0 if present is None else jnp.maximum(jnp.mean(present), 1.0 / n)
            W = z_rec / jnp.sqrt(density * n)
            if present is not None:
                W = jnp.where(present, W, 0.0)
        else:
            self.signs = dale_signs(n, excitatory_fraction)
            if readout_from == "excitatory" and n_excitatory(n, excitatory_fraction) == 0:
                raise ValueError(
                    '`readout_from="excitatory"` needs at least one excitatory neuron; '
                    f"excitatory_fraction = {excitatory_fraction} gives none of {n}."
                )
            W = balance_dale(z_rec, self.signs, recurrent_mask)
        if spectral_radius is not None:
            W = scale_to_spectral_radius(W, spectral_radius)
        # Dale: store the free parameter with |W_free| = |W|, so weights() returns W itself.
        self.W = (W if self.signs is None else jnp.abs(W)).T

        self.W_in = (z_in / math.sqrt(max(self.n_inputs, 1))).T
        if readout_from == "excitatory":
            n_read = n_excitatory(n, excitatory_fraction)
            read = np.arange(n) < n_read
            self.W_out = (z_out * read / math.sqrt(n_read)).T
        else:
            self.W_out = (z_out / math.sqrt(n)).T
        self.b = jnp.zeros(n) if bias else None
        self.b_out = jnp.zeros(self.n_outputs) if readout_bias else None
        self.x0 = jnp.zeros(n) if learn_initial_state else None

        if feedback is True:
            self.F = jr.uniform(k_fb, (self.n_outputs, n), minval=-1.0, maxval=1.0)
        elif feedback is False or feedback is None:
            self.F = None
        else:
            if not hasattr(feedback, "shape") or tuple(feedback.shape) != (self.n_outputs, n):
                raise ValueError(
                    "`feedback` must be a bool or an array of shape (n_outputs, n_neurons) = "
                    f"({self.n_outputs}, {n}); got {getattr(feedback, 'shape', feedback)!r}."
                )
            self.F = jnp.asarray(feedback, self.W.dtype)

    # ------------------------------------------------------------------ constraints

    @property
    def n_excitatory(self) -> int:
        """Number of excitatory neurons (all N without Dale's law)."""
        if self.excitatory_fraction is None:
            return self.n_neurons
        return n_excitatory(self.n_neurons, self.excitatory_fraction)

    def _readout_mask(self) -> Bool[Array, "neuron output"] | None:
        if self.readout_from == "all":
            return None
        excitatory = jax.lax.stop_gradient(self.signs) > 0
        return jnp.broadcast_to(excitatory[:, None], (self.n_neurons, self.n_outputs))

    def weights(self) -> RateRNNWeights:
        """The effective weights: the one place where the free parameters are constrained.

        W = (|W_free| ⊙ sign(pre), row-wise, under Dale's law, else W_free) ⊙ mask; W_out is
        zeroed on inhibitory neurons when `readout_from="excitatory"`; the fixed arrays (signs,
        masks, F) enter under `stop_gradient`.
        """
        W = self.W
        if self.signs is not None:
            W = apply_dale(W, self.signs)
        if self.recurrent_mask is not None:
            W = jnp.where(jax.lax.stop_gradient(self.recurrent_mask), W, 0.0)
        W_out = self.W_out
        readout_mask = self._readout_mask()
        if readout_mask is not None:
            W_out = jnp.where(readout_mask, W_out, 0.0)
        F = None if self.F is None else jax.lax.stop_gradient(self.F)
        return RateRNNWeights(W, self.W_in, self.b, W_out, self.b_out, F)

    def trainable(self):
        """Filter spec: every free parameter not in `frozen`; W with a boolean-array leaf
        (the existing synapses) when a connectivity mask applies, W_out with one (the
        excitatory columns) for `readout_from="excitatory"`; F, signs and masks never.

        Call it outside `jit` and close over the result: the optimizers count the trained
        entries of the boolean leaves at trace time, so they must be concrete arrays.
        """
        spec = jax.tree.map(lambda _: False, self)
        names, values = [], []
        for name in PARAMETER_NAMES:
            if getattr(self, name) is None or name in self.frozen:
                continue
            value = True
            if name == "W" and self.recurrent_mask is not None:
                value = self.recurrent_mask
            elif name == "W_out" and self.readout_from == "excitatory":
                value = self._readout_mask()
            names.append(name)
            values.append(value)
        if not names:
            return spec
        return eqx.tree_at(lambda s: [getattr(s, name) for name in names], spec, values)

    # ------------------------------------------------------------------ dynamics

    def initial_state(self, key: PRNGKeyArray | None = None) -> Float[Array, " neuron"]:
        """x_0 = x0 (learnt, or 0) + `initial_state_std`·N(0, I) (the latter needs `key`)."""
        x = jnp.zeros(self.n_neurons, self.W.dtype) if self.x0 is None else self.x0
        if self.initial_state_std > 0:
            if key is None:
                raise ValueError(
                    "`initial_state` needs a `key`: this network draws a random initial state "
                    f"(initial_state_std = {self.initial_state_std})."
                )
            x = x + self.initial_state_std * jr.normal(key, (self.n_neurons,), self.W.dtype)
        return x

    def sample_noise(self, key: PRNGKeyArray, n_steps: int) -> dict[str, Array] | None:
        """Every noise sample of one trial (time-major), or `None` for a noiseless network.

        `"process"`: ξ `[time, neuron]` ~ N(0, 1) (when `noise_std > 0`). `"rate_now"` /
        `"rate_next"`: η at the current and the next state `[time, neuron]`, overlapping
        slices of one draw of T+1 i.i.d. clipped-uniform factors (when `rate_noise > 0`), so
        that the rates of x_{t+1} read out at step t are the very rates that drive step t+1.
        """
        if self.noise_std == 0 and self.rate_noise == 0:
            return None
        k_process, k_rate = jr.split(key)
        dtype = self.W.dtype
        noise = {}
        if self.noise_std > 0:
            noise["process"] = jr.normal(k_process, (n_steps, self.n_neurons), dtype)
        if self.rate_noise > 0:
            eta = jr.uniform(
                k_rate,
                (n_steps + 1, self.n_neurons),
                dtype,
                minval=1.0 - self.rate_noise,
                maxval=1.0 + self.rate_noise,
            )
            eta = jnp.maximum(eta, 0.0)
            noise["rate_now"] = eta[:-1]
            noise["rate_next"] = eta[1:]
        return noise

    def confine_noise(self, noise: dict[str, Array] | None, keep) -> dict[str, Array] | None:
        """One trial's noise (from `sample_noise`) with every sample outside the steps where
        `keep` (bool `[time]`) is True set to its neutral value: ξ = 0 and η = 1, so those
        steps run as without noise. η of state s counts as step s's noise (`rate_next[t]` is
        η of state t + 1, so it is kept where `keep[t + 1]` is; the last one with
        `keep[-1]`). Used to find when in a trial the noise acts (e.g.
        `ReachTask.endpoint_scatter_by_phase`)."""
        if noise is None:
            return None
        keep = jnp.asarray(keep, bool)
        keep_next = jnp.concatenate([keep[1:], keep[-1:]])
        out = dict(noise)
        if "process" in out:
            out["process"] = jnp.where(keep[:, None], out["process"], 0.0)
        if "rate_now" in out:
            out["rate_now"] = jnp.where(keep[:, None], out["rate_now"], 1.0)
            out["rate_next"] = jnp.where(keep_next[:, None], out["rate_next"], 1.0)
        return out

    def rates(self, carry: Float[Array, " neuron"]) -> Float[Array, " neuron"]:
        """Noiseless firing rates φ(x)."""
        return self.activation(carry)

    def readout(self, carry: Float[Array, " neuron"]) -> Float[Array, " output"]:
        """Noiseless output W_out φ(x) + b_out of a state."""
        return self._output(self.weights(), self.activation(carry))

    @staticmethod
    def _output(w: RateRNNWeights, r):
        y = r @ w.W_out
        return y if w.b_out is None else y + w.b_out

    def _noisy_rates(self, x, noise, which):
        r = self.activation(x)
        if noise is not None and which in noise:
            r = noise[which] * r
        return r

    @property
    def process_noise_scale(self) -> float:
        """Std of the noise added per Euler step: σ√(1−(1−α)²), α = dt/τ."""
        alpha = self.dt / self.tau
        return self.noise_std * math.sqrt(1.0 - (1.0 - alpha) ** 2)

    def step(
        self,
        carry: Float[Array, " neuron"],
        u: Float[Array, " input"],
        noise: dict[str, Array] | None = None,
    ) -> tuple[Float[Array, " neuron"], Float[Array, " output"]]:
        """One Euler step: `(x_t, u_t, noise_t) -> (x_{t+1}, y_t)` (see the class docstring)."""
        if jnp.shape(u) != (self.n_inputs,):
            raise ValueError(
                f"`u` must be one trial's input of shape (n_inputs,) = ({self.n_inputs},); got "
                f"{jnp.shape(u)}. Batch trials with jax.vmap."
            )
        w = self.weights()
        x = carry
        alpha = self.dt / self.tau
        r = self._noisy_rates(x, noise, "rate_now")
        # Row convention r @ W (see the class docstring): under vmap over trials and K
        # tangents these are GEMMs whose outputs already have the [K, B, N] layout.
        drive = r @ w.W + u @ w.W_in
        if w.b is not None:
            drive = drive + w.b
        if w.F is not None:
            drive = drive + self._output(w, r) @ w.F
        x = x + alpha * (drive - x)
        if noise is not None and "process" in noise:
            x = x + self.process_noise_scale * noise["process"]
        y = self._output(w, self._noisy_rates(x, noise, "rate_next"))
        return x, y
