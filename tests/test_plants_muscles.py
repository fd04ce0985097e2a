"""The six-muscle Li–Todorov arm (SPEC §3.4b): the physical sanity tests of its §6, each against
an independent computation (the SPEC's hand-computed targets, closed forms, finite
differences, energy balance, diffrax solutions)."""

import math

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neurodyn.plants import (
    MUSCLE_NAMES,
    AbstractPlant,
    MuscleArm,
    MuscleTension,
    TwoJointArm,
    excitation_from_output,
)

from .helpers import tree_allclose

DEG = math.pi / 180
DT = 2e-3  # SPEC §3.4b §5

# SPEC §3.4b §2.1, typed from the table (cm, degrees, cm², N).
TABLE_M_CM = np.array([[2.0, -2.0, 0, 0, 1.5, -2.0], [0, 0, 2.0, -2.0, 2.0, -1.5]])
TABLE_THETA0_DEG = np.array([[15.0, 4.88, 0, 0, 4.5, 2.12], [0, 0, 80.86, 109.32, 92.96, 91.52]])
TABLE_L0_CM = np.array([7.32, 3.26, 6.40, 4.26, 5.95, 4.04])
TABLE_FMAX_N = np.array([699.6, 381.6, 572.4, 445.2, 159.0, 318.0])


def _box_grid(n1, n2):
    """Postures on a grid over the joint box [0, 140°]×[0, 160°]."""
    t1, t2 = np.meshgrid(np.linspace(0, 140, n1) * DEG, np.linspace(0, 160, n2) * DEG)
    return np.stack([t1.ravel(), t2.ravel()], axis=1)


def _state(theta, theta_dot=(0.0, 0.0), activation=np.zeros(6)):
    return jnp.concatenate(
        [jnp.asarray(theta, float), jnp.asarray(theta_dot, float), jnp.asarray(activation, float)]
    )


def test_preset_tables():
    arm = MuscleArm()
    assert isinstance(arm, AbstractPlant)
    assert (arm.state_size, arm.control_size) == (10, 6)
    assert MUSCLE_NAMES == ("SF", "SE", "EF", "EE", "BF", "BE")
    assert arm.preset == "li_todorov_2004" and arm.activation_map == "brown"
    crosses = TABLE_M_CM != 0
    assert np.allclose(arm.moment_arms, TABLE_M_CM / 100, rtol=0, atol=1e-15)
    assert np.allclose(
        np.asarray(arm.theta0)[crosses], (TABLE_THETA0_DEG * DEG)[crosses], rtol=0, atol=1e-15
    )
    assert np.allclose(arm.optimal_length, TABLE_L0_CM / 100, rtol=0, atol=1e-15)
    assert np.allclose(arm.max_force, TABLE_FMAX_N, rtol=0, atol=1e-9)
    assert arm.tau_act == 0.050 and arm.tau_deact == 0.066
    # The skeleton is SPEC §3.4b §1's: a1 = 0.160, a2 = 0.048, a3 = 0.045.
    assert np.allclose(arm.skeleton.inertia_constants, (0.160, 0.048, 0.045), rtol=0, atol=1e-12)
    ms = jax.vmap(arm.skeleton.mass_matrix)(_box_grid(15, 17))
    assert np.all(np.linalg.eigvalsh(np.asarray(ms)) > 0)


def test_vector_field_composes_skeleton_and_muscles(getkey):
    arm = MuscleArm()
    y = _state(
        jax.random.uniform(getkey(), (2,), maxval=2.0),
        jax.random.normal(getkey(), (2,)),
        jax.random.uniform(getkey(), (6,)),
    )
    u = jax.random.uniform(getkey(), (6,))
    skeleton = TwoJointArm()

    @jax.jit
    def quantities(y, u):
        torque = arm.muscle_torques(y)
        return dict(
            field=arm.vector_field(0.0, y, u),
            torque=torque,
            skeleton_field=skeleton.vector_field(0.0, y[:4], torque),
            activation=arm.activation_derivative(u, y[4:]),
            hands=(arm.hand_position(y), arm.hand_velocity(y)),
            skeleton_hands=(skeleton.hand_position(y[:4]), skeleton.hand_velocity(y[:4])),
            forces=arm.muscle_forces(y),
        )

    q = quantities(y, u)
    assert np.allclose(q["field"][:4], q["skeleton_field"], rtol=1e-14)
    assert np.allclose(q["field"][4:], q["activation"], rtol=1e-14)
    assert tree_allclose(q["hands"], q["skeleton_hands"], rtol=1e-14)
    # τ = M·F with M in metres (SPEC §2.4).
    assert np.allclose(q["torque"], (TABLE_M_CM / 100) @ q["forces"], rtol=1e-14)


