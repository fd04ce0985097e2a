"""How `simulate` labels closed-loop arm tasks (single and double reach): hand, joints, muscles.

At every network step the adapter keeps, besides the rates and the loop's output (the hand
state), the network's own output and the plant control it became (torques for the torque arm,
muscle excitations for the muscle arm), recomputed from the step's carry, input and noise with
the loop's public pieces (`sense`, `network.step`, `control`) — the test suite checks that
`plant_step(plant, control)` reproduces the loop's next plant state exactly.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ..tasks import AbstractReachTask, DoubleReachTask, ReachTask
from ._simulate import TaskAdapter, event_coord, loss_weight, rates_variable, register_adapter, var

JOINTS = ("shoulder", "elbow")
AXES = ("x", "y")


def closed_loop_control(loop, carry, u, noise):
    """`(network output, plant control)` of one closed-loop step (mirrors `ClosedLoop.step`)."""
    net_noise = None if noise is None else noise.get("network")
    sensory = None if noise is None else noise.get("sensory")
    delivered, _ = loop.delivered_feedback(carry, sensory)
    u = u[: loop.n_task_inputs]
    u_net = jnp.concatenate([jnp.asarray(u, delivered.dtype), delivered])
    _, output = loop.network.step(carry.network, u_net, net_noise)
    return output, loop.control(output)


def _is_muscle(loop) -> bool:
    return hasattr(loop.plant, "activations") and hasattr(loop.plant, "muscle_torques")


# metadata key (without a trailing 1/2) -> (units, long name); "_time" keys become events
_METADATA = {
    "angle": ("rad", "target direction (angle about the centre)"),
    "radius": ("m", "target distance from the centre"),
    "target": ("m", "target position"),
    "direction": ("1", "canonical direction index (-1: random target)"),
    # perturbations (neurodyn.tasks.CurlField, ForcePulse, TargetJump, CatchTrials)
    "curl_strength": ("N s m-1", "curl field strength b, F = b (-v_y, v_x) (0: no field)"),
    "pulse_duration": ("s", "force pulse duration (0: no pulse)"),
    "pulse_magnitude": ("N", "force pulse magnitude (0: no pulse)"),
    "pulse_direction": ("rad", "force pulse direction from +x (NaN: no pulse)"),
    "jump_step": ("1", "network step of the target jump (-1: no jump)"),
    "jump_rotation": ("rad", "target jump: rotation about the centre (0: no jump)"),
    "jump_target": ("m", "target after the jump (the target when it does not jump)"),
    "final_target": ("m", "target the hand must end on (jumped target; centre on catch trials)"),
    "catch": ("1", "catch trial, no go cue (1) or not (0)"),
}
_EVENTS = {
    "target_onset": "target onset",
    "go_cue": "go cue",
    "go_cue1": "first go cue",
    "go_cue2": "second go cue",
    "pulse_onset": "force pulse onset (NaN: no pulse)",
    "jump": "target jump (NaN: no jump)",
}


class ArmAdapter(TaskAdapter):
    """Reaching with an arm in closed loop (see the module docstring)."""

    kind = "reach"
    default_n_trials = 32
    psth_window = (-0.3, 0.8)

    def __init__(self, psth_align: str = "go_cue", default_repeats: int = 4):
        self.psth_align = psth_align
        self.default_repeats = default_repeats

    def time_units(self, task):
        return "s", "time"

    def observe(self, model, carry, x, new_carry, y):
        output, control = closed_loop_control(model, carry, x["inputs"], x["noise"])
        plant, state = model.plant, new_carry.plant
        out = {
            "rates": model.rates(new_carry),
            "outputs": y,
            "network_output": output,
            "joint_angle": plant.joint_angles(state),
            "joint_velocity": plant.joint_velocities(state),
            "hand_position": plant.hand_position(state),
            "hand_velocity": plant.hand_velocity(state),
        }
        if _is_muscle(model):
            out["muscle_excitation"] = control
            out["muscle_activation"] = plant.activations(state)
            out["muscle_force"] = plant.muscle_forces(state)
            out["torque"] = plant.muscle_torques(state)
        else:
            out["torque"] = control
        return out

    def variables(self, task, model, batch, observed, *, key):
        del key
        o = observed
        tt = ("trial", "time")
        names, units = _input_channels(np.asarray(batch.inputs).shape[-1], model)
        muscle = _is_muscle(model)
        out = {
            "inputs": var(
                tt + ("input",),
                batch.inputs,
                "1",
                _MIXED.format(what="task input", coord="input_units"),
            ),
            "targets": var(
                tt + ("output",),
                batch.targets,
                "1",
                _MIXED.format(
                    what="loss target of the hand (position, velocity)", coord="output_units"
                ),
            ),
            "outputs": var(
                tt + ("output",),
                o["outputs"],
                "1",
                _MIXED.format(
                    what="closed-loop output: hand position and velocity", coord="output_units"
                ),
            ),
            "target_position": var(
                tt + ("axis",),
                np.asarray(batch.targets)[..., :2],
                "m",
                "hand target of the loss at this step",
            ),
            "rates": rates_variable(model, o["rates"]),
            "network_output": var(
                tt + ("control",),
                o["network_output"],
                "1" if muscle else "N m",
                "network output (before the excitation map)"
                if muscle
                else "network output (joint torques)",
            ),
            "hand_position": var(tt + ("axis",), o["hand_position"], "m", "hand position"),
            "hand_velocity": var(tt + ("axis",), o["hand_velocity"], "m s-1", "hand velocity"),
            "hand_speed": var(
                tt, np.linalg.norm(o["hand_velocity"], axis=-1), "m s-1", "hand speed"
            ),
            "joint_angle": var(tt + ("joint",), o["joint_angle"], "rad", "joint angle"),
            "joint_velocity": var(
                tt + ("joint",), o["joint_velocity"], "rad s-1", "joint angular velocity"
            ),
            "torque": var(
                tt + ("joint",),
                o["torque"],
                "N m",
                "muscle torque at the joint (end of bin)" if muscle else "applied joint torque",
            ),
        }
        if muscle:
            out["muscle_excitation"] = var(
                tt + ("muscle",), o["muscle_excitation"], "1", "muscle excitation (control)"
            )
            out["muscle_activation"] = var(
                tt + ("muscle",), o["muscle_activation"], "1", "muscle activation"
            )
            out["muscle_force"] = var(tt + ("muscle",), o["muscle_force"], "N", "muscle force")
        weights = loss_weight(batch)
        if weights is not None:
            out["loss_weight"] = weights
        out.update(_metadata_coords(batch, float(task.dt)))
        return out

    def coords(self, task, model, batch):
        names, units = _input_channels(np.asarray(batch.inputs).shape[-1], model)
        n_control = int(model.plant.control_size)
        muscle = _is_muscle(model)
        control_names = (
            list(getattr(model.plant, "muscle_names", [f"m{i}" for i in range(n_control)]))
            if muscle
            else list(JOINTS)
        )
        coords = {
            "joint": var(("joint",), np.array(JOINTS), "1", "joint"),
            "axis": var(("axis",), np.array(AXES), "1", "Cartesian axis (shoulder frame)"),
            "input": var(("input",), np.array(names), "1", "task input channel"),
            "input_units": var(
                ("input",), np.array(units), "1", "UDUNITS units of the input channel"
            ),
            "output": var(
                ("output",),
                np.array(["hand_x", "hand_y", "hand_vx", "hand_vy"]),
                "1",
                "closed-loop output channel",
            ),
            "output_units": var(
                ("output",), np.array(OUTPUT_UNITS), "1", "UDUNITS units of the output channel"
            ),
            "control": var(("control",), np.array(control_names), "1", "network output channel"),
        }
        if muscle:
            coords["muscle"] = var(("muscle",), np.array(control_names), "1", "muscle")
        return coords

    def attrs(self, task, model, batch):
        return {
            "plant": type(model.plant).__name__,
            "center": [float(c) for c in np.asarray(task.center)],
            "movement_time": float(getattr(task, "movement_time", np.nan)),
            "n_substeps": int(getattr(model, "n_substeps", 1)),
        }


OUTPUT_UNITS = ("m", "m", "m s-1", "m s-1")
"""UDUNITS units of the closed-loop output channels (hand x, y, vx, vy)."""
_MIXED = (
    "{what}; channels in mixed units: the `units` of each channel is the coordinate `{coord}` "
    "(CF has no per-element units)"
)


_PERTURBATION_CHANNELS = {
    "curl": (["curl_strength"], ["N s m-1"]),
    "hand_force": (["hand_force_x", "hand_force_y"], ["N", "N"]),
}


def _input_channels(n_in: int, model=None) -> tuple[list[str], list[str]]:
    perturbations = tuple(getattr(model, "perturbation_inputs", ()))
    if perturbations:
        names, units = [], []
        for name in perturbations:
            names += _PERTURBATION_CHANNELS[name][0]
            units += _PERTURBATION_CHANNELS[name][1]
        task_names, task_units = _input_channels(n_in - len(names))
        return task_names + names, task_units + units
    if n_in == 3:  # single reach: [fixation, cue x, cue y]
        return ["fixation", "cue_x", "cue_y"], ["1", "m", "m"]
    if n_in == 6:  # double reach: [fixation 1, fixation 2, target 1 (x, y), target 2 (x, y)]
        return (
            ["fixation_1", "fixation_2", "target1_x", "target1_y", "target2_x", "target2_y"],
            ["1", "1", "m", "m", "m", "m"],
        )
    return [f"input_{i}" for i in range(n_in)], ["1"] * n_in


def _condition_labels(md) -> np.ndarray | None:
    """Readable labels of canonical trials: "36°, 20 cm" (reach) or "36° → 180°" (double)."""
    if "condition" not in md or np.any(np.asarray(md["condition"]) < 0):
        return None
    if "angle" in md and "radius" in md:
        return np.array(
            [
                f"{np.degrees(a):.0f}°, {100 * r:.0f} cm"
                for a, r in zip(np.asarray(md["angle"]), np.asarray(md["radius"]))
            ]
        )
    if "angle1" in md and "angle2" in md:
        return np.array(
            [
                f"{np.degrees(a):.0f}° → {np.degrees(b):.0f}°"
                for a, b in zip(np.asarray(md["angle1"]), np.asarray(md["angle2"]))
            ]
        )
    return None


def _metadata_coords(batch, dt: float) -> dict:
    """Per-trial coordinates and event times from the reach tasks' metadata."""
    md = batch.metadata
    out = {}
    labels = _condition_labels(md)
    if labels is not None:
        out["condition_label"] = var(("trial",), labels, "1", "condition", role="coord")
    for name, value in md.items():
        value = np.asarray(value)
        if name == "condition":
            continue  # `simulate` labels canonical trials itself
        if name.endswith("_time") and value.ndim == 1:
            event = name[: -len("_time")]
            out[event] = event_coord(value, _EVENTS.get(event, event.replace("_", " ")))
            continue
        if f"{name}_time" in md:
            continue  # the step index of an event given in seconds
        base = name.rstrip("12")
        suffix = name[len(base) :]
        units, long_name = _METADATA.get(base, ("1", name.replace("_", " ")))
        if suffix:
            long_name = f"{long_name} (reach {suffix})"
        if value.ndim == 1:
            out[name] = var(("trial",), value, units, long_name, role="coord")
        elif value.ndim == 2 and value.shape[1] == 2:
            out[name] = var(("trial", "axis"), value, units, long_name, role="coord")
    return out


def _register():
    register_adapter(ReachTask, ArmAdapter("go_cue", default_repeats=4))
    register_adapter(DoubleReachTask, ArmAdapter("go_cue1", default_repeats=2))
    register_adapter(AbstractReachTask, ArmAdapter("go_cue", default_repeats=4))


ARM_ADAPTER = ArmAdapter()
"""The adapter for any other task whose model is a closed loop (no event metadata assumed)."""

_register()
