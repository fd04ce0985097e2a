r"""Adaptive Kalman filtering over a long horizon: meta-learned filtering with context switches.

The paper's adaptive Kalman-filter task (Yu et al. 2024). A 1-D latent drifts towards a
context-dependent mean and is observed in noise; the context (τ, b, β) changes at random
times, so a network that filters well must infer the current parameters from the
observations and re-adapt after every switch.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from ..optim import mse
from ._base import (
    AbstractTask,
    Batch,
    check_positive_int,
    check_size,
    register,
    select_hyperparameters,
)
from ._kalman_filter import (
    consistent_random_filter,
    oracle_filter,
    process_noise_variance,
    random_parameter_filter,
)
from ._metrics import load_eval_set, rollout_outputs

# Hyperparameters (the paper's size: the authors' reference code, converted in
# docs/concepts/sofo-conventions.md; the CPU size was tuned with benchmarks/task_results.py on
# a 2-core CPU — see benchmarks/results/task_results.md).
_HYPERPARAMETERS = {
    "cpu": {
        # T = 1000 keeps the CPU default a run of minutes on 2 cores at K = B = 32 (step costs
        # in docs/benchmarks.md). λ = 1e-5 beat the reference's 1e-3 here; see
        # benchmarks/results/task_results.md for the comparison and what it reaches.
        # η = 0.3 is 6× the converted reference η (0.05, see the paper row): with λ = 1e-5 and
        # K = B = 32 it reached the success level on every seed tried
        # (benchmarks/results/time_to_solution.md); a sweep around 0.05 did not fit issue 18's
        # CPU budget (docs/concepts/sofo-conventions.md).
        "sofo": {
            "n_iters": 500,
            "batch_size": 32,
            "learning_rate": 0.3,
            "n_tangents": 32,
            "damping": 1e-5,
        },
        "adam": {"n_iters": 2000, "batch_size": 32, "learning_rate": 1e-3},
        "fgd": {"n_iters": 2000, "batch_size": 32, "learning_rate": 1e-4, "n_tangents": 32},
        "first-order-sofo": {
            "n_iters": 2000,
            "batch_size": 32,
            "learning_rate": 0.1,
            "n_tangents": 32,
        },
    },
    "paper": {
        # The authors' reference code: K = 128, B = 256, λ = 1e-3, 2000 iterations. Both step
        # sizes are η = 0.05 in our consistent convention: c5d617e's 0.05 ("ocaml2024", factor
        # d = 1) and 3c62b01's 0.1 ("ocaml2025", factor B·d/K = 256/128 = 2); see
        # docs/concepts/sofo-conventions.md. (This row said 0.1 before, from a wrong factor.)
        "sofo": {
            "n_iters": 2000,
            "batch_size": 256,
            "learning_rate": 0.05,
            "n_tangents": 128,
            "damping": 1e-3,
        },
        "adam": {"n_iters": 2000, "batch_size": 256, "learning_rate": 1e-3},
        "fgd": {"n_iters": 2000, "batch_size": 256, "learning_rate": 1e-4, "n_tangents": 128},
        "first-order-sofo": {
            "n_iters": 2000,
            "batch_size": 256,
            "learning_rate": 0.1,
            "n_tangents": 128,
        },
    },
}


def sample_kalman_trials(
    *,
    key,
    batch_size: int,
    n_steps: int,
    hold: int = 100,
    hazard: float = 0.01,
    tau_range: tuple[float, float] = (1.0, 10.0),
    bias_range: tuple[float, float] = (-3.0, 3.0),
    beta_range: tuple[float, float] = (0.1, 3.0),
    sigma: float = 1.0,
    dtype=None,
) -> dict[str, jax.Array]:
    r"""Latents, observations and contexts of `batch_size` trials, jittable.

    Every step t: a context switch happens at t = 0 and, once the current context has
    lasted `hold` steps (T_fix), with probability `hazard` (1/d). At a switch
    τ ~ U(`tau_range`), b ~ U(`bias_range`), β ~ U(`beta_range`) are drawn and the latent is
    redrawn from the new stationary law x_t ~ N(b, σ²); otherwise
    x_t = x_{t−1} + (b − x_{t−1})/τ + σ√(2/τ − 1/τ²) ε_t. The observation is
    y_t = x_t + β ν_t. One `lax.scan` over time, vectorised over trials.

    **Returns:** a dict of `[B, T]` arrays: `observation` (y), `latent` (x), `tau`, `bias`,
    `beta` (the context in force at each step), `switch` (bool, a context begins at this
    step) and `time_since_switch` (int32, 0 at the switch step).
    """
    dtype = jnp.dtype(dtype) if dtype is not None else jnp.result_type(float)
    shape = (n_steps, batch_size)
    k = jr.split(key, 7)
    u_switch = jr.uniform(k[0], shape, dtype)
    tau_new = jr.uniform(k[1], shape, dtype, *tau_range)
    bias_new = jr.uniform(k[2], shape, dtype, *bias_range)
    beta_new = jr.uniform(k[3], shape, dtype, *beta_range)
    x_new = jr.normal(k[4], shape, dtype)
    eps = jr.normal(k[5], shape, dtype)
    nu = jr.normal(k[6], shape, dtype)
    first = (jnp.arange(n_steps) == 0)[:, None]

    def body(carry, inp):
        x, tau, bias, beta, age = carry  # age: steps the current context has already lasted
        first_t, u_t, tau_n, bias_n, beta_n, xn_t, eps_t, nu_t = inp
        switch = first_t | ((age >= hold) & (u_t < hazard))
        tau = jnp.where(switch, tau_n, tau)
        bias = jnp.where(switch, bias_n, bias)
        beta = jnp.where(switch, beta_n, beta)
        drift = x + (bias - x) / tau + jnp.sqrt(process_noise_variance(tau, sigma)) * eps_t
        x = jnp.where(switch, bias + sigma * xn_t, drift)
        y = x + beta * nu_t
        since = jnp.where(switch, 0, age)
        out = (y, x, tau, bias, beta, switch, since)
        return (x, tau, bias, beta, since + 1), out

    zeros = jnp.zeros((batch_size,), dtype)
    init = (zeros, jnp.ones_like(zeros), zeros, zeros, jnp.zeros((batch_size,), jnp.int32))
    inputs = (
        jnp.broadcast_to(first, shape),
        u_switch,
        tau_new,
        bias_new,
        beta_new,
        x_new,
        eps,
        nu,
    )
    _, out = jax.lax.scan(body, init, inputs)
    names = ("observation", "latent", "tau", "bias", "beta", "switch", "time_since_switch")
    return {name: jnp.swapaxes(a, 0, 1) for name, a in zip(names, out)}


def _per_context(values, switch):
    """Hold `values[t]` from each context start to the next (`[T]` → `[T]`)."""
    start = jax.lax.cummax(jnp.where(switch, jnp.arange(switch.shape[0]), 0))
    return values[start]


@register("kalman")
class KalmanTask(AbstractTask):
    r"""Adaptive Kalman filtering with context switches (the paper's Kalman-filter task).

    The task of Yu et al. (2024), with the generator of the authors' reference code.

    **Trial.** A 1-D latent x_t in contexts (τ, b, β) drawn from the prior τ ~ U(1, 10),
    b ~ U(−3, 3), β ~ U(0.1, 3); a context lasts at least `hold` = T_fix = 100 steps, then
    ends each step with probability `hazard` = 1/d = 1/100 (mean length ≈ 200 steps); at a
    switch x is redrawn from N(b, σ²), σ = 1. Within a context
    x_{t+1} = x_t + (b − x_t)/τ + σ√(2/τ − 1/τ²) ε_t (stationary variance σ²), and the
    network sees y_t = x_t + β ν_t and must output x̂_t ≈ x_t at every step (filtering: x̂_t
    may use y_0..y_t).

    **Batch.** `inputs` y `[B, T, 1]`; `targets` x `[B, T, 1]`; `weights` `None` (every step
    counts); `metadata`: `switch` (bool `[B, T]`, true where a context begins, including
    t = 0), `time_since_switch` (int32 `[B, T]`), `tau`, `bias`, `beta` (`[B, T]`, the
    context in force).

    **Loss.** MSE at every step, mean over the batch, averaged over time (scale 1/T, as
    in the reference code).

    **Baselines** (computed by [`KalmanTask.baselines`][] on the same trials):
    `oracle_mse` — the Kalman filter that knows the switch times and (τ, b, β) (≈ 0.49);
    `random_filter_mse` — a filter with τ̃, β̃ drawn from the prior, true b and switch times,
    **reproducing the reference's mixing quirk** (true τ in the transition coefficient, τ̃ in
    the drift and process noise — a quirk of the authors' reference code; ≈ 1.36, τ̃, β̃
    redrawn every step); `random_filter_consistent_mse` — τ̃, β̃ drawn once per context and
    used consistently (≈ 0.95); `copy_mse` — x̂_t = y_t (≈ E[β²] = 3.10).

    **Metrics** ([`KalmanTask.evaluate`][], on the 1024 trials shipped with the package,
    `neurodyn/_data/kalman_eval.nc`, at T = 1000 with the default prior): `mse`, `mse_se`
    (its standard error over trials), the four baselines above, `mse_vs_oracle`
    (mse / oracle_mse) and the model's MSE by time since the last switch in bins
    `mse_since_switch_0_9`, `_10_49`, `_50_99`, `_100_plus`
    ([`KalmanTask.error_profile`][] gives the whole curve).

    **Arguments:** `n_steps` (T; 1000 at `size="cpu"`, 5000 at `"paper"`: the reference
    code's earliest T, our choice as the paper's is not stated), `hold`, `hazard`,
    `tau_range`, `bias_range`, `beta_range`, `sigma`, `n_neurons` (of the default network,
    N = 100 as in the reference code), `size`.

    ```python
    task = nd.tasks.get("kalman")            # T = 1000
    batch = task.sample(key=jr.PRNGKey(0), batch_size=32)
    ```
    """

    n_steps: int = eqx.field(static=True, default=1000)
    hold: int = eqx.field(static=True, default=100)
    hazard: float = eqx.field(static=True, default=0.01)
    tau_range: tuple[float, float] = eqx.field(static=True, default=(1.0, 10.0))
    bias_range: tuple[float, float] = eqx.field(static=True, default=(-3.0, 3.0))
    beta_range: tuple[float, float] = eqx.field(static=True, default=(0.1, 3.0))
    sigma: float = eqx.field(static=True, default=1.0)
    n_neurons: int = eqx.field(static=True, default=100)
    size: str = eqx.field(static=True, default="cpu")

    name: ClassVar[str] = "kalman"
    description: ClassVar[str] = (
        "Adaptive Kalman filtering of a 1-D latent with random context switches (Yu et al. 2024)."
    )

    def __check_init__(self):
        check_positive_int(self.n_steps, "n_steps", 2)
        check_positive_int(self.hold, "hold", 1)
        check_positive_int(self.n_neurons, "n_neurons")
        check_size(self.size)
        if not 0.0 < float(self.hazard) <= 1.0:
            raise ValueError(f"`hazard` must lie in (0, 1]; got {self.hazard!r}.")
        if not float(self.sigma) > 0:
            raise ValueError(f"`sigma` must be > 0; got {self.sigma!r}.")
        for name, (lo, hi) in (
            ("tau_range", self.tau_range),
            ("bias_range", self.bias_range),
            ("beta_range", self.beta_range),
        ):
            if not lo <= hi:
                raise ValueError(f"`{name}` must be (low, high) with low <= high; got {(lo, hi)}.")
        if self.tau_range[0] < 1.0:
            raise ValueError(
                f"`tau_range` must have τ >= 1 (a = 1 − 1/τ ≥ 0); got {self.tau_range}."
            )

    @classmethod
    def from_size(cls, size: str = "cpu", **overrides) -> KalmanTask:
        """T = 1000 at `"cpu"`, T = 5000 at `"paper"` (see the class docstring)."""
        check_size(size)
        defaults: dict[str, Any] = {"n_steps": 1000 if size == "cpu" else 5000, "size": size}
        return cls(**{**defaults, **overrides})

    # -- trials -------------------------------------------------------------------------

    def _generator_kwargs(self) -> dict[str, Any]:
        return dict(
            hold=self.hold,
            hazard=self.hazard,
            tau_range=self.tau_range,
            bias_range=self.bias_range,
            beta_range=self.beta_range,
            sigma=self.sigma,
        )

    def sample(self, *, key, batch_size: int) -> Batch:
        """`batch_size` fresh trials (jittable; see the class docstring for the layout)."""
        check_positive_int(batch_size, "batch_size")
        trials = sample_kalman_trials(
            key=key, batch_size=batch_size, n_steps=self.n_steps, **self._generator_kwargs()
        )
        return _to_batch(trials)

    def loss_function(self):
        return mse(target="target", scale=1.0 / self.n_steps)

    def loss(self, y, x) -> jax.Array:
        """MSE at one step, mean over the batch, scaled by 1/T."""
        return self.loss_function()(y, x)

    # -- baselines and evaluation ---------------------------------------------------------

    def baselines(self, batch: Batch, *, key) -> dict[str, jax.Array]:
        """Estimates `[B, T]` of the baseline filters on `batch` (see the class docstring).

        Keys: `oracle`, `random_filter` (a quirk of the authors' reference code; τ̃, β̃
        redrawn every step, which reproduces the reference's anchor — see
        `random_parameter_filter` in `neurodyn/tasks/_kalman_filter.py`),
        `random_filter_consistent` (τ̃, β̃ drawn once per context and used consistently),
        `copy`. `key` draws the random filters' τ̃, β̃.
        """
        md = batch.metadata
        y = batch.inputs[..., 0]
        kt, kb = jr.split(key)
        tau_cand = jr.uniform(kt, y.shape, y.dtype, *self.tau_range)
        beta_cand = jr.uniform(kb, y.shape, y.dtype, *self.beta_range)
        switch = md["switch"]
        tau_r = jax.vmap(_per_context)(tau_cand, switch)
        beta_r = jax.vmap(_per_context)(beta_cand, switch)
        s = self.sigma
        oracle = jax.vmap(lambda *a: oracle_filter(*a, sigma=s))(
            y, md["tau"], md["bias"], md["beta"], switch
        )
        quirk = jax.vmap(lambda *a: random_parameter_filter(*a, sigma=s))(
            y, md["tau"], md["bias"], switch, tau_cand, beta_cand
        )
        clean = jax.vmap(lambda *a: consistent_random_filter(*a, sigma=s))(
            y, md["bias"], switch, tau_r, beta_r
        )
        return {
            "oracle": oracle,
            "random_filter": quirk,
            "random_filter_consistent": clean,
            "copy": y,
        }

    def eval_batch(self, *, key=None, n_trials: int | None = None) -> Batch:
        """The evaluation trials: the shipped set `kalman_eval.nc` (1024 trials of T = 1000)
        when `n_trials` is `None` and it applies (T = 1000 and the default prior), otherwise
        `n_trials` (default 1024) fresh trials drawn from `key`.

        **Raises:** `neurodyn._data.EvalSetError` naming the file when the shipped set applies
        but is missing or unreadable (never a silent fresh draw)."""
        if n_trials is None:
            if _eval_set_applies(self):
                return _eval_set_batch()
            n_trials = EVAL_SET_TRIALS
        if key is None:
            raise ValueError("`key` is required to sample fresh evaluation trials.")
        return self.sample(key=key, batch_size=n_trials)

    def evaluate(self, model, *, key, n_trials: int | None = None) -> dict[str, float]:
        """Test MSE of `model` with its standard error and the baselines on the same trials
        (see the class docstring).

        With `n_trials=None` the shipped set `kalman_eval.nc` (1024 trials) is used when it
        applies (T = 1000 and the default prior); otherwise `n_trials` (default 1024) fresh
        trials. `mse_se` is the standard error of `mse` over trials: the standard deviation of
        the per-trial MSE over √(number of trials) (trials are independent; steps within a
        trial are not).
        """
        k_data, k_run, k_base = jr.split(key, 3)
        batch = self.eval_batch(key=k_data, n_trials=n_trials)
        errors = _evaluate_errors(self, model, batch, k_run, k_base)
        since = np.asarray(batch.metadata["time_since_switch"])
        model_err = np.asarray(errors["model"], np.float64)
        per_trial = model_err.mean(axis=1)
        out = {"mse": float(per_trial.mean())}
        n = per_trial.shape[0]
        out["mse_se"] = float(per_trial.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
        for name in ("oracle", "random_filter", "random_filter_consistent", "copy"):
            out[f"{name}_mse"] = float(np.asarray(errors[name], np.float64).mean())
        out["mse_vs_oracle"] = out["mse"] / out["oracle_mse"]
        bins = ((0, 10, "0_9"), (10, 50, "10_49"), (50, 100, "50_99"), (100, None, "100_plus"))
        for lo, hi, label in bins:  # NaN for a bin no step falls in (short trials)
            sel = (since >= lo) & (since < hi) if hi is not None else since >= lo
            value = model_err[sel].mean() if sel.any() else np.nan
            out[f"mse_since_switch_{label}"] = float(value)
        return out

    def error_profile(
        self, model, *, key, n_trials: int | None = None, max_lag: int = 300
    ) -> dict[str, np.ndarray]:
        """Squared error as a function of time since the last context switch.

        **Returns:** `lag` (0..max_lag−1) and, for `model`, `oracle`, `random_filter`,
        `random_filter_consistent` and `copy`, the mean squared error at each lag (NaN where
        no step has that lag), plus `count` (steps per lag).
        """
        k_data, k_run, k_base = jr.split(key, 3)
        batch = self.eval_batch(key=k_data, n_trials=n_trials)
        errors = _evaluate_errors(self, model, batch, k_run, k_base)
        since = np.asarray(batch.metadata["time_since_switch"]).ravel()
        keep = since < max_lag
        count = np.bincount(since[keep], minlength=max_lag).astype(np.float64)
        out: dict[str, np.ndarray] = {"lag": np.arange(max_lag), "count": count}
        for name, err in errors.items():
            total = np.bincount(
                since[keep], weights=np.asarray(err, np.float64).ravel()[keep], minlength=max_lag
            )
            with np.errstate(invalid="ignore", divide="ignore"):
                out[name] = total / count
        return out

    # -- model and hyperparameters ----------------------------------------------------------

    def default_model(self, *, key):
        """The paper's leaky ReLU RNN (Yu et al. 2024; N = 100, α = 0.25 as in the authors'
        code)."""
        return _default_kalman_network(self.n_neurons, key)

    def success_criterion(self) -> tuple[str, float, str]:
        """MSE ≤ 0.665 on the shipped evaluation set (our choice): 80 % of the way from the
        random-parameter filter (1.358 on its 1024 trials) to the oracle filter (0.493).
        (The level was 0.65 while the set had 64 trials, an easier draw with anchors 1.30 and
        0.48: the same 80 %. Issue 4 aimed at 0.6; what the CPU defaults reach is in
        docs/benchmarks.md.)"""
        return ("mse", 0.665, "below")

    def hyperparameters(self, optimizer: str = "sofo") -> dict[str, Any]:
        """Recommended settings for `optimizer` at this task's size (paper: the authors' code;
        CPU: tuned; see docs/concepts/sofo-conventions.md)."""
        return select_hyperparameters(_HYPERPARAMETERS, self.size, optimizer, self.name)


def _to_batch(trials: dict[str, jax.Array]) -> Batch:
    metadata = {k: trials[k] for k in ("switch", "time_since_switch", "tau", "bias", "beta")}
    return Batch(
        inputs=trials["observation"][..., None],
        targets=trials["latent"][..., None],
        weights=None,
        metadata=metadata,
    )


@eqx.filter_jit
def _evaluate_errors(task, model, batch, k_run, k_base):
    x = batch.targets[..., 0]
    estimate = rollout_outputs(model, batch.inputs, key=k_run)[..., 0]
    errors = {"model": (estimate - x) ** 2}
    for name, est in task.baselines(batch, key=k_base).items():
        errors[name] = (est - x) ** 2
    return errors


EVAL_SET_NAME = "kalman_eval"
EVAL_SET_SEED = 20240528
"""Seed of the shipped set `neurodyn/_data/kalman_eval.nc` (by `data/make_eval_sets.py`)."""
EVAL_SET_TRIALS = 1024
"""Trials in `kalman_eval.nc`: enough for a standard error of the MSE below 0.005 (the
per-trial MSE of the oracle filter has a standard deviation ≈ 0.13, a trained network's
≈ 0.1–0.2)."""
EVAL_SET_STEPS = 1000


def make_eval_trials(dtype=None) -> dict[str, jax.Array]:
    """The trials of `kalman_eval.nc`: 1024 trials of T = 1000 with the default prior."""
    return sample_kalman_trials(
        key=jr.PRNGKey(EVAL_SET_SEED),
        batch_size=EVAL_SET_TRIALS,
        n_steps=EVAL_SET_STEPS,
        dtype=dtype,
    )


@functools.lru_cache(maxsize=1)
def _load_eval_arrays():
    """The shipped trials; raises `EvalSetError` naming the file when it is missing."""
    ds = load_eval_set(EVAL_SET_NAME)
    arrays = {name: np.asarray(ds[name].values) for name in ds.data_vars}
    arrays["switch"] = arrays["switch"].astype(bool)
    arrays["time_since_switch"] = arrays["time_since_switch"].astype(np.int32)
    return arrays


def _eval_set_applies(task: KalmanTask) -> bool:
    default = KalmanTask(n_steps=EVAL_SET_STEPS)
    settings = ("hold", "hazard", "tau_range", "bias_range", "beta_range", "sigma")
    return task.n_steps == EVAL_SET_STEPS and all(
        getattr(task, s) == getattr(default, s) for s in settings
    )


def _eval_set_batch() -> Batch:
    dtype = jnp.result_type(float)
    trials = {
        k: jnp.asarray(v, dtype) if v.dtype.kind == "f" else jnp.asarray(v)
        for k, v in _load_eval_arrays().items()
    }
    return _to_batch(trials)


# -- default network ------------------------------------------------------------------------


def _default_kalman_network(n_neurons: int, key):
    from ..models import KalmanRNN

    return KalmanRNN(n_neurons=n_neurons, key=key)