@pytest.mark.parametrize("activation_map", ["brown", "linear"])
def test_zero_force_at_zero_activation(activation_map):
    # SPEC §6.2: a = 0 gives exactly zero force, finite, at every posture and velocity (guard
    # (b): raw lengths over the box span 0.011–2.64).
    arm = MuscleArm(activation_map=activation_map)
    postures = _box_grid(15, 17)
    velocities = np.array([[0, 0], [10, -10], [-10, 10], [3, 7], [-25, -25]], float)
    ys = jnp.asarray([_state(p, v) for p in postures for v in velocities])
    lengths = jax.vmap(arm.muscle_lengths)(ys[:, :2])
    assert float(lengths.min()) < 0.05 and float(lengths.max()) > 2.5  # the guards are needed
    forces = jax.jit(jax.vmap(arm.muscle_forces))(ys)
    assert np.all(np.asarray(forces) == 0.0)
    # Tangents are finite too (forward mode, the SOFO use case).
    jac = jax.jit(jax.vmap(jax.jacfwd(lambda y: arm.vector_field(0.0, y, jnp.ones(6)))))(ys)
    assert np.all(np.isfinite(jac))


@pytest.mark.parametrize("activation_map", ["brown", "linear"])
def test_nan_activation_is_not_hidden(activation_map):
    # A diverged controller (NaN excitations → NaN activations) must give NaN forces, not the
    # exact zero of a = 0: the gate's `a > 0` test is False for NaN, and hiding it let a NaN
    # network train on with a finite loss.
    arm = MuscleArm(activation_map=activation_map)
    y = jnp.asarray(_state((math.radians(45), math.radians(90)), (0.0, 0.0)))
    y = y.at[4].set(jnp.nan)
    forces = np.asarray(arm.muscle_forces(y))
    assert np.isnan(forces[0]) and np.all(np.isfinite(forces[1:]))
    assert np.all(np.isnan(np.asarray(arm.step(y, jnp.zeros(6), 0.002))[2:4]))  # θ̇
    # and a NaN excitation reaches the activation, hence the arm, at the next step
    y0 = jnp.asarray(_state((math.radians(45), math.radians(90)), (0.0, 0.0)))
    y1 = arm.step(y0, jnp.full(6, jnp.nan), 0.002)
    assert np.all(np.isnan(np.asarray(arm.step(y1, jnp.zeros(6), 0.002))[2:4]))


def _rk4(field, y, dt, n):
    """Classic fourth-order Runge–Kutta, an independent oracle written for the test."""

    def step(y, _):
        k1 = field(y)
        k2 = field(y + dt / 2 * k1)
        k3 = field(y + dt / 2 * k2)
        k4 = field(y + dt * k3)
        return y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4), None

    return jax.lax.scan(step, y, None, length=n)[0]


