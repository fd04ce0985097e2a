"""SOFO and first-order SOFO as optimizers (Yu et al. 2024; docs/concepts/sofo.md)."""

from __future__ import annotations

import abc
from typing import Any, ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from ._base import (
    AbstractOptimizer,
    apply_direction,
    batch_mean,
    check_learning_rate,
    check_n_tangents,
    check_optional_fraction,
    draw_tangents,
    forward_terms,
    trainable_params,
    tree_all_finite,
)
from ._conventions import check_ggn_scale_convention, problem_ggn_scale_factor
from ._solve import DAMPING_MODES, check_damping, damped_solve
from ._tangents import TANGENT_KINDS, combine_tangents, count_params


class SOFOState(NamedTuple):
    opt_state: Any
    """State of the optax transform the direction goes through."""
    damping: jax.Array
    """Current damping λ (changes only with adaptive damping or after rejected steps)."""
    count: jax.Array
    """Number of accepted steps."""


def _sgd_chain(learning_rate, momentum, weight_decay):
    parts = []
    if weight_decay:
        parts.append(optax.add_decayed_weights(weight_decay))
    parts.append(optax.sgd(learning_rate, momentum=momentum or None))
    return optax.chain(*parts)


def _learning_rate_at(learning_rate, count):
    return learning_rate(count) if callable(learning_rate) else learning_rate


