r"""A network in closed loop with a plant: network → controls → arm → (delayed, noisy) feedback.

DESIGN.md: "A closed loop (network → muscles → arm → delayed, noisy feedback → network) is itself
one module with one `step(params, carry, x_t) -> (carry, y_t)`; that step is what every
optimizer differentiates." [`neurodyn.tasks.ClosedLoop`][] is that module. It follows the
per-trial recurrent-model contract of `neurodyn.models` (`initial_state`, `step`,
`sample_noise`, `rates`, `trainable`, `n_params`), so `rollout_problem`, `simulate`, SOFO
(`value_and_sofo_grad_scan`), FGD and BPTT use it unchanged.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._custom_types import Array, Float, PRNGKeyArray
from ..models import AbstractRecurrentModel
from ..plants import AbstractPlant, MuscleArm, excitation_from_output

FEEDBACK_CHANNELS: dict[str, int] = {
    "joint_angles": 2,
    "joint_velocities": 2,
    "hand_position": 2,
    "hand_velocity": 2,
    "muscle_activations": 6,
    "muscle_lengths": 6,
    "muscle_velocities": 6,
}
"""Feedback signals a closed loop can return to its network, with their sizes."""

MUSCLE_FEEDBACK: tuple[str, ...] = ("muscle_activations", "muscle_lengths", "muscle_velocities")
"""Feedback signals only a `MuscleArm` has (activations; normalised lengths, L0; normalised
lengthening velocities, L0/s)."""

FEEDBACK_MODALITIES: dict[str, str] = {
    "joint_angles": "proprioceptive",
    "joint_velocities": "proprioceptive",
    "muscle_lengths": "proprioceptive",
    "muscle_velocities": "proprioceptive",
    "muscle_activations": "proprioceptive",
    "hand_position": "visual",
    "hand_velocity": "visual",
}
"""The sense each feedback signal stands for: joint and muscle states are proprioceptive (muscle
spindles, Golgi tendon organs; the activations stand for force sense), the hand's position
and velocity visual."""

PERTURBATION_INPUTS: dict[str, int] = {"curl": 1, "hand_force": 2}
"""Per-step plant inputs a closed loop can take after its task inputs (never shown to the
network): `"curl"`, the strength b of a curl field (N·s/m; F = b·(−v_y, v_x), counter-
clockwise for b > 0), and `"hand_force"`, an external force on the hand (N, x and y)."""


def delay_steps(delay_ms: float, dt: float, name: str = "delay") -> int:
    """A delay in milliseconds as a whole number of steps of `dt` seconds.

    **Raises:** `ValueError` naming `name` when the delay is negative, not finite, or not a
    whole number of steps (to 1e-6 relative): no silent rounding.
    """
    if isinstance(delay_ms, bool) or not isinstance(delay_ms, numbers.Real):
        raise TypeError(f"`{name}` must be a number of milliseconds; got {delay_ms!r}.")
    delay_ms = float(delay_ms)
    if not (math.isfinite(delay_ms) and delay_ms >= 0):
        raise ValueError(f"`{name}` must be finite and >= 0 ms; got {delay_ms}.")
    step_ms = 1e3 * float(dt)
    n = round(delay_ms / step_ms)
    if abs(n * step_ms - delay_ms) > 1e-6 * max(step_ms, delay_ms):
        raise ValueError(
            f"`{name}` = {delay_ms:g} ms is not a whole number of network steps of {step_ms:g} ms."
        )
    return int(n)


CONTROL_MAPS: tuple[str, ...] = ("identity", "excitation")
"""Maps from the network output to the plant control: `"identity"` (joint torques, N·m) or
`"excitation"` ([`neurodyn.plants.excitation_from_output`][], muscle excitations in [0, 1))."""

# As in the authors' reach code: the network is fed the arm's joint angles and angular
# velocities.
DEFAULT_FEEDBACK: tuple[str, ...] = ("joint_angles", "joint_velocities")


class ClosedLoopState(NamedTuple):
    """Carry of a [`neurodyn.tasks.ClosedLoop`][] for one trial.

    - `network`: the network's carry (for a `RateRNN`, its state x `[neuron]`).
    - `plant`: the plant state (`[4]` for `TwoJointArm`, `[10]` for `MuscleArm`).
    - `feedback_buffer`: the last `feedback_delay` clean feedback vectors, oldest first
      (`[delay, feedback]`), or `None` without delay.
    """

    network: Any
    plant: Float[Array, " state"]
    feedback_buffer: Float[Array, "delay feedback"] | None


class ClosedLoop(AbstractRecurrentModel):
    r"""A recurrent network driving a plant, with the plant's state fed back (one trial).

    One step with task input $u_t$ (the closed loop of the paper's reaching tasks, extended with
    delay, sensory noise and substeps; docs/concepts/closed-loop.md):

    1. feedback $f_t = h(s_{t-D}) + ε_t$: the chosen `feedback` signals of the plant state $D$
       network steps ago (`feedback_delay`; 0 = the current state) plus sensory noise
       $ε_t \sim \mathcal N(0, \mathrm{diag}(σ^2))$;
    2. network: `(x_{t+1}, o_t) = network.step(x_t, [u_t, f_t], noise_t)`;
    3. control $c_t = g(o_t)$: the output itself (joint torques, `control_map="identity"`) or
       [`neurodyn.plants.excitation_from_output`][] (muscle excitations, `"excitation"`);
    4. plant: `n_substeps` explicit steps of `dt / n_substeps` with $c_t$ held
       (e.g. the network at 10 ms with 5 held-input substeps of a 2 ms arm);
    5. output $y_t$ = (hand position, hand velocity) of the new plant state
       (as in the authors' code, the loss uses the hand state after the step), `[4]` in m and
       m/s.

    The carry is a [`neurodyn.tasks.ClosedLoopState`][] `(network, plant, feedback_buffer)`.
    The buffer starts filled with the feedback of the initial plant state (the arm has been
    at rest there). Noise — the network's own and the sensory noise — is drawn in
    `sample_noise`, outside the differentiated step, as the contract requires (noise is shared
    by all tangents; docs/concepts/sofo.md). Only the network is trained; the plant has no
    trained parameters.

    **Arguments:**

    - `network`: a per-trial recurrent model (e.g. [`neurodyn.models.motor_rnn`][]) with
      `n_inputs` = task inputs + feedback size and `n_outputs` = `plant.control_size`.
    - `plant`: an [`neurodyn.plants.AbstractPlant`][] (`TwoJointArm`, `MuscleArm`).
    - `dt`: the network step in seconds (default: `network.dt`, which must then be in s).
    - `n_substeps`: plant steps per network step (≥ 1); `dt / n_substeps` must not exceed
      `plant.max_stable_dt`.
    - `feedback`: names among `FEEDBACK_CHANNELS` (`"joint_angles"`, `"joint_velocities"`,
      `"hand_position"`, `"hand_velocity"`, `"muscle_activations"` — the last for a
      `MuscleArm` only), in the order they enter the network. Default: joint angles and
      velocities (as in the authors' code). The reach target is a *task input* (as there), not a
      feedback signal, so that it can disappear at the go cue.
    - `feedback_delay`: D, in network steps (≥ 0): one delay for every signal, or one per
      signal (a sequence in the order of `feedback`, or a mapping signal name → steps, absent
      names 0), e.g. `{"joint_angles": 5, "joint_velocities": 5, "hand_position": 10}` for
      proprioception at 50 ms and vision at 100 ms with 10 ms steps
      ([`neurodyn.tasks.delay_steps`][] converts milliseconds exactly). The buffer holds the
      largest delay; each signal is read at its own lag.
    - `sensory_noise`: σ ≥ 0, one value for every feedback channel or one per channel, in the
      channel's units (rad, rad/s, m, m/s).
    - `control_map`: `"identity"` or `"excitation"`; `None` picks `"excitation"` for a
      `MuscleArm` and `"identity"` otherwise.
    - `initial_posture`: joint angles (rad) of the plant at the start of a trial (default: the
      plant's rest posture, θ = (20°, 140°) for the arms).
    - `perturbation_inputs`: names among `PERTURBATION_INPUTS` (`"curl"`, `"hand_force"`): per-
      step inputs that follow the task inputs in `u` and act on the plant, never on the
      network. With a curl strength b and a hand force F_ext, every plant substep applies the
      hand force F = F_ext + b·(−v_y, v_x) (v: the hand velocity at the substep's start) as
      the joint torques J(θ)ᵀF. Default `()`: no such inputs, the step as without them.

    **Raises:** `ValueError`/`TypeError` naming the argument for an unknown feedback name or
    control map, sizes that do not match the network, a negative delay or noise, or a plant
    step beyond the plant's explicit-Euler limit.

    **Example:**

    ```python
    import jax.random as jr
    import neurodyn as nd

    net = nd.models.motor_rnn(n_inputs=3, n_feedback=4, n_outputs=6, tau=0.02, dt=0.01,
                              key=jr.PRNGKey(0))
    loop = nd.tasks.ClosedLoop(net, nd.plants.MuscleArm(), n_substeps=5)
    carry = loop.initial_state()
    carry, y = loop.step(carry, jnp.array([1.0, 0.0, 0.2052]))   # y = (hand xy, hand vxy)
    ```
    """

    network: AbstractRecurrentModel
    plant: AbstractPlant
    initial_posture: tuple[float, float] | None = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    n_substeps: int = eqx.field(static=True)
    feedback: tuple[str, ...] = eqx.field(static=True)
    feedback_delay: int = eqx.field(static=True)
    sensory_noise: tuple[float, ...] = eqx.field(static=True)
    control_map: str = eqx.field(static=True)
    feedback_delays: tuple[int, ...] = eqx.field(static=True)
    perturbation_inputs: tuple[str, ...] = eqx.field(static=True)

    output_names: ClassVar[tuple[str, ...]] = ("hand_x", "hand_y", "hand_vx", "hand_vy")

    def __init__(
        self,
        network: AbstractRecurrentModel,
        plant: AbstractPlant,
        *,
        dt: float | None = None,
        n_substeps: int = 1,
        feedback: Sequence[str] = DEFAULT_FEEDBACK,
        feedback_delay: int | Sequence[int] | Mapping[str, int] = 0,
        sensory_noise: float | Sequence[float] = 0.0,
        control_map: str | None = None,
        initial_posture: Sequence[float] | None = None,
        perturbation_inputs: Sequence[str] = (),
    ):
        if not isinstance(plant, AbstractPlant):
            raise TypeError(f"`plant` must be a neurodyn plant; got {type(plant).__name__}.")
        if dt is None:
            dt = getattr(network, "dt", None)
            if dt is None:
                raise ValueError("`dt` is required: the network has no `dt` attribute.")
        if isinstance(dt, bool) or not isinstance(dt, numbers.Real) or not dt > 0:
            raise ValueError(f"`dt` must be a number of seconds > 0; got {dt!r}.")
        if isinstance(n_substeps, bool) or not isinstance(n_substeps, numbers.Integral):
            raise TypeError(f"`n_substeps` must be an int >= 1; got {n_substeps!r}.")
        if n_substeps < 1:
            raise ValueError(f"`n_substeps` must be an int >= 1; got {n_substeps}.")
        sub_dt = float(dt) / int(n_substeps)
        if sub_dt > plant.max_stable_dt * (1 + 1e-9):
            raise ValueError(
                f"`dt / n_substeps` = {sub_dt:g} s exceeds the explicit-Euler limit of "
                f"{type(plant).__name__} ({plant.max_stable_dt:g} s); use n_substeps >= "
                f"{math.ceil(float(dt) / plant.max_stable_dt - 1e-9)}."
            )
        if isinstance(feedback, str):
            feedback = (feedback,)
        feedback = tuple(feedback)
        unknown = [name for name in feedback if name not in FEEDBACK_CHANNELS]
        if unknown:
            raise ValueError(
                f"`feedback` must name signals among {tuple(FEEDBACK_CHANNELS)}; got unknown "
                f"{unknown}."
            )
        for name in MUSCLE_FEEDBACK:
            if name in feedback and not isinstance(plant, MuscleArm):
                raise ValueError(f'`feedback` "{name}" needs a MuscleArm plant.')
        feedback_delays = _per_signal_delays(feedback_delay, feedback)
        feedback_delay = max(feedback_delays, default=0)
        if isinstance(perturbation_inputs, str):
            perturbation_inputs = (perturbation_inputs,)
        perturbation_inputs = tuple(perturbation_inputs)
        bad = [n for n in perturbation_inputs if n not in PERTURBATION_INPUTS]
        if bad or len(set(perturbation_inputs)) != len(perturbation_inputs):
            raise ValueError(
                f"`perturbation_inputs` must name distinct inputs among "
                f"{tuple(PERTURBATION_INPUTS)}; got {perturbation_inputs}."
            )
        n_feedback = sum(FEEDBACK_CHANNELS[name] for name in feedback)
        if isinstance(sensory_noise, numbers.Real):
            sensory_noise = (float(sensory_noise),) * n_feedback
        sensory_noise = tuple(float(s) for s in sensory_noise)
        if len(sensory_noise) != n_feedback:
            raise ValueError(
                f"`sensory_noise` must be one std or {n_feedback} (one per feedback channel); "
                f"got {len(sensory_noise)}."
            )
        if not all(math.isfinite(s) and s >= 0 for s in sensory_noise):
            raise ValueError(f"`sensory_noise` must be finite and >= 0; got {sensory_noise}.")
        if control_map is None:
            control_map = "excitation" if isinstance(plant, MuscleArm) else "identity"
        if control_map not in CONTROL_MAPS:
            raise ValueError(f"`control_map` must be one of {CONTROL_MAPS}; got {control_map!r}.")
        n_in = getattr(network, "n_inputs", None)
        if n_in is not None and n_in < n_feedback:
            raise ValueError(
                f"the network takes {n_in} inputs, fewer than the {n_feedback} feedback "
                f"channels {feedback}; its inputs are the task inputs followed by the feedback."
            )
        n_out = getattr(network, "n_outputs", None)
        if n_out is not None and n_out != plant.control_size:
            raise ValueError(
                f"the network has {n_out} outputs but {type(plant).__name__} takes "
                f"{plant.control_size} controls."
            )
        if initial_posture is not None:
            initial_posture = tuple(float(a) for a in initial_posture)
            if len(initial_posture) != 2:
                raise ValueError(f"`initial_posture` must hold 2 angles; got {initial_posture}.")
        self.network = network
        # The plants keep their constants as float64 NumPy arrays; as JAX arrays of the
        # default float they follow the precision in force (no float64 request in float32).
        self.plant = jax.tree.map(
            lambda a: jnp.asarray(a) if isinstance(a, np.ndarray) else a, plant
        )
        self.initial_posture = initial_posture
        self.dt = float(dt)
        self.n_substeps = int(n_substeps)
        self.feedback = feedback
        self.feedback_delay = int(feedback_delay)
        self.sensory_noise = sensory_noise
        self.control_map = control_map
        self.feedback_delays = feedback_delays
        self.perturbation_inputs = perturbation_inputs

    def with_perturbation_inputs(self, names: Sequence[str]) -> ClosedLoop:
        """The same loop (network, plant, feedback) taking the perturbation inputs `names`
        after its task inputs: a network trained without perturbations can run, and go on
        training, in a task with force fields or pulses (and back, with `()`)."""
        return ClosedLoop(
            self.network,
            self.plant,
            dt=self.dt,
            n_substeps=self.n_substeps,
            feedback=self.feedback,
            feedback_delay=dict(zip(self.feedback, self.feedback_delays)),
            sensory_noise=self.sensory_noise,
            control_map=self.control_map,
            initial_posture=self.initial_posture,
            perturbation_inputs=names,
        )

    # ------------------------------------------------------------------ sizes and helpers

    @property
    def n_feedback(self) -> int:
        """Number of feedback values the network receives."""
        return sum(FEEDBACK_CHANNELS[name] for name in self.feedback)

    @property
    def n_task_inputs(self) -> int:
        """Number of task inputs (the network's inputs minus the feedback)."""
        return self.network.n_inputs - self.n_feedback

    @property
    def n_perturbation_inputs(self) -> int:
        """Number of perturbation inputs that follow the task inputs in `u`."""
        return sum(PERTURBATION_INPUTS[name] for name in self.perturbation_inputs)

    @property
    def plant_dt(self) -> float:
        """The plant's step: `dt / n_substeps` (s)."""
        return self.dt / self.n_substeps

    def _dtype(self):
        leaves = jax.tree.leaves(eqx.filter(self.network, eqx.is_inexact_array))
        if not leaves:
            return jnp.result_type(float)
        return jnp.result_type(*[leaf.dtype for leaf in leaves])

    def sense(self, plant_state: Float[Array, " state"]) -> Float[Array, " feedback"]:
        """The clean feedback vector of a plant state (the `feedback` signals, concatenated)."""
        read = {
            "joint_angles": self.plant.joint_angles,
            "joint_velocities": self.plant.joint_velocities,
            "hand_position": self.plant.hand_position,
            "hand_velocity": self.plant.hand_velocity,
            "muscle_activations": getattr(self.plant, "activations", None),
            "muscle_lengths": getattr(self.plant, "muscle_lengths_of", None),
            "muscle_velocities": getattr(self.plant, "muscle_velocities_of", None),
        }
        parts = [read[name](plant_state) for name in self.feedback]
        if not parts:
            return jnp.zeros((0,), plant_state.dtype)
        return jnp.concatenate(parts)

    def control(self, output: Float[Array, " output"]) -> Float[Array, " control"]:
        """The plant control of a network output (`control_map`)."""
        if self.control_map == "excitation":
            return excitation_from_output(output)
        return output

    def plant_step(
        self,
        plant_state: Float[Array, " state"],
        control: Float[Array, " control"],
        perturbation: Float[Array, " perturbation"] | None = None,
    ) -> Float[Array, " state"]:
        """`n_substeps` plant steps of `dt / n_substeps` with the control held, under the
        step's `perturbation` inputs (see `perturbation_inputs`; `None`: none)."""
        for _ in range(self.n_substeps):
            if perturbation is None or not self.perturbation_inputs:
                plant_state = self.plant.step(plant_state, control, self.plant_dt)
            else:
                force = self.hand_force(plant_state, perturbation)
                plant_state = self.plant.step(plant_state, control, self.plant_dt, hand_force=force)
        return plant_state

    def split_perturbation(self, perturbation: Float[Array, " perturbation"]) -> dict:
        """The named perturbation inputs of one step: `{"curl": [1], "hand_force": [2]}`."""
        out, start = {}, 0
        for name in self.perturbation_inputs:
            size = PERTURBATION_INPUTS[name]
            out[name] = perturbation[start : start + size]
            start += size
        return out

    def hand_force(
        self, plant_state: Float[Array, " state"], perturbation: Float[Array, " perturbation"]
    ) -> Float[Array, "2"]:
        """The external hand force (N) at a plant state under one step's perturbation inputs:
        the `hand_force` input plus the curl field b·(−v_y, v_x) of the hand velocity."""
        parts = self.split_perturbation(perturbation)
        force = jnp.zeros(2, plant_state.dtype)
        if "hand_force" in parts:
            force = force + parts["hand_force"].astype(plant_state.dtype)
        if "curl" in parts:
            v = self.plant.hand_velocity(plant_state)
            b = parts["curl"][0].astype(plant_state.dtype)
            force = force + b * jnp.stack([-v[1], v[0]])
        return force

    def delivered_feedback(
        self, carry: ClosedLoopState, sensory: Float[Array, " feedback"] | None = None
    ) -> tuple[Float[Array, " feedback"], Float[Array, "delay feedback"] | None]:
        """What the network receives at this step (each signal at its delay, plus the
        sensory noise `sensory`) and the updated feedback buffer."""
        now = self.sense(carry.plant)
        buffer = carry.feedback_buffer
        if self.feedback_delay > 0:
            if len(set(self.feedback_delays)) == 1:
                delivered = buffer[0]
            else:
                # row D − d of [buffer, now] is the feedback d steps ago
                lags = np.concatenate(
                    [
                        np.full(FEEDBACK_CHANNELS[name], self.feedback_delay - d)
                        for name, d in zip(self.feedback, self.feedback_delays)
                    ]
                )
                stacked = jnp.concatenate([buffer, now[None]], axis=0)
                delivered = stacked[lags, np.arange(lags.size)]
            buffer = jnp.concatenate([buffer[1:], now[None]], axis=0)
        else:
            delivered = now
        if sensory is not None:
            delivered = delivered + sensory
        return delivered, buffer

    def hand(self, plant_state: Float[Array, " state"]) -> Float[Array, "4"]:
        """The output `(x, y, ẋ, ẏ)` of the hand at a plant state (m, m/s)."""
        return jnp.concatenate(
            [self.plant.hand_position(plant_state), self.plant.hand_velocity(plant_state)]
        )

    # ------------------------------------------------------------------ model contract

    def initial_state(self, key: PRNGKeyArray | None = None) -> ClosedLoopState:
        """Network initial state (learnt x0 for the motor RNN), the plant at rest in its
        initial posture, and a feedback buffer filled with that posture's feedback."""
        x = self.network.initial_state(key)
        dtype = self._dtype()
        plant_state = self.plant.initial_state(self.initial_posture, dtype=dtype)
        buffer = None
        if self.feedback_delay > 0:
            buffer = jnp.tile(self.sense(plant_state)[None], (self.feedback_delay, 1))
        return ClosedLoopState(x, plant_state, buffer)

    def sample_noise(self, key: PRNGKeyArray, n_steps: int) -> dict[str, Any] | None:
        """`{"network": the network's noise, "sensory": ε [time, feedback]}` (entries `None`
        when absent), or `None` for a noiseless loop. ε is N(0, σ²) per channel, already
        scaled by `sensory_noise`."""
        k_net, k_sense = jr.split(key)
        net_noise = self.network.sample_noise(k_net, n_steps)
        sensory = None
        if any(s > 0 for s in self.sensory_noise):
            dtype = self._dtype()
            std = jnp.asarray(self.sensory_noise, dtype)
            sensory = std * jr.normal(k_sense, (n_steps, self.n_feedback), dtype)
        if net_noise is None and sensory is None:
            return None
        return {"network": net_noise, "sensory": sensory}

    def confine_noise(self, noise: dict[str, Any] | None, keep) -> dict[str, Any] | None:
        """One trial's noise with the samples outside the steps where `keep` (bool `[time]`)
        is True neutralised: the network's through its own `confine_noise`, the sensory
        noise set to 0."""
        if noise is None:
            return None
        keep = jnp.asarray(keep, bool)
        network = noise.get("network")
        if network is not None:
            if not hasattr(self.network, "confine_noise"):
                raise TypeError(
                    f"{type(self.network).__name__} has no `confine_noise`: its noise cannot "
                    "be confined to a window."
                )
            network = self.network.confine_noise(network, keep)
        sensory = noise.get("sensory")
        if sensory is not None:
            sensory = jnp.where(keep[:, None], sensory, 0.0)
        return {"network": network, "sensory": sensory}

    def step(
        self,
        carry: ClosedLoopState,
        u: Float[Array, " input"],
        noise: dict[str, Any] | None = None,
    ) -> tuple[ClosedLoopState, Float[Array, "4"]]:
        """One network step and `n_substeps` plant steps (see the class docstring)."""
        n_in = self.n_task_inputs + self.n_perturbation_inputs
        if jnp.shape(u) != (n_in,):
            extra = (
                f" ({self.n_task_inputs} task + {self.n_perturbation_inputs} perturbation)"
                if self.perturbation_inputs
                else ""
            )
            raise ValueError(
                f"`u` must be one trial's task input of shape ({n_in},){extra}; got "
                f"{jnp.shape(u)}. Batch trials with jax.vmap."
            )
        perturbation = None
        if self.perturbation_inputs:
            u, perturbation = u[: self.n_task_inputs], u[self.n_task_inputs :]
        net_noise = None if noise is None else noise.get("network")
        sensory = None if noise is None else noise.get("sensory")
        delivered, buffer = self.delivered_feedback(carry, sensory)
        u_net = jnp.concatenate([jnp.asarray(u, delivered.dtype), delivered])
        x, output = self.network.step(carry.network, u_net, net_noise)
        plant_state = self.plant_step(carry.plant, self.control(output), perturbation)
        return ClosedLoopState(x, plant_state, buffer), self.hand(plant_state)

    def rates(self, carry: ClosedLoopState) -> Float[Array, " neuron"]:
        """The network's (noiseless) firing rates."""
        return self.network.rates(carry.network)

    def trainable(self):
        """The network's trainable spec; every plant leaf is fixed."""
        spec = jax.tree.map(lambda _: False, self)
        return eqx.tree_at(lambda s: s.network, spec, self.network.trainable())


def _per_signal_delays(feedback_delay, feedback: tuple[str, ...]) -> tuple[int, ...]:
    """`feedback_delay` (an int, a sequence per signal, or a mapping name → int) as one
    delay per signal of `feedback`, each an int >= 0."""
    if isinstance(feedback_delay, Mapping):
        unknown = [name for name in feedback_delay if name not in feedback]
        if unknown:
            raise ValueError(
                f"`feedback_delay` names signals {unknown} that are not in `feedback` {feedback}."
            )
        delays = tuple(feedback_delay.get(name, 0) for name in feedback)
    elif isinstance(feedback_delay, numbers.Integral | bool) or not isinstance(
        feedback_delay, Sequence
    ):
        delays = (feedback_delay,) * len(feedback)
    else:
        delays = tuple(feedback_delay)
        if len(delays) != len(feedback):
            raise ValueError(
                f"`feedback_delay` must be one int or one per feedback signal "
                f"({len(feedback)}: {feedback}); got {len(delays)}."
            )
    for d in delays:
        if isinstance(d, bool) or not isinstance(d, numbers.Integral):
            raise TypeError(f"`feedback_delay` must be an int (network steps); got {d!r}.")
        if d < 0:
            raise ValueError(f"`feedback_delay` must be >= 0 network steps; got {d}.")
    return tuple(int(d) for d in delays)