def test_energy():
    # SPEC §6.3: B = 0, u = a = 0, θ = (45°, 90°), θ̇ = (2, −3) rad/s, E0 = 0.2525 J, 1 s.
    arm = MuscleArm(skeleton=TwoJointArm(viscosity=np.zeros((2, 2))))
    y0 = _state(np.array([45, 90]) * DEG, [2.0, -3.0])
    e0 = float(arm.kinetic_energy(y0))
    assert e0 == pytest.approx(0.2525, abs=1e-12)
    zero = jnp.zeros(6)
    y_rk4 = jax.jit(lambda y: _rk4(lambda y: arm.vector_field(0.0, y, zero), y, DT, 500))(y0)
    assert abs(float(arm.kinetic_energy(y_rk4)) / e0 - 1) < 1e-8  # SPEC measured 2e-10
    euler = jax.jit(
        lambda y: jax.lax.scan(lambda y, _: (arm.step(y, zero, DT), None), y, None, 500)[0]
    )
    assert abs(float(arm.kinetic_energy(euler(y0))) / e0 - 1) < 1e-2  # SPEC measured 0.43%
    # With the skeleton's B: dE/dt = θ̇ᵀτ_muscle − θ̇ᵀBθ̇ (= −θ̇ᵀBθ̇ when a = 0).
    arm = MuscleArm()
    b = np.asarray(arm.skeleton.viscosity)
    rng = np.random.default_rng(0)

    @jax.jit
    def power_and_torque(y):
        _, de_dt = jax.jvp(arm.kinetic_energy, (y,), (arm.vector_field(0.0, y, zero),))
        return de_dt, arm.muscle_torques(y)

    for activation in (np.zeros(6), rng.uniform(size=6)):
        y = _state(np.array([45, 90]) * DEG, [2.0, -3.0], activation)
        de_dt, torque = power_and_torque(y)
        thd = np.asarray(y[2:4])
        expected = thd @ np.asarray(torque) - thd @ b @ thd
        assert float(de_dt) == pytest.approx(expected, rel=1e-10, abs=1e-14)
        if not activation.any():
            assert float(de_dt) == pytest.approx(-thd @ b @ thd, rel=1e-12)


def test_isometric_tension():
    # SPEC §2.3 "Key values" and §6.4.
    tension = MuscleTension()
    ls = jnp.array([0.6, 0.8, 1.0, 1.3, 1.7])
    assert float(tension.force_length(1.0)) == 1.0
    assert np.all(np.asarray(tension.force_velocity(ls, jnp.zeros(5))) == 1.0)
    assert float(tension(1.0, 1.0, 0.0)) == pytest.approx(0.50493, abs=1e-5)
    assert float(tension.activation_gate(1.0, 1.0)) == pytest.approx(0.5050, abs=5e-5)
    gates = tension.activation_gate(1.0, jnp.array([0.7, 0.85, 1.2]))
    assert np.allclose(gates, [0.047, 0.234, 0.750], rtol=0, atol=5e-4)
    assert float(tension.passive_force(1.0)) == pytest.approx(-1.49e-4, abs=5e-7)
    # F_V: slopes at v = 0 (0.78 shortening, 0.94 lengthening), zero at V_max, → 1.58.
    dfv = jax.grad(tension.force_velocity, argnums=1)
    assert float(dfv(1.0, 0.0)) == pytest.approx(0.78, abs=5e-3)  # left derivative at 0
    assert float(dfv(1.0, 1e-12)) == pytest.approx(0.94, abs=5e-3)
    assert float(tension.force_velocity(1.0, -5.72)) == pytest.approx(0.0, abs=1e-15)
    assert float(tension.force_velocity(1.0, 1e9)) == pytest.approx(1.58, abs=1e-6)
    # Linear map: T = 1 at the optimum, so F = F_max (SF is at l = 1 when θ_s = θ0_SF = 15°).
    linear = MuscleArm(activation_map="linear")
    assert float(linear.tension(1.0, 1.0, 0.0)) == 1.0
    y = _state([15 * DEG, 1.0], activation=np.eye(6)[0])
    assert float(linear.muscle_lengths(y[:2])[0]) == pytest.approx(1.0, abs=1e-14)
    assert float(linear.muscle_forces(y)[0]) == pytest.approx(699.6, rel=1e-12)
    brown = MuscleArm()
    assert float(brown.muscle_forces(y)[0]) == pytest.approx(0.50493 * 699.6, abs=1e-5 * 699.6)