class SOFO(AbstractOptimizer):
    r"""Second-order forward-mode optimizer (Yu et al., NeurIPS 2024).

    Each step draws K fresh tangents V, runs one batched forward-mode pass that yields the loss,
    c̃ = Vᵀg and G̃ = VᵀGV, and moves along the damped Gauss–Newton direction

    $$\Delta = V\,(\tilde G + \gamma I)^{-1}\,\tilde c,
      \qquad \gamma = \lambda\,\max\operatorname{eig}\tilde G$$

    (relative damping, default). Δ is fed as the "gradient" to an optax transform: plain SGD
    with `learning_rate` by default (θ ← θ − ηΔ), optionally with momentum and weight decay,
    or any `transform` you pass (schedules, momentum, clipping...).

    **Arguments:**

    - `learning_rate`: η (a float or an optax schedule). Ignored when `transform` is given.
    - `n_tangents`: K, the subspace dimension (1 ≤ K ≤ P).
    - `damping`: λ ≥ 0. `damping_mode`: `"relative"` (γ = λ·max eig), `"absolute"` (γ = λ)
      or `"none"`.
    - `tangents`: `"normalized"` (default), `"gaussian"` or `"orthonormal"`.
    - `momentum`, `weight_decay`: added to the default SGD transform. `momentum=β` is
      `optax.sgd`'s heavy-ball trace (m ← βm + Δ, θ ← θ − ηm): a persistent component of
      Δ moves up to 1/(1 − β) times further. It broke the loss stall of the muscle-arm reach
      (β = 0.9; see the how-to "Choose K and the damping").
    - `transform`: an `optax.GradientTransformation` replacing the default SGD chain.
    - `adaptive_damping`: Levenberg–Marquardt adaptation of λ (as in a 2025 version of the
      authors' code): after each step the loss on the same batch is re-evaluated (one extra
      forward pass) and compared with the quadratic model's prediction; ratio ρ <
      `lm_thresholds[0]` multiplies λ by `lm_factors[0]` (= 3/2), ρ > `lm_thresholds[1]` by
      `lm_factors[1]` (= 2/3). The defaults are Martens' (2010) thresholds (1/4, 3/4); the
      reference's are (0, 1). Only with the default SGD transform without momentum. λ stays
      within `damping_bounds`.
    - `ggn_scale_convention`: the GGN scale in which `learning_rate` is stated: `"consistent"`
      (default: neurodyn's GGN, exactly that of the loss as written), `"ocaml2024"`, `"jax2024"`
      or `"ocaml2025"` (the authors' reference implementations;
      docs/concepts/sofo-conventions.md), or an explicit factor c > 0. The subspace GGN is
      multiplied by that convention's factor c (see [`neurodyn.optim.ggn_scale_factor`][]: d,
      d/2 or B·d/K for the MSE, 1 or 2 for the cross-entropy) before the damped solve, as the
      reference did, so a step size copied from a reference gives the reference's update: the
      same update as η / c in the consistent convention. The loss must be an `nd.optim.mse` /
      `nd.optim.cross_entropy` for the named conventions. Diagnostics (`top_eigenvalue`,
      `predicted_decrease`) stay in the consistent scale.
    - `generic_ggn`: always use forward-over-reverse on the loss (for testing closed forms).
    - `chunk_size`: see [`neurodyn.value_and_sofo_grad_scan`][] (recurrent problems only).

    ??? cite "Reference"
        Yu, Xia, Ma, Lengyel & Hennequin. *Second-order forward-mode optimization of recurrent
        neural networks for neuroscience.* NeurIPS 2024.
    """

    learning_rate: Any = 1.0
    n_tangents: int = eqx.field(static=True, default=32)
    damping: float = 1e-5
    damping_mode: str = eqx.field(static=True, default="relative")
    tangents: str = eqx.field(static=True, default="normalized")
    momentum: float | None = None
    weight_decay: float | None = None
    transform: Any = eqx.field(static=True, default=None)
    adaptive_damping: bool = eqx.field(static=True, default=False)
    lm_thresholds: tuple[float, float] = (0.25, 0.75)
    lm_factors: tuple[float, float] = (1.5, 2.0 / 3.0)
    damping_bounds: tuple[float, float] = (1e-9, 1e3)
    ggn_scale_convention: Any = eqx.field(static=True, default="consistent")
    generic_ggn: bool = eqx.field(static=True, default=False)
    chunk_size: int | None = eqx.field(static=True, default=1)

    name: ClassVar[str] = "sofo"
    uses_tangents: ClassVar[bool] = True
    cheap_loss_check: ClassVar[bool] = True

    def __check_init__(self):
        if self.transform is None:
            check_learning_rate(self.learning_rate)
        elif not isinstance(self.transform, optax.GradientTransformation):
            raise TypeError(
                "`transform` must be an optax.GradientTransformation; got "
                f"{type(self.transform).__name__}."
            )
        if isinstance(self.n_tangents, bool) or not isinstance(self.n_tangents, int):
            raise TypeError(f"`n_tangents` must be an int; got {self.n_tangents!r}.")
        if self.n_tangents < 1:
            raise ValueError(f"`n_tangents` must be >= 1; got {self.n_tangents}.")
        check_damping(self.damping, self.damping_mode)
        check_optional_fraction(self.momentum, "momentum")
        check_optional_fraction(self.weight_decay, "weight_decay")
        check_ggn_scale_convention(self.ggn_scale_convention)
        if self.tangents not in TANGENT_KINDS:
            raise ValueError(f"`tangents` must be one of {TANGENT_KINDS}; got {self.tangents!r}.")
        if self.damping_mode not in DAMPING_MODES:  # pragma: no cover - checked above
            raise ValueError(f"`damping_mode` must be one of {DAMPING_MODES}.")
        if self.adaptive_damping and (self.transform is not None or self.momentum):
            raise ValueError(
                "`adaptive_damping=True` needs the default SGD transform without momentum, "
                "so that the quadratic model predicts the step actually taken."
            )

    def _transform(self):
        if self.transform is not None:
            return self.transform
        return _sgd_chain(self.learning_rate, self.momentum, self.weight_decay)

    def retry_state(self, state, scale):
        """A retried step uses the damping × `scale` (more damping: a shorter, safer step)."""
        return state._replace(damping=state.damping * jnp.asarray(scale, state.damping.dtype))

    def accepted_state(self, before, after):
        """The damping returns to its value before the retries unless it adapts."""
        if self.adaptive_damping:
            return after
        return after._replace(damping=before.damping)

    def learning_rate_at(self, state):
        if self.transform is not None:
            return None
        return _learning_rate_at(self.learning_rate, state.count)

    def init(self, params, trainable=None) -> SOFOState:
        check_n_tangents(self.n_tangents, params, trainable)
        opt_state = self._transform().init(trainable_params(params, trainable))
        leaves = jax.tree.leaves(eqx.filter(params, eqx.is_inexact_array))
        dtype = jnp.result_type(*[x.dtype for x in leaves])
        return SOFOState(opt_state, jnp.asarray(self.damping, dtype), jnp.zeros((), jnp.int32))

    def direction(self, params, state, problem, *, key, trainable=None):
        """Loss, SOFO direction and diagnostics, without updating anything."""
        tangents = draw_tangents(key, params, self.n_tangents, self.tangents, trainable)
        value, vg, ggn = forward_terms(
            problem,
            params,
            tangents,
            compute_ggn=True,
            generic_ggn=self.generic_ggn,
            chunk_size=self.chunk_size,
        )
        scale = problem_ggn_scale_factor(
            problem, params, self.ggn_scale_convention, self.n_tangents
        )
        # the reference's GGN, c × ours (docs/concepts/sofo-conventions.md): a step size
        # stated in that convention then gives the reference's update
        sol = damped_solve(
            ggn if scale == 1.0 else ggn * scale, vg, state.damping, self.damping_mode
        )
        direction = combine_tangents(tangents, sol.alpha)
        alpha = sol.alpha
        info = {
            "loss": value,
            "damping": state.damping,
            "gamma": sol.gamma / scale,
            "top_eigenvalue": sol.eigenvalues[-1] / scale,
            "vg_norm": jnp.linalg.norm(vg),
            "predicted_decrease": jnp.dot(vg, alpha) - 0.5 * jnp.dot(alpha, ggn @ alpha),
        }
        return direction, sol, ggn, vg, info

    def step(self, params, state, problem, *, key, trainable=None):
        direction, sol, ggn, vg, info = self.direction(
            params, state, problem, key=key, trainable=trainable
        )
        ok = jnp.isfinite(info["loss"]) & tree_all_finite(direction)
        new_params, opt_state, ok = apply_direction(
            self._transform(), state.opt_state, params, direction, trainable, ok
        )
        damping = state.damping
        if self.adaptive_damping:
            lr = _learning_rate_at(self.learning_rate, state.count)
            alpha = sol.alpha
            predicted = lr * jnp.dot(vg, alpha) - 0.5 * lr**2 * jnp.dot(alpha, ggn @ alpha)
            new_value = batch_mean(lambda prob, p: prob.value(p), problem, new_params)
            rho = (info["loss"] - new_value) / jnp.maximum(predicted, jnp.finfo(vg.dtype).tiny)
            low, high = self.lm_thresholds
            up, down = self.lm_factors
            factor = jnp.where(rho < low, up, jnp.where(rho > high, down, 1.0))
            factor = jnp.where(ok & jnp.isfinite(rho), factor, 1.0)
            damping = jnp.clip(damping * factor, *self.damping_bounds).astype(damping.dtype)
            info["lm_ratio"] = rho
        info["finite"] = ok
        new_state = SOFOState(opt_state, damping, state.count + ok.astype(jnp.int32))
        return new_params, new_state, info


