r"""Reaching with a biomechanical arm: the single delayed reach and what it shares with the
memory-guided double reach of Yu et al. (2024) (in `_double_reach.py`).

The paper's motor RNN drives a two-joint arm — torque-driven (Li & Todorov 2004, as in the
paper) or with six Li–Todorov muscles — in closed loop ([`neurodyn.tasks.ClosedLoop`][]; see
docs/concepts/closed-loop.md); the arm's joint angles and velocities are fed back. The loss is
the weighted squared error of the hand position against the target plus the hand velocity
against zero, as in the authors' code.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._validation import check_real
from ..models import batch_noise, motor_rnn
from ..optim import mse
from ..plants import MuscleArm, TwoJointArm
from ._base import (
    AbstractTask,
    Batch,
    check_positive_int,
    check_size,
    register,
    select_hyperparameters,
)
from ._closed_loop import (
    DEFAULT_FEEDBACK,
    FEEDBACK_CHANNELS,
    FEEDBACK_MODALITIES,
    MUSCLE_FEEDBACK,
    ClosedLoop,
    delay_steps,
)
from ._metrics import rollout_outputs
from ._perturbations import _applied, _uniform, as_perturbations
from ._reach_metrics import (
    WITHIN_CM,
    _mean,
    endpoint_bias_scatter,
    reach_metrics,
)
from ._reach_recipes import (
    CPU_TORQUE_TASK,
    REACH_HYPERPARAMETERS,
)

PLANTS: tuple[str, ...] = ("muscle", "torque")
"""Plants the reaching tasks accept: `"muscle"` (six-muscle `MuscleArm`, Li & Todorov 2004) or
`"torque"` (torque-driven `TwoJointArm`, the paper's)."""

TARGET_DISTRIBUTIONS: tuple[str, ...] = ("reachable", "repo")
"""`"reachable"`: the reference code's distribution with targets beyond
`reach_fraction`·(l1 + l2) redrawn (our choice); `"repo"`: the reference distribution as it is."""

N_DIRECTIONS = 8  # the reference code's evaluation directions: linspace(−36°, 216°, 8)
# Candidates drawn per target for the rejection step (our choice): 19.3 % of the reference draws
# lie beyond 0.57 m (Monte Carlo, 10⁶ draws), so all 16 fail with probability ≈ 4e-12; then
# the first candidate's radius is shrunk onto the reachable disc instead.
_N_CANDIDATES = 16
# The perturbation draws' key: fold_in(key, salt) in `sample` (so that the targets and timings
# are those of the same key without perturbations), PRNGKey(salt) in `conditions`.
PERTURBATION_KEY_SALT = 23
# Read-out initialisation for the muscle arm (our choice): the reference randn·0.1/N is sized for
# torques (N·m). Through the excitation map and LT04's gate A(a, l) ≈ (a/1.18)^2.1, whose
# slope is 0 at a = 0, it leaves the arm limp and the Jacobian of the hand with respect to the
# parameters ≈ 0 (top GGN eigenvalue 1e-6 on the first batch): the first Gauss–Newton step,
# ∝ error/Jacobian, then threw the weights from 0.03 to ~50 and every later state was NaN, at
# λ from 1e-3 to 1 and η from 0.1 to 0.01 alike (measured, seed 0). 100× (randn·10/N,
# initial excitations ~0.1) gives a well-conditioned first step (top eigenvalue 0.26) and a
# loss that falls from the first iterations.
MUSCLE_READOUT_INIT_SCALE = 100.0


def as_pair(value) -> tuple[float, float]:
    """Normalise a `(lo, hi)` pair (lists from TOML included) to floats."""
    if isinstance(value, str) or not hasattr(value, "__len__") or len(value) != 2:
        raise ValueError(f"expected a pair (lo, hi); got {value!r}.")
    return (float(value[0]), float(value[1]))


def as_floats(value) -> tuple[float, ...]:
    """Normalise one number or a sequence of numbers to a tuple of floats."""
    if isinstance(value, numbers.Real):
        return (float(value),)
    return tuple(float(v) for v in value)


def as_names(value) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def check_range(pair, name: str, *, minimum: float = 0.0) -> None:
    lo, hi = pair
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"`{name}` must be finite; got {pair}.")
    if lo < minimum:
        raise ValueError(f"`{name}` must be >= {minimum} (seconds or metres); got {pair}.")
    if lo > hi:
        raise ValueError(f"`{name}` must satisfy lo <= hi; got {pair}.")


def check_nonnegative(value, name: str) -> float:
    """A finite real number >= 0 (`neurodyn._validation.check_real`)."""
    return check_real(value, name, minimum=0.0)


def check_positive(value, name: str) -> float:
    """A finite real number > 0 (`neurodyn._validation.check_real`)."""
    return check_real(value, name, minimum=0.0, strict_minimum=True)


def steps_of(seconds: float, dt: float, name: str) -> int:
    """`seconds` as a whole number of steps of `dt` (ValueError if it is not one)."""
    n = round(seconds / dt)
    if abs(n * dt - seconds) > 1e-6 * max(dt, abs(seconds)):
        raise ValueError(
            f"`{name}` = {seconds} s is not a whole number of network steps of {dt} s."
        )
    return int(n)


# --------------------------------------------------------------------------------------------
# What the two reaching tasks share.