def test_torque_signs():
    # SPEC §6.5: θ = (45°, 90°), θ̇ = 0, a = e_i.
    expected = {
        "SF": (3.18, 0.0),
        "SE": (-2.54, 0.0),
        "EF": (0.0, 4.72),
        "EE": (0.0, -1.78),
        "BF": (0.47, 0.62),
        "BE": (-2.79, -2.09),
    }
    arm = MuscleArm()
    for i, name in enumerate(MUSCLE_NAMES):
        y = _state(np.array([45, 90]) * DEG, activation=np.eye(6)[i])
        assert np.allclose(arm.muscle_torques(y), expected[name], rtol=0, atol=0.01), name
    # From rest, exciting EF alone flexes the elbow.
    u = jnp.asarray(np.eye(6)[2])
    y = arm.initial_state()
    rollout = jax.jit(
        lambda y: jax.lax.scan(lambda y, _: (arm.step(y, u, DT), None), y, None, 25)[0]
    )
    y = rollout(y)
    assert float(y[6]) > 0.5 and np.all(np.asarray(y)[[4, 5, 7, 8, 9]] == 0)
    assert float(arm.vector_field(0.0, y, u)[3]) > 0 and float(y[3]) > 0


def test_muscle_kinematics(getkey):
    # SPEC §6.6: ∂l/∂θ = −Mᵀ/L0, and v is the time derivative of l along a trajectory (this
    # catches feedbax's sign deviation, SPEC §3 deviation 1).
    arm = MuscleArm()
    expected = -(TABLE_M_CM / 100).T / (TABLE_L0_CM / 100)[:, None]
    for theta in _box_grid(3, 3):
        assert np.allclose(
            jax.jacfwd(arm.muscle_lengths)(jnp.asarray(theta)), expected, rtol=1e-12, atol=0
        )
    # l at the θ0 of a one-joint muscle is 1.
    assert float(arm.muscle_lengths(jnp.array([15 * DEG, 0.0]))[0]) == pytest.approx(1.0)
    assert float(arm.muscle_lengths(jnp.array([0.0, 80.86 * DEG]))[2]) == pytest.approx(1.0)
    # Flexion shortens the flexors: SF, EF, BF have v < 0 when both joints flex.
    v = arm.muscle_velocities(jnp.zeros(2), jnp.array([1.0, 1.0]))
    assert np.all(np.asarray(v)[[0, 2, 4]] < 0) and np.all(np.asarray(v)[[1, 3, 5]] > 0)
    # Finite differences of l along a diffrax trajectory (Tsit5 at 0.1 ms, dense output).
    y0 = _state(np.array([30, 100]) * DEG, [1.0, -2.0], 0.3 * np.ones(6))
    u = jax.random.uniform(getkey(), (6,))
    h = 1e-5
    ts = jnp.array([0.05, 0.15, 0.25])

    @jax.jit
    def fd_and_velocity(y0, u):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(arm.vector_field),
            diffrax.Tsit5(),
            0.0,
            0.3,
            1e-4,
            y0,
            args=u,
            saveat=diffrax.SaveAt(dense=True),
            max_steps=3001,
        )
        lengths = lambda t: arm.muscle_lengths(sol.evaluate(t)[:2])
        fd = jax.vmap(lambda t: (lengths(t + h) - lengths(t - h)) / (2 * h))(ts)
        ys = jax.vmap(sol.evaluate)(ts)
        return fd, jax.vmap(arm.muscle_velocities)(ys[:, :2], ys[:, 2:4])

    fd, v = fd_and_velocity(y0, u)
    assert np.allclose(fd, v, rtol=1e-5, atol=1e-6)


