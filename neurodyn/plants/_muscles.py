"""Six-muscle actuation of the Li–Todorov two-joint arm (Li & Todorov 2004).

The tension follows Brown et al.'s (1999) Virtual Muscle as simplified by Li & Todorov; see
docs/concepts/closed-loop.md. Muscle order everywhere: SF, SE, EF, EE, BF, BE (shoulder
flexor/extensor, elbow flexor/extensor, biarticular flexor/extensor).
"""

from __future__ import annotations

import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, ArrayLike, Float
from ._arm import TwoJointArm
from ._base import (
    AbstractPlant,
    JointLimits,
    check_joint_limits,
    check_positive,
    clamp_to_joint_limits,
    float_dtype,
)

MUSCLE_NAMES: tuple[str, ...] = ("SF", "SE", "EF", "EE", "BF", "BE")
"""The six muscles, in the order of every muscle axis: shoulder flexor and extensor, elbow
flexor and extensor, biarticular flexor and extensor."""
ACTIVATION_MAPS: tuple[str, ...] = ("brown", "linear")
"""Activation-to-force maps of `MuscleArm`: `"brown"` (the gate `A(a, l)` and passive force)
or `"linear"` (`A = a`, no passive force)."""

# Li & Todorov (2004) geometry and strength, in their table's units (cm, degrees, cm²). Rows of the
# (2, 6) arrays are the joints (shoulder, elbow), columns the muscles in MUSCLE_NAMES order.
# θ0 of a muscle that does not cross a joint ("–" in the table) is irrelevant (its moment arm
# there is 0) and stored as 0.
_LI_TODOROV_2004 = dict(
    moment_arms_cm=((2.0, -2.0, 0.0, 0.0, 1.5, -2.0), (0.0, 0.0, 2.0, -2.0, 2.0, -1.5)),
    theta0_deg=((15.0, 4.88, 0.0, 0.0, 4.5, 2.12), (0.0, 0.0, 80.86, 109.32, 92.96, 91.52)),
    optimal_length_cm=(7.32, 3.26, 6.40, 4.26, 5.95, 4.04),
    pcsa_cm2=(22.0, 12.0, 18.0, 14.0, 5.0, 10.0),
    # F_max = 31.8 N/cm² × PCSA (the Virtual Muscle specific tension; Brown et al. 1999).
    specific_tension_n_per_cm2=31.8,
    # LT04 activation filter time constants (s).
    tau_act=0.050,
    tau_deact=0.066,
)
PRESETS: tuple[str, ...] = ("li_todorov_2004",)

# Guards (a) and (b) of `MuscleTension` (our choice).
_ACTIVATION_FLOOR = 1e-8
_LENGTH_CLIP = (0.1, 1.9)

# Max |λ| of the Jacobian under full co-contraction over the joint box. Our own one-sided
# finite-difference Jacobians (the F_V kink at v = 0 makes the two sides differ) peak at
# 376 s⁻¹ ("brown") and 671 s⁻¹ ("linear"); an independent computation gave 365 and 667 s⁻¹.
# Euler is stable for dt·|λ| ≤ 2; we round down to the test bounds 400 and 800 s⁻¹: 5 ms and
# 2.5 ms (the independent bound: ≈ 5.5 ms).
_EULER_DT_LIMIT = {"brown": 2 / 400, "linear": 2 / 800}


def excitation_from_output(z: Float[ArrayLike, "*shape"]) -> Float[Array, "*shape"]:
    """Map an unbounded network output to a muscle excitation in `[0, 1)`: `tanh(relu(z))`.

    Chosen over a sigmoid because a silent output (`z ≤ 0`) means a silent muscle: a network
    initialised with small read-out weights starts near `u = 0` and leaves the arm at rest,
    instead of co-contracting every muscle at `u = 0.5`. The slope is 1 at `z = 0⁺` and the
    map saturates smoothly below 1 (a bounded non-negative map). Like a
    ReLU it passes no gradient for `z < 0`, and in float32 none for `z ≳ 8` either (tanh
    rounds to 1 there): a network whose outputs all end up in those two regions can no
    longer be trained, which `nd.fit` detects (`zero_gradient_patience`).

    **Arguments:**

    - `z`: network output(s), any shape.

    **Returns:**

    Excitations of the same shape, in `[0, 1)`.
    """
    return jnp.tanh(jax.nn.relu(z))


