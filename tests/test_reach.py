"""The closed loop (network → arm → feedback) and the reaching tasks (SPEC §3.4–§3.6)."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import neurodyn as nd
from neurodyn.models import AbstractRecurrentModel, motor_rnn, rollout_problem, simulate
from neurodyn.plants import MuscleArm, TwoJointArm, excitation_from_output
from neurodyn.tasks import ClosedLoop, DoubleReachTask, ReachTask, reach_metrics
from neurodyn.tasks._reach import _rollout_noiseless, _rollout_with_noise

PLANTS = {"torque": TwoJointArm, "muscle": MuscleArm}
# SPEC §3.4: the hand at rest, θ = (20°, 140°) with l1 = l2 = 0.3 m: (0, 0.6 sin 20°) ≈ (0, 0.2052)
CENTER = np.array([0.0, 0.6 * math.sin(math.radians(20.0))])


class _Spy(AbstractRecurrentModel):
    """A stand-in network: its carry is the last input it received, its output a fixed
    linear map of the *task* inputs (so the arm moves independently of the feedback)."""

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


def _spy(plant, n_task, n_feedback, key, dt=0.01, scale=0.5):
    gain = scale * jr.normal(key, (plant.control_size, n_task))
    return _Spy(gain, n_task + n_feedback, plant.control_size, n_task, dt)


def _known_controls(loop, inputs):
    """Per-step plant controls of a spy loop, computed without the loop."""
    outputs = jnp.einsum("ci,bti->btc", loop.network.gain, inputs)
    return excitation_from_output(outputs) if isinstance(loop.plant, MuscleArm) else outputs


# -------------------------------------------------------------------------- closed loop


def _project(tangents, grads, trainable):
    total = 0.0
    grads = eqx.filter(grads, trainable)
    for v, g in zip(
        jax.tree.leaves(tangents, is_leaf=lambda x: x is None),
        jax.tree.leaves(grads, is_leaf=lambda x: x is None),
    ):
        if v is not None and g is not None:
            total = total + jnp.einsum("k...,...->k", v, g)
    return total


@pytest.mark.parametrize("plant_name", list(PLANTS))
def test_sofo_scan_agrees_with_reverse_mode(plant_name, getkey):
    """Vᵀg of the forward-mode scan equals the projection of jax.grad, through the whole loop
    (substeps, delay, sensory and rate noise, learnt initial state)."""
    plant = PLANTS[plant_name]()
    net = motor_rnn(3, 4, plant.control_size, n_neurons=8, tau=0.02, dt=0.004, key=getkey())
    loop = ClosedLoop(net, plant, n_substeps=2, feedback_delay=2, sensory_noise=0.01)
    B, T = 3, 12
    # a strong, varied drive so the muscles leave a = 0 (where A(a, l) has zero slope)
    inputs = jr.normal(getkey(), (B, T, 3)) * 3.0 + 1.0
    target = jr.normal(getkey(), (B, T, 4)) * 0.1
    weight = jr.uniform(getkey(), (B, T, 1))
    loss = nd.optim.mse(target="target", weight="weight", scale=10.0 / T, reduction="sum")
    problem = rollout_problem(
        loop, inputs, loss, key=getkey(), extra={"target": target, "weight": weight}
    )
    trainable = loop.trainable()
    tangents = nd.sample_tangents(getkey(), loop, 6, trainable=trainable)

    @eqx.filter_jit
    def both(loop, tangents):
        sofo = nd.value_and_sofo_grad_scan(
            problem.step, problem.loss, damping=1e-3, time_axis=problem.time_axis
        )
        value, _, info = sofo(loop, tangents, problem.carry0, problem.xs)
        ref_value, grads = eqx.filter_value_and_grad(problem.value)(loop)
        return value, info["vg"], ref_value, _project(tangents, grads, trainable)

    value, vg, ref_value, ref_vg = both(loop, tangents)
    np.testing.assert_allclose(value, ref_value, rtol=1e-10)
    assert float(jnp.linalg.norm(ref_vg)) > 0
    np.testing.assert_allclose(vg, ref_vg, rtol=1e-7, atol=1e-10 * float(jnp.abs(ref_vg).max()))


def test_trainable_is_the_network_only(getkey):
    net = motor_rnn(3, 4, 6, n_neurons=8, dt=0.01, key=getkey())
    loop = ClosedLoop(net, MuscleArm(), n_substeps=5)
    assert loop.n_params == net.n_params
    spec = loop.trainable()
    assert not any(jax.tree.leaves(spec.plant))


@pytest.mark.parametrize("delay", [0, 1, 3])
def test_feedback_delay_is_an_exact_delayed_copy(delay, getkey):
    plant = TwoJointArm()
    loop = ClosedLoop(
        _spy(plant, 2, 6, getkey()),
        plant,
        n_substeps=5,
        feedback_delay=delay,
        feedback=("joint_angles", "joint_velocities", "hand_position"),
    )
    B, T = 2, 15
    inputs = jr.normal(getkey(), (B, T, 2))
    carries, _ = simulate(loop, inputs, key=getkey())
    received = np.asarray(carries.network[..., 2:])  # what the network got at step t
    y0 = plant.initial_state(dtype=jnp.float64)
    states = np.concatenate(  # the plant state at the start of each step
        [np.broadcast_to(y0, (B, 1, 4)), np.asarray(carries.plant[:, :-1])], axis=1
    )
    sense = lambda y: np.concatenate([y[:2], y[2:4], np.asarray(plant.hand_position(y))])
    for b in range(B):
        for t in range(T):
            expected = sense(states[b, max(t - delay, 0)])
            np.testing.assert_allclose(received[b, t], expected, rtol=1e-15, atol=1e-15)
    if delay:
        assert carries.feedback_buffer.shape == (B, T, delay, 6)
    else:
        assert carries.feedback_buffer is None


@pytest.mark.parametrize("plant_name", list(PLANTS))
def test_held_input_substeps_equal_an_explicit_loop_of_arm_steps(plant_name, getkey):
    plant = PLANTS[plant_name]()
    loop = ClosedLoop(_spy(plant, 2, 4, getkey()), plant, dt=0.01, n_substeps=5)
    B, T = 2, 20
    inputs = jr.normal(getkey(), (B, T, 2))
    carries, outputs = simulate(loop, inputs, key=getkey())
    controls = _known_controls(loop, inputs)
    step = eqx.filter_jit(lambda y, u: plant.step(y, u, 0.002))
    for b in range(B):
        y = plant.initial_state(dtype=jnp.float64)
        for t in range(T):
            for _ in range(5):
                y = step(y, controls[b, t])
            np.testing.assert_allclose(carries.plant[b, t], y, rtol=1e-12, atol=1e-14)
            hand = np.concatenate([plant.hand_position(y), plant.hand_velocity(y)])
            np.testing.assert_allclose(outputs[b, t], hand, rtol=1e-12, atol=1e-14)
    assert float(jnp.abs(carries.plant[..., :2] - y[:2]).max()) > 1e-3  # the arm did move


def test_sensory_noise_statistics_and_delivery(getkey):
    plant = TwoJointArm()
    sigma = (0.01, 0.02, 0.5, 1.0)
    loop = ClosedLoop(_spy(plant, 1, 4, getkey()), plant, n_substeps=5, sensory_noise=sigma)
    noise = loop.sample_noise(getkey(), 20000)
    eps = np.asarray(noise["sensory"])
    assert noise["network"] is None and eps.shape == (20000, 4)
    # std within 3 standard errors (se of a std ≈ σ/√(2n)); mean within 4 se; no correlation
    np.testing.assert_allclose(eps.std(0), sigma, rtol=3 / math.sqrt(2 * 20000))
    assert np.all(np.abs(eps.mean(0)) < 4 * np.asarray(sigma) / math.sqrt(20000))
    corr = np.corrcoef(eps.T) - np.eye(4)
    assert np.abs(corr).max() < 4 / math.sqrt(20000)
    # what the network receives is the clean feedback plus exactly this noise
    inputs = jnp.zeros((1, 6, 1))
    key = getkey()
    carries, _ = simulate(loop, inputs, key=key)
    eps = nd.models.batch_noise(loop, jr.split(key)[0], 1, 6)["sensory"][0]  # [B, T, ...]
    clean = np.asarray(plant.initial_state(dtype=jnp.float64))  # no drive: the arm stays put
    np.testing.assert_allclose(carries.network[0, :, 1:], clean + eps, rtol=1e-12)
    # noiseless loop: no noise at all
    quiet = ClosedLoop(_spy(plant, 1, 4, getkey()), plant, n_substeps=5)
    assert quiet.sample_noise(getkey(), 3) is None


def test_closed_loop_bad_arguments(getkey):
    net = motor_rnn(3, 4, 6, dt=0.01, key=getkey())
    with pytest.raises(ValueError, match="n_substeps >= 2"):
        ClosedLoop(net, MuscleArm(), n_substeps=1)  # 10 ms > the 5 ms Euler limit
    with pytest.raises(ValueError, match="feedback"):
        ClosedLoop(net, MuscleArm(), n_substeps=5, feedback=("joint_torques",))
    with pytest.raises(ValueError, match="feedback_delay"):
        ClosedLoop(net, MuscleArm(), n_substeps=5, feedback_delay=-1)
    with pytest.raises(ValueError, match="sensory_noise"):
        ClosedLoop(net, MuscleArm(), n_substeps=5, sensory_noise=-0.1)
    with pytest.raises(ValueError, match="6 outputs but TwoJointArm takes 2"):
        ClosedLoop(net, TwoJointArm(), n_substeps=5)
    with pytest.raises(ValueError, match="MuscleArm"):
        ClosedLoop(
            motor_rnn(3, 6, 2, dt=0.01, key=getkey()),
            TwoJointArm(),
            n_substeps=5,
            feedback=("joint_angles", "joint_velocities", "muscle_activations"),
        )
    with pytest.raises(ValueError, match="control_map"):
        ClosedLoop(net, MuscleArm(), n_substeps=5, control_map="sigmoid")


# -------------------------------------------------------------------------- tasks


@pytest.mark.parametrize("cls", [ReachTask, DoubleReachTask])
@pytest.mark.parametrize("size", ["cpu", "paper"])
def test_batch_shapes_and_dtypes(cls, size, getkey):
    task = cls.from_size(size)
    batch = jax.jit(lambda k: task.sample(key=k, batch_size=5))(getkey())
    T = {"cpu": 200, "paper": 1000}[size]
    assert task.n_steps == T and math.isclose(task.dt * T, 2.0)  # SPEC: T_tot = 2 s
    n_in = 3 if cls is ReachTask else 6
    assert batch.inputs.shape == (5, T, n_in) and batch.inputs.dtype == jnp.float64
    assert batch.targets.shape == (5, T, 4) and batch.targets.dtype == jnp.float64
    assert batch.weights.shape == (5, T, 1) and batch.weights.dtype == jnp.float64
    for name, value in batch.metadata.items():
        assert value.shape[0] == 5, name
        if name in ("condition", "target_onset") or name.startswith(("direction", "go_cue")):
            if not name.endswith("_time"):
                assert value.dtype == jnp.int32, name
    assert np.all(np.asarray(batch.metadata["condition"]) == -1)
    # SPEC §3.4b §5: 10 ms = 5 × 2 ms; the torque arm steps at 10 ms at size "cpu"
    # (CPU_TORQUE_TASK), the muscle arm keeps the substeps.
    assert task.n_substeps == {"cpu": 1, "paper": 1}[size]
    assert cls.from_size(size, plant="muscle").n_substeps == {"cpu": 5, "paper": 1}[size]


def test_cpu_torque_reach_defaults_and_optimizer():
    """`neurodyn fit reach` trains the torque arm with Adam on the CPU task settings, which the
    double reach shares (its default optimizer stays SOFO; its Adam recipe is the main job's,
    trained longer, skipping outlier batches); the muscle arm and the paper size keep SPEC's
    task and SOFO."""
    task = ReachTask.from_size("cpu")
    assert (task.arm_dt, task.angle_margin, task.radius_margin) == (0.01, 18.0, 0.05)
    assert task.default_optimizer() == "adam"
    assert task.hyperparameters()["learning_rate"] == 0.02  # SOFO's own (swept) table
    assert task.hyperparameters("adam")["batch_size"] == 128
    double = DoubleReachTask.from_size("cpu")
    assert (double.arm_dt, double.angle_margin, double.radius_margin) == (0.01, 18.0, 0.05)
    assert double.default_optimizer() == "sofo" and double.movement_time == 0.4
    adam = double.hyperparameters("adam")
    assert adam["n_iters"] == 25000 and adam["clip_norm"] == 5.0
    assert adam["max_loss_spike"] == 5.0  # outlier batches skipped (docs/reproducing.md)
    longer = ("n_iters", "eval_every", "max_loss_spike")
    assert {k: v for k, v in adam.items() if k not in longer} == {
        k: v for k, v in task.hyperparameters("adam").items() if k not in longer
    }  # the main job's recipe, trained longer
    # the evaluation stays on SPEC's canonical conditions
    assert np.allclose(task.training_angle_range, (-54.0, 234.0))
    assert np.allclose(task.training_radius_range, (0.15, 0.55))
    assert task.conditions().metadata["radius"].min() == pytest.approx(0.2)
    for other in (
        ReachTask.from_size("cpu", plant="muscle"),
        ReachTask.from_size("paper"),
        DoubleReachTask.from_size("cpu", plant="muscle"),
        DoubleReachTask.from_size("paper"),
    ):
        assert other.default_optimizer() == "sofo"
        assert (other.arm_dt, other.angle_margin, other.radius_margin) == (0.002, 0.0, 0.0)
    # an explicit option wins over the size's default
    assert ReachTask.from_size("cpu", arm_dt=0.002, angle_margin=0).n_substeps == 5


def test_single_reach_timing_inputs_and_loss_windows(getkey):
    task = ReachTask.from_size("paper")  # dt = 2 ms, T = 1000 (SPEC §3.5)
    batch = jax.jit(lambda k: task.sample(key=k, batch_size=4000))(getkey())
    md = {k: np.asarray(v) for k, v in batch.metadata.items()}
    onset, go = md["target_onset"], md["go_cue"]
    prep = go - onset
    # idle ~ U(0.1, 0.5) s and prep ~ U(0.2, 0.8) s in whole 2 ms steps
    assert onset.min() == 50 and onset.max() == 250 and prep.min() == 100 and prep.max() == 400
    assert abs(onset.mean() - 150) < 3 and abs(prep.mean() - 250) < 4
    np.testing.assert_allclose(md["go_cue_time"], go * 0.002)
    np.testing.assert_allclose(md["target_onset_time"], onset * 0.002)
    x, y, w = np.asarray(batch.inputs), np.asarray(batch.targets), np.asarray(batch.weights)
    target = md["target"]
    np.testing.assert_allclose(
        target,
        CENTER + md["radius"][:, None] * np.stack([np.cos(md["angle"]), np.sin(md["angle"])], -1),
        atol=1e-7,
    )
    t = np.arange(1000)
    for b in range(0, 4000, 397):
        pre, prep_w = t < onset[b], (t >= onset[b]) & (t < go[b])
        after = t >= go[b]
        np.testing.assert_array_equal(x[b, pre | prep_w, 0], 1.0)
        np.testing.assert_allclose(
            x[b, pre, 1:], np.broadcast_to(CENTER, (pre.sum(), 2)), atol=1e-7
        )
        np.testing.assert_allclose(x[b, prep_w, 1:], np.broadcast_to(target[b], (prep_w.sum(), 2)))
        np.testing.assert_array_equal(x[b, after], 0.0)
        free = (t >= go[b]) & (t <= go[b] + 300)  # go → go + 0.6 s: weight 0
        hold = t > go[b] + 300  # then weight 4 on the target
        np.testing.assert_array_equal(w[b, t < go[b], 0], 1.0)
        np.testing.assert_array_equal(w[b, free, 0], 0.0)
        np.testing.assert_array_equal(w[b, hold, 0], 4.0)
        np.testing.assert_allclose(
            y[b, t < go[b], :2], np.broadcast_to(CENTER, (go[b], 2)), atol=1e-7
        )
        np.testing.assert_allclose(y[b, after, :2], np.broadcast_to(target[b], (after.sum(), 2)))
        np.testing.assert_array_equal(y[b, :, 2:], 0.0)
    # loss: s = 10/T_tot = 0.01, summed over the 4 outputs (SPEC §3.4)
    loss = task.loss_function()
    assert loss.scale == pytest.approx(0.01) and loss.reduction == "sum"


def test_double_reach_timing_inputs_and_loss_windows(getkey):
    task = DoubleReachTask.from_size("paper")
    batch = jax.jit(lambda k: task.sample(key=k, batch_size=3000))(getkey())
    md = {k: np.asarray(v) for k, v in batch.metadata.items()}
    go1, go2 = md["go_cue1"], md["go_cue2"]
    assert go1.min() == 100 and go1.max() == 300 and abs(go1.mean() - 200) < 4  # U(0.2, 0.6) s
    np.testing.assert_array_equal(go2 - go1, 350)  # 0.7 s
    np.testing.assert_array_equal(md["target_onset"], 0)
    x, y, w = np.asarray(batch.inputs), np.asarray(batch.targets), np.asarray(batch.weights)
    t = np.arange(1000)
    for b in range(0, 3000, 211):
        prep, between, after = t < go1[b], (t >= go1[b]) & (t < go2[b]), t >= go2[b]
        cue = np.concatenate([[1.0, 1.0], md["target1"][b], md["target2"][b]])
        np.testing.assert_allclose(x[b, prep], np.broadcast_to(cue, (prep.sum(), 6)))
        np.testing.assert_array_equal(
            x[b, between], np.broadcast_to([0, 1, 0, 0, 0, 0], (between.sum(), 6))
        )
        np.testing.assert_array_equal(x[b, after], 0.0)
        # SPEC §3.6 / §7.6: the late window of reach 1 is (go1 + 0.6 s, go2]: exactly 50 steps
        late1 = (w[b, :, 0] == 4.0) & (t <= go2[b])
        assert late1.sum() == 50 and t[late1][0] == go1[b] + 301 and t[late1][-1] == go2[b]
        np.testing.assert_allclose(y[b, late1, :2], np.broadcast_to(md["target1"][b], (50, 2)))
        late2 = (w[b, :, 0] == 4.0) & (t > go2[b])
        np.testing.assert_array_equal(t[late2], t[t > go2[b] + 300])
        np.testing.assert_allclose(
            y[b, late2, :2], np.broadcast_to(md["target2"][b], (late2.sum(), 2))
        )
        np.testing.assert_array_equal(w[b, prep, 0], 1.0)
        np.testing.assert_allclose(
            y[b, prep, :2], np.broadcast_to(CENTER, (prep.sum(), 2)), atol=1e-7
        )
        assert w[b].sum() == go1[b] + 4 * (50 + late2.sum())  # weight 0 elsewhere
    # the reference's windows at 10 ms: reach 1 is scored over 10 steps
    ref = DoubleReachTask.from_size("cpu", movement_time=0.6)
    b = ref.sample(key=getkey(), batch_size=2)
    w, go2 = np.asarray(b.weights[0, :, 0]), int(b.metadata["go_cue2"][0])
    assert (w[: go2 + 1] == 4).sum() == 10
    # the CPU size scores each reach from 0.4 s after its go cue: reach 1 over (go1 + 40, go2]
    # (30 steps), reach 2 from go2 + 41 to the end, and the metrics use the same windows
    cpu = DoubleReachTask.from_size("cpu")
    assert cpu.movement_time == 0.4 and cpu.network_dt == 0.01
    b = cpu.sample(key=getkey(), batch_size=64)
    w = np.asarray(b.weights[..., 0])
    go1, go2 = np.asarray(b.metadata["go_cue1"]), np.asarray(b.metadata["go_cue2"])
    t = np.arange(cpu.n_steps)
    for i in range(64):
        scored = t[w[i] == 4]
        np.testing.assert_array_equal(
            scored, np.concatenate([np.arange(go1[i] + 41, go2[i] + 1), t[t > go2[i] + 40]])
        )
    # a hand that sits on target 1 over reach 1's window and on target 2 over reach 2's scores 0
    hand = np.zeros((64, cpu.n_steps, 4))
    y = np.asarray(b.targets)
    hand[..., :2] = np.where((w == 4)[..., None], y[..., :2], 0.0)
    metrics = cpu.metrics_from_outputs(hand, b)
    assert metrics["endpoint_error_1_cm"] == pytest.approx(0.0, abs=1e-9)
    assert metrics["endpoint_error_2_cm"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("cls", [ReachTask, DoubleReachTask])
def test_targets_are_within_reach(cls, getkey):
    task = cls()
    batch = task.sample(key=getkey(), batch_size=4000)
    names = ("target",) if cls is ReachTask else ("target1", "target2")
    for name in names:
        target = np.asarray(batch.metadata[name])
        assert np.linalg.norm(target, axis=-1).max() <= 0.95 * 0.6 + 1e-12
        r = np.linalg.norm(target - CENTER, axis=-1)
        phi = np.rad2deg(np.arctan2(*(target - CENTER).T[::-1]))
        phi = np.where(phi < -90, phi + 360, phi)
        assert r.min() >= 0.2 - 1e-9 and r.max() <= 0.5 + 1e-9
        assert phi.min() >= -36 - 1e-6 and phi.max() <= 216 + 1e-6
        # rejection keeps the reachable part of the distribution uniform: downward targets
        # (all radii reachable) keep r ~ U(0.2, 0.5)
        down = phi < 0
        assert abs(r[down].mean() - 0.35) < 0.02
    # the reference distribution keeps unreachable targets
    repo = cls(target_distribution="repo").sample(key=getkey(), batch_size=4000)
    far = np.linalg.norm(np.asarray(repo.metadata[names[0]]), axis=-1)
    assert 0.05 < np.mean(far > 0.57) < 0.4


@pytest.mark.parametrize("cls", [ReachTask, DoubleReachTask])
def test_angle_margin_widens_training_targets_only(cls, getkey):
    margin = 18.0
    task = cls(angle_margin=margin, target_distribution="repo")
    assert task.training_angle_range == (-36.0 - margin, 216.0 + margin)
    batch = task.sample(key=getkey(), batch_size=20000)
    name = "target" if cls is ReachTask else "target1"
    target = np.asarray(batch.metadata[name])
    phi = np.rad2deg(np.arctan2(*(target - CENTER).T[::-1]))
    phi = np.where(phi < -90, phi + 360, phi)
    # uniform on (-54, 234): extremes near the ends, and the share beyond the SPEC range
    # matches 2·18/288 = 12.5 % (binomial std 0.23 % at 20000 draws)
    assert -54 - 1e-6 <= phi.min() < -53.5 and 233.5 < phi.max() <= 234 + 1e-6
    outside = np.mean((phi < -36) | (phi > 216))
    assert abs(outside - 2 * margin / 288) < 0.01
    # the canonical conditions stay on angle_range
    expected = np.deg2rad(np.linspace(-36.0, 216.0, 8))
    key = "angle" if cls is ReachTask else "angle1"
    np.testing.assert_allclose(np.unique(task.conditions().metadata[key]), expected)


@pytest.mark.parametrize("cls", [ReachTask, DoubleReachTask])
def test_radius_margin_widens_training_targets_only(cls, getkey):
    margin = 0.05
    task = cls(radius_margin=margin, target_distribution="repo")
    assert task.training_radius_range == pytest.approx((0.15, 0.55))
    batch = task.sample(key=getkey(), batch_size=20000)
    name = "target" if cls is ReachTask else "target1"
    r = np.linalg.norm(np.asarray(batch.metadata[name]) - CENTER, axis=-1)
    # uniform on (0.15, 0.55): extremes near the ends, and the share below the SPEC range
    # matches 0.05/0.4 = 12.5 % (binomial std 0.23 % at 20000 draws)
    assert 0.15 - 1e-6 <= r.min() < 0.152 and 0.548 < r.max() <= 0.55 + 1e-6
    assert abs(np.mean(r < 0.2) - margin / 0.4) < 0.01
    # the canonical conditions stay at eval_radii
    key = "radius" if cls is ReachTask else "radius1"
    np.testing.assert_allclose(task.conditions().metadata[key], 0.2)
    # with the default "reachable" distribution the short reaches (always within reach) are
    # never redrawn, so their share is at least the margin's 12.5 %
    kept = cls(radius_margin=margin).sample(key=getkey(), batch_size=20000)
    r = np.linalg.norm(np.asarray(kept.metadata[name]) - CENTER, axis=-1)
    assert 0.15 - 1e-6 <= r.min() < 0.152
    assert np.mean(r < 0.2) > margin / 0.4 - 0.01


def test_conditions_are_the_eight_directions():
    expected = np.deg2rad(np.linspace(-36.0, 216.0, 8))  # SPEC §3.4
    cond = ReachTask().conditions()
    np.testing.assert_allclose(cond.metadata["angle"], expected)
    np.testing.assert_allclose(cond.metadata["radius"], 0.2)
    np.testing.assert_array_equal(cond.metadata["direction"], np.arange(8))
    paper = ReachTask.from_size("paper").conditions()
    assert paper.batch_size == 24
    np.testing.assert_allclose(paper.metadata["angle"], np.tile(expected, 3))
    np.testing.assert_allclose(paper.metadata["radius"], np.repeat([0.2, 0.3, 0.4], 8))
    double = DoubleReachTask().conditions()
    assert double.batch_size == 64
    d1, d2 = np.asarray(double.metadata["direction1"]), np.asarray(double.metadata["direction2"])
    assert sorted(zip(d1.tolist(), d2.tolist())) == [(i, j) for i in range(8) for j in range(8)]
    np.testing.assert_allclose(double.metadata["angle1"], expected[d1])
    np.testing.assert_allclose(double.metadata["angle2"], expected[d2])


def _minimum_jerk(start, end, onset, duration, n_steps, dt):
    """Hand position and velocity of a minimum-jerk reach, sampled at (t + 1)·dt."""
    time = (np.arange(n_steps) + 1) * dt
    s = np.clip((time - onset) / duration, 0, 1)
    shape = 10 * s**3 - 15 * s**4 + 6 * s**5
    rate = (30 * s**2 - 60 * s**3 + 30 * s**4) / duration
    delta = np.asarray(end) - np.asarray(start)
    return start + shape[:, None] * delta, rate[:, None] * delta


def test_metrics_on_a_known_trajectory():
    task = ReachTask()  # dt = 10 ms, T = 200
    cond = task.conditions()
    go = np.asarray(cond.metadata["go_cue"])
    target = np.asarray(cond.metadata["target"])
    n = target.shape[0]
    outputs = np.zeros((n, 200, 4))
    miss = np.array([0.012, 0.0])  # every reach ends 1.2 cm to the right of its target
    for b in range(n):
        pos, vel = _minimum_jerk(CENTER, target[b] + miss, go[b] * 0.01 + 0.15, 0.4, 200, 0.01)
        outputs[b, :, :2], outputs[b, :, 2:] = pos, vel
    metrics = task.metrics_from_outputs(outputs, cond)
    assert metrics["endpoint_error_cm"] == pytest.approx(1.2)
    assert metrics["hold_error_cm"] == pytest.approx(1.2)
    assert metrics["endpoint_speed_cm_s"] == pytest.approx(0.0, abs=1e-9)
    assert metrics["fraction_within_2cm"] == 1.0
    assert metrics["fixation_error_cm"] == pytest.approx(0.0, abs=1e-9)
    # peak of a minimum-jerk profile: 1.875·D/T (sampled at the midpoint: exact here)
    distance = np.linalg.norm(target + miss - CENTER, axis=-1)
    assert metrics["peak_speed_cm_s"] == pytest.approx(100 * np.mean(1.875 * distance / 0.4))
    # 10 % of the peak is first reached at s* with 30 s²(1 − s)² = 0.1875: onset 0.15 s +
    # 0.4 s·s*, rounded up to the next 10 ms output
    s_star = 0.5 - math.sqrt(0.25 - math.sqrt(0.1875 / 30))
    expected_rt = math.ceil(round((0.15 + 0.4 * s_star) / 0.01, 9)) * 10.0
    assert metrics["reaction_time_ms"] == pytest.approx(expected_rt)
    # a 3 cm miss fails the 2 cm criterion
    per = reach_metrics(
        outputs[:, :, :2] + np.array([0.018, 0.0]),
        outputs[:, :, 2:],
        target,
        go_cue=go,
        hold_start=go + 61,
        end=np.full(n, 199),
        dt=0.01,
    )
    np.testing.assert_allclose(per["endpoint_error_cm"], 3.0)


def test_double_reach_metrics_on_a_known_trajectory():
    task = DoubleReachTask()
    cond = task.conditions()
    md = {k: np.asarray(v) for k, v in cond.metadata.items()}
    n = cond.batch_size
    outputs = np.zeros((n, 200, 4))
    for b in range(n):
        p1, v1 = _minimum_jerk(
            CENTER, md["target1"][b], md["go_cue1"][b] * 0.01 + 0.1, 0.4, 200, 0.01
        )
        p2, v2 = _minimum_jerk(
            np.zeros(2),
            md["target2"][b] - md["target1"][b] + [0, 0.01],
            md["go_cue2"][b] * 0.01 + 0.1,
            0.4,
            200,
            0.01,
        )
        outputs[b, :, :2], outputs[b, :, 2:] = p1 + p2, v1 + v2
    metrics = task.metrics_from_outputs(outputs, cond)
    assert metrics["endpoint_error_1_cm"] == pytest.approx(0.0, abs=1e-9)
    assert metrics["endpoint_error_2_cm"] == pytest.approx(1.0)
    assert metrics["endpoint_error_cm"] == pytest.approx(0.5)
    assert metrics["fraction_within_2cm"] == 1.0
    assert metrics["reaction_time_1_ms"] == metrics["reaction_time_2_ms"] > 100


@pytest.mark.parametrize("plant_name", ["torque", "muscle"])
def test_default_network_trains_with_sofo(plant_name):
    """A few SOFO iterations (`nd.fit`, the plant's CPU hyperparameters) lower the loss of
    the CPU default network on a fixed held-out batch."""
    task = ReachTask(plant=plant_name)
    model = task.default_model(key=jr.PRNGKey(0))
    batch = task.sample(key=jr.PRNGKey(1), batch_size=16)
    value = eqx.filter_jit(lambda m: task.problem(m, batch, key=jr.PRNGKey(2)).value(m))
    before = float(value(model))
    hp = task.hyperparameters("sofo")
    opt = nd.optim.sofo(n_tangents=16, learning_rate=hp["learning_rate"], damping=hp["damping"])
    result = nd.fit(
        model, task, opt, n_iters=6, batch_size=16, key=jr.PRNGKey(3), eval_every=0,
        progress=False, max_retries=0,
    )  # fmt: skip
    assert np.all(result.history["finite"].values)
    assert float(value(result.model)) < 0.95 * before
    # no divergence hidden from the loss (the muscle gate once turned NaN activations into 0)
    clean = task.evaluate(result.model, noise=False)
    assert all(np.isfinite(v) for v in clean.values())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["adam", "fgd"])
def test_first_order_optimizers_step_through_the_loop(name):
    task = ReachTask(plant="torque")
    model = task.default_model(key=jr.PRNGKey(0))
    opt = nd.optim.from_config(name, **task.hyperparameters(name))
    result = nd.fit(
        model, task, opt, n_iters=2, batch_size=4, key=jr.PRNGKey(1), eval_every=0,
        progress=False, max_retries=0,
    )  # fmt: skip
    assert np.all(result.history["finite"].values)
    changed = jax.tree.map(
        lambda a, b: bool(jnp.any(a != b)),
        eqx.filter(model.network, eqx.is_inexact_array),
        eqx.filter(result.model.network, eqx.is_inexact_array),
    )
    assert any(jax.tree.leaves(changed))


def test_endpoint_bias_scatter_on_known_endpoints():
    from neurodyn.tasks import endpoint_bias_scatter

    target = np.array([[0.1, 0.2]] * 4 + [[-0.1, 0.3]] * 3)
    endpoint = target.copy()
    endpoint[:4] += [[0.01, 0.0], [-0.01, 0.0], [0.0, 0.01], [0.0, -0.01]]  # ring about target
    endpoint[4:] += [0.03, 0.04]  # constant 5 cm offset
    condition = np.array([3, 3, 3, 3, 0, 0, 0])
    bias, scatter = endpoint_bias_scatter(endpoint, target, condition)
    np.testing.assert_allclose(bias, [5.0, 0.0], atol=1e-9)  # labels sorted: 0, then 3
    np.testing.assert_allclose(scatter, [0.0, np.sqrt(4 / 3)], atol=1e-9)  # Bessel: n − 1 = 3
    # training trials (label -1) are each their own condition: scatter 0, bias = error
    bias, scatter = endpoint_bias_scatter(endpoint, target, np.full(7, -1))
    np.testing.assert_allclose(scatter, 0.0, atol=1e-12)
    np.testing.assert_allclose(
        np.sort(bias), np.sort(100 * np.linalg.norm(endpoint - target, axis=-1)), atol=1e-9
    )


def test_scatter_is_unbiased_with_few_repeats():
    # Gaussian endpoints, s.d. 1 cm per axis: E[scatter²] = 2 cm² for any number of repeats
    from neurodyn.tasks import endpoint_bias_scatter

    rng = np.random.default_rng(0)
    n_cond, n_rep = 4000, 4
    target = np.repeat(rng.uniform(-0.2, 0.2, (n_cond, 2)), n_rep, axis=0)
    endpoint = target + 0.01 * rng.standard_normal(target.shape)
    bias, scatter = endpoint_bias_scatter(endpoint, target, np.repeat(np.arange(n_cond), n_rep))
    # s.e. of the mean of scatter² (a 2σ²·χ²₆/6 variable): 2·√(2/6)/√4000 ≈ 0.018
    assert np.mean(scatter**2) == pytest.approx(2.0, abs=0.08)
    assert np.mean(bias**2) == pytest.approx(2.0 / n_rep, abs=0.04)  # |mean of 4|²: 2σ²/4


def test_bias_and_scatter_bound_the_mean_endpoint_error(getkey):
    # per condition, mean |e_i| ≥ bias (|mean e| ≤ mean |e|); scatter > 0 with noise
    task = ReachTask(plant="torque")
    metrics = task.evaluate(task.default_model(key=getkey()), key=getkey(), n_trials=32)
    assert metrics["endpoint_scatter_cm"] > 0  # noisy repeats differ
    assert metrics["endpoint_bias_cm"] <= metrics["endpoint_error_cm"] + 1e-9
    clean = task.evaluate(task.default_model(key=getkey()), noise=False)
    assert clean["endpoint_scatter_cm"] == 0.0
    assert clean["endpoint_bias_cm"] == pytest.approx(clean["endpoint_error_cm"])


def test_evaluate_reports_every_metric(getkey):
    task = ReachTask(plant="torque")
    metrics = task.evaluate(task.default_model(key=getkey()), key=getkey(), n_trials=8)
    assert set(metrics) == {
        "endpoint_error_cm",
        "hold_error_cm",
        "endpoint_speed_cm_s",
        "peak_speed_cm_s",
        "reaction_time_ms",
        "fraction_within_2cm",
        "fixation_error_cm",
        "endpoint_bias_cm",
        "endpoint_scatter_cm",
    }
    assert metrics["endpoint_error_cm"] == pytest.approx(20.0, abs=3.0)  # untrained: at rest
    assert task.success_criterion() == ("endpoint_error_cm", 2.0, "below")


def test_confined_noise_is_all_or_nothing_at_the_extremes(getkey):
    """Noise confined to every step is the noise itself; confined to no step, the rollout is
    the noiseless one (rate noise η = 1, sensory noise 0)."""
    task = ReachTask(plant="torque", sensory_noise=0.01)
    model = task.default_model(key=getkey())
    inputs = task.conditions().inputs
    n, t = inputs.shape[:2]
    noise = nd.models.batch_noise(model, getkey(), n, t)
    every = jax.vmap(model.confine_noise)(noise, jnp.ones((n, t), bool))
    for a, b in zip(jax.tree.leaves(every), jax.tree.leaves(noise)):
        np.testing.assert_array_equal(a, b)
    none = jax.vmap(model.confine_noise)(noise, jnp.zeros((n, t), bool))
    np.testing.assert_allclose(
        _rollout_with_noise(model, inputs, none), _rollout_noiseless(model, inputs), atol=1e-7
    )
    assert not np.allclose(
        _rollout_with_noise(model, inputs, every), _rollout_noiseless(model, inputs), atol=1e-5
    )


def test_endpoint_scatter_by_phase(getkey):
    task = ReachTask(plant="torque")
    model = task.default_model(key=getkey())
    # a network that moves the arm: a larger read-out than SPEC's tiny initial one
    model = eqx.tree_at(lambda m: m.network.W_out, model, model.network.W_out * 30)
    key = getkey()
    phases = task.endpoint_scatter_by_phase(model, key=key, n_repeats=64)
    assert list(phases) == ["all", "before go", "go to +0.2 s", "+0.2 s to +0.6 s", "after +0.6 s"]
    # "all" is evaluate's scatter with the same noise draws
    metrics = task.evaluate(model, key=key, n_trials=64 * 8)
    assert phases["all"] == pytest.approx(metrics["endpoint_scatter_cm"], rel=1e-6)
    assert phases["all"] > 0.1
    # small noise acts linearly: the phases' variances add up to the whole (up to the
    # sampling error of 64 repeats: ratios 0.94-1.05 over 4 seeds)
    parts = sum(v**2 for k, v in phases.items() if k != "all")
    assert parts == pytest.approx(phases["all"] ** 2, rel=0.15)
    other = task.endpoint_scatter_by_phase(model, key=key, n_repeats=4, boundaries=(0.1,))
    assert list(other) == ["all", "before +0.1 s", "after +0.1 s"]
    with pytest.raises(ValueError, match="n_repeats"):
        task.endpoint_scatter_by_phase(model, key=key, n_repeats=1)
    with pytest.raises(ValueError, match="boundaries"):
        task.endpoint_scatter_by_phase(model, key=key, boundaries=(0.6, 0.2))
    with pytest.raises(ValueError, match="boundaries"):
        task.endpoint_scatter_by_phase(model, key=key, boundaries=(0.015,))


@pytest.mark.parametrize("cls", [ReachTask, DoubleReachTask])
def test_noiseless_evaluation_switches_every_noise_source_off(cls, getkey):
    # noise=False equals a model built without rate or sensory noise, run with its (absent)
    # noise; it is deterministic and runs each canonical condition once.
    noisy = cls(plant="torque", sensory_noise=0.01)
    clean = cls(plant="torque", rate_noise=0.0)
    key = getkey()
    model = noisy.default_model(key=key)
    model_clean = clean.default_model(key=key)
    assert model_clean.sample_noise(getkey(), 3) is None
    # perturb the read-out so that the arm moves and noise would show
    model = eqx.tree_at(lambda m: m.network.W_out, model, model.network.W_out * 30.0)
    model_clean = eqx.tree_at(
        lambda m: m.network.W_out, model_clean, model_clean.network.W_out * 30.0
    )
    out, batch = noisy.eval_outputs(model, key=None, noise=False)
    ref, _ = clean.eval_outputs(model_clean, key=getkey(), n_trials=batch.batch_size)
    assert out.shape == ref.shape and out.shape[0] == noisy.conditions().batch_size
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-7)
    with_noise, _ = noisy.eval_outputs(model, key=getkey(), n_trials=batch.batch_size)
    assert np.abs(with_noise - out).max() > 1e-4
    m1 = noisy.evaluate(model, noise=False)
    m2 = noisy.evaluate(model, key=getkey(), n_trials=64, noise=False)
    assert m1 == m2 and set(m1) == set(noisy.evaluate(model, key=getkey()))
    with pytest.raises(ValueError, match="key"):
        noisy.evaluate(model)


def test_registry_sizes_and_hyperparameters():
    for name, cls in (("reach", ReachTask), ("double-reach", DoubleReachTask)):
        task = nd.tasks.get(name, plant="torque")
        assert isinstance(task, cls) and task.plant == "torque"
        assert nd.tasks.get(name).plant == "torque"
        for size in ("cpu", "paper"):
            for opt in nd.tasks.OPTIMIZER_NAMES:
                hp = nd.tasks.get(name, size=size).hyperparameters(opt)
                assert {"n_iters", "batch_size", "learning_rate"} <= set(hp)
                nd.optim.from_config(opt, **hp)
    paper = nd.tasks.get("reach", size="paper").hyperparameters("sofo")
    assert (paper["batch_size"], paper["n_tangents"], paper["damping"]) == (256, 256, 1e-5)


def test_task_bad_arguments():
    with pytest.raises(ValueError, match=r"`plant` must be one of \('muscle', 'torque'\)"):
        ReachTask(plant="tendon")
    with pytest.raises(ValueError, match="idle_range"):
        ReachTask(idle_range=(-0.1, 0.5))
    with pytest.raises(ValueError, match="prep_range"):
        DoubleReachTask(prep_range=(0.6, 0.2))
    with pytest.raises(ValueError, match="movement_time"):
        ReachTask(movement_time=-0.6)
    with pytest.raises(ValueError, match="feedback_delay"):
        ReachTask(feedback_delay=0.015)  # not a whole number of 10 ms steps
    with pytest.raises(ValueError, match="network_dt"):
        ReachTask(network_dt=0.005, arm_dt=0.002)
    with pytest.raises(ValueError, match="hold window"):
        ReachTask(duration=1.5)
    with pytest.raises(ValueError, match="inter_go"):
        DoubleReachTask(inter_go=0.5)
    with pytest.raises(ValueError, match="target_distribution"):
        ReachTask(target_distribution="uniform")
    with pytest.raises(ValueError, match="size"):
        nd.tasks.get("reach", size="huge")
    with pytest.raises(ValueError, match="reachable"):
        ReachTask(radius_range=(0.8, 0.9))
    with pytest.raises(ValueError, match="angle_margin"):
        ReachTask(angle_margin=-5.0)
    with pytest.raises(ValueError, match="angle_margin"):
        DoubleReachTask(angle_margin=60.0)  # 252° + 120° > 360°
    with pytest.raises(ValueError, match="radius_margin"):
        ReachTask(radius_margin=-0.01)
    with pytest.raises(ValueError, match="radius_margin"):
        DoubleReachTask(radius_margin=0.2)  # 0.2 - 0.2 m: no positive radius left


@pytest.mark.slow
@pytest.mark.parametrize("task_name", ["reach", "double-reach"])
@pytest.mark.parametrize("plant", ["torque", "muscle"])
def test_cli_fit_end_to_end(task_name, plant, tmp_path):
    """`neurodyn fit TASK --plant PLANT` runs (shortened) and records the plant it used."""
    import json

    from neurodyn.cli import main

    out = tmp_path / "run"
    code = main(
        ["fit", task_name, "--plant", plant, "--out", str(out), "--no-progress",
         "--set", "training.n_iters=2", "--set", "training.batch_size=4"]
    )  # fmt: skip
    assert code == 0
    summary = json.loads((out / "run.json").read_text())
    assert summary["timings"]["iterations"] == 2
    assert "endpoint_error_cm" in summary["final_metrics"]
    assert f'plant = "{plant}"' in (out / "config.toml").read_text()


def test_evaluate_runs_sixteen_repeats_of_each_condition_by_default(getkey):
    # 32-trial evaluations of one network spread over 0.65 cm; the default is 16 repeats
    task = ReachTask(plant="torque")
    model, key = task.default_model(key=getkey()), getkey()
    outputs, batch = task.eval_outputs(model, key=key, default_repeats=16)
    assert batch.batch_size == 16 * task.conditions().batch_size
    assert task.evaluate(model, key=key) == task.metrics_from_outputs(outputs, batch)
    assert task.evaluate(model, key=key) != task.evaluate(model, key=key, n_trials=32)