def test_co_contraction():
    # SPEC §6.7.
    arm = MuscleArm()
    rng = np.random.default_rng(1)
    for _ in range(5):
        y = _state(rng.uniform(0, 2, 2), rng.normal(size=2), rng.uniform(size=6))
        total = arm.muscle_torques(y)
        parts = sum(
            arm.muscle_torques(y.at[4:].set(y[4:] * jnp.asarray(np.eye(6)[i]))) for i in range(6)
        )
        assert np.allclose(total, parts, rtol=1e-12, atol=1e-12)
    theta = np.array([45, 90]) * DEG
    y = _state(theta, activation=[1, 1, 0, 0, 0, 0])
    assert float(arm.muscle_torques(y)[0]) == pytest.approx(0.64, abs=0.01)
    # Damping −∂τ_s/∂θ̇_s with SF and SE co-active at a: 0, 2.15, 3.34 N·m·s/rad (central
    # finite differences across the F_V kink at v = 0).
    h = 1e-6
    for a, expected in ((0.0, 0.0), (0.5, 2.15), (1.0, 3.34)):
        act = np.array([a, a, 0, 0, 0, 0])
        plus = arm.muscle_torques(_state(theta, [h, 0.0], act))[0]
        minus = arm.muscle_torques(_state(theta, [-h, 0.0], act))[0]
        assert float(-(plus - minus) / (2 * h)) == pytest.approx(expected, abs=0.01)
    # Symmetric fixture: SE gets SF's F_max, L0 and θ0; at θ_s = θ0 the net torque is 0.
    moment_arms = np.asarray(arm.moment_arms)
    theta0 = np.asarray(arm.theta0).copy()
    theta0[:, 1] = theta0[:, 0]
    length = np.asarray(arm.optimal_length).copy()
    length[1] = length[0]
    force = np.asarray(arm.max_force).copy()
    force[1] = force[0]
    fixture = MuscleArm(
        theta0=theta0, optimal_length=length, max_force=force, moment_arms=moment_arms
    )
    for a in (0.1, 0.5, 1.0):
        for theta_e in (0.3, 1.5):
            y = _state([15 * DEG, theta_e], activation=[a, a, 0, 0, 0, 0])
            assert abs(float(fixture.muscle_torques(y)[0])) < 1e-12


def test_activation_steps():
    # SPEC §6.8: under Euler a_n = u + (a0 − u)(1 − dt/τ)^n.
    arm = MuscleArm()

    def run(y, u, n):
        return jax.lax.scan(lambda y, _: (arm.step(y, u, DT), None), y, None, length=n)[0]

    run = jax.jit(run, static_argnums=2)
    rise = run(arm.initial_state(), jnp.ones(6), 25)
    assert np.allclose(rise[4:], 0.6396, rtol=0, atol=5e-5)
    assert np.allclose(rise[4:], 1 - (1 - DT / 0.050) ** 25, rtol=1e-12)
    fall = run(arm.initial_state(activation=jnp.ones(6)), jnp.zeros(6), 33)
    assert np.allclose(fall[4:], 0.3622, rtol=0, atol=5e-5)
    assert np.allclose(fall[4:], (1 - DT / 0.066) ** 33, rtol=1e-12)
    # τ ordering: 50 ms (u = 1) < 58 ms (u = 0.5) < 66 ms (decay).
    taus = [
        float((u - a) / arm.activation_derivative(jnp.full(6, u), jnp.full(6, a))[0])
        for u, a in ((1.0, 0.0), (0.5, 0.0), (0.0, 1.0))
    ]
    assert np.allclose(taus, [0.050, 0.058, 0.066], rtol=1e-12)
    # Excitations outside [0, 1] are clipped.
    assert np.allclose(
        arm.activation_derivative(jnp.full(6, 3.0), jnp.zeros(6)),
        arm.activation_derivative(jnp.ones(6), jnp.zeros(6)),
    )


def test_finite_gradients_at_guarded_points():
    # SPEC §6.9 (guards (a)–(c)): jax.grad of a one-step loss in (x, u) is finite at a = 0
    # with l = 1.5 and at v = −0.62 and v = +1.65 (the poles of the unused F_V branches).
    tension = MuscleTension()
    points = jnp.array([[0.0, 1.5, 0.0], [1.0, 1.0, -0.62], [1.0, 1.0, 1.65], [0.5, 1.5, -0.62]])
    grads = jax.jit(jax.vmap(jax.grad(lambda p: tension(p[0], p[1], p[2]))))(points)
    assert np.all(np.isfinite(grads))
    # The gate is exactly 0 at a = 0, with a finite (zero) slope, even where n_f < 1.
    assert float(tension(0.0, 1.5, 0.0)) == 0.0
    arm = MuscleArm()
    sf_l0, sf_m = TABLE_L0_CM[0] / 100, TABLE_M_CM[0, 0] / 100
    se_l0, se_m, se_theta0 = TABLE_L0_CM[1] / 100, TABLE_M_CM[0, 1] / 100, 4.88 * DEG
    # l_SE = 1.5: 1 + M(θ0 − θ_s)/L0 = 1.5.
    theta_s = se_theta0 - 0.5 * se_l0 / se_m
    states = [
        _state([theta_s, 1.0]),
        # v_SF = −M θ̇_s/L0 = −0.62 and +1.65.
        _state([0.5, 1.0], [0.62 * sf_l0 / sf_m, 0.0], 0.5 * np.ones(6)),
        _state([0.5, 1.0], [-1.65 * sf_l0 / sf_m, 0.0], 0.5 * np.ones(6)),
    ]
    assert float(arm.muscle_lengths(states[0][:2])[1]) == pytest.approx(1.5, abs=1e-12)
    assert np.allclose(arm.muscle_velocities(states[1][:2], states[1][2:4])[0], -0.62)
    assert np.allclose(arm.muscle_velocities(states[2][:2], states[2][2:4])[0], 1.65)

    def loss(y, u):
        y1 = arm.step(y, u, DT)
        return jnp.sum(y1**2) + jnp.sum(arm.hand_position(y1) ** 2)

    grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
    for y in states:
        for u in (jnp.zeros(6), 0.5 * jnp.ones(6)):
            gy, gu = grad(y, u)
            assert np.all(np.isfinite(gy)) and np.all(np.isfinite(gu))


