"""The torque-driven two-joint arm of Li & Todorov (2004), as in Yu et al. (2024)."""

from __future__ import annotations

import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, ArrayLike, Float
from ._base import (
    AbstractPlant,
    JointLimits,
    check_joint_limits,
    check_positive,
    clamp_to_joint_limits,
    float_dtype,
)


def _as_matrix(x):
    # Keep traced / JAX arrays as they are (a plant may be built inside a transform); anything
    # else becomes a float64 NumPy array, cast to the dtype of the state where it is used.
    if isinstance(x, jax.Array):
        return x
    return np.asarray(x, dtype=float)


# The reference code's parameters. Only l2 differs from Li & Todorov (2004).
_PRESETS: dict[str, dict[str, float]] = {
    # hennequin-lab/SOFO `motor_task/motor/arm.ml` (the paper's arm): l2 = 0.30 m.
    "sofo": dict(l2=0.30),
    # Li & Todorov (2004) and hennequin-lab/optimal-preparation: l2 = 0.33 m.
    "li_todorov_2004": dict(l2=0.33),
}


class TwoJointArm(AbstractPlant):
    r"""Two-joint planar arm driven by joint torques (Li & Todorov 2004; Yu et al. 2024).

    State `y = (θ1, θ2, θ̇1, θ̇2)`: shoulder angle from the +x axis and elbow angle relative to
    the upper arm (0 = straight), in rad, positive = flexion (counter-clockwise). Control: the
    two joint torques `τ` (N·m). The arm moves in a horizontal plane without gravity:

    $$M(θ)\,\ddot θ + C(θ, \dot θ) + B \dot θ = τ,$$

    $$M = \begin{bmatrix} a_1 + 2a_2\cos θ_2 & a_3 + a_2\cos θ_2 \\
    a_3 + a_2 \cos θ_2 & a_3 \end{bmatrix},\quad
    C = a_2 \sin θ_2 \begin{bmatrix} -\dot θ_2(2\dot θ_1 + \dot θ_2) \\ \dot θ_1^2
    \end{bmatrix},$$

    with $a_1 = I_1 + I_2 + m_2 l_1^2$, $a_2 = m_2 l_1 s_2$, $a_3 = I_2$ ($I_1$, $I_2$ are
    about the joints, so `m1` and `s1` do not enter the dynamics).

    The defaults are the paper's code (`l2 = 0.30` m, preset `"sofo"`); the literature value
    `l2 = 0.33` m is `TwoJointArm.from_preset("li_todorov_2004")`. With the defaults the hand
    at the rest posture θ = (20°, 140°) is at (0, 0.2052) m.

    **Fields:**

    - `l1`, `l2`: segment lengths (m).
    - `m1`, `m2`: segment masses (kg).
    - `s1`, `s2`: distance from the proximal joint to each segment's centre of mass (m).
    - `I1`, `I2`: segment moments of inertia about their proximal joints (kg·m²).
    - `viscosity`: the 2×2 joint viscosity matrix `B` (kg·m²/s), positive semi-definite.
    - `rest_posture`: the default initial joint angles (rad).
    - `joint_limits`: `None` (default, no limits) or `((lo1, hi1), (lo2, hi2))` in rad. When
      set, `step` clamps the angles and zeros the outward velocity component after each step
      (guard (d), as in feedbax); this is not differentiable at the bound.

    **Example:**

    ```python
    arm = TwoJointArm()
    y = arm.initial_state()                      # rest posture, at rest
    y = arm.step(y, jnp.array([0.1, 0.0]), dt=2e-3)
    arm.hand_position(y)                         # ≈ (0, 0.2052) m
    ```

    ??? cite "Reference"

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
        ```
    """

    # The reference code's parameters (hennequin-lab/SOFO `motor_task/motor/arm.ml`).
    l1: float = 0.30
    l2: float = 0.30
    m1: float = 1.4
    m2: float = 1.0
    s1: float = 0.11
    s2: float = 0.16
    I1: float = 0.025
    I2: float = 0.045
    viscosity: Float[ArrayLike, "2 2"] = eqx.field(
        default=((0.05, 0.025), (0.025, 0.05)), converter=_as_matrix
    )
    # The reference code's rest posture: θ1 = 20°, θ2 = 140°.
    rest_posture: tuple[float, float] = (math.radians(20.0), math.radians(140.0))
    joint_limits: JointLimits | None = eqx.field(
        default=None, static=True, converter=check_joint_limits
    )

    state_size: ClassVar[int] = 4
    control_size: ClassVar[int] = 2
    presets: ClassVar[tuple[str, ...]] = tuple(_PRESETS)

    # Explicit-Euler limit (s). With zero velocity the only mechanical rate is the viscous one,
    # the eigenvalues of M⁻¹B, at most 3.4 s⁻¹ over θ2 ∈ [0, π] (Euler limit 2/3.4 ≈ 0.58 s).
    # Velocity-dependent (Coriolis/centripetal) rates grow like ≈ 2.2·|θ̇| s⁻¹, so ≈ 45 s⁻¹
    # at 20 rad/s (the speed bound of the muscle arm's stability test); 10 ms keeps
    # dt·|λ| ≤ 0.45, well inside Euler's stability disk, and resolves the 20 ms time constant
    # of the paper's motor RNN (dt ≤ τ/2). Both rates are checked in tests/test_plants_arm.py.
    _euler_dt_limit: ClassVar[float] = 10e-3

    def __check_init__(self):
        for name in ("l1", "l2", "m1", "m2", "s1", "s2", "I1", "I2"):
            check_positive(getattr(self, name), name)
        viscosity = self.viscosity
        if np.shape(viscosity) != (2, 2):
            raise ValueError(f"`viscosity` must be a 2x2 matrix; got shape {np.shape(viscosity)}.")
        if not isinstance(viscosity, jax.core.Tracer):
            b = np.asarray(viscosity, dtype=float)
            if not np.all(np.isfinite(b)):
                raise ValueError(f"`viscosity` must be finite; got {b}.")
            # A non-dissipative B would feed energy into the arm (dE/dt = -θ̇ᵀBθ̇ + θ̇ᵀτ).
            if np.linalg.eigvalsh(0.5 * (b + b.T)).min() < -1e-12:
                raise ValueError(f"`viscosity` must be positive semi-definite; got {b}.")
        if len(self.rest_posture) != 2:
            raise ValueError(f"`rest_posture` must hold 2 angles; got {self.rest_posture!r}.")

    @classmethod
    def from_preset(cls, name: str = "sofo", **overrides) -> TwoJointArm:
        """An arm with a named parameter set.

        **Arguments:**

        - `name`: `"sofo"` (the paper's code, `l2 = 0.30` m; the default arm) or
          `"li_todorov_2004"` (the literature value `l2 = 0.33` m).
        - `overrides`: any other field, e.g. `joint_limits=...`.

        **Raises:**

        `ValueError` for an unknown preset name.
        """
        if name not in _PRESETS:
            raise ValueError(f"`name` must be one of {tuple(_PRESETS)}; got {name!r}.")
        return cls(**{**_PRESETS[name], **overrides})

    @property
    def max_stable_dt(self) -> float:
        """10 ms: see the comment on `_euler_dt_limit` (viscous rates ≤ 3.4 s⁻¹, Coriolis
        rates ≈ 45 s⁻¹ at 20 rad/s, controller τ = 20 ms)."""
        return self._euler_dt_limit

    # ----------------------------------------------------------------------------------------
    # Dynamics.

    @property
    def inertia_constants(self) -> tuple[float, float, float]:
        """`(a1, a2, a3) = (I1 + I2 + m2·l1², m2·l1·s2, I2)` in kg·m²."""
        return (self.I1 + self.I2 + self.m2 * self.l1**2, self.m2 * self.l1 * self.s2, self.I2)

    def mass_matrix(self, theta: Float[ArrayLike, " joint"]) -> Float[Array, "joint joint"]:
        """The inertia matrix `M(θ)` (kg·m²); it depends on the elbow angle only."""
        theta = jnp.asarray(theta)
        a1, a2, a3 = self.inertia_constants
        c = jnp.cos(theta[1])
        m11 = a1 + 2 * a2 * c
        m12 = a3 + a2 * c
        m22 = jnp.zeros_like(c) + a3
        return jnp.stack([jnp.stack([m11, m12]), jnp.stack([m12, m22])])

    def coriolis(
        self, theta: Float[ArrayLike, " joint"], theta_dot: Float[ArrayLike, " joint"]
    ) -> Float[Array, " joint"]:
        """Coriolis and centripetal torques `C(θ, θ̇)` (N·m)."""
        theta = jnp.asarray(theta)
        theta_dot = jnp.asarray(theta_dot)
        _, a2, _ = self.inertia_constants
        s = a2 * jnp.sin(theta[1])
        return s * jnp.stack([-theta_dot[1] * (2 * theta_dot[0] + theta_dot[1]), theta_dot[0] ** 2])

    def joint_acceleration(
        self,
        theta: Float[ArrayLike, " joint"],
        theta_dot: Float[ArrayLike, " joint"],
        torque: Float[ArrayLike, " joint"],
    ) -> Float[Array, " joint"]:
        """θ̈ = M⁻¹(τ − C − Bθ̇), with the analytic 2×2 inverse."""
        theta = jnp.asarray(theta)
        dtype = float_dtype(theta, theta_dot, torque)
        theta = theta.astype(dtype)
        theta_dot = jnp.asarray(theta_dot, dtype=dtype)
        torque = jnp.asarray(torque, dtype=dtype)
        viscosity = jnp.asarray(self.viscosity, dtype=dtype)
        rhs = torque - self.coriolis(theta, theta_dot) - viscosity @ theta_dot
        m = self.mass_matrix(theta)
        # det = a1·a3 − a3² − a2²·cos²θ2 > 0 for these parameters (M is SPD).
        det = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]
        return (
            jnp.stack([m[1, 1] * rhs[0] - m[0, 1] * rhs[1], m[0, 0] * rhs[1] - m[1, 0] * rhs[0]])
            / det
        )

    def vector_field(
        self, t, y: Float[Array, " state"], args: Float[ArrayLike, " joint"] | None
    ) -> Float[Array, " state"]:
        """`d(θ, θ̇)/dt = (θ̇, θ̈)` under the joint torques `args` (N·m; `None` = no torque)."""
        y = jnp.asarray(y)
        dtype = float_dtype(y)
        y = y.astype(dtype)
        torque = jnp.zeros(2, dtype) if args is None else jnp.asarray(args, dtype=dtype)
        theta, theta_dot = y[:2], y[2:4]
        return jnp.concatenate([theta_dot, self.joint_acceleration(theta, theta_dot, torque)])

    def jacobian(self, theta: Float[ArrayLike, " joint"]) -> Float[Array, "2 joint"]:
        """The hand Jacobian J(θ) = ∂(x, y)/∂(θ1, θ2) (m/rad): hand velocity = J θ̇."""
        theta = jnp.asarray(theta)
        t1, t12 = theta[0], theta[0] + theta[1]
        s1, c1 = self.l1 * jnp.sin(t1), self.l1 * jnp.cos(t1)
        s12, c12 = self.l2 * jnp.sin(t12), self.l2 * jnp.cos(t12)
        return jnp.stack([jnp.stack([-s1 - s12, -s12]), jnp.stack([c1 + c12, c12])])

    def hand_force_torque(
        self, theta: Float[ArrayLike, " joint"], force: Float[ArrayLike, "2"]
    ) -> Float[Array, " joint"]:
        """Joint torques τ = J(θ)ᵀF (N·m) of a force `F` (N) on the hand (virtual work)."""
        theta = jnp.asarray(theta)
        force = jnp.asarray(force, dtype=float_dtype(theta, force))
        return self.jacobian(theta).T @ force

    def hand_force_rate(
        self, y: Float[Array, " state"], force: Float[ArrayLike, "2"]
    ) -> Float[Array, " state"]:
        """`(0, 0, M(θ)⁻¹J(θ)ᵀF)`: the acceleration a hand force `F` (N) adds (see
        `AbstractPlant.step`'s `hand_force`). Linear in `F`, and exactly 0 for `F = 0`."""
        y = jnp.asarray(y)
        theta = y[:2]
        rhs = self.hand_force_torque(theta, force)
        m = self.mass_matrix(theta)
        det = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]
        acc = (
            jnp.stack([m[1, 1] * rhs[0] - m[0, 1] * rhs[1], m[0, 0] * rhs[1] - m[1, 0] * rhs[0]])
            / det
        )
        return jnp.concatenate([jnp.zeros_like(acc), acc, jnp.zeros_like(y[4:])])

    def constrain(self, y: Float[Array, " state"]) -> Float[Array, " state"]:
        """Apply `joint_limits` (if any) after a step (guard (d))."""
        if self.joint_limits is None:
            return y
        theta, theta_dot = clamp_to_joint_limits(y[:2], y[2:4], self.joint_limits)
        return jnp.concatenate([theta, theta_dot, y[4:]])

    def kinetic_energy(self, y: Float[Array, " state"]) -> Float[Array, ""]:
        """E = ½ θ̇ᵀ M(θ) θ̇ (J). With `B = 0` and no torque it is conserved."""
        y = jnp.asarray(y)
        theta_dot = y[2:4]
        return 0.5 * theta_dot @ self.mass_matrix(y[:2]) @ theta_dot

    # ----------------------------------------------------------------------------------------
    # States and read-outs.

    def initial_state(
        self,
        theta: Float[ArrayLike, " joint"] | None = None,
        theta_dot: Float[ArrayLike, " joint"] | None = None,
        *,
        dtype=None,
    ) -> Float[Array, " state"]:
        """The state `(θ, θ̇)`: `theta` defaults to `rest_posture`, `theta_dot` to zero.

        The dtype is `dtype` if given, else that of the inputs, else JAX's default float.
        """
        if dtype is None:
            dtype = float_dtype(theta, theta_dot)
        theta = jnp.asarray(self.rest_posture if theta is None else theta, dtype=dtype)
        theta_dot = jnp.zeros(2, dtype) if theta_dot is None else jnp.asarray(theta_dot, dtype)
        if theta.shape != (2,) or theta_dot.shape != (2,):
            raise ValueError(
                f"`theta` and `theta_dot` must have shape (2,); got {theta.shape} and "
                f"{theta_dot.shape}."
            )
        return jnp.concatenate([theta, theta_dot])

    def joint_angles(self, y: Float[Array, " state"]) -> Float[Array, " joint"]:
        """(θ1, θ2) in rad."""
        return jnp.asarray(y)[:2]

    def joint_velocities(self, y: Float[Array, " state"]) -> Float[Array, " joint"]:
        """(θ̇1, θ̇2) in rad/s."""
        return jnp.asarray(y)[2:4]

    def forward_kinematics(self, theta: Float[ArrayLike, " joint"]) -> Float[Array, "2"]:
        """Hand position (m): x = l1 cos θ1 + l2 cos(θ1+θ2), y = l1 sin θ1 + l2 sin(θ1+θ2)."""
        return self.joint_positions(theta)[2]

    def joint_positions(self, theta: Float[ArrayLike, " joint"]) -> Float[Array, "3 2"]:
        """Positions (m) of the shoulder (the origin), the elbow and the hand, one per row."""
        theta = jnp.asarray(theta)
        t1 = theta[0]
        t12 = theta[0] + theta[1]
        elbow = self.l1 * jnp.stack([jnp.cos(t1), jnp.sin(t1)])
        hand = elbow + self.l2 * jnp.stack([jnp.cos(t12), jnp.sin(t12)])
        return jnp.stack([jnp.zeros_like(elbow), elbow, hand])

    def hand_position(self, y: Float[Array, " state"]) -> Float[Array, "2"]:
        """Hand position (m) of the state `y`."""
        return self.forward_kinematics(jnp.asarray(y)[:2])

    def hand_velocity(self, y: Float[Array, " state"]) -> Float[Array, "2"]:
        """Hand velocity (m/s):
        ẋ = −l1 θ̇1 sin θ1 − l2(θ̇1+θ̇2) sin(θ1+θ2), ẏ = l1 θ̇1 cos θ1 + l2(θ̇1+θ̇2) cos(θ1+θ2).
        """
        y = jnp.asarray(y)
        t1, t12 = y[0], y[0] + y[1]
        w1, w12 = y[2], y[2] + y[3]
        return jnp.stack(
            [
                -self.l1 * w1 * jnp.sin(t1) - self.l2 * w12 * jnp.sin(t12),
                self.l1 * w1 * jnp.cos(t1) + self.l2 * w12 * jnp.cos(t12),
            ]
        )
