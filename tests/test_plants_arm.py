"""The torque-driven two-joint arm (Li & Todorov 2004; the paper's arm), checked against
independent computations: hand-derived constants, a Lagrangian built from the segment
kinematics, energy balance, `jax.jvp` of the kinematics, diffrax solutions, and the reference
code's rest hand position."""

import math

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neurodyn.plants import AbstractPlant, TwoJointArm

from .helpers import tree_allclose

DEG = math.pi / 180


def _random_states(key, n, *, speed=5.0):
    """States with θ in the joint box [0, 140°]×[0, 160°] and |θ̇| up to `speed` rad/s."""
    k1, k2 = jax.random.split(key)
    theta = jax.random.uniform(k1, (n, 2), minval=0.0, maxval=jnp.array([140, 160]) * DEG)
    theta_dot = jax.random.uniform(k2, (n, 2), minval=-speed, maxval=speed)
    return jnp.concatenate([theta, theta_dot], axis=1)


def test_is_a_plant():
    arm = TwoJointArm()
    assert isinstance(arm, AbstractPlant)
    assert (arm.state_size, arm.control_size) == (4, 2)
    assert arm.initial_state().shape == (4,)


@pytest.mark.parametrize("preset", TwoJointArm.presets)
def test_inertia_constants_and_mass_matrix(preset):
    # Computed by hand: a1 = 0.160, a2 = 0.048, a3 = 0.045 kg·m² (l2 does not enter).
    arm = TwoJointArm.from_preset(preset)
    a1, a2, a3 = arm.inertia_constants
    assert a1 == pytest.approx(0.160, abs=1e-12)
    assert a2 == pytest.approx(0.048, abs=1e-12)
    assert a3 == pytest.approx(0.045, abs=1e-12)
    # M(θ) is symmetric positive definite over the joint box (and in fact for every θ2).
    grid = jnp.stack(
        jnp.meshgrid(jnp.linspace(0, 140 * DEG, 8), jnp.linspace(0, math.pi, 41)), -1
    ).reshape(-1, 2)
    ms = jax.vmap(arm.mass_matrix)(grid)
    assert np.allclose(ms, np.swapaxes(ms, 1, 2), rtol=0, atol=0)
    assert np.all(np.linalg.eigvalsh(np.asarray(ms)) > 0)
    # The textbook formula for M(θ) with the hand-computed constants.
    c = np.cos(grid[:, 1])
    expected = np.stack(
        [
            np.stack([0.16 + 0.096 * c, 0.045 + 0.048 * c], -1),
            np.stack([0.045 + 0.048 * c, 0.045 + 0 * c], -1),
        ],
        1,
    )
    assert np.allclose(ms, expected, rtol=1e-12, atol=1e-14)


def _lagrangian_dynamics(arm, y, torque):
    """M, C and θ̈ from Euler–Lagrange on the kinetic energy of the two segments, built from
    their kinematics (not from the formula for M): link 1 rotates about the shoulder (inertia I1);
    link 2 has its centre of mass at s2 from the elbow and inertia I2 − m2·s2² about it."""
    theta, theta_dot = y[:2], y[2:]

    def com2(th):
        return arm.l1 * jnp.stack([jnp.cos(th[0]), jnp.sin(th[0])]) + arm.s2 * jnp.stack(
            [jnp.cos(th[0] + th[1]), jnp.sin(th[0] + th[1])]
        )

    def kinetic(th, thd):
        _, v_com2 = jax.jvp(com2, (th,), (thd,))
        omega2 = thd[0] + thd[1]
        i2_com = arm.I2 - arm.m2 * arm.s2**2
        return (
            0.5 * arm.I1 * thd[0] ** 2 + 0.5 * arm.m2 * v_com2 @ v_com2 + 0.5 * i2_com * (omega2**2)
        )

    mass = jax.hessian(kinetic, argnums=1)(theta, theta_dot)
    dp_dtheta = jax.jacfwd(jax.grad(kinetic, argnums=1), argnums=0)(theta, theta_dot)
    coriolis = dp_dtheta @ theta_dot - jax.grad(kinetic, argnums=0)(theta, theta_dot)
    viscosity = jnp.asarray(arm.viscosity)
    accel = jnp.linalg.solve(mass, torque - coriolis - viscosity @ theta_dot)
    return mass, coriolis, accel