@pytest.mark.parametrize("activation_map", ["brown", "linear"])
def test_tangents_finite_over_the_box(activation_map):
    # SPEC §3.4b §5: with guards (a)–(c), JVP tangents are finite everywhere in the joint box,
    # including tiny activations (below the 1e-8 floor), the F_V poles' neighbourhoods and
    # fast movements; and forward mode agrees with finite differences where T is smooth.
    arm = MuscleArm(activation_map=activation_map)
    rng = np.random.default_rng(2)
    postures = _box_grid(8, 9)
    ys = jnp.asarray(
        [
            _state(p, rng.uniform(-15, 15, 2), np.full(6, a))
            for p in postures
            for a in (1e-12, 1e-6, 0.3, 1.0)
        ]
    )
    us = jnp.asarray(rng.uniform(size=(len(ys), 6)))
    field = lambda y, u: arm.vector_field(0.0, y, u)
    jac_y, jac_u = jax.jit(jax.vmap(jax.jacfwd(field, argnums=(0, 1))))(ys, us)
    assert np.all(np.isfinite(jac_y)) and np.all(np.isfinite(jac_u))
    # A smooth point (every |v| > 0, a away from u): forward mode = central differences.
    y = _state([0.6, 1.2], [0.7, -0.4], 0.4 * np.ones(6))
    u = jnp.full(6, 0.8)
    h = 1e-6

    @jax.jit
    def forward_and_fd(y, u):
        fd = jax.vmap(lambda e: (field(y + h * e, u) - field(y - h * e, u)) / (2 * h))
        return jax.jacfwd(field)(y, u), fd(jnp.eye(10)).T

    assert np.allclose(*forward_and_fd(y, u), rtol=1e-6, atol=1e-5)


def _jacobians(arm, ys, u, h=1e-6):
    """Forward-mode and one-sided/central finite-difference Jacobians of the vector field."""
    f = lambda y: arm.vector_field(0.0, y, u)
    eye = jnp.eye(10)

    def all_jacobians(y):
        fy = f(y)
        plus = jax.vmap(lambda e: f(y + h * e))(eye)
        minus = jax.vmap(lambda e: f(y - h * e))(eye)
        forward = ((plus - fy) / h).T
        backward = ((fy - minus) / h).T
        central = ((plus - minus) / (2 * h)).T
        return jnp.stack([jax.jacfwd(f)(y), forward, backward, central])

    return np.asarray(jax.jit(jax.vmap(all_jacobians))(ys))


