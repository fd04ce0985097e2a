"""The plant interface: a continuous-time physical system driven by a control vector.

A plant is an `eqx.Module` with a state vector `y` and a control vector `u`. It exposes its
vector field `dy/dt = f(y, u)` in diffrax's signature, so that

```python
term = diffrax.ODETerm(plant.vector_field)
diffrax.diffeqsolve(term, solver, t0, t1, dt0, y0, args=u)
```

integrates it, and a one-step map `step(y, u, dt)` (explicit Euler by default, as in the authors'
reference code) that a closed loop calls once per network step.
"""

from __future__ import annotations

import abc
import math
import numbers

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, ArrayLike, Float

JointLimits = tuple[tuple[float, float], tuple[float, float]]


class AbstractPlant(eqx.Module):
    """Base class of every plant.

    Subclasses define the sizes, the vector field and the read-outs below. The state is one
    flat vector (write for one trial, batch with `jax.vmap`, roll out with `lax.scan`).

    **Attributes:**

    - `state_size`: length of the state vector `y` (a class constant).
    - `control_size`: length of the control vector `u` (a class constant).
    - `max_stable_dt`: the largest `dt` (s) that `step` accepts with explicit Euler. Each plant
      documents how it was derived.
    """

    state_size: eqx.AbstractClassVar[int]
    control_size: eqx.AbstractClassVar[int]

    @property
    @abc.abstractmethod
    def max_stable_dt(self) -> float:
        """Largest explicit-Euler step (s) this plant accepts; see the subclass for why."""

    @abc.abstractmethod
    def initial_state(self, *args, **kwargs) -> Float[Array, " state"]:
        """The state at the start of a trial."""

    @abc.abstractmethod
    def vector_field(self, t, y: Float[Array, " state"], args) -> Float[Array, " state"]:
        """`dy/dt` at state `y` under the control `args` (diffrax's `(t, y, args)` signature)."""

    @abc.abstractmethod
    def joint_angles(self, y: Float[Array, " state"]) -> Float[Array, " joint"]:
        """Joint angles (rad)."""

    @abc.abstractmethod
    def joint_velocities(self, y: Float[Array, " state"]) -> Float[Array, " joint"]:
        """Joint angular velocities (rad/s)."""

    @abc.abstractmethod
    def hand_position(self, y: Float[Array, " state"]) -> Float[Array, "2"]:
        """Hand (end-point) position (m) in the shoulder frame."""

    @abc.abstractmethod
    def hand_velocity(self, y: Float[Array, " state"]) -> Float[Array, "2"]:
        """Hand (end-point) velocity (m/s)."""

    def hand_force_rate(
        self, y: Float[Array, " state"], force: Float[ArrayLike, "2"]
    ) -> Float[Array, " state"]:
        """The part of `dy/dt` due to an external force `force` (N) on the hand.

        Plants with a hand override this (`TwoJointArm`, `MuscleArm`: the joint accelerations
        M(θ)⁻¹Jᵀ(θ)F); the base class has no hand to push.

        **Raises:** `NotImplementedError` for a plant without one.
        """
        raise NotImplementedError(f"{type(self).__name__} does not take an external hand force.")

    def constrain(self, y: Float[Array, " state"]) -> Float[Array, " state"]:
        """Project a state after a step onto the admissible set (identity by default).

        Plants with joint limits override this; `step` calls it after every step. It is not
        part of `vector_field`, so a bare `diffrax.diffeqsolve` does not see it.
        """
        return y

    def step(
        self,
        y: Float[Array, " state"],
        u: Float[ArrayLike, " control"],
        dt: float | Float[ArrayLike, ""],
        *,
        solver: diffrax.AbstractSolver | None = None,
        hand_force: Float[ArrayLike, "2"] | None = None,
    ) -> Float[Array, " state"]:
        """Advance the state by one step of length `dt` with the control `u` held constant.

        With `solver=None` this is one explicit Euler step of the whole state,
        `y + dt * vector_field(0, y, u)`: every derivative is taken at the old state (for the
        skeleton, θ ← θ + dt·θ̇ and θ̇ ← θ̇ + dt·θ̈, as in the reference code). With a diffrax
        solver instance (e.g. `diffrax.Heun()`, `diffrax.Tsit5()`) it takes exactly one step of
        size `dt` with that solver (the same result as `diffeqsolve` from `t0=0` to `t1=dt` with
        `dt0=dt`). The result then goes through `constrain` (joint limits, when the plant has
        them).

        **Arguments:**

        - `y`: the current state.
        - `u`: the control, held over the step.
        - `dt`: the step (s), `0 < dt`; with explicit Euler also `dt <= max_stable_dt`.
        - `solver`: `None` (explicit Euler) or a `diffrax.AbstractSolver` instance.
        - `hand_force`: an external force (N, shoulder frame) on the hand, held over the step
          (a perturbation: a force pulse, a force field evaluated at the step's start). It
          enters the dynamics as the joint torques Jᵀ(θ)F through `hand_force_rate`. `None`
          (default) leaves the step exactly as without the argument.

        **Returns:**

        The state after the step, with the dtype of `y`.

        **Raises:**

        `ValueError` for `dt <= 0`, or for an Euler step (`solver=None` or `diffrax.Euler`)
        beyond `max_stable_dt`, when `dt` is a concrete number; a traced `dt` is checked at run
        time with `eqx.error_if`. `TypeError` if `solver` is not a diffrax solver.
        """
        y = jnp.asarray(y)
        dtype = float_dtype(y)
        y = y.astype(dtype)
        u = None if u is None else jnp.asarray(u, dtype=dtype)
        if solver is not None and not isinstance(solver, diffrax.AbstractSolver):
            raise TypeError(
                "`solver` must be None (explicit Euler) or a diffrax solver instance such as "
                f"`diffrax.Heun()`; got {solver!r}."
            )
        euler = solver is None or isinstance(solver, diffrax.Euler)
        dt = self._check_dt(dt, euler=euler)
        dt = jnp.asarray(dt, dtype=dtype)
        field = self.vector_field
        if hand_force is not None:
            force = jnp.asarray(hand_force, dtype=dtype)

            def field(t, y, args):
                return self.vector_field(t, y, args) + self.hand_force_rate(y, force)

        if solver is None:
            y_next = y + dt * field(jnp.zeros((), dtype), y, u)
        else:
            term = diffrax.ODETerm(field)
            t0 = jnp.zeros((), dtype)
            solver_state = solver.init(term, t0, dt, y, u)
            y_next, _, _, _, _ = solver.step(term, t0, dt, y, u, solver_state, made_jump=False)
        return self.constrain(y_next)

    def _check_dt(self, dt, *, euler: bool):
        limit = self.max_stable_dt
        if isinstance(dt, jax.core.Tracer):
            if euler:
                bad = (dt <= 0) | (dt > limit)
                message = f"`dt` must satisfy 0 < dt <= {limit} (explicit-Euler stability limit)."
            else:
                bad = dt <= 0
                message = "`dt` must be > 0."
            return eqx.error_if(dt, bad, message)
        if np.ndim(dt) != 0:
            raise ValueError(f"`dt` must be a scalar; got shape {np.shape(dt)}.")
        value = float(dt)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"`dt` must be a finite number > 0; got {dt!r}.")
        if euler and value > limit:
            raise ValueError(
                f"`dt` = {value} s exceeds the explicit-Euler stability limit of "
                f"{type(self).__name__} ({limit} s; see `max_stable_dt`). Use a smaller `dt`, "
                "substeps, or pass an implicit diffrax solver as `solver=`."
            )
        return dt