class MuscleTension(eqx.Module):
    r"""Normalised muscle tension of Li & Todorov (2004), after Brown et al.'s Virtual Muscle
    (Brown et al. 1999, simplified).

    $$T(a, l, v) = A(a, l)\,[F_L(l)\,F_V(l, v) + F_P(l)],$$

    - activation–frequency gate $A(a,l) = 1 - \exp(-(a/(a_f n_f))^{n_f})$,
      $n_f = n_{f0} + n_{f1}(1/l - 1)$;
    - force–length $F_L = \exp(-|(l^β - 1)/ω|^ρ)$;
    - force–velocity, shortening ($v ≤ 0$): $F_V = (V_{max} - v)/(V_{max} + (c_{v0} +
      c_{v1} l) v)$; lengthening ($v > 0$): $F_V = (b_v - (a_{v0} + a_{v1} l +
      a_{v2} l^2) v)/(b_v + v)$;
    - passive (PE2 only) $F_P = -0.02\, e^{13.8 - 18.7 l}$.

    `l` is the length in optimal lengths `L0` and `v` the lengthening velocity in `L0/s`.
    Because `A` gates the passive term too, `a = 0` gives exactly zero tension. At the optimal
    length and at rest, `T(1, 1, 0) = 0.50493`: full activation gives ≈ half of `F_max`.

    With `activation_map="linear"` (Lillicrap & Scott 2013, as in feedbax's preset):
    $T = a\,F_L(l)\,F_V(l, v)$, without passive force.

    Guards (our choice), so that values, gradients and JVP tangents are finite for any
    finite input:

    - (a) `a` is clipped to `[0, 1]` and raised to `max(a, 1e-8)` inside `A`; `A = 0` exactly
      where `a ≤ 0`. A NaN activation gives a NaN tension (not 0), so that a diverged
      controller shows in the loss.
    - (b) `l` is clipped to `[0.1, 1.9]` before any of `F_L`, `F_V`, `F_P` and `n_f` (raw lengths
      over the joint box span 0.011–2.64; `n_f ≤ 0` for `l ≥ 2.03`).
    - (c) each `F_V` branch is evaluated on a clamped velocity (`v ≤ 0` for shortening,
      `v ≥ 0` for lengthening) and then selected, so the poles at `v = +1.65` (shortening
      formula) and `v = -b_v` (lengthening formula) are never evaluated. At `v = 0` the
      derivative is the shortening (left) one.
    - (our choice; the model is silent here) the shortening `F_V` is floored at 0: beyond
      `v < V_max` (faster shortening than `|V_max| = 5.72 L0/s`) the formula turns negative,
      i.e. an active muscle would push. The floor changes nothing at slower speeds.

    **Fields:** the tension constants of Li & Todorov (2004) (defaults), and
    `activation_map` (`"brown"` or `"linear"`).

    ??? cite "References"

        ```bibtex
        @inproceedings{li2004iterative,
          title={Iterative Linear Quadratic Regulator Design for Nonlinear Biological
                 Movement Systems},
          author={Li, Weiwei and Todorov, Emanuel},
          booktitle={Proceedings of the First International Conference on Informatics in
                     Control, Automation and Robotics (ICINCO)},
          volume={1},
          pages={222--229},
          year={2004}
        }
        @article{brown1999measured,
          title={Measured and modeled properties of mammalian skeletal muscle. {II}. The
                 effects of stimulus frequency on force-length and force-velocity
                 relationships},
          author={Brown, Ian E. and Cheng, Ernest J. and Loeb, Gerald E.},
          journal={Journal of Muscle Research and Cell Motility},
          volume={20},
          pages={627--643},
          year={1999}
        }
        ```
    """

    activation_map: str = eqx.field(default="brown", static=True)
    a_f: float = 0.56
    n_f0: float = 2.11
    n_f1: float = 4.16
    beta: float = 1.93
    omega: float = 1.03
    rho: float = 1.87
    v_max: float = -5.72
    c_v0: float = 1.38
    c_v1: float = 2.09
    a_v0: float = -3.12
    a_v1: float = 4.21
    a_v2: float = -2.67
    b_v: float = 0.62
    # F_P = passive_scale · exp(passive_offset − passive_rate · l)  (LT04 PE2: 13.8, not
    # feedbax's 18.7·0.79 = 14.77, which makes its passive term 2.65× LT04's).
    passive_scale: float = -0.02
    passive_offset: float = 13.8
    passive_rate: float = 18.7

    def __check_init__(self):
        if self.activation_map not in ACTIVATION_MAPS:
            raise ValueError(
                f"`activation_map` must be one of {ACTIVATION_MAPS}; got {self.activation_map!r}."
            )
        for name in ("a_f", "omega", "rho", "b_v"):
            check_positive(getattr(self, name), name)

    @staticmethod
    def _clip_length(l):
        return jnp.clip(l, *_LENGTH_CLIP)

    def activation_gate(
        self, a: Float[ArrayLike, "*muscle"], l: Float[ArrayLike, "*muscle"]
    ) -> Float[Array, "*muscle"]:
        """`A(a, l)` with guards (a) and (b); exactly 0 where `a ≤ 0`."""
        a = jnp.clip(jnp.asarray(a), 0.0, 1.0)
        l = self._clip_length(jnp.asarray(l))
        n_f = self.n_f0 + self.n_f1 * (1 / l - 1)
        a_safe = jnp.maximum(a, _ACTIVATION_FLOOR)
        gate = 1 - jnp.exp(-((a_safe / (self.a_f * n_f)) ** n_f))
        # A NaN activation (a diverged controller) must stay NaN: `a > 0` is False for NaN,
        # and selecting 0 there would hide the divergence from the loss (and from the
        # optimizers' non-finite-step rejection) while the arm went limp.
        return jnp.where((a > 0) | jnp.isnan(a), gate, jnp.zeros_like(gate))

    def force_length(self, l: Float[ArrayLike, "*muscle"]) -> Float[Array, "*muscle"]:
        """`F_L(l) = exp(−|(l^β − 1)/ω|^ρ)`, with `l` clipped to `[0.1, 1.9]`; `F_L(1) = 1`."""
        l = self._clip_length(jnp.asarray(l))
        return jnp.exp(-(jnp.abs((l**self.beta - 1) / self.omega) ** self.rho))

    def force_velocity(
        self, l: Float[ArrayLike, "*muscle"], v: Float[ArrayLike, "*muscle"]
    ) -> Float[Array, "*muscle"]:
        """`F_V(l, v)` (both branches, guard (c)); `F_V(l, 0) = 1`."""
        l = self._clip_length(jnp.asarray(l))
        v = jnp.asarray(v)
        zero = jnp.zeros_like(v)
        # `where`, not min/max: at v = 0 it passes the full tangent to the selected branch.
        v_short = jnp.where(v <= 0, v, zero)
        v_long = jnp.where(v > 0, v, zero)
        shortening = (self.v_max - v_short) / (self.v_max + (self.c_v0 + self.c_v1 * l) * v_short)
        shortening = jnp.maximum(shortening, 0.0)
        lengthening = (self.b_v - (self.a_v0 + self.a_v1 * l + self.a_v2 * l**2) * v_long) / (
            self.b_v + v_long
        )
        return jnp.where(v <= 0, shortening, lengthening)

    def passive_force(self, l: Float[ArrayLike, "*muscle"]) -> Float[Array, "*muscle"]:
        """`F_P(l) = −0.02·exp(13.8 − 18.7 l)` (LT04 PE2), `l` clipped to `[0.1, 1.9]`."""
        l = self._clip_length(jnp.asarray(l))
        return self.passive_scale * jnp.exp(self.passive_offset - self.passive_rate * l)

    def __call__(
        self,
        a: Float[ArrayLike, "*muscle"],
        l: Float[ArrayLike, "*muscle"],
        v: Float[ArrayLike, "*muscle"],
    ) -> Float[Array, "*muscle"]:
        """Tension `T(a, l, v)` in units of `F_max`."""
        active = self.force_length(l) * self.force_velocity(l, v)
        if self.activation_map == "linear":
            return jnp.clip(jnp.asarray(a), 0.0, 1.0) * active
        return self.activation_gate(a, l) * (active + self.passive_force(l))