@pytest.mark.parametrize(("activation_map", "bound"), [("brown", 400.0), ("linear", 800.0)])
def test_stability_under_full_co_contraction(activation_map, bound):
    """SPEC §6.10: full co-contraction from a grid of postures.

    The Jacobian's spectral radius is ≤ 400 s⁻¹ (SPEC: 365; "linear": SPEC 667 s⁻¹, bounded
    here by 800), and `max_stable_dt` keeps dt·|λ| ≤ 2. The F_V kink at v = 0 makes the
    one-sided Jacobians differ, so forward-mode and all finite-difference ones are checked.
    With the default ("brown") map, 1 s of Euler at 2 ms stays bounded, |θ̇| < 20 rad/s. The
    linear map is only required to stay finite: without A(a, l) it is twice as strong at the
    optimum and its unstable (negative-stiffness) postures fling the arm out of the box faster.
    """
    arm = MuscleArm(activation_map=activation_map)
    u = jnp.ones(6)
    postures = _box_grid(15, 17)
    ys = jnp.asarray([_state(p, activation=np.ones(6)) for p in postures])
    jac = _jacobians(arm, ys, u)
    radius = np.abs(np.linalg.eigvals(jac.reshape(-1, 10, 10))).max()
    assert radius <= bound
    assert radius * arm.max_stable_dt <= 2.0

    def rollout(y):
        def body(y, _):
            y = arm.step(y, u, DT)
            return y, jnp.max(jnp.abs(y[2:4]))

        y, speeds = jax.lax.scan(body, y, None, length=500)
        return jnp.max(speeds), jnp.all(jnp.isfinite(y))

    speeds, finite = jax.jit(jax.vmap(rollout))(ys[::3])
    assert np.all(finite)
    if activation_map == "brown":
        assert float(speeds.max()) < 20.0


def test_euler_error_against_reference():
    # SPEC §5: Euler at 2 ms vs RK4 at 0.1 ms after 0.5 s of full co-contraction from
    # θ = (45°, 90°) at rest with a = 0: 0.11°. Reference here: diffrax Tsit5 at 0.1 ms.
    arm = MuscleArm()
    u = jnp.ones(6)
    y0 = _state(np.array([45, 90]) * DEG)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(arm.vector_field),
        diffrax.Tsit5(),
        0.0,
        0.5,
        1e-4,
        y0,
        args=u,
        saveat=diffrax.SaveAt(t1=True),
        max_steps=6000,
    )
    reference = sol.ys[0]

    def euler(dt, n):
        return jax.lax.scan(lambda y, _: (arm.step(y, u, dt), None), y0, None, length=n)[0]

    euler = jax.jit(euler, static_argnums=(0, 1))
    err2 = float(jnp.max(jnp.abs(euler(2e-3, 250)[:2] - reference[:2]))) / DEG
    err1 = float(jnp.max(jnp.abs(euler(1e-3, 500)[:2] - reference[:2]))) / DEG
    assert err2 < 0.2  # SPEC: 0.11°
    assert 0.4 < err1 / err2 < 0.6  # first order in dt


@pytest.mark.parametrize("solver", [diffrax.Heun(), diffrax.Tsit5()])
def test_step_with_diffrax_solver(solver):
    arm = MuscleArm()
    y = _state([0.5, 1.5], [1.0, -0.5], 0.2 * np.ones(6))
    u = jnp.linspace(0, 1, 6)

    @jax.jit
    def both(y, u):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(arm.vector_field),
            solver,
            0.0,
            DT,
            DT,
            y,
            args=u,
            saveat=diffrax.SaveAt(t1=True),
        )
        euler = y + DT * arm.vector_field(0.0, y, u)
        return arm.step(y, u, DT, solver=solver), sol.ys[0], arm.step(y, u, DT), euler

    stepped, solved, stepped_euler, euler = both(y, u)
    assert tree_allclose(stepped, solved, rtol=1e-13, atol=1e-15)
    # The default step is one explicit Euler step of the whole state.
    assert np.allclose(stepped_euler, euler, rtol=1e-14)