def sofo(learning_rate=1.0, n_tangents: int = 32, damping: float = 1e-5, **kwargs) -> SOFO:
    """Build a [`neurodyn.optim.SOFO`][] optimizer (see its arguments)."""
    return SOFO(learning_rate=learning_rate, n_tangents=n_tangents, damping=damping, **kwargs)


class SubspaceState(NamedTuple):
    opt_state: Any
    count: jax.Array


class AbstractSubspaceGradient(AbstractOptimizer):
    """Base of the first-order tangent methods (first-order SOFO, FGD): one forward pass gives
    the directional derivatives c = Vᵀg along K random tangents; the step is
    Δ = V `_scale`(c), applied by optax SGD (or `transform`). Subclasses are final and set
    the fields and `_scale`."""

    learning_rate: eqx.AbstractVar[Any]
    n_tangents: eqx.AbstractVar[int]
    tangents: eqx.AbstractVar[str]
    momentum: eqx.AbstractVar[float | None]
    transform: eqx.AbstractVar[Any]

    uses_tangents: ClassVar[bool] = True
    cheap_loss_check: ClassVar[bool] = True

    def __check_init__(self):
        if self.transform is None:
            check_learning_rate(self.learning_rate)
        check_optional_fraction(self.momentum, "momentum")
        if isinstance(self.n_tangents, bool) or not isinstance(self.n_tangents, int):
            raise TypeError(f"`n_tangents` must be an int; got {self.n_tangents!r}.")

    @abc.abstractmethod
    def _scale(self, vg, n_params):
        """The tangents' coefficients from the directional derivatives `vg` `[K]`."""

    def _transform(self):
        return self.transform or _sgd_chain(self.learning_rate, self.momentum, None)

    def learning_rate_at(self, state):
        if self.transform is not None:
            return None
        return _learning_rate_at(self.learning_rate, state.count)

    def init(self, params, trainable=None):
        check_n_tangents(self.n_tangents, params, trainable)
        opt_state = self._transform().init(trainable_params(params, trainable))
        return SubspaceState(opt_state, jnp.zeros((), jnp.int32))

    def step(self, params, state, problem, *, key, trainable=None):
        tangents = draw_tangents(key, params, self.n_tangents, self.tangents, trainable)
        value, vg, _ = forward_terms(problem, params, tangents, compute_ggn=False)
        coeff = self._scale(vg, count_params(params, trainable))
        direction = combine_tangents(tangents, coeff)
        ok = jnp.isfinite(value) & tree_all_finite(direction)
        new_params, opt_state, ok = apply_direction(
            self._transform(), state.opt_state, params, direction, trainable, ok
        )
        info = {"loss": value, "vg_norm": jnp.linalg.norm(vg), "finite": ok}
        return new_params, SubspaceState(opt_state, state.count + ok.astype(jnp.int32)), info