def test_dynamics_match_lagrangian(getkey):
    arm = TwoJointArm.from_preset("li_todorov_2004")
    ys = _random_states(getkey(), 32)
    torques = jax.random.normal(getkey(), (32, 2))
    mass, coriolis, accel = jax.jit(jax.vmap(lambda y, t: _lagrangian_dynamics(arm, y, t)))(
        ys, torques
    )
    assert np.allclose(jax.vmap(arm.mass_matrix)(ys[:, :2]), mass, rtol=1e-12, atol=1e-14)
    assert np.allclose(
        jax.vmap(arm.coriolis)(ys[:, :2], ys[:, 2:]), coriolis, rtol=1e-10, atol=1e-12
    )
    field = jax.vmap(lambda y, t: arm.vector_field(0.0, y, t))(ys, torques)
    assert np.allclose(field[:, :2], ys[:, 2:], rtol=0, atol=0)
    assert np.allclose(field[:, 2:], accel, rtol=1e-10, atol=1e-10)


def test_rest_hand_position():
    # The reference code's arm: with l2 = 0.30 the hand at θ = (20°, 140°) is at (0, 0.2052) m.
    arm = TwoJointArm()
    y = arm.initial_state()
    assert np.allclose(y, [20 * DEG, 140 * DEG, 0, 0], rtol=0, atol=1e-15)
    assert np.allclose(arm.hand_position(y), [0.0, 0.2052], rtol=0, atol=5e-5)
    # The literature arm: complex-number kinematics and the law of cosines.
    arm = TwoJointArm.from_preset("li_todorov_2004")
    th1, th2 = 20 * DEG, 140 * DEG
    z = 0.30 * np.exp(1j * th1) + 0.33 * np.exp(1j * (th1 + th2))
    hand = arm.hand_position(arm.initial_state())
    assert np.allclose(hand, [z.real, z.imag], rtol=0, atol=1e-14)
    r2 = 0.30**2 + 0.33**2 + 2 * 0.30 * 0.33 * np.cos(th2)
    assert float(hand @ hand) == pytest.approx(r2, rel=1e-12)
    shoulder, elbow, hand2 = arm.joint_positions(jnp.array([th1, th2]))
    assert np.allclose(shoulder, 0)
    assert float(jnp.linalg.norm(elbow)) == pytest.approx(0.30, rel=1e-12)
    assert float(jnp.linalg.norm(hand2 - elbow)) == pytest.approx(0.33, rel=1e-12)


def test_hand_velocity_is_jvp_of_position(getkey):
    arm = TwoJointArm.from_preset("li_todorov_2004")
    ys = _random_states(getkey(), 16)

    @jax.jit
    @jax.vmap
    def both(y):
        _, jvp = jax.jvp(arm.forward_kinematics, (y[:2],), (y[2:],))
        return arm.hand_velocity(y), jvp

    assert np.allclose(*both(ys), rtol=1e-12, atol=1e-14)


def _rk4(field, y, dt, n):
    """Classic fourth-order Runge–Kutta, written here as an independent oracle (test only)."""

    def step(y, _):
        k1 = field(y)
        k2 = field(y + dt / 2 * k1)
        k3 = field(y + dt / 2 * k2)
        k4 = field(y + dt * k3)
        return y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4), None

    return jax.lax.scan(step, y, None, length=n)[0]