def test_joint_limits():
    arm = MuscleArm(joint_limits=MuscleArm.joint_box)
    y = _state([139.95 * DEG, 0.001], [2.0, -2.0], np.ones(6))
    y1 = arm.step(y, jnp.ones(6), DT)
    assert float(y1[0]) == pytest.approx(140 * DEG, abs=1e-15)
    assert float(y1[1]) == 0.0
    assert float(y1[2]) == 0.0 and float(y1[3]) == 0.0
    grads = jax.jit(jax.grad(lambda y, u: jnp.sum(arm.step(y, u, DT) ** 2), argnums=(0, 1)))(
        y, jnp.ones(6)
    )
    assert all(np.all(np.isfinite(g)) for g in grads)
    free = MuscleArm()
    y = _state([0.5, 1.0], [0.3, -0.2], 0.5 * np.ones(6))
    steps = jax.jit(lambda y, u: (arm.step(y, u, DT), free.step(y, u, DT)))(y, jnp.ones(6))
    assert tree_allclose(*steps, rtol=0, atol=0)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="li_todorov_2004"):
        MuscleArm("motornet")
    with pytest.raises(ValueError, match="'brown', 'linear'"):
        MuscleArm(activation_map="hill")
    with pytest.raises(ValueError, match="optimal_length"):
        MuscleArm(optimal_length=np.array([7.32, 0.0, 6.4, 4.26, 5.95, 4.04]) / 100)
    with pytest.raises(ValueError, match="max_force"):
        MuscleArm(max_force=-np.ones(6))
    with pytest.raises(ValueError, match="moment_arms"):
        MuscleArm(moment_arms=np.zeros((6, 2)))
    with pytest.raises(ValueError, match="theta0"):
        MuscleArm(theta0=np.zeros(6))
    with pytest.raises(ValueError, match="tau_act"):
        MuscleArm(tau_act=0.0)
    with pytest.raises(ValueError, match="tau_deact"):
        MuscleArm(tau_deact=-0.05)
    with pytest.raises(ValueError, match="m2"):
        MuscleArm(skeleton=TwoJointArm(m2=0.0))
    with pytest.raises(ValueError, match="joint_limits"):
        MuscleArm(skeleton=TwoJointArm(joint_limits=MuscleArm.joint_box))
    with pytest.raises(ValueError, match="joint_limits"):
        MuscleArm(joint_limits=((0.0, 1.0), (2.0, 1.0)))
    arm = MuscleArm()
    y, u = arm.initial_state(), jnp.zeros(6)
    with pytest.raises(ValueError, match="`dt`"):
        arm.step(y, u, 0.0)
    assert arm.max_stable_dt == pytest.approx(5e-3)
    with pytest.raises(ValueError, match="stability limit"):
        arm.step(y, u, 6e-3)
    arm.step(y, u, 5e-3)
    linear = MuscleArm(activation_map="linear")
    assert linear.max_stable_dt == pytest.approx(2.5e-3)
    with pytest.raises(ValueError, match="stability limit"):
        linear.step(y, u, 3e-3)
    with pytest.raises(ValueError, match="activation"):
        arm.initial_state(activation=jnp.zeros(5))


def test_excitation_from_output():
    z = jnp.linspace(-5, 5, 1001)
    u = excitation_from_output(z)
    assert np.all(np.asarray(u) >= 0) and np.all(np.asarray(u) < 1)
    assert np.all(np.asarray(u)[np.asarray(z) <= 0] == 0)
    assert np.all(np.diff(np.asarray(u)) >= 0)
    assert np.allclose(u, np.tanh(np.maximum(np.asarray(z), 0)), rtol=1e-14)
    assert float(jax.grad(excitation_from_output)(1e-9)) == pytest.approx(1.0)
    assert np.isfinite(float(jax.grad(excitation_from_output)(100.0)))


def test_float32_by_default():
    arm = MuscleArm()
    y = arm.initial_state(dtype=jnp.float32)
    u = jnp.full(6, 0.5, jnp.float32)
    assert y.dtype == jnp.float32

    @jax.jit
    def outputs(y, u):
        return (
            arm.step(y, u, DT),
            arm.step(y, u, DT, solver=diffrax.Tsit5()),
            arm.muscle_forces(y),
            arm.muscle_torques(y),
            arm.muscle_lengths(y[:2]),
            arm.hand_position(y),
            excitation_from_output(u),
        )

    for out in outputs(y, u):
        assert out.dtype == jnp.float32
    y64 = jax.jit(lambda y, u: arm.step(y, u, DT))(y.astype(jnp.float64), u)
    assert y64.dtype == jnp.float64
    assert np.allclose(outputs(y, u)[0], y64, rtol=1e-5, atol=1e-6)
