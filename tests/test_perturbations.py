"""Delayed sensory feedback per modality, and perturbations of reaching trials (issue #23).

Physics first: a curl field does no work, a pulse pushes a passive hand along J M⁻¹ Jᵀ F, a
delay of d steps shifts the feedback by exactly d steps, and unperturbed trials are
bit-identical to those of a task without perturbations.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import neurodyn as nd
from neurodyn.models import AbstractRecurrentModel, simulate
from neurodyn.plants import MuscleArm, TwoJointArm
from neurodyn.tasks import (
    CatchTrials,
    ClosedLoop,
    CurlField,
    DoubleReachTask,
    ForcePulse,
    ReachTask,
    TargetJump,
    delay_steps,
)
from neurodyn.tasks._reach import _rollout, _rollout_noiseless

PLANTS = {"torque": TwoJointArm, "muscle": MuscleArm}
# a short single reach: T = 80 steps of 10 ms, fixed idle (0.1 s) and preparation (0.2 s)
# (one arm step per network step: the torque arm's Euler limit is 10 ms)
SHORT = dict(
    idle_range=(0.1, 0.1), prep_range=(0.2, 0.2), movement_time=0.3, duration=0.8, arm_dt=0.01
)


class _Zero(AbstractRecurrentModel):
    """A stand-in network whose carry is its last input and whose output is 0 (a passive
    arm) or a fixed linear map of the task inputs."""

    gain: jax.Array
    n_inputs: int = eqx.field(static=True)
    n_outputs: int = eqx.field(static=True)
    n_task: int = eqx.field(static=True)
    dt: float = eqx.field(static=True)

    def initial_state(self, key=None):
        return jnp.zeros(self.n_inputs, self.gain.dtype)

    def step(self, carry, u, noise=None):
        return u, self.gain @ u[: self.n_task]

    def trainable(self):
        return jax.tree.map(eqx.is_inexact_array, self)


def _net(plant, n_task, n_feedback, gain=None, dt=0.01):
    gain = jnp.zeros((plant.control_size, n_task)) if gain is None else gain
    return _Zero(gain, n_task + n_feedback, plant.control_size, n_task, dt)


# ------------------------------------------------------------------------------ feedback


def test_delay_steps_is_exact_or_an_error():
    assert delay_steps(50, 0.01) == 5
    assert delay_steps(100.0, 0.002) == 50
    assert delay_steps(0, 0.01) == 0
    with pytest.raises(ValueError, match="whole number"):
        delay_steps(55, 0.01)
    with pytest.raises(ValueError, match=">= 0"):
        delay_steps(-10, 0.01)
    with pytest.raises(ValueError, match="proprioceptive_delay_ms"):
        ReachTask(proprioceptive_delay_ms=25)  # 2.5 steps of 10 ms
    with pytest.raises(ValueError, match="no visual signal"):
        ReachTask(visual_delay_ms=100)  # the default feedback has no hand signal
    with pytest.raises(ValueError, match="muscle"):
        ReachTask(feedback=("muscle_lengths",))


@pytest.mark.parametrize("plant_name", ["torque", pytest.param("muscle", marks=pytest.mark.slow)])
def test_each_signal_is_delayed_by_exactly_its_own_steps(plant_name, getkey):
    """Proprioception d_p = 2 steps, vision d_v = 5 steps: what the network receives at step
    t is exactly the signal of the plant state at step max(t − d, 0)."""
    plant = PLANTS[plant_name]()
    feedback = ["joint_angles", "joint_velocities", "hand_position"]
    delays = {"joint_angles": 2, "joint_velocities": 2, "hand_position": 5}
    if plant_name == "muscle":
        feedback += ["muscle_lengths", "muscle_velocities"]
        delays.update(muscle_lengths=3, muscle_velocities=0)
    n_feedback = sum(nd.tasks.FEEDBACK_CHANNELS[n] for n in feedback)
    gain = 2.0 * jr.normal(getkey(), (plant.control_size, 2))
    loop = ClosedLoop(
        _net(plant, 2, n_feedback, gain), plant, n_substeps=5, feedback=feedback,
        feedback_delay=delays,
    )  # fmt: skip
    assert loop.feedback_delay == 5 and loop.feedback_delays == tuple(delays[n] for n in feedback)
    B, T = 2, 14
    carries, _ = simulate(loop, jr.normal(getkey(), (B, T, 2)) + 1.0, key=getkey())
    received = np.asarray(carries.network[..., 2:])
    y0 = np.asarray(loop.initial_state().plant)
    states = np.concatenate(
        [np.broadcast_to(y0, (B, 1, y0.size)), np.asarray(carries.plant[:, :-1])], axis=1
    )
    read = {
        "joint_angles": lambda y: y[:2],
        "joint_velocities": lambda y: y[2:4],
        "hand_position": lambda y: np.asarray(plant.hand_position(y)),
        # Li & Todorov (2004), written out: l = 1 + Σ_j M_ji(θ0_ji − θ_j)/L0, v = −Mᵀθ̇/L0
        "muscle_lengths": lambda y: (
            1
            + np.sum(np.asarray(plant.moment_arms) * (np.asarray(plant.theta0) - y[:2, None]), 0)
            / np.asarray(plant.optimal_length)
        ),
        "muscle_velocities": lambda y: (
            -(np.asarray(plant.moment_arms).T @ y[2:4]) / np.asarray(plant.optimal_length)
        ),
    }
    moved = 0.0
    for b in range(B):
        for t in range(T):
            start = 0
            for name in feedback:
                size = nd.tasks.FEEDBACK_CHANNELS[name]
                expected = read[name](states[b, max(t - delays[name], 0)])
                got = received[b, t, start : start + size]
                np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-15)
                start += size
            moved = max(moved, float(np.abs(states[b, t, :2] - y0[:2]).max()))
    assert moved > 1e-3  # the arm moved, so a wrong lag would show


def _trial_outputs(task, key, batch_size=2, noise=True):
    model = task.default_model(key=jr.PRNGKey(0))
    batch = task.sample(key=key, batch_size=batch_size)
    if not noise:
        return np.asarray(_rollout_noiseless(model, batch.inputs)), batch
    return np.asarray(_rollout(model, batch.inputs, jr.PRNGKey(5))), batch


def test_feedback_options_off_or_equal_to_the_defaults_give_the_same_loop(getkey):
    """One delay and one noise for all signals, given per modality, build the very loop
    `feedback_delay` / `sensory_noise` build (equal as pytrees, static fields included, so
    their rollouts are the same computation); per-modality values build the right
    per-signal delays and per-channel noise."""
    feedback = ("joint_angles", "joint_velocities", "hand_position")
    key = jr.PRNGKey(0)
    ref = ReachTask(**SHORT, feedback=feedback, feedback_delay=0.05, sensory_noise=0.01)
    task = ReachTask(
        **SHORT, feedback=feedback, proprioceptive_delay_ms=50, visual_delay_ms=50,
        proprioceptive_noise=0.01, visual_noise=0.01,
    )  # fmt: skip
    a, b = ref.default_model(key=key), task.default_model(key=key)
    assert b.feedback_delays == (5, 5, 5) and b.feedback_delay == 5
    assert a.sensory_noise == b.sensory_noise == (0.01,) * 6
    assert eqx.tree_equal(a, b)
    default = ReachTask(**SHORT).default_model(key=key)
    zero = ReachTask(**SHORT, proprioceptive_delay_ms=0.0).default_model(key=key)
    assert zero.feedback_delay == 0 and eqx.tree_equal(zero, default)
    task = ReachTask(**SHORT, feedback=feedback, proprioceptive_delay_ms=50, visual_delay_ms=100)
    loop = task.default_model(key=getkey())
    assert loop.feedback_delays == (5, 5, 10) and loop.feedback_delay == 10
    task = ReachTask(**SHORT, feedback=feedback, visual_noise=0.002, sensory_noise=0.01)
    assert task.sensory_noise_per_channel() == (0.01,) * 4 + (0.002,) * 2


# ------------------------------------------------------------------------------ physics


def test_curl_field_does_no_work(getkey):
    """F = b(−v_y, v_x) ⟂ v: the hand power F·v and the joint power (JᵀF)·θ̇ vanish to float64
    precision at random states, and the field is linear in b."""
    plant = TwoJointArm()
    loop = ClosedLoop(_net(plant, 1, 4), plant, n_substeps=5, perturbation_inputs=("curl",))
    for _ in range(20):
        theta = jr.uniform(getkey(), (2,), minval=0.2, maxval=2.5)
        theta_dot = 5.0 * jr.normal(getkey(), (2,))
        y = jnp.concatenate([theta, theta_dot])
        b = float(jr.uniform(getkey(), minval=-20, maxval=20))
        force = loop.hand_force(y, jnp.array([b]))
        v = plant.hand_velocity(y)
        scale = float(jnp.linalg.norm(force) * jnp.linalg.norm(v))
        assert scale > 0
        assert abs(float(force @ v)) <= 1e-15 * scale
        torque = plant.hand_force_torque(theta, force)
        assert abs(float(torque @ theta_dot)) <= 1e-14 * scale
        np.testing.assert_allclose(abs(b) * np.linalg.norm(v), np.linalg.norm(force), rtol=1e-14)


def test_curl_field_turns_a_moving_hand_to_its_left():
    """A passive arm without viscosity launched with a hand velocity: in a counter-clockwise
    field (b > 0) the path bends left of the field-free path, in a clockwise one right. The
    kinetic energy the field adds is Euler's error alone: it halves when dt halves (the
    field itself does no work)."""
    plant = TwoJointArm(viscosity=np.zeros((2, 2)))
    theta = jnp.asarray(plant.rest_posture)
    y0 = jnp.concatenate([theta, jnp.linalg.solve(plant.jacobian(theta), jnp.array([0.0, 0.5]))])
    e0 = float(plant.kinetic_energy(y0))

    def run(b, dt):
        def body(y, _):
            v = plant.hand_velocity(y)
            return plant.step(y, jnp.zeros(2), dt, hand_force=b * jnp.stack([-v[1], v[0]])), None

        y = jax.lax.scan(body, y0, None, length=round(0.1 / dt))[0]  # 0.1 s
        return np.asarray(plant.hand_position(y)), float(plant.kinetic_energy(y)) / e0 - 1

    (p0, free), (pl, _), (pr, _) = run(0.0, 4e-4), run(20.0, 4e-4), run(-20.0, 4e-4)
    assert pl[0] - p0[0] < -1e-3 and pr[0] - p0[0] > 1e-3  # moving +y: left is −x
    drifts = [run(20.0, dt)[1] for dt in (4e-4, 2e-4, 1e-4)]
    assert abs(free) < 1e-2 * abs(drifts[0])
    np.testing.assert_allclose(np.divide(drifts[:-1], drifts[1:]), 2.0, rtol=0.05)


@pytest.mark.parametrize("plant_name", list(PLANTS))
def test_pulse_moves_a_passive_hand_in_its_direction(plant_name):
    """A 20 ms, 10 N pulse on the hand of an arm at rest with no drive: the displacement
    points along the pulse (positive projection) and matches ½t²·J M⁻¹ Jᵀ F, the hand's
    initial acceleration under F computed in NumPy, to 2°."""
    plant = PLANTS[plant_name]()
    skeleton = plant.skeleton if plant_name == "muscle" else plant
    loop = ClosedLoop(
        _net(plant, 1, 4, dt=0.002), plant, n_substeps=2, perturbation_inputs=("hand_force",)
    )
    theta = np.asarray(skeleton.rest_posture)
    a1, a2, a3 = skeleton.inertia_constants
    c = math.cos(theta[1])
    mass = np.array([[a1 + 2 * a2 * c, a3 + a2 * c], [a3 + a2 * c, a3]])
    t1, t12 = theta[0], theta.sum()
    l1, l2 = skeleton.l1, skeleton.l2
    jac = np.array(
        [
            [-l1 * math.sin(t1) - l2 * math.sin(t12), -l2 * math.sin(t12)],
            [l1 * math.cos(t1) + l2 * math.cos(t12), l2 * math.cos(t12)],
        ]
    )
    mobility = jac @ np.linalg.solve(mass, jac.T)
    T = 10  # 20 ms of 2 ms steps
    for angle in np.deg2rad(np.arange(0, 360, 45)):
        force = 10.0 * np.array([math.cos(angle), math.sin(angle)])
        inputs = jnp.concatenate(
            [jnp.zeros((1, T, 1)), jnp.broadcast_to(jnp.asarray(force), (1, T, 2))], axis=-1
        )
        y = np.asarray(_rollout_noiseless(loop, inputs))[0]
        displacement = y[-1, :2] - np.asarray(skeleton.hand_position(loop.initial_state().plant))
        expected = 0.5 * (T * 0.002) ** 2 * mobility @ force
        assert displacement @ force > 0
        cos = displacement @ expected / np.linalg.norm(displacement) / np.linalg.norm(expected)
        assert math.degrees(math.acos(min(cos, 1.0))) < 2.0
        np.testing.assert_allclose(np.linalg.norm(displacement), np.linalg.norm(expected), rtol=0.1)


# ------------------------------------------------------------------------------ trials


def test_unperturbed_trials_are_bit_identical(getkey):
    """A task whose perturbations hit no trial gives the targets, timings, task inputs and
    hand outputs of the task without perturbations, bit for bit."""
    key = getkey()
    y_ref, ref = _trial_outputs(ReachTask(**SHORT), key, noise=False)
    task = ReachTask(
        **SHORT,
        perturbations=(
            CurlField(probability=0.0), ForcePulse(probability=0.0),
            TargetJump(probability=0.0), CatchTrials(probability=0.0),
        ),
    )  # fmt: skip
    y, batch = _trial_outputs(task, key, noise=False)
    assert batch.inputs.shape[-1] == 6 and not np.any(np.asarray(batch.inputs[..., 3:]))
    assert np.array_equal(batch.inputs[..., :3], ref.inputs)
    assert np.array_equal(batch.targets, ref.targets)
    assert np.array_equal(batch.weights, ref.weights)
    assert np.array_equal(y, y_ref)


def test_perturbations_are_drawn_per_trial_and_recorded(getkey):
    task = ReachTask(
        **SHORT,
        perturbations=(
            CurlField(strength=15.0, random_sign=True, probability=0.5),
            ForcePulse(magnitude=(5, 10), onset=(0.05, 0.1), duration=0.05, probability=0.5),
            TargetJump(time=0.1, rotation=(30, 45), probability=0.5),
            CatchTrials(probability=0.25),
        ),
    )  # fmt: skip
    batch = jax.jit(lambda key: task.sample(key=key, batch_size=64))(getkey())
    md = {k: np.asarray(v) for k, v in batch.metadata.items()}
    x, tgt, w = (np.asarray(a) for a in (batch.inputs, batch.targets, batch.weights))
    n, T = x.shape[:2]
    t = np.arange(T)
    curl = md["curl_strength"]
    assert set(np.unique(curl)) == {-15.0, 0.0, 15.0}
    np.testing.assert_array_equal(x[..., 3], np.broadcast_to(curl[:, None], (n, T)))
    catch = md["catch"].astype(bool)
    assert 0.05 < catch.mean() < 0.5
    for i in range(n):
        go = int(md["go_cue"][i])
        if catch[i]:  # no go cue: fixation on, the hand held at the centre, weight 1
            assert go == T and np.all(x[i, :, 0] == 1) and np.all(w[i] == 1)
            np.testing.assert_allclose(tgt[i, :, :2], np.broadcast_to(task.center, (T, 2)))
            np.testing.assert_allclose(md["final_target"][i], task.center)
            assert md["jump_step"][i] == -1
        if md["pulse_onset"][i] >= 0:
            on = int(md["pulse_onset"][i])
            active = (t >= on) & (t < on + 5)
            vec = md["pulse_magnitude"][i] * np.array(
                [math.cos(md["pulse_direction"][i]), math.sin(md["pulse_direction"][i])]
            )
            np.testing.assert_allclose(x[i, active, 4:6], np.broadcast_to(vec, (5, 2)))
            assert not np.any(x[i, ~active, 4:6])
            assert 5 <= md["pulse_magnitude"][i] <= 10
            np.testing.assert_allclose(md["pulse_onset_time"][i], on * 0.01)
        else:
            assert not np.any(x[i, :, 4:6]) and md["pulse_magnitude"][i] == 0
        if md["jump_step"][i] >= 0:
            js = int(md["jump_step"][i])
            assert js == go + 10
            new = md["jump_target"][i]
            np.testing.assert_allclose(x[i, js:, 1:3], np.broadcast_to(new, (T - js, 2)))
            np.testing.assert_allclose(tgt[i, js:, :2], np.broadcast_to(new, (T - js, 2)))
            np.testing.assert_allclose(md["final_target"][i], new)
            # rotated about the centre by 30–45° either way, radius kept
            r0, r1 = md["target"][i] - task.center, new - task.center
            np.testing.assert_allclose(np.linalg.norm(r1), np.linalg.norm(r0), rtol=1e-12)
            turn = math.degrees(math.atan2(r0[0] * r1[1] - r0[1] * r1[0], r0 @ r1))
            assert 30 - 1e-9 <= abs(turn) <= 45 + 1e-9
            np.testing.assert_allclose(turn, math.degrees(md["jump_rotation"][i]), atol=1e-9)
    assert (md["jump_step"] >= 0).any() and (md["pulse_onset"] >= 0).any()
    # the evaluation set is drawn with a fixed key: the same every time
    c1, c2 = task.conditions(), task.conditions()
    assert np.array_equal(c1.inputs, c2.inputs) and c1.inputs.shape[-1] == 6


@pytest.mark.slow
def test_perturbed_trials_run_and_are_exported(getkey, tmp_path):
    task = ReachTask(
        **SHORT, eval_radii=(0.1,),
        perturbations=(CurlField(strength=-12.0), ForcePulse(magnitude=8.0, probability=0.5)),
    )  # fmt: skip
    model = task.default_model(key=getkey())
    assert model.perturbation_inputs == ("curl", "hand_force")
    ds = nd.analysis.simulate(model, task, key=getkey(), n_trials=8)
    assert ds["inputs"].sizes["input"] == 6
    assert list(ds["input"].values[3:]) == ["curl_strength", "hand_force_x", "hand_force_y"]
    np.testing.assert_array_equal(ds["curl_strength"].values, -12.0)
    assert ds["curl_strength"].attrs["units"] == "N s m-1"
    units = {"pulse_magnitude": "N", "pulse_direction": "rad", "pulse_onset": "s"}
    for name, unit in units.items():
        assert ds[name].attrs["units"] == unit, name
    nd.analysis.save(ds, tmp_path / "trials.nc")
    # a model trained without perturbations runs in the perturbed task (and back)
    plain = ReachTask(**SHORT).default_model(key=getkey())
    moved = plain.with_perturbation_inputs(task.perturbation_inputs)
    assert moved.perturbation_inputs == ("curl", "hand_force")
    assert eqx.tree_equal(moved.network, plain.network)
    y = _rollout(moved, task.sample(key=getkey(), batch_size=2).inputs, getkey())
    assert y.shape == (2, task.n_steps, 4) and np.all(np.isfinite(np.asarray(y)))


def test_perturbation_bad_arguments():
    with pytest.raises(ValueError, match="probability"):
        CurlField(probability=1.5)
    with pytest.raises(ValueError, match="duration"):
        ForcePulse(duration=0.0)
    with pytest.raises(ValueError, match="ForcePulse.duration"):
        ReachTask(perturbations=(ForcePulse(duration=0.015),))  # 1.5 steps of 10 ms
    with pytest.raises(ValueError, match="supports the perturbations"):
        DoubleReachTask(perturbations=(CatchTrials(),))
    with pytest.raises(ValueError, match="at most one"):
        ReachTask(perturbations=(CurlField(), CurlField(strength=-15)))
    with pytest.raises(ValueError, match="kind"):
        ReachTask(perturbations=({"kind": "wind"},))
    task = ReachTask(perturbations=[{"kind": "curl", "strength": 15}])  # as from a TOML file
    assert task.perturbations == (CurlField(strength=15.0),)
    with pytest.raises(ValueError, match="perturbation_inputs"):
        ClosedLoop(_net(TwoJointArm(), 1, 4), TwoJointArm(), perturbation_inputs=("wind",))
    with pytest.raises(NotImplementedError):
        nd.plants.AbstractPlant.hand_force_rate(TwoJointArm(), None, None)