def test_energy_conserved_without_viscosity():
    # B = 0, no torque, θ = (45°, 90°), θ̇ = (2, −3) rad/s, E0 = 0.2525 J.
    arm = TwoJointArm(viscosity=np.zeros((2, 2)))
    y0 = arm.initial_state(jnp.array([45 * DEG, 90 * DEG]), jnp.array([2.0, -3.0]))
    e0 = arm.kinetic_energy(y0)
    assert float(e0) == pytest.approx(0.2525, abs=1e-12)
    y_rk4 = jax.jit(_rk4, static_argnums=(0, 3))(
        lambda y: arm.vector_field(0, y, None), y0, 2e-3, 500
    )
    assert abs(float(arm.kinetic_energy(y_rk4) / e0) - 1) < 1e-8
    euler = jax.jit(
        lambda y: jax.lax.scan(lambda y, _: (arm.step(y, None, 2e-3), None), y, None, 500)[0]
    )
    # Explicit Euler drifts by O(dt): an independent computation gave 0.43% after 1 s at 2 ms.
    assert abs(float(arm.kinetic_energy(euler(y0)) / e0) - 1) < 1e-2


def test_power_balance(getkey):
    # dE/dt = θ̇ᵀτ − θ̇ᵀBθ̇: Coriolis forces do no work, viscosity dissipates.
    arm = TwoJointArm()
    ys = _random_states(getkey(), 32)
    torques = jax.random.normal(getkey(), (32, 2))

    def power(y, torque):
        _, de_dt = jax.jvp(arm.kinetic_energy, (y,), (arm.vector_field(0, y, torque),))
        return de_dt

    de_dt = jax.vmap(power)(ys, torques)
    b = np.asarray(arm.viscosity)
    expected = np.einsum("ni,ni->n", ys[:, 2:], torques) - np.einsum(
        "ni,ij,nj->n", ys[:, 2:], b, ys[:, 2:]
    )
    assert np.allclose(de_dt, expected, rtol=1e-10, atol=1e-12)
    # Along the exact (diffrax) flow without torque, E never increases.
    y0 = arm.initial_state(jnp.array([45 * DEG, 90 * DEG]), jnp.array([2.0, -3.0]))
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(arm.vector_field),
        diffrax.Tsit5(),
        0.0,
        1.0,
        1e-3,
        y0,
        args=None,
        stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-12),
        saveat=diffrax.SaveAt(ts=jnp.linspace(0, 1, 101)),
    )
    energy = jax.vmap(arm.kinetic_energy)(sol.ys)
    assert np.all(np.diff(energy) <= 1e-12)
    assert float(energy[-1]) < float(energy[0])


def test_euler_converges_to_diffrax_reference():
    """Euler at 2 ms vs Tsit5 + PID (rtol 1e-10) under a constant torque for 0.5 s.

    Bound: Euler's local error is ≤ dt²/2·max|θ̈| per step, so without error amplification the
    global angle error is ≤ T·dt/2·max|θ̈|; we allow twice that (amplification along this
    0.5 s trajectory is mild). First order: halving dt halves the error.
    """
    arm = TwoJointArm()
    y0 = arm.initial_state()
    torque = jnp.array([0.5, -0.3])  # a fast movement: θ2 travels ≈ 64° in 0.5 s
    horizon = 0.5
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(arm.vector_field),
        diffrax.Tsit5(),
        0.0,
        horizon,
        1e-3,
        y0,
        args=torque,
        stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-12),
        saveat=diffrax.SaveAt(ts=jnp.linspace(0, horizon, 251)),
    )
    reference = sol.ys[-1]
    max_accel = float(
        jnp.max(jnp.abs(jax.vmap(lambda y: arm.vector_field(0, y, torque))(sol.ys)[:, 2:]))
    )

    def euler(dt):
        n = int(round(horizon / dt))
        step = lambda y, _: (arm.step(y, torque, dt), None)
        return jax.jit(lambda y: jax.lax.scan(step, y, None, length=n)[0])(y0)

    errors = {}
    for dt in (2e-3, 1e-3):
        y = euler(dt)
        errors[dt] = float(jnp.max(jnp.abs(y[:2] - reference[:2])))
        bound = horizon * dt * max_accel
        assert errors[dt] < bound, (dt, errors[dt], bound)
        hand_error = float(jnp.linalg.norm(arm.hand_position(y) - arm.hand_position(reference)))
        assert hand_error < (arm.l1 + arm.l2) * bound
    assert 0.45 < errors[1e-3] / errors[2e-3] < 0.55