def _check_array(value, name: str, shape: tuple[int, ...], *, positive=False, nonnegative=False):
    if isinstance(value, jax.core.Tracer):
        return value
    array = np.asarray(value, dtype=float)
    if array.shape != shape:
        raise ValueError(f"`{name}` must have shape {shape}; got {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` must be finite; got {array}.")
    if positive and not np.all(array > 0):
        raise ValueError(f"`{name}` must be > 0 for every muscle; got {array}.")
    if nonnegative and not np.all(array >= 0):
        raise ValueError(f"`{name}` must be >= 0 for every muscle; got {array}.")
    return value if isinstance(value, jax.Array) else array


class MuscleArm(AbstractPlant):
    r"""The two-joint arm of `TwoJointArm` driven by six Li & Todorov (2004) muscles.

    See docs/concepts/closed-loop.md ("The plants") and, for how it compares with MotorNet's
    arm (Codol et al. 2024), docs/how-to/motornet-crosscheck.md.

    State (R¹⁰): `y = (θ_s, θ_e, θ̇_s, θ̇_e, a_SF, a_SE, a_EF, a_EE, a_BF, a_BE)`: joint angles
    (rad), velocities (rad/s) and muscle activations. Control: six excitations `u ∈ [0, 1]⁶`
    (values outside are clipped; use `excitation_from_output` on a network output). Muscle
    order: `MUSCLE_NAMES = ("SF", "SE", "EF", "EE", "BF", "BE")`.

    - Lengths and velocities (constant moment arms `M`, 2×6, m):
      $l_i = 1 + \sum_j M_{ji}(θ_{0,ji} - θ_j)/L_{0,i}$ and
      $v_i = \dot l_i = -\sum_j M_{ji}\dot θ_j/L_{0,i}$ (`v > 0` = lengthening; flexion
      shortens the flexors).
    - Forces $F_i = F_{max,i}\,T(a_i, l_i, v_i)$ (N) with `MuscleTension`, and
      joint torques $τ = M F$ (N·m) into the skeleton
      $M(θ)\ddot θ + C + B\dot θ = τ$.
    - Activation: $\dot a = (u - a)/τ(u, a)$ with
      $τ = τ_{deact} + u(τ_{act} - τ_{deact})$ if $u > a$, else $τ_{deact}$;
      $τ_{act} = 50$ ms, $τ_{deact} = 66$ ms.

    Preset `"li_todorov_2004"` (the only one, and the default): the Li & Todorov (2004)
    geometry (`F_max = 31.8 N/cm² × PCSA`), the LT04 tension constants and the LT04
    activation filter. `activation_map="linear"` swaps in `A = a` without passive force. The
    MotorNet arm (Codol et al. 2024) is a different model and is not a preset here.

    `step` is explicit Euler by default (dt = 2 ms in the tasks; `max_stable_dt` is 5 ms for
    `"brown"` and 2.5 ms for `"linear"`, from the largest Jacobian eigenvalue under full
    co-contraction). Joint limits are off by default; `joint_limits=MuscleArm.joint_box` turns
    on hard limits θ_s ∈ [0, 140°], θ_e ∈ [0, 160°] (feedbax's, from MotorNet; guard (d)).

    **Arguments:**

    - `preset`: `"li_todorov_2004"`.
    - `activation_map`: `"brown"` (default; the gate `A(a, l)` and passive force) or
      `"linear"`.
    - `skeleton`: the `TwoJointArm` (default `TwoJointArm()`, the reference code's parameters with
      `l2 = 0.30` m); its own `joint_limits` must be `None`.
    - `joint_limits`: `None` or `((lo_s, hi_s), (lo_e, hi_e))` in rad.
    - `moment_arms` (2×6, m), `theta0` (2×6, rad), `optimal_length` (6, m), `max_force`
      (6, N), `tau_act`, `tau_deact` (s): override the preset's values.

    **Raises:**

    `ValueError` for an unknown preset or activation map, bad shapes, non-positive optimal
    lengths or time constants, negative forces, or a skeleton with its own joint limits.

    **Example:**

    ```python
    arm = MuscleArm()
    y = arm.initial_state()                          # rest posture, a = 0
    u = excitation_from_output(network_output)       # six values in [0, 1)
    y = arm.step(y, u, dt=2e-3)
    arm.muscle_forces(y), arm.hand_position(y)
    ```

    ??? cite "References"

        ```bibtex
        @inproceedings{li2004iterative,
          title={Iterative Linear Quadratic Regulator Design for Nonlinear Biological
                 Movement Systems},
          author={Li, Weiwei and Todorov, Emanuel},
          booktitle={Proceedings of the First International Conference on Informatics in
                     Control, Automation and Robotics (ICINCO)},
          volume={1},
          pages={222--229},
          year={2004}
        }
        @article{brown1999measured,
          title={Measured and modeled properties of mammalian skeletal muscle. {II}. The
                 effects of stimulus frequency on force-length and force-velocity
                 relationships},
          author={Brown, Ian E. and Cheng, Ernest J. and Loeb, Gerald E.},
          journal={Journal of Muscle Research and Cell Motility},
          volume={20},
          pages={627--643},
          year={1999}
        }
        ```
    """

    skeleton: TwoJointArm
    tension_model: MuscleTension
    moment_arms: Float[ArrayLike, "joint muscle"]
    theta0: Float[ArrayLike, "joint muscle"]
    optimal_length: Float[ArrayLike, " muscle"]
    max_force: Float[ArrayLike, " muscle"]
    tau_act: float
    tau_deact: float
    preset: str = eqx.field(static=True)
    joint_limits: JointLimits | None = eqx.field(static=True)

    state_size: ClassVar[int] = 10
    control_size: ClassVar[int] = 6
    muscle_names: ClassVar[tuple[str, ...]] = MUSCLE_NAMES
    presets: ClassVar[tuple[str, ...]] = PRESETS
    # feedbax's joint bounds ("from MotorNet"): θ_s ∈ [0, 140°], θ_e ∈ [0, 160°].
    joint_box: ClassVar[JointLimits] = ((0.0, math.radians(140.0)), (0.0, math.radians(160.0)))

    def __init__(
        self,
        preset: str = "li_todorov_2004",
        *,
        activation_map: str = "brown",
        skeleton: TwoJointArm | None = None,
        joint_limits: JointLimits | None = None,
        moment_arms: Float[ArrayLike, "joint muscle"] | None = None,
        theta0: Float[ArrayLike, "joint muscle"] | None = None,
        optimal_length: Float[ArrayLike, " muscle"] | None = None,
        max_force: Float[ArrayLike, " muscle"] | None = None,
        tau_act: float | None = None,
        tau_deact: float | None = None,
    ):
        if preset not in PRESETS:
            raise ValueError(f"`preset` must be one of {PRESETS}; got {preset!r}.")
        table = _LI_TODOROV_2004
        if skeleton is None:
            skeleton = TwoJointArm()
        if not isinstance(skeleton, TwoJointArm):
            raise TypeError(f"`skeleton` must be a TwoJointArm; got {type(skeleton).__name__}.")
        if skeleton.joint_limits is not None:
            raise ValueError(
                "`skeleton` must not carry its own `joint_limits`; pass them to MuscleArm as "
                "`joint_limits=` instead."
            )
        # SI throughout (M and L0 in m, θ0 in rad), converted once here.
        if moment_arms is None:
            moment_arms = np.asarray(table["moment_arms_cm"]) / 100
        if theta0 is None:
            theta0 = np.deg2rad(np.asarray(table["theta0_deg"]))
        if optimal_length is None:
            optimal_length = np.asarray(table["optimal_length_cm"]) / 100
        if max_force is None:
            max_force = table["specific_tension_n_per_cm2"] * np.asarray(table["pcsa_cm2"])
        tau_act = table["tau_act"] if tau_act is None else tau_act
        tau_deact = table["tau_deact"] if tau_deact is None else tau_deact
        check_positive(tau_act, "tau_act")
        check_positive(tau_deact, "tau_deact")

        self.skeleton = skeleton
        self.tension_model = MuscleTension(activation_map=activation_map)
        self.moment_arms = _check_array(moment_arms, "moment_arms", (2, 6))
        self.theta0 = _check_array(theta0, "theta0", (2, 6))
        self.optimal_length = _check_array(optimal_length, "optimal_length", (6,), positive=True)
        self.max_force = _check_array(max_force, "max_force", (6,), nonnegative=True)
        self.tau_act = tau_act
        self.tau_deact = tau_deact
        self.preset = preset
        self.joint_limits = check_joint_limits(joint_limits)

    @property
    def rest_posture(self) -> tuple[float, float]:
        """The skeleton's rest posture θ = (20°, 140°) in rad."""
        return self.skeleton.rest_posture

    @property
    def activation_map(self) -> str:
        """`"brown"` or `"linear"`."""
        return self.tension_model.activation_map

    @property
    def max_stable_dt(self) -> float:
        """5 ms (`"brown"`) or 2.5 ms (`"linear"`): 2/λ with λ = 400 or 800 s⁻¹ bounding the
        Jacobian's spectral radius under full co-contraction over the joint box (computed: 376
        and 671 s⁻¹). Derived for the preset's parameters; stronger muscles lower it."""
        return _EULER_DT_LIMIT[self.activation_map]

    def _arrays(self, dtype):
        return (
            jnp.asarray(self.moment_arms, dtype),
            jnp.asarray(self.theta0, dtype),
            jnp.asarray(self.optimal_length, dtype),
            jnp.asarray(self.max_force, dtype),
        )

    # ----------------------------------------------------------------------------------------
    # Muscle kinematics and forces.

    def muscle_lengths(self, theta: Float[ArrayLike, " joint"]) -> Float[Array, " muscle"]:
        """Normalised lengths `l_i = 1 + Σ_j M_ji(θ0_ji − θ_j)/L0_i` (unclipped)."""
        theta = jnp.asarray(theta)
        dtype = float_dtype(theta)
        moment_arms, theta0, optimal_length, _ = self._arrays(dtype)
        stretch = jnp.sum(moment_arms * (theta0 - theta.astype(dtype)[:, None]), axis=0)
        return 1 + stretch / optimal_length

    def muscle_velocities(
        self, theta: Float[ArrayLike, " joint"], theta_dot: Float[ArrayLike, " joint"]
    ) -> Float[Array, " muscle"]:
        """Normalised lengthening velocities `v_i = dl_i/dt = −Σ_j M_ji θ̇_j/L0_i` (L0/s).

        The moment arms are constant, so `theta` does not enter; it is accepted for a
        signature that posture-dependent geometries can share.
        """
        theta_dot = jnp.asarray(theta_dot)
        dtype = float_dtype(theta, theta_dot)
        moment_arms, _, optimal_length, _ = self._arrays(dtype)
        return -(moment_arms.T @ theta_dot.astype(dtype)) / optimal_length

    def tension(
        self,
        a: Float[ArrayLike, " muscle"],
        l: Float[ArrayLike, " muscle"],
        v: Float[ArrayLike, " muscle"],
    ) -> Float[Array, " muscle"]:
        """Tension `T(a, l, v)` in units of `F_max` (see `MuscleTension`)."""
        return self.tension_model(a, l, v)

    def muscle_forces(self, y: Float[Array, " state"]) -> Float[Array, " muscle"]:
        """Muscle forces `F = F_max·T(a, l, v)` (N) at the state `y`."""
        y = jnp.asarray(y)
        dtype = float_dtype(y)
        y = y.astype(dtype)
        theta, theta_dot, a = y[:2], y[2:4], y[4:10]
        _, _, _, max_force = self._arrays(dtype)
        lengths = self.muscle_lengths(theta)
        velocities = self.muscle_velocities(theta, theta_dot)
        return max_force * self.tension(a, lengths, velocities)

    def muscle_torques(self, y: Float[Array, " state"]) -> Float[Array, " joint"]:
        """Joint torques `τ = M F` (N·m) at the state `y`."""
        y = jnp.asarray(y)
        moment_arms, _, _, _ = self._arrays(float_dtype(y))
        return moment_arms @ self.muscle_forces(y)

    def activation_derivative(
        self, u: Float[ArrayLike, " muscle"], a: Float[ArrayLike, " muscle"]
    ) -> Float[Array, " muscle"]:
        """`ȧ = (u − a)/τ(u, a)`; τ = τ_deact + u(τ_act − τ_deact) if u > a, else τ_deact.

        `u` is clipped to `[0, 1]` first (our choice; whether LT04 caps it is not known): above
        `u ≈ 4.1` the rising τ would turn negative.
        """
        a = jnp.asarray(a)
        dtype = float_dtype(u, a)
        a = a.astype(dtype)
        u = jnp.clip(jnp.asarray(u, dtype), 0.0, 1.0)
        tau = jnp.where(u > a, self.tau_deact + u * (self.tau_act - self.tau_deact), self.tau_deact)
        return (u - a) / tau

    # ----------------------------------------------------------------------------------------
    # Dynamics.

    def vector_field(
        self, t, y: Float[Array, " state"], args: Float[ArrayLike, " muscle"] | None
    ) -> Float[Array, " state"]:
        """`dy/dt = (θ̇, θ̈, ȧ)` under the excitations `args` (`None` = all zero)."""
        y = jnp.asarray(y)
        dtype = float_dtype(y)
        y = y.astype(dtype)
        u = jnp.zeros(6, dtype) if args is None else jnp.asarray(args, dtype)
        theta, theta_dot, a = y[:2], y[2:4], y[4:10]
        torque = self.muscle_torques(y)
        theta_ddot = self.skeleton.joint_acceleration(theta, theta_dot, torque)
        return jnp.concatenate([theta_dot, theta_ddot, self.activation_derivative(u, a)])

    def constrain(self, y: Float[Array, " state"]) -> Float[Array, " state"]:
        """Apply `joint_limits` (if any) after a step (guard (d))."""
        if self.joint_limits is None:
            return y
        theta, theta_dot = clamp_to_joint_limits(y[:2], y[2:4], self.joint_limits)
        return jnp.concatenate([theta, theta_dot, y[4:]])

    def hand_force_rate(
        self, y: Float[Array, " state"], force: Float[ArrayLike, "2"]
    ) -> Float[Array, " state"]:
        """The skeleton's `hand_force_rate` (M⁻¹JᵀF on θ̈), 0 on the activations."""
        y = jnp.asarray(y)
        return jnp.concatenate(
            [self.skeleton.hand_force_rate(y[:4], force), jnp.zeros_like(y[4:10])]
        )

    def kinetic_energy(self, y: Float[Array, " state"]) -> Float[Array, ""]:
        """Kinetic energy of the skeleton (J)."""
        return self.skeleton.kinetic_energy(jnp.asarray(y)[:4])

    # ----------------------------------------------------------------------------------------
    # States and read-outs.

    def initial_state(
        self,
        theta: Float[ArrayLike, " joint"] | None = None,
        theta_dot: Float[ArrayLike, " joint"] | None = None,
        activation: Float[ArrayLike, " muscle"] | None = None,
        *,
        dtype=None,
    ) -> Float[Array, " state"]:
        """The state `(θ, θ̇, a)`: defaults are the skeleton's rest posture, zero velocity and
        zero activation. The dtype is `dtype`, else that of the inputs, else JAX's default."""
        if dtype is None:
            dtype = float_dtype(theta, theta_dot, activation)
        skeleton_state = self.skeleton.initial_state(theta, theta_dot, dtype=dtype)
        activation = jnp.zeros(6, dtype) if activation is None else jnp.asarray(activation, dtype)
        if activation.shape != (6,):
            raise ValueError(f"`activation` must have shape (6,); got {activation.shape}.")
        return jnp.concatenate([skeleton_state, activation])

    def activations(self, y: Float[Array, " state"]) -> Float[Array, " muscle"]:
        """Muscle activations `a` (SF, SE, EF, EE, BF, BE)."""
        return jnp.asarray(y)[4:10]

    def muscle_lengths_of(self, y: Float[Array, " state"]) -> Float[Array, " muscle"]:
        """Normalised muscle lengths (L0) at the state `y` (`muscle_lengths` of its angles)."""
        return self.muscle_lengths(jnp.asarray(y)[:2])

    def muscle_velocities_of(self, y: Float[Array, " state"]) -> Float[Array, " muscle"]:
        """Normalised lengthening velocities (L0/s) at the state `y`."""
        y = jnp.asarray(y)
        return self.muscle_velocities(y[:2], y[2:4])

    def joint_angles(self, y: Float[Array, " state"]) -> Float[Array, " joint"]:
        """(θ_s, θ_e) in rad."""
        return jnp.asarray(y)[:2]

    def joint_velocities(self, y: Float[Array, " state"]) -> Float[Array, " joint"]:
        """(θ̇_s, θ̇_e) in rad/s."""
        return jnp.asarray(y)[2:4]

    def hand_position(self, y: Float[Array, " state"]) -> Float[Array, "2"]:
        """Hand position (m)."""
        return self.skeleton.hand_position(jnp.asarray(y)[:4])

    def hand_velocity(self, y: Float[Array, " state"]) -> Float[Array, "2"]:
        """Hand velocity (m/s)."""
        return self.skeleton.hand_velocity(jnp.asarray(y)[:4])