# --------------------------------------------------------------------------------------------
# Helpers shared by the plants.


def float_dtype(*arrays) -> np.dtype:
    """The floating dtype of the inputs (JAX's default float if none is floating).

    Python scalars are weakly typed, so `float_dtype(float32_array, 0.5)` is float32.
    """
    # Lists and tuples go through NumPy (float64, canonicalised by JAX to its default float);
    # Python scalars stay weakly typed.
    arrays = [a for a in arrays if a is not None]
    arrays = [a if hasattr(a, "dtype") or np.isscalar(a) else np.asarray(a) for a in arrays]
    if arrays:
        dtype = jnp.result_type(*arrays)
        if jnp.issubdtype(dtype, jnp.floating):
            return dtype
    return jnp.result_type(float)


def check_positive(value, name: str) -> None:
    """Raise `ValueError` naming `name` unless `value` is a finite real number > 0.

    A traced value (a plant built inside `jit`/`vmap`) is not checked.
    """
    if isinstance(value, jax.core.Tracer):
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real | np.ndarray | jax.Array):
        raise TypeError(f"`{name}` must be a real number; got {value!r}.")
    if np.ndim(value) != 0:
        raise ValueError(f"`{name}` must be a scalar; got shape {np.shape(value)}.")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"`{name}` must be a finite number > 0; got {value}.")


def check_joint_limits(joint_limits, name: str = "joint_limits") -> JointLimits | None:
    """Normalise `((lo1, hi1), (lo2, hi2))` in radians to a tuple of floats, or keep `None`."""
    if joint_limits is None:
        return None
    try:
        limits = np.asarray(joint_limits, dtype=float)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"`{name}` must be None or ((lo1, hi1), (lo2, hi2)) in radians; got {joint_limits!r}."
        ) from e
    if limits.shape != (2, 2):
        raise ValueError(
            f"`{name}` must be None or ((lo1, hi1), (lo2, hi2)) in radians; got shape "
            f"{limits.shape}."
        )
    if not np.all(np.isfinite(limits)) or not np.all(limits[:, 0] < limits[:, 1]):
        raise ValueError(f"`{name}` needs finite bounds with lo < hi for each joint; got {limits}.")
    return ((float(limits[0, 0]), float(limits[0, 1])), (float(limits[1, 0]), float(limits[1, 1])))


def clamp_to_joint_limits(
    theta: Float[Array, " joint"],
    theta_dot: Float[Array, " joint"],
    joint_limits: JointLimits,
) -> tuple[Float[Array, " joint"], Float[Array, " joint"]]:
    """Hard joint limits (guard (d), after `MuscleTension`'s guards (a)–(c); as in feedbax).

    Clamp the angles to `[lo, hi]` and zero the velocity component that points out of the box
    (a joint at or past its upper bound keeps only a non-positive velocity, and vice versa).
    Not differentiable at the bound (the derivative there is that of the clamp: 0 or 1, always
    finite).
    """
    lo = jnp.asarray([joint_limits[0][0], joint_limits[1][0]], dtype=theta.dtype)
    hi = jnp.asarray([joint_limits[0][1], joint_limits[1][1]], dtype=theta.dtype)
    outward = ((theta >= hi) & (theta_dot > 0)) | ((theta <= lo) & (theta_dot < 0))
    theta = jnp.clip(theta, lo, hi)
    theta_dot = jnp.where(outward, jnp.zeros_like(theta_dot), theta_dot)
    return theta, theta_dot