@pytest.mark.parametrize("solver", [diffrax.Euler(), diffrax.Heun(), diffrax.Tsit5()])
def test_step_with_diffrax_solver_matches_diffeqsolve(solver, getkey):
    arm = TwoJointArm()
    y = _random_states(getkey(), 1)[0]
    torque = jax.random.normal(getkey(), (2,))
    dt = 2e-3
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(arm.vector_field),
        solver,
        t0=0.0,
        t1=dt,
        dt0=dt,
        y0=y,
        args=torque,
        saveat=diffrax.SaveAt(t1=True),
    )
    assert tree_allclose(arm.step(y, torque, dt, solver=solver), sol.ys[0], rtol=1e-13, atol=1e-15)


def test_default_step_is_explicit_euler(getkey):
    # θ ← θ + dt·θ̇ and θ̇ ← θ̇ + dt·θ̈, both from the old state (as in the reference code),
    # with θ̈ solved from the Lagrangian dynamics.
    arm = TwoJointArm()
    y = _random_states(getkey(), 1)[0]
    torque = jax.random.normal(getkey(), (2,))
    dt = 2e-3
    _, _, accel = jax.jit(lambda y, t: _lagrangian_dynamics(arm, y, t))(y, torque)
    expected = jnp.concatenate([y[:2] + dt * y[2:], y[2:] + dt * accel])
    assert np.allclose(arm.step(y, torque, dt), expected, rtol=1e-12, atol=1e-14)
    jitted = jax.jit(lambda y, u: arm.step(y, u, dt))
    assert np.allclose(jitted(y, torque), expected, rtol=1e-12, atol=1e-14)


def test_joint_limits():
    limits = ((0.0, 140 * DEG), (0.0, 160 * DEG))
    arm = TwoJointArm(joint_limits=limits)
    free = TwoJointArm()
    step = jax.jit(lambda y, u: arm.step(y, u, 2e-3))
    # Shoulder about to pass its upper bound, elbow moving inward from its lower bound.
    y1 = step(arm.initial_state(jnp.array([139.9 * DEG, 0.0]), jnp.array([1.0, 0.5])), jnp.zeros(2))
    assert float(y1[0]) == pytest.approx(140 * DEG, abs=1e-15)
    assert float(y1[2]) == 0.0  # outward velocity removed
    assert float(y1[3]) > 0.0  # inward velocity kept
    # At the lower bound, pushed further out: clamped and stopped.
    y1 = step(arm.initial_state(jnp.array([0.5, 0.0]), jnp.array([0.0, -2.0])), jnp.zeros(2))
    assert float(y1[1]) == 0.0 and float(y1[3]) == 0.0
    # Inside the box nothing changes.
    y = free.initial_state(jnp.array([0.5, 1.0]), jnp.array([0.3, -0.2]))
    free_step = jax.jit(lambda y, u: free.step(y, u, 2e-3))
    assert tree_allclose(step(y, jnp.ones(2)), free_step(y, jnp.ones(2)), rtol=0, atol=0)
    # Gradients through the clamp are finite (non-differentiable at the bound).
    y = arm.initial_state(jnp.array([140 * DEG, 160 * DEG]), jnp.array([1.0, 1.0]))
    grad = jax.jit(jax.grad(lambda y, u: jnp.sum(step(y, u) ** 2), argnums=(0, 1)))
    assert all(np.all(np.isfinite(g)) for g in grad(y, jnp.ones(2)))