class AbstractReachTask(AbstractTask):
    """Fields, target sampling, closed-loop model and loss shared by the reaching tasks.

    See [`neurodyn.tasks.ReachTask`][] for the arguments.
    """

    plant: str = eqx.field(static=True, default="torque")
    size: str = eqx.field(static=True, default="cpu")
    network_dt: float = eqx.field(static=True, default=0.01)
    arm_dt: float = eqx.field(static=True, default=0.002)
    duration: float = eqx.field(static=True, default=2.0)
    movement_time: float = eqx.field(static=True, default=0.6)
    hold_weight: float = eqx.field(static=True, default=4.0)
    radius_range: tuple[float, float] = eqx.field(
        static=True, default=(0.2, 0.5), converter=as_pair
    )
    angle_range: tuple[float, float] = eqx.field(
        static=True, default=(-36.0, 216.0), converter=as_pair
    )
    angle_margin: float = eqx.field(static=True, default=0.0)
    radius_margin: float = eqx.field(static=True, default=0.0)
    target_distribution: str = eqx.field(static=True, default="reachable")
    reach_fraction: float = eqx.field(static=True, default=0.95)
    eval_radii: tuple[float, ...] = eqx.field(static=True, default=(0.2,), converter=as_floats)
    n_neurons: int = eqx.field(static=True, default=64)
    tau: float = eqx.field(static=True, default=0.02)
    rate_noise: float | None = eqx.field(static=True, default=None)
    feedback: tuple[str, ...] = eqx.field(static=True, default=DEFAULT_FEEDBACK, converter=as_names)
    feedback_delay: float = eqx.field(static=True, default=0.0)
    sensory_noise: float = eqx.field(static=True, default=0.0)
    proprioceptive_delay_ms: float | None = eqx.field(static=True, default=None)
    visual_delay_ms: float | None = eqx.field(static=True, default=None)
    proprioceptive_noise: float | None = eqx.field(static=True, default=None)
    visual_noise: float | None = eqx.field(static=True, default=None)
    perturbations: tuple = eqx.field(static=True, default=(), converter=as_perturbations)

    n_task_inputs: ClassVar[int] = 3
    supported_perturbations: ClassVar[tuple[str, ...]] = ("curl", "pulse")

    def __check_init__(self):
        if self.plant not in PLANTS:
            raise ValueError(f"`plant` must be one of {PLANTS}; got {self.plant!r}.")
        check_size(self.size)
        if self.target_distribution not in TARGET_DISTRIBUTIONS:
            raise ValueError(
                f"`target_distribution` must be one of {TARGET_DISTRIBUTIONS}; got "
                f"{self.target_distribution!r}."
            )
        network_dt = check_positive(self.network_dt, "network_dt")
        arm_dt = check_positive(self.arm_dt, "arm_dt")
        if arm_dt > network_dt * (1 + 1e-9):
            raise ValueError(
                f"`arm_dt` ({arm_dt} s) must not exceed `network_dt` ({network_dt} s)."
            )
        steps_of(network_dt, arm_dt, "network_dt (in steps of arm_dt)")
        tau = check_positive(self.tau, "tau")
        if network_dt > tau:
            raise ValueError(f"`network_dt` ({network_dt} s) must not exceed `tau` ({tau} s).")
        check_positive(self.duration, "duration")
        check_nonnegative(self.movement_time, "movement_time")
        check_nonnegative(self.hold_weight, "hold_weight")
        check_nonnegative(self.feedback_delay, "feedback_delay")
        check_nonnegative(self.sensory_noise, "sensory_noise")
        if self.rate_noise is not None:
            check_nonnegative(self.rate_noise, "rate_noise")
        check_positive_int(self.n_neurons, "n_neurons")
        check_range(self.radius_range, "radius_range")
        check_range(self.angle_range, "angle_range", minimum=-math.inf)
        r_margin = check_nonnegative(self.radius_margin, "radius_margin")
        if self.radius_range[0] - r_margin <= 0:
            raise ValueError(
                f"`radius_margin` = {r_margin} m widens `radius_range` {self.radius_range} "
                "below a radius of 0; lower it."
            )
        margin = check_nonnegative(self.angle_margin, "angle_margin")
        if (self.angle_range[1] - self.angle_range[0]) + 2 * margin > 360.0 + 1e-9:
            raise ValueError(
                f"`angle_margin` = {margin}° widens `angle_range` {self.angle_range} beyond a "
                "full turn (360°); lower it."
            )
        if not 0 < float(self.reach_fraction) <= 1:
            raise ValueError(f"`reach_fraction` must lie in (0, 1]; got {self.reach_fraction}.")
        if not self.eval_radii or any(not (r > 0 and math.isfinite(r)) for r in self.eval_radii):
            raise ValueError(f"`eval_radii` must be positive radii (m); got {self.eval_radii}.")
        unknown = [name for name in self.feedback if name not in FEEDBACK_CHANNELS]
        if unknown:
            raise ValueError(
                f"`feedback` must name signals among {tuple(FEEDBACK_CHANNELS)}; got {unknown}."
            )
        for name in MUSCLE_FEEDBACK:
            if name in self.feedback and self.plant != "muscle":
                raise ValueError(f'`feedback` "{name}" needs `plant="muscle"`.')
        self._check_sensory_options()
        steps_of(self.duration, network_dt, "duration")
        steps_of(self.feedback_delay, network_dt, "feedback_delay")
        steps_of(self.movement_time, network_dt, "movement_time")
        if self.target_distribution == "reachable":
            angles = np.deg2rad(np.linspace(*self.training_angle_range, 721))
            nearest = np.linalg.norm(
                self.center
                + self.training_radius_range[0] * np.stack([np.cos(angles), np.sin(angles)], -1),
                axis=-1,
            ).min()
            if nearest > self.max_reach:
                raise ValueError(
                    f"no target is reachable: at the smallest radius "
                    f"{self.training_radius_range[0]} m "
                    f"every target lies beyond {self.reach_fraction}·(l1 + l2) = "
                    f"{self.max_reach:.3f} m from the shoulder; lower `radius_range`."
                )

    # ---------------------------------------------------------------- sizes and geometry

    @property
    def dt(self) -> float:
        """Seconds per network step (the time unit of the batches)."""
        return float(self.network_dt)

    @property
    def n_steps(self) -> int:
        """Network steps per trial: `duration / network_dt` (reference: T_tot = 2 s)."""
        return steps_of(self.duration, self.network_dt, "duration")

    @property
    def n_substeps(self) -> int:
        """Arm steps per network step: `network_dt / arm_dt` (held-input substeps)."""
        return steps_of(self.network_dt, self.arm_dt, "network_dt")

    @property
    def movement_steps(self) -> int:
        """m = `movement_time / network_dt`: the unscored movement window (reference: 0.6 s)."""
        return steps_of(self.movement_time, self.network_dt, "movement_time")

    def make_plant(self):
        """The arm: `MuscleArm()` (Li–Todorov preset) or `TwoJointArm()` (the paper's arm)."""
        return MuscleArm() if self.plant == "muscle" else TwoJointArm()

    @property
    def _skeleton(self) -> TwoJointArm:
        plant = self.make_plant()
        return plant.skeleton if isinstance(plant, MuscleArm) else plant

    @property
    def center(self) -> np.ndarray:
        """The central spot: the hand at the rest posture, (0, 0.2052) m."""
        arm = self._skeleton
        t1, t12 = arm.rest_posture[0], arm.rest_posture[0] + arm.rest_posture[1]
        return np.array(
            [
                arm.l1 * math.cos(t1) + arm.l2 * math.cos(t12),
                arm.l1 * math.sin(t1) + arm.l2 * math.sin(t12),
            ]
        )

    @property
    def max_reach(self) -> float:
        """`reach_fraction`·(l1 + l2): targets farther from the shoulder are redrawn."""
        arm = self._skeleton
        return float(self.reach_fraction) * (arm.l1 + arm.l2)

    @property
    def training_angle_range(self) -> tuple[float, float]:
        """The training targets' direction range (degrees): `angle_range` widened by
        `angle_margin` on each side; the canonical directions stay on `angle_range`."""
        lo, hi = self.angle_range
        margin = float(self.angle_margin)
        return (lo - margin, hi + margin)

    @property
    def training_radius_range(self) -> tuple[float, float]:
        """The training targets' radius range (m): `radius_range` widened by `radius_margin`
        on each side; the canonical conditions stay at `eval_radii`."""
        lo, hi = self.radius_range
        margin = float(self.radius_margin)
        return (lo - margin, hi + margin)

    def directions(self) -> np.ndarray:
        """The 8 canonical directions (rad): linspace(−36°, 216°, 8) (reference code)."""
        return np.deg2rad(np.linspace(*self.angle_range, N_DIRECTIONS))

    # ---------------------------------------------------------------- sampling

    def _dtype(self):
        return jnp.result_type(float)

    def sample_targets(self, key, n: int) -> tuple[jax.Array, jax.Array]:
        """`n` target angles (rad) and radii (m) about the centre.

        φ ~ U(angle_range) = U(−36°, 216°) (widened by `angle_margin` on each side, 0° by
        default), r ~ U(radius_range) = U(0.2, 0.5) m (widened by `radius_margin` on each
        side, 0 m by default); with
        `target_distribution="reachable"` a target whose distance from the shoulder exceeds
        `max_reach` is redrawn (rejection among `_N_CANDIDATES` = 16 candidates: the first
        reachable one; if none, the first candidate's radius is shrunk onto the reachable
        disc). Jittable.
        """
        dtype = self._dtype()
        a_lo, a_hi = np.deg2rad(self.training_angle_range)
        r_lo, r_hi = self.training_radius_range
        n_cand = 1 if self.target_distribution == "repo" else _N_CANDIDATES
        k_a, k_r = jr.split(key)
        angle = jr.uniform(k_a, (n, n_cand), dtype, a_lo, a_hi)
        radius = jr.uniform(k_r, (n, n_cand), dtype, r_lo, r_hi)
        if n_cand == 1:
            return angle[:, 0], radius[:, 0]
        cx, cy = self.center
        px = cx + radius * jnp.cos(angle)
        py = cy + radius * jnp.sin(angle)
        ok = px**2 + py**2 <= self.max_reach**2
        pick = jnp.argmax(ok, axis=1)
        rows = jnp.arange(n)
        angle_p, radius_p = angle[rows, pick], radius[rows, pick]
        # none reachable: |c + r u| = R  →  r = −c·u + sqrt((c·u)² − |c|² + R²)
        cu = cx * jnp.cos(angle_p) + cy * jnp.sin(angle_p)
        r_max = -cu + jnp.sqrt(jnp.maximum(cu**2 - (cx**2 + cy**2) + self.max_reach**2, 0.0))
        radius_p = jnp.where(ok.any(axis=1), radius_p, jnp.minimum(radius_p, r_max))
        return angle_p, radius_p

    def target_position(self, angle, radius) -> jax.Array:
        """Target position (m): centre + r (cos φ, sin φ), `[..., 2]`."""
        center = jnp.asarray(self.center, self._dtype())
        return center + radius[..., None] * jnp.stack([jnp.cos(angle), jnp.sin(angle)], -1)

    def uniform_steps(self, key, n: int, seconds: tuple[float, float]) -> jax.Array:
        """`n` integer step counts, uniform on [round(lo/dt), round(hi/dt)] (inclusive)."""
        lo, hi = (round(s / self.network_dt) for s in seconds)
        return jr.randint(key, (n,), lo, hi + 1, jnp.int32)

    # ---------------------------------------------------------------- model and loss

    def default_model(self, *, key) -> ClosedLoop:
        """The authors' motor RNN (N = `n_neurons` = 64 ReLU units, τ = 20 ms,
        multiplicative rate noise σ_n = 0.2·√(τ/dt), learnt initial state) stepping every
        `network_dt`, in closed loop with the arm (`n_substeps` arm steps of `arm_dt` per
        network step); feedback: the `feedback` signals, delayed by `feedback_delay` s.
        With the muscle arm the read-out starts `MUSCLE_READOUT_INIT_SCALE` (100) times
        larger than the reference torque read-out, randn·10/N (see that constant)."""
        plant = self.make_plant()
        n_feedback = sum(FEEDBACK_CHANNELS[name] for name in self.feedback)
        network = motor_rnn(
            n_inputs=self.n_task_inputs,
            n_feedback=n_feedback,
            n_outputs=plant.control_size,
            n_neurons=self.n_neurons,
            tau=self.tau,
            dt=self.network_dt,
            rate_noise=self.rate_noise,
            key=key,
        )
        if self.plant == "muscle":
            network = eqx.tree_at(
                lambda n: n.W_out, network, network.W_out * MUSCLE_READOUT_INIT_SCALE
            )
        return ClosedLoop(
            network,
            plant,
            dt=self.network_dt,
            n_substeps=self.n_substeps,
            feedback=self.feedback,
            feedback_delay=self.feedback_delay_steps(),
            sensory_noise=self.sensory_noise_per_channel(),
            perturbation_inputs=self.perturbation_inputs,
        )

    # ---------------------------------------------------------------- feedback and perturbations

    def _check_sensory_options(self) -> None:
        for modality in ("proprioceptive", "visual"):
            delay = getattr(self, f"{modality}_delay_ms")
            noise = getattr(self, f"{modality}_noise")
            if delay is None and noise is None:
                continue
            if not any(FEEDBACK_MODALITIES[name] == modality for name in self.feedback):
                raise ValueError(
                    f"`{modality}_delay_ms` / `{modality}_noise` are set but `feedback` "
                    f"{self.feedback} has no {modality} signal."
                )
            if delay is not None:
                delay_steps(delay, self.network_dt, f"{modality}_delay_ms")
            if noise is not None:
                check_nonnegative(noise, f"{modality}_noise")
        kinds = [p.kind for p in self.perturbations]
        unsupported = [k for k in kinds if k not in self.supported_perturbations]
        if unsupported:
            raise ValueError(
                f"{type(self).__name__} supports the perturbations "
                f"{self.supported_perturbations}; got {unsupported}."
            )
        for p in self.perturbations:
            if p.kind == "pulse":
                steps_of(p.duration, self.network_dt, "ForcePulse.duration")

    def feedback_delay_steps(self) -> int | dict[str, int]:
        """The loop's `feedback_delay`: `feedback_delay` (s) in network steps, or, when
        `proprioceptive_delay_ms` or `visual_delay_ms` is set, one delay per signal (its
        modality's delay, else `feedback_delay`)."""
        common = steps_of(self.feedback_delay, self.network_dt, "feedback_delay")
        if self.proprioceptive_delay_ms is None and self.visual_delay_ms is None:
            return common
        out = {}
        for name in self.feedback:
            modality = FEEDBACK_MODALITIES[name]
            ms = getattr(self, f"{modality}_delay_ms")
            out[name] = common if ms is None else delay_steps(ms, self.network_dt, modality)
        return out

    def sensory_noise_per_channel(self) -> float | tuple[float, ...]:
        """The loop's `sensory_noise`: `sensory_noise`, or, when `proprioceptive_noise` or
        `visual_noise` is set, one std per feedback value (its modality's, else
        `sensory_noise`)."""
        if self.proprioceptive_noise is None and self.visual_noise is None:
            return self.sensory_noise
        out = []
        for name in self.feedback:
            std = getattr(self, f"{FEEDBACK_MODALITIES[name]}_noise")
            std = self.sensory_noise if std is None else std
            out += [float(std)] * FEEDBACK_CHANNELS[name]
        return tuple(out)

    @property
    def perturbation_inputs(self) -> tuple[str, ...]:
        """The loop's perturbation inputs: `("curl", "hand_force")` when a curl field or a
        force pulse is configured, else `()` (the task inputs alone, as without
        perturbations)."""
        if any(p.kind in ("curl", "pulse") for p in self.perturbations):
            return ("curl", "hand_force")
        return ()

    def _perturbation(self, kind: str):
        return next((p for p in self.perturbations if p.kind == kind), None)

    def add_plant_perturbations(self, batch: Batch, key, go) -> Batch:
        """Append the per-step perturbation inputs (curl strength, hand force x and y) drawn
        per trial to `batch.inputs`, and record the draws in its metadata (`curl_strength`,
        `pulse_*`); onsets relative to the go cue `go` (int steps `[B]`). Jittable."""
        if not self.perturbation_inputs:
            return batch
        dtype = batch.inputs.dtype
        n, n_steps = batch.inputs.shape[:2]
        t = jnp.arange(n_steps)[None, :]
        k_curl, k_pulse = jr.split(key)
        metadata = dict(batch.metadata)
        curl = jnp.zeros((n,), dtype)
        field = self._perturbation("curl")
        if field is not None:
            curl = field.draw(k_curl, n, dtype)
            metadata["curl_strength"] = curl
        force = jnp.zeros((n, n_steps, 2), dtype)
        pulse = self._perturbation("pulse")
        if pulse is not None:
            k_on, k_mag, k_dir, k_time = jr.split(k_pulse, 4)
            on = _applied(k_on, n, pulse.probability)
            magnitude = jnp.where(on, _uniform(k_mag, n, pulse.magnitude, dtype), 0.0)
            direction = jnp.deg2rad(_uniform(k_dir, n, pulse.direction, dtype))
            onset = jnp.asarray(go, jnp.int32) + self.uniform_steps(k_time, n, pulse.onset)
            duration = steps_of(pulse.duration, self.network_dt, "ForcePulse.duration")
            active = on[:, None] & (t >= onset[:, None]) & (t < (onset + duration)[:, None])
            vector = magnitude[:, None] * jnp.stack([jnp.cos(direction), jnp.sin(direction)], -1)
            force = jnp.where(active[..., None], vector[:, None, :], 0.0).astype(dtype)
            metadata["pulse_onset"] = jnp.where(on, onset, -1).astype(jnp.int32)
            metadata["pulse_onset_time"] = jnp.where(
                on, onset.astype(dtype) * self.network_dt, jnp.nan
            ).astype(dtype)
            metadata["pulse_duration"] = jnp.where(on, pulse.duration, 0.0).astype(dtype)
            metadata["pulse_magnitude"] = magnitude.astype(dtype)
            metadata["pulse_direction"] = jnp.where(on, direction, jnp.nan).astype(dtype)
        curl_input = jnp.broadcast_to(curl[:, None, None], (n, n_steps, 1)).astype(dtype)
        inputs = jnp.concatenate([batch.inputs, curl_input, force], axis=-1)
        return Batch(inputs, batch.targets, batch.weights, metadata)

    def loss_function(self):
        """Weighted squared error of (hand position, hand velocity) against (target, 0),
        summed over the 4 outputs, scaled by s = 10/T (T in network steps), summed over time
        and averaged over the batch (the reference code's s = 10/T_tot = 0.01 at 2 ms)."""
        return mse(target="target", weight="weight", scale=10.0 / self.n_steps, reduction="sum")

    def loss(self, y, x) -> jax.Array:
        """The per-step loss (see `loss_function`)."""
        return self.loss_function()(y, x)

    def success_criterion(self) -> tuple[str, float, str]:
        """Mean endpoint error on the canonical conditions below 2 cm."""
        return ("endpoint_error_cm", WITHIN_CM, "below")

    # ---------------------------------------------------------------- evaluation driver

    def _n_repeats(self, n_conditions: int, n_trials: int | None, default: int) -> int:
        if n_trials is None:
            return default
        n_trials = check_positive_int(n_trials, "n_trials")
        return max(1, -(-n_trials // n_conditions))

    def eval_outputs(
        self, model, *, key, n_trials: int | None = None, default_repeats: int = 4, noise=True
    ):
        """Outputs `[B, T, 4]` of `model` on the canonical conditions repeated with fresh noise
        (`n_trials` rounded up to a whole number of repeats), and that batch.

        With `noise=False` every noise source of the model (the network's rate noise, sensory
        noise) is switched off and each condition runs once (`key` and `n_trials` unused):
        the controller's bias, without the trial-to-trial variability the noise causes."""
        conditions = self.conditions()
        if not noise:
            outputs = _rollout_noiseless(model, conditions.inputs)
            return np.asarray(outputs, np.float64), conditions
        repeats = self._n_repeats(conditions.batch_size, n_trials, default_repeats)
        batch = _repeat(conditions, repeats)
        outputs = _rollout(model, batch.inputs, key)
        return np.asarray(outputs, np.float64), batch


@eqx.filter_jit
def _rollout(model, inputs, key):
    return rollout_outputs(model, inputs, key=key)


def _repeat(batch: Batch, n: int) -> Batch:
    """`batch` repeated `n` times along the trial axis."""
    return jax.tree.map(lambda a: jnp.concatenate([a] * n, axis=0), batch)


@eqx.filter_jit
def _rollout_with_noise(model, inputs, noise):
    """Outputs `[B, T, ...]` of a per-trial model stepped with the given batch-first noise
    (`None`: no noise)."""

    def trial(u, n):
        def body(carry, x):
            return model.step(carry, x[0], x[1])

        return jax.lax.scan(body, model.initial_state(), (u, n))[1]

    return jax.vmap(trial)(inputs, noise)


def _rollout_noiseless(model, inputs):
    """Outputs `[B, T, ...]` of a per-trial model stepped with `noise=None` (no noise)."""
    return _rollout_with_noise(model, inputs, None)


EVAL_REPEATS = 16
"""Noisy repeats of each canonical condition in `ReachTask.evaluate` by default."""


# --------------------------------------------------------------------------------------------
# The single delayed reach.


@register("reach")
class ReachTask(AbstractReachTask):
    r"""Single delayed reach with the paper's arm and motor RNN (Yu et al. 2024's reference code).

    **Trial** (T_tot = `duration` = 2 s). An idle period ~ U(0.1, 0.5) s with the
    input [1, centre]; the target appears (`target_onset`) and a preparation period
    ~ U(0.2, 0.8) s follows with the input [1, target]; at the go cue every input drops to 0
    (the target disappears and must be remembered). Durations are drawn as whole network
    steps, uniform on [round(lo/dt), round(hi/dt)]. The centre is the hand at the rest
    posture θ = (20°, 140°), (0, 0.2052) m; targets are centre + r(cos φ, sin φ) with
    φ ~ U(−36°, 216°), r ~ U(0.2, 0.5) m (the reference code's distribution).

    **Unreachable targets.** With l1 + l2 = 0.6 m, upward targets with r ≳ 0.37 m lie
    beyond the arm. By default (`target_distribution="reachable"`, our choice) targets
    farther than 0.95·(l1 + l2) = 0.57 m from the shoulder are redrawn;
    `target_distribution="repo"` keeps the reference distribution.

    **Loss** (as in the authors' code): squared error of the hand position against the target and
    of the hand velocity against 0, per output step t (the hand *after* network step t):
    before the go cue target = centre, weight 1; from the go cue to go + 0.6 s
    (t ∈ [go, go + m], m = 0.6 s / dt) weight 0 (free movement); after that
    (t > go + m) target = reach target, weight 4. Scale s = 10/T, summed over time and the
    4 outputs, mean over the batch (`neurodyn.optim.mse(..., reduction="sum")`, closed-form
    GGN).

    **Batch.** `inputs` `[B, T, 3]`; `targets` `[B, T, 4]` = (x*, y*, 0, 0); `weights`
    `[B, T, 1]`; `metadata` (per trial): `angle` (rad), `radius` (m), `target` `[B, 2]`
    (m), `direction` (int32 index of the canonical direction, −1 for random training
    targets), `condition` (int32 index into `conditions()`, −1 for training trials),
    `target_onset`, `go_cue` (int32 steps) and `target_onset_time`, `go_cue_time` (s).

    **Plant.** `plant="torque"` (default; the paper's arm) or `"muscle"` (the six-muscle
    Li–Todorov arm, Li & Todorov 2004, excitations = `excitation_from_output` of the 6 network
    outputs). We make the muscle arm the default only if it trains within the CPU budget; it
    does not, for two measured reasons
    (`benchmarks/results/reach_results.md`):

    1. with the LT04 geometry (constant moment arms, Li & Todorov 2004) the shoulder muscles
       lose their force away from the rest posture: at θ = (80°, 144°), the posture of the
       216° target at r = 0.2 m, full activation of SF gives 0.40 N·m and of SE 0.13 N·m
       (SF at l = 0.69 and SE at l = 1.8, where F_L and the gate A(a, l) collapse), against
       6.5 and −4.8 N·m at rest, and the trained muscle arm misses the lower-left targets
       most. The arm itself can reach them: excitation sequences optimised open loop for
       each canonical target (no network, no noise; `benchmarks/muscle_open_loop.py`) end
       within a fraction of a centimetre of every target after 0.6 s of movement and 0.6 s
       of hold (docs/benchmarks.md, "Reaching"). The limit is the controller, not the plant;
    2. training is slower per iteration (the muscle model in the substeps), and from the
       reference torque-sized read-out the arm starts limp (the gate's slope is 0 at a = 0),
       which made the first SOFO step diverge; the muscle arm's read-out therefore starts
       100× larger (`MUSCLE_READOUT_INIT_SCALE`, our choice) and SOFO uses λ = 1e-3.

    The muscle arm is one flag away (`--plant muscle` / `plant="muscle"`). At its CPU
    defaults SOFO's loss stalls; momentum breaks the stall. With `momentum=0.9`, K = 256, a
    cosine-decayed η and both margins below, SOFO reaches the 2 cm goal on a GPU (the recipe
    is in the README and `benchmarks/gpu.sh`; the results in docs/benchmarks.md,
    "Reaching").

    **Edge directions.** The canonical directions −36° and 216° lie on the edges of the
    training distribution U(−36°, 216°): no training target lies beyond them, and trained
    networks miss them most (their bias is several times that of the inner directions; see
    `benchmarks/results/reach_results.md`). `angle_margin` (degrees, default 0: the reference
    distribution) draws the training directions from `angle_range` widened by the margin on
    each side, while the evaluation stays on `angle_range`. With `angle_margin=18` (half the
    canonical spacing), SOFO on the torque arm ended closer to the edge targets and with a
    smaller mean bias over the 8 directions (measured in
    `benchmarks/results/reach_results.md`; our choice, the default of the torque arm at size
    `"cpu"` only, see "Sizes"; the field's own default keeps the reference distribution).

    **Edge radius.** The CPU evaluation radius, 0.2 m, is the *smallest* training radius
    (r ~ U(0.2, 0.5) m): every canonical target is a shortest reach, and trained networks
    overshoot it. A trained SOFO network ended beyond the target along the reach in all 8
    directions: the memory of the target regresses towards the training radii's mean.
    `radius_margin` (metres, default 0) widens the training radii on each side, as
    `angle_margin` does the directions; the canonical conditions stay at `eval_radii`.
    Further training with `radius_margin=0.05` (r ~ U(0.15, 0.55) m) lowered that network's
    bias and mean endpoint error (our choice, the default of the torque arm at size `"cpu"`
    only, see "Sizes"). The measurements are in `benchmarks/results/reach_results.md`.

    **Sizes.**

    - `"cpu"` (default): the network steps every `network_dt` = 10 ms, so T = 200 network steps;
      evaluation on the 8 canonical directions at r = 0.2 m (`eval_radii`; the lab's 8
      centre-out reaches). The muscle arm takes 5 held-input substeps of `arm_dt` = 2 ms and
      trains with SOFO (B = 64, K = 48, η = 0.1, λ = 1e-3, 1000
      iterations). The torque arm — the main job, `neurodyn fit reach` — takes one 10 ms arm
      step per network step and draws its training targets 18° and 5 cm beyond the evaluated
      ranges (`CPU_TORQUE_TASK`: `arm_dt=0.01`, `angle_margin=18`, `radius_margin=0.05`), and
      its default optimizer is Adam (`default_optimizer`; `CPU_TORQUE_ADAM`: B = 128, lr 2e-3
      with a cosine decay, gradients clipped to norm 5, 8000 iterations), the recipe that
      reached 2 cm within a few minutes on 2 cores. Its SOFO settings (B = 64, K = 48,
      η = 0.02, λ = 1e-4, 1500 iterations; η from the time-to-solution sweep) end at
      2.3–2.8 cm (3 seeds, ≈ 5.5 min of one core; docs/concepts/sofo-conventions.md).
      Pass `arm_dt=0.002, angle_margin=0, radius_margin=0` for the reference code's task.
    - `"paper"`: network and arm at 2 ms (T = 1000), evaluation on 8 directions × r ∈
      {0.2, 0.3, 0.4} m (the reference code's `analysis.ml`), SOFO B = K = 256, η = 0.1,
      λ = 1e-5, 5000 iterations (the reference code's). Note that 2 of those 24 conditions
      (72° and 108° at 0.4 m, 0.598 m from the shoulder) lie beyond the 0.95 reach limit used
      in training.

    **Metrics** ([`ReachTask.evaluate`][], on the canonical conditions, mean over trials):
    `endpoint_error_cm` (|hand − target| at the last step), `hold_error_cm` (mean over the
    scored hold window), `endpoint_speed_cm_s`, `peak_speed_cm_s`, `reaction_time_ms`
    (first step after the go cue at 10 % of the peak speed), `fraction_within_2cm`
    (endpoint error < 2 cm), `fixation_error_cm` (mean |hand − centre| before the go cue),
    and the endpoint error split per condition into `endpoint_bias_cm` (|mean endpoint −
    target|: the controller's systematic error) and `endpoint_scatter_cm` (root mean square
    distance of the repeats from their mean endpoint, Bessel-corrected: the noise-driven
    variability; 0 when each condition runs once), each averaged over the conditions
    ([`neurodyn.tasks.endpoint_bias_scatter`][]).

    **Arguments** (all keyword, static): `plant`, `size`, `network_dt`, `arm_dt` (seconds),
    `duration` (2 s), `idle_range` ((0.1, 0.5) s), `prep_range` ((0.2, 0.8) s), `movement_time`
    (0.6 s), `hold_weight` (4), `radius_range` ((0.2, 0.5) m), `angle_range` ((−36, 216)
    degrees), `angle_margin` (0 degrees, 18 for the torque arm at size `"cpu"`: training targets
    are drawn from `angle_range` widened by this much on each side, while the canonical
    directions stay on `angle_range`, so that the edge directions are no longer at the edge of
    the training distribution; see "Edge directions" below), `radius_margin` (0 m, 0.05 for the
    torque arm at size `"cpu"`: training radii drawn from `radius_range` widened by this much on
    each side, the canonical conditions staying at `eval_radii`; see "Edge radius"),
    `target_distribution`, `reach_fraction` (0.95), `eval_radii`, `n_neurons` (64), `tau` (0.02
    s), `rate_noise` (None: 0.2·√(τ/dt)), `feedback` (joint angles and velocities),
    `feedback_delay` (s, a multiple of `network_dt`; 0), `sensory_noise` (std in the feedback's
    units; 0), `proprioceptive_delay_ms`, `visual_delay_ms` (None: `feedback_delay`; whole
    network steps, else a ValueError; literature values ≈ 50 and 100 ms, see the how-to "Delay
    the feedback and perturb the arm"), `proprioceptive_noise`, `visual_noise` (None:
    `sensory_noise`), `perturbations` (`()`: any of [`neurodyn.tasks.CurlField`][],
    [`neurodyn.tasks.ForcePulse`][], [`neurodyn.tasks.TargetJump`][],
    [`neurodyn.tasks.CatchTrials`][], drawn per trial and recorded in `metadata`; see
    `perturbed_trials`).

    **Raises:** `ValueError` naming the argument for an unknown plant (listing `"muscle"`,
    `"torque"`), negative or inconsistent timings, a trial too short for its events, times
    that are not whole network steps, or bad radii.

    ```python
    task = nd.tasks.get("reach", plant="torque")
    model = task.default_model(key=jr.PRNGKey(0))
    result = nd.fit(model, task, n_iters=300, batch_size=32, key=jr.PRNGKey(1))
    ```

    ??? cite "Reference"
        Yu, Xia, Ma, Lengyel & Hennequin, NeurIPS 2024 (code: `single_reach_common.ml`).
    """

    idle_range: tuple[float, float] = eqx.field(static=True, default=(0.1, 0.5), converter=as_pair)
    prep_range: tuple[float, float] = eqx.field(static=True, default=(0.2, 0.8), converter=as_pair)

    name: ClassVar[str] = "reach"
    description: ClassVar[str] = (
        "single delayed reach with a muscle or torque arm in closed loop (Yu et al. 2024)."
    )
    n_task_inputs: ClassVar[int] = 3
    supported_perturbations: ClassVar[tuple[str, ...]] = ("curl", "pulse", "jump", "catch")

    def __check_init__(self):
        check_range(self.idle_range, "idle_range")
        check_range(self.prep_range, "prep_range")
        latest_go = self.idle_range[1] + self.prep_range[1]
        if latest_go + self.movement_time >= self.duration - 1e-9:
            raise ValueError(
                f"`duration` = {self.duration} s leaves no hold window: the latest go cue "
                f"({latest_go} s) plus `movement_time` ({self.movement_time} s) reaches it."
            )

    @classmethod
    def from_size(cls, size: str = "cpu", **overrides) -> ReachTask:
        """`"cpu"`: 10 ms network steps × 5 arm substeps, 8 evaluation targets at 0.2 m;
        `"paper"`: 2 ms steps (the reference's), 8 × 3 evaluation targets (see the class doc)."""
        check_size(size)
        defaults = _size_defaults(size)
        if size == "cpu" and overrides.get("plant", "torque") == "torque":
            defaults.update(CPU_TORQUE_TASK)
        return cls(**{**defaults, **overrides})

    def default_optimizer(self) -> str:
        """`"adam"` for the torque arm at size `"cpu"` (`CPU_TORQUE_ADAM`: the recipe
        measured within 2 cm inside the CPU budget on 2 cores; docs/benchmarks.md),
        `"sofo"` otherwise."""
        return "adam" if (self.plant == "torque" and self.size == "cpu") else "sofo"

    # ---------------------------------------------------------------- trials

    def trials(self, angle, radius, idle_steps, prep_steps, *, condition=None) -> Batch:
        """The batch for given targets (`angle`, `radius` `[B]`) and idle / preparation
        durations (int steps `[B]`); jittable. `condition` labels canonical trials."""
        dtype = self._dtype()
        n = angle.shape[0]
        t = jnp.arange(self.n_steps)[None, :]
        onset = jnp.asarray(idle_steps, jnp.int32)
        go = onset + jnp.asarray(prep_steps, jnp.int32)
        target = self.target_position(jnp.asarray(angle, dtype), jnp.asarray(radius, dtype))
        center = jnp.asarray(self.center, dtype)
        before_onset = (t < onset[:, None])[..., None]
        before_go = (t < go[:, None])[..., None]
        cue = jnp.where(before_onset, center, target[:, None, :])
        inputs = jnp.concatenate(
            [before_go.astype(dtype), jnp.where(before_go, cue, 0.0).astype(dtype)], axis=-1
        )
        position = jnp.where(before_go, center, target[:, None, :])
        targets = jnp.concatenate([position, jnp.zeros_like(position)], axis=-1).astype(dtype)
        hold = t > (go + self.movement_steps)[:, None]
        weights = jnp.where(before_go[..., 0], 1.0, jnp.where(hold, self.hold_weight, 0.0))
        condition = jnp.full((n,), -1, jnp.int32) if condition is None else condition
        direction = jnp.where(condition >= 0, condition % N_DIRECTIONS, -1).astype(jnp.int32)
        metadata = {
            "angle": jnp.asarray(angle, dtype),
            "radius": jnp.asarray(radius, dtype),
            "target": target,
            "direction": direction,
            "condition": condition,
            "target_onset": onset,
            "go_cue": go,
            "target_onset_time": onset.astype(dtype) * self.network_dt,
            "go_cue_time": go.astype(dtype) * self.network_dt,
        }
        return Batch(inputs, targets, weights[..., None].astype(dtype), metadata)

    def sample(self, *, key, batch_size: int) -> Batch:
        """A batch of training trials (see the class docstring); jittable."""
        check_positive_int(batch_size, "batch_size")
        k_target, k_idle, k_prep = jr.split(key, 3)
        angle, radius = self.sample_targets(k_target, batch_size)
        idle = self.uniform_steps(k_idle, batch_size, self.idle_range)
        prep = self.uniform_steps(k_prep, batch_size, self.prep_range)
        if self.perturbations:
            # a key of its own: the targets and timings are those of the same key without
            # perturbations
            k_perturb = jr.fold_in(key, PERTURBATION_KEY_SALT)
            return self.perturbed_trials(angle, radius, idle, prep, key=k_perturb)
        return self.trials(angle, radius, idle, prep)

    def perturbed_trials(self, angle, radius, idle_steps, prep_steps, *, key, condition=None):
        """`trials(...)` with the task's `perturbations` drawn per trial with `key` (see
        [`neurodyn.tasks.CurlField`][] and its siblings); jittable.

        Metadata added: `catch` (int32 1 for a catch trial), `jump_step` (int32, −1: none),
        `jump_time` (s, NaN: none), `jump_rotation` (rad), `jump_target` `[B, 2]` (m; the
        target when it does not jump), `final_target` `[B, 2]` (the target the hand must end
        on: the jumped target, or the centre on a catch trial), and those of
        `add_plant_perturbations`."""
        dtype = self._dtype()
        n = jnp.shape(angle)[0]
        k_catch, k_jump, k_plant = jr.split(key, 3)
        idle = jnp.asarray(idle_steps, jnp.int32)
        prep = jnp.asarray(prep_steps, jnp.int32)
        go = idle + prep
        catch = jnp.zeros((n,), bool)
        catch_spec = self._perturbation("catch")
        if catch_spec is not None:
            catch = _applied(k_catch, n, catch_spec.probability)
            prep = jnp.where(catch, self.n_steps - idle, prep)  # no go cue within the trial
        batch = self.trials(angle, radius, idle, prep, condition=condition)
        inputs, targets, md = batch.inputs, batch.targets, dict(batch.metadata)
        target = md["target"]
        final = target
        jump = self._perturbation("jump")
        if jump is not None:
            k_on, k_rot, k_sign, k_time = jr.split(k_jump, 4)
            jumped = _applied(k_on, n, jump.probability) & ~catch
            rotation = jnp.deg2rad(_uniform(k_rot, n, jump.rotation, dtype))
            if jump.random_sign:
                rotation = jnp.where(jr.bernoulli(k_sign, 0.5, (n,)), -rotation, rotation)
            rotation = jnp.where(jumped, rotation, 0.0)
            step = go + self.uniform_steps(k_time, n, jump.time)
            new_target = self.target_position(jnp.asarray(angle, dtype) + rotation, radius)
            new_target = jnp.where(jumped[:, None], new_target, target).astype(dtype)
            t = jnp.arange(self.n_steps)[None, :]
            after = ((t >= step[:, None]) & jumped[:, None])[..., None]
            inputs = jnp.concatenate(
                [inputs[..., :1], jnp.where(after, new_target[:, None, :], inputs[..., 1:3])],
                axis=-1,
            )
            targets = jnp.concatenate(
                [jnp.where(after, new_target[:, None, :], targets[..., :2]), targets[..., 2:]],
                axis=-1,
            )
            md["jump_step"] = jnp.where(jumped, step, -1).astype(jnp.int32)
            md["jump_time"] = jnp.where(jumped, step.astype(dtype) * self.network_dt, jnp.nan)
            md["jump_rotation"] = rotation.astype(dtype)
            md["jump_target"] = new_target
            final = new_target
        if catch_spec is not None:
            md["catch"] = catch.astype(jnp.int32)
            final = jnp.where(catch[:, None], jnp.asarray(self.center, dtype), final)
        md["final_target"] = jnp.asarray(final, dtype)
        batch = Batch(inputs, targets, batch.weights, md)
        return self.add_plant_perturbations(batch, k_plant, go)

    def conditions(self) -> Batch:
        """The canonical conditions: 8 directions linspace(−36°, 216°, 8) × `eval_radii`
        (radius-major: condition c has direction c mod 8), each with the mid-range idle
        (0.3 s) and preparation (0.5 s) periods (our choice: the reference code's evaluation
        timing is not known)."""
        directions = self.directions()
        angle = np.tile(directions, len(self.eval_radii))
        radius = np.repeat(np.asarray(self.eval_radii), N_DIRECTIONS)
        n = angle.shape[0]
        idle = np.full(n, round(np.mean(self.idle_range) / self.network_dt), np.int32)
        prep = np.full(n, round(np.mean(self.prep_range) / self.network_dt), np.int32)
        if self.perturbations:
            # perturbations drawn with a fixed key: the same evaluation set every time
            return self.perturbed_trials(
                jnp.asarray(angle),
                jnp.asarray(radius),
                jnp.asarray(idle),
                jnp.asarray(prep),
                key=jr.PRNGKey(PERTURBATION_KEY_SALT),
                condition=jnp.arange(n, dtype=jnp.int32),
            )
        return self.trials(
            jnp.asarray(angle),
            jnp.asarray(radius),
            jnp.asarray(idle),
            jnp.asarray(prep),
            condition=jnp.arange(n, dtype=jnp.int32),
        )

    # ---------------------------------------------------------------- evaluation

    def metrics_from_outputs(self, outputs, batch: Batch) -> dict[str, float]:
        """The metrics of the class docstring from hand outputs `[B, T, 4]` on `batch`."""
        outputs = np.asarray(outputs, np.float64)
        go = np.asarray(batch.metadata["go_cue"])
        end = np.full_like(go, self.n_steps - 1)
        per_trial = reach_metrics(
            outputs[..., :2],
            outputs[..., 2:],
            np.asarray(batch.metadata.get("final_target", batch.metadata["target"])),
            go_cue=go,
            hold_start=go + self.movement_steps + 1,
            end=end,
            dt=self.network_dt,
        )
        out = {name: _mean(values) for name, values in per_trial.items()}
        out["fraction_within_2cm"] = float(np.mean(per_trial["endpoint_error_cm"] < WITHIN_CM))
        bias, scatter = endpoint_bias_scatter(
            outputs[:, -1, :2],
            batch.metadata.get("final_target", batch.metadata["target"]),
            batch.metadata["condition"],
        )
        out["endpoint_bias_cm"] = _mean(bias)
        out["endpoint_scatter_cm"] = _mean(scatter)
        t = np.arange(self.n_steps)[None, :]
        before = t < go[:, None]
        dist = np.linalg.norm(outputs[..., :2] - self.center, axis=-1)
        out["fixation_error_cm"] = float(100.0 * dist[before].mean())
        return out

    def evaluate(
        self, model, *, key=None, n_trials: int | None = None, noise: bool = True
    ) -> dict[str, float]:
        """Metrics (class docstring) on the canonical conditions, each run with independent
        network (and sensory) noise `n_trials / n_conditions` times (default
        `EVAL_REPEATS` = 16 times: 128 trials at the CPU size, which spread less between
        repeated evaluations of one trained network than 32 trials do; see
        docs/benchmarks.md, "The main job on two cores").
        `noise=False`: each condition once with every noise source off (the controller's
        bias alone; `key` and `n_trials` unused)."""
        if noise and key is None:
            raise ValueError("`key` is required to evaluate with noise (or pass noise=False).")
        outputs, batch = self.eval_outputs(
            model, key=key, n_trials=n_trials, default_repeats=EVAL_REPEATS, noise=noise
        )
        return self.metrics_from_outputs(outputs, batch)

    def endpoint_scatter_by_phase(
        self, model, *, key, n_repeats: int = 64, boundaries=(0.0, 0.2, 0.6)
    ) -> dict[str, float]:
        """When in the trial the noise makes the endpoints scatter.

        Runs each canonical condition `n_repeats` times with the same noise draws as
        `evaluate(model, key=key, n_trials=n_repeats·n_conditions)`, but with the noise
        confined to one phase of the trial (neutral everywhere else:
        `model.confine_noise`), and returns the endpoint scatter (cm, as
        `endpoint_scatter_cm`: root mean square spread about each condition's mean endpoint,
        Bessel-corrected, averaged over conditions) per phase. The phases are cut at the go
        cue plus each of `boundaries` (seconds, increasing, ≥ 0, whole network steps):
        with the default (0, 0.2, 0.6), `"before go"`, `"go to +0.2 s"`, `"+0.2 to +0.6 s"`
        and `"after +0.6 s"` (the scored hold); `"all"` is the noise everywhere (equal to
        `evaluate`'s `endpoint_scatter_cm` with that key and number of trials).

        If the effect of the noise is small enough to be linear, the phases' variances add
        up: scatter_all² ≈ Σ scatter_phase².
        """
        n_repeats = check_positive_int(n_repeats, "n_repeats")
        if n_repeats < 2:
            raise ValueError(f"`n_repeats` must be >= 2 to measure a scatter; got {n_repeats}.")
        edges = as_floats(boundaries)
        if any(b < 0 for b in edges) or any(b2 <= b1 for b1, b2 in zip(edges, edges[1:])):
            raise ValueError(
                f"`boundaries` must be increasing seconds >= 0 after the go cue; got {edges}."
            )
        steps = [steps_of(b, self.network_dt, "boundaries") for b in edges]
        conditions = self.conditions()
        batch = _repeat(conditions, n_repeats)
        n_trials, n_steps = batch.inputs.shape[:2]
        go = np.asarray(batch.metadata["go_cue"])
        cuts = [np.zeros_like(go)] + [go + k for k in steps] + [np.full_like(go, n_steps)]
        labels = _phase_labels(edges)
        # the noise draws of `evaluate` with this key (`rollout_problem` takes the first half
        # of the split for the noise; the test of "all" against `evaluate` guards that)
        noise = batch_noise(model, jr.split(key)[0], n_trials, n_steps)
        t = np.arange(n_steps)[None, :]
        out = {}
        windows = [("all", np.zeros_like(go), np.full_like(go, n_steps))]
        windows += [(label, lo, hi) for label, lo, hi in zip(labels, cuts[:-1], cuts[1:])]
        for label, lo, hi in windows:
            keep = (t >= np.minimum(lo, n_steps)[:, None]) & (t < np.minimum(hi, n_steps)[:, None])
            confined = jax.vmap(model.confine_noise)(noise, jnp.asarray(keep))
            outputs = np.asarray(_rollout_with_noise(model, batch.inputs, confined), np.float64)
            _, scatter = endpoint_bias_scatter(
                outputs[:, -1, :2], batch.metadata["target"], batch.metadata["condition"]
            )
            out[label] = _mean(scatter)
        return out

    def hyperparameters(self, optimizer: str = "sofo") -> dict[str, Any]:
        """Recommended settings for `optimizer` at this size (paper: the authors' code; CPU:
        tuned here; see docs/concepts/sofo-conventions.md)."""
        return select_hyperparameters(
            REACH_HYPERPARAMETERS[self.plant], self.size, optimizer, self.name
        )


def _phase_labels(edges) -> list[str]:
    """Names of the phases cut at the go cue + each of `edges` (seconds)."""

    def at(b):
        return "go" if b == 0 else f"+{b:g} s"

    labels = [f"before {at(edges[0])}"]
    labels += [f"{at(a)} to {at(b)}" for a, b in zip(edges, edges[1:])]
    labels.append(f"after {at(edges[-1])}")
    return labels


def _size_defaults(size: str) -> dict[str, Any]:
    if size == "paper":
        # The reference code's: network and arm both at dt = 2 ms, and its evaluation radii.
        return {"size": size, "network_dt": 0.002, "arm_dt": 0.002, "eval_radii": (0.2, 0.3, 0.4)}
    # Our choice: the RNN steps at 10 ms with 5 held-input substeps of the 2 ms arm.
    return {"size": size, "network_dt": 0.01, "arm_dt": 0.002, "eval_radii": (0.2,)}