class FirstOrderSOFO(AbstractSubspaceGradient):
    r"""First-order SOFO: the gradient projected on a random subspace, Δ = V Vᵀg.

    A baseline of Yu et al. (2024).

    The same forward pass as SOFO without the GGN. With orthonormal tangents (default) Δ is the
    orthogonal projection of the gradient on span(V). `normalize=True` uses Δ = V c̃ / ‖c̃‖
    (the sofo-raven demo's variant). Δ goes through optax SGD (or `transform`).
    """

    learning_rate: Any = 0.1
    n_tangents: int = eqx.field(static=True, default=32)
    tangents: str = eqx.field(static=True, default="orthonormal")
    normalize: bool = eqx.field(static=True, default=False)
    momentum: float | None = None
    transform: Any = eqx.field(static=True, default=None)

    name: ClassVar[str] = "first-order-sofo"

    def __check_init__(self):
        if self.tangents not in TANGENT_KINDS:
            raise ValueError(f"`tangents` must be one of {TANGENT_KINDS}; got {self.tangents!r}.")

    def _scale(self, vg, n_params):
        del n_params
        if self.normalize:
            return vg / jnp.maximum(jnp.linalg.norm(vg), jnp.finfo(vg.dtype).tiny)
        return vg


def first_order_sofo(learning_rate=0.1, n_tangents: int = 32, **kwargs) -> FirstOrderSOFO:
    """Build a [`neurodyn.optim.FirstOrderSOFO`][] optimizer."""
    return FirstOrderSOFO(learning_rate=learning_rate, n_tangents=n_tangents, **kwargs)