def test_max_stable_dt_is_conservative(getkey):
    # The documented limit (10 ms): viscous rates (eigenvalues of M⁻¹B) are ≤ 3.5 s⁻¹ and the
    # Jacobian's spectral radius at joint speeds up to 20 rad/s is ≤ 50 s⁻¹, so dt·|λ| ≤ 0.5.
    arm = TwoJointArm()
    assert arm.max_stable_dt == 10e-3
    theta2 = jnp.linspace(0, math.pi, 181)
    mb = jax.vmap(
        lambda t: jnp.linalg.solve(arm.mass_matrix(jnp.array([0.0, t])), jnp.asarray(arm.viscosity))
    )(theta2)
    assert float(jnp.max(jnp.abs(jnp.linalg.eigvals(mb)))) < 3.5
    ys = _random_states(getkey(), 2000, speed=20 / math.sqrt(2))
    jac = jax.jit(jax.vmap(jax.jacfwd(lambda y: arm.vector_field(0, y, jnp.zeros(2)))))(ys)
    radius = float(np.abs(np.linalg.eigvals(np.asarray(jac))).max())
    assert radius * arm.max_stable_dt < 0.5


@pytest.mark.parametrize("name", ["l1", "l2", "m1", "m2", "s1", "s2", "I1", "I2"])
@pytest.mark.parametrize("value", [0.0, -0.1, float("nan")])
def test_rejects_non_positive_parameters(name, value):
    with pytest.raises(ValueError, match=f"`{name}`"):
        TwoJointArm(**{name: value})


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="viscosity"):
        TwoJointArm(viscosity=np.zeros(2))
    with pytest.raises(ValueError, match="positive semi-definite"):
        TwoJointArm(viscosity=-np.eye(2))
    with pytest.raises(ValueError, match="joint_limits"):
        TwoJointArm(joint_limits=((1.0, 0.0), (0.0, 1.0)))
    with pytest.raises(ValueError, match="joint_limits"):
        TwoJointArm(joint_limits=(0.0, 1.0))
    with pytest.raises(ValueError, match="li_todorov_2004"):
        TwoJointArm.from_preset("motornet")
    arm = TwoJointArm()
    y, u = arm.initial_state(), jnp.zeros(2)
    for dt in (0.0, -2e-3, float("inf")):
        with pytest.raises(ValueError, match="`dt`"):
            arm.step(y, u, dt)
    with pytest.raises(ValueError, match="stability limit"):
        arm.step(y, u, 0.02)
    with pytest.raises(ValueError, match="stability limit"):
        arm.step(y, u, 0.02, solver=diffrax.Euler())
    arm.step(y, u, 0.02, solver=diffrax.Tsit5())  # the Euler limit does not apply
    with pytest.raises(TypeError, match="solver"):
        arm.step(y, u, 2e-3, solver="rk4")
    # A traced dt is checked at run time.
    with pytest.raises(Exception, match="dt"):
        jax.block_until_ready(eqx.filter_jit(arm.step)(y, u, jnp.asarray(0.05)))


def test_float32_by_default():
    arm = TwoJointArm()
    y = arm.initial_state(dtype=jnp.float32)
    u = jnp.array([0.1, -0.1], dtype=jnp.float32)
    assert y.dtype == jnp.float32
    for out in (
        arm.step(y, u, 2e-3),
        arm.step(y, u, 2e-3, solver=diffrax.Heun()),
        arm.vector_field(0.0, y, u),
        arm.hand_position(y),
        arm.hand_velocity(y),
        arm.kinetic_energy(y),
        arm.mass_matrix(y[:2]),
    ):
        assert out.dtype == jnp.float32
    assert arm.initial_state(jnp.array([0.1, 0.2], jnp.float32)).dtype == jnp.float32
    # And float64 in, float64 out.
    assert arm.step(y.astype(jnp.float64), u, 2e-3).dtype == jnp.float64


def test_vmap_over_trials(getkey):
    arm = TwoJointArm()
    ys = _random_states(getkey(), 8)
    us = jax.random.normal(getkey(), (8, 2))
    batched = eqx.filter_jit(jax.vmap(lambda y, u: arm.step(y, u, 2e-3)))(ys, us)
    step = jax.jit(lambda y, u: arm.step(y, u, 2e-3))
    for y, u, b in zip(ys, us, batched):
        assert np.allclose(step(y, u), b, rtol=1e-14, atol=1e-15)
