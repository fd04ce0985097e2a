"""Cross-check against MotorNet: its `RigidTendonArm26` and our muscle arm under the same inputs.

    pip install "neurodyn[motornet]"      # motornet + PyTorch (CPU wheel: install torch first)
    python benchmarks/motornet_crosscheck.py            # writes benchmarks/results/motornet_*
    python benchmarks/motornet_crosscheck.py --quick    # shorter runs (the test's)

Three checks, all at dt = 2 ms with explicit Euler in both packages, from θ = (45°, 90°) at
rest (inside both packages' joint boxes):

1. **Skeleton.** MotorNet's `TwoDofArm` with `RigidTendonArm26`'s parameters (Nijhof &
   Kouwenhoven 2000) against our `TwoJointArm` given the same parameters (inertias moved
   from the centre of mass to the joints, I_joint = I_cm + m·l_g², no viscosity), driven by
   the same joint torques and the same endpoint force. The equations are the same, so the
   joint trajectories must agree to MotorNet's float32 precision.
2. **Isometric strength.** Joint torques of each muscle at full activation, at rest at
   θ = (45°, 90°): ours (Li & Todorov 2004, SPEC §3.4b) against MotorNet's (Kistemaker et al.
   2010 muscles on polynomial moment arms).
3. **Whole arm.** Both arms (their own skeletons, muscles and activation dynamics; ours given
   MotorNet's joint box as joint limits) driven by the same excitation sequences: each muscle
   alone at 0.5, co-contraction, and random smooth sequences. Reports where the joint
   trajectories agree (the direction each muscle moves each joint) and by how much they
   differ.

Prints the tables and writes `motornet_crosscheck.{json,md}` to `--out`. Needs `motornet`
and `torch` (an optional extra, never a core dependency).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import neurodyn as nd  # noqa: E402
from neurodyn.plants import MUSCLE_NAMES, MuscleArm, TwoJointArm  # noqa: E402

OUT = Path(__file__).resolve().parent / "results"
DT = 0.002
POSTURE = (math.radians(45.0), math.radians(90.0))
# RigidTendonArm26's skeleton (motornet/effector.py): masses, lengths, centres of mass,
# inertias about the centres of mass.
MN_SKELETON = dict(m1=1.82, m2=1.43, l1=0.309, l2=0.333, l1g=0.135, l2g=0.165, i1=0.051, i2=0.057)
MN_NAMES = ("pectoralis", "deltoid", "brachioradialis", "tricepslat", "biceps", "tricepslong")


def _torch():
    try:
        import motornet as mn
        import torch
    except ImportError as e:  # pragma: no cover - exercised without the extra
        raise SystemExit(
            f"this script needs the optional extra: pip install 'neurodyn[motornet]' ({e})"
        ) from e
    return mn, torch


def our_skeleton() -> TwoJointArm:
    """Our torque arm with MotorNet's RigidTendonArm26 skeleton parameters."""
    p = MN_SKELETON
    return TwoJointArm(
        l1=p["l1"],
        l2=p["l2"],
        m1=p["m1"],
        m2=p["m2"],
        s1=p["l1g"],
        s2=p["l2g"],
        I1=p["i1"] + p["m1"] * p["l1g"] ** 2,
        I2=p["i2"] + p["m2"] * p["l2g"] ** 2,
        viscosity=np.zeros((2, 2)),
    )


def smooth_sequences(rng, n, n_steps, n_channels, *, scale, offset=0.0, width=25):
    """Random smooth sequences `[n, T, C]`: white noise low-pass filtered by a Gaussian of
    `width` steps, normalised to unit std, times `scale`, plus `offset`."""
    white = rng.standard_normal((n, n_steps + 6 * width, n_channels))
    kernel = np.exp(-0.5 * (np.arange(-3 * width, 3 * width + 1) / width) ** 2)
    smooth = np.apply_along_axis(lambda x: np.convolve(x, kernel, mode="valid"), 1, white)
    smooth = smooth[:, :n_steps] / smooth.std()
    return offset + scale * smooth


def skeleton_check(n_steps: int, rng) -> dict:
    """Check 1: same torques and endpoint force, both skeletons."""
    mn, torch = _torch()
    arm = mn.effector.RigidTendonArm26(mn.muscle.RigidTendonHillMuscle(), timestep=DT)
    sk = arm.skeleton
    ours = our_skeleton()
    # small torques: both arms stay inside MotorNet's joint box, where it would clip
    torques = smooth_sequences(rng, 4, n_steps, 2, scale=0.3)
    force = np.zeros((4, n_steps, 2))
    force[:, n_steps // 4 : n_steps // 4 + 25] = (3.0, -2.0)  # a 50 ms endpoint pulse
    y0 = np.array([*POSTURE, 0.0, 0.0])
    # MotorNet, float32
    state = torch.tensor(np.tile(y0, (4, 1)), dtype=torch.float32)
    mn_traj = []
    for t in range(n_steps):
        tau = torch.tensor(torques[:, t], dtype=torch.float32)
        load = torch.tensor(force[:, t], dtype=torch.float32)
        state = sk.integrate(DT, sk.ode(tau, state, load), state)
        mn_traj.append(state.numpy().copy())
    mn_traj = np.stack(mn_traj, 1)

    # ours, float64
    @jax.jit
    def run(tau, f):
        def body(y, x):
            y = ours.step(y, x[0], DT, hand_force=x[1])
            return y, y

        return jax.lax.scan(body, jnp.asarray(y0), (tau, f))[1]

    our_traj = np.stack([np.asarray(run(torques[i], force[i])) for i in range(4)])
    diff = np.abs(our_traj - mn_traj)
    excursion = np.abs(our_traj[..., :2] - y0[:2]).max()
    lo, hi = np.deg2rad([0.0, 0.0]), np.deg2rad([135.0, 155.0])
    inside = bool(np.all((our_traj[..., :2] > lo) & (our_traj[..., :2] < hi)))
    return {
        "inside_motornet_joint_box": inside,
        "max_angle_difference_rad": float(diff[..., :2].max()),
        "max_velocity_difference_rad_s": float(diff[..., 2:].max()),
        "max_angle_excursion_rad": float(excursion),
        "relative_angle_difference": float(diff[..., :2].max() / excursion),
    }


def motornet_torques_at(arm, torch, activation: np.ndarray) -> np.ndarray:
    """MotorNet joint torques (N·m) at θ = POSTURE at rest for activations `[n, 6]`."""
    n = activation.shape[0]
    joint = torch.tensor(np.tile([*POSTURE, 0.0, 0.0], (n, 1)), dtype=torch.float32)
    geometry = arm.get_geometry(joint)
    muscle = arm.muscle.integrate(
        0.0,
        torch.zeros((n, 1, 6)),
        torch.tensor(activation[:, None, :], dtype=torch.float32),
        geometry,
    )
    force = muscle[:, arm.muscle.state_name.index("force"), :]
    moments = geometry[:, 2:, :]
    return (-(force[:, None, :] * moments).sum(-1)).numpy()


def strength_check() -> dict:
    """Check 2: each muscle alone at full activation, torques (N·m)."""
    mn, torch = _torch()
    arm = mn.effector.RigidTendonArm26(mn.muscle.RigidTendonHillMuscle(), timestep=DT)
    ours = MuscleArm()
    eye = np.eye(6)
    mn_tau = motornet_torques_at(arm, torch, np.maximum(eye, 0.001))
    mn_rest = motornet_torques_at(arm, torch, np.full((1, 6), 0.001))[0]
    rows = {}
    for i, name in enumerate(MUSCLE_NAMES):
        y = ours.initial_state(jnp.asarray(POSTURE), activation=jnp.asarray(eye[i]))
        our_tau = np.asarray(ours.muscle_torques(y))
        rows[name] = {"ours": our_tau.tolist(), "motornet": mn_tau[i].tolist()}
    return {"torques_N_m": rows, "motornet_passive_at_min_activation_N_m": mn_rest.tolist()}


def run_motornet(excitation: np.ndarray) -> np.ndarray:
    """MotorNet RigidTendonArm26 joint states `[n, T, 4]` under excitations `[n, T, 6]`."""
    mn, torch = _torch()
    n, n_steps, _ = excitation.shape
    arm = mn.effector.RigidTendonArm26(mn.muscle.RigidTendonHillMuscle(), timestep=DT)
    joint0 = torch.tensor(np.tile([*POSTURE, 0.0, 0.0], (n, 1)), dtype=torch.float32)
    arm.reset(options={"batch_size": n, "joint_state": joint0})
    out = []
    with torch.no_grad():
        for t in range(n_steps):
            arm.step(torch.tensor(excitation[:, t], dtype=torch.float32))
            out.append(arm.states["joint"].numpy().copy())
    return np.stack(out, 1)


def run_ours(excitation: np.ndarray) -> np.ndarray:
    """Our MuscleArm joint states `[n, T, 4]` under excitations `[n, T, 6]`, with MotorNet's
    joint box as joint limits (RigidTendonArm26: [0, 135°] × [0, 155°])."""
    arm = MuscleArm(joint_limits=np.deg2rad([[0.0, 135.0], [0.0, 155.0]]))

    @jax.jit
    def one(u):
        def body(y, u_t):
            y = arm.step(y, u_t, DT)
            return y, y[:4]

        return jax.lax.scan(body, arm.initial_state(jnp.asarray(POSTURE)), u)[1]

    return np.asarray(jax.vmap(one)(jnp.asarray(excitation)))


def whole_arm_check(n_steps: int, rng, n_random: int) -> dict:
    """Check 3: the same excitations into both arms."""
    singles = np.zeros((6, n_steps, 6))
    for i in range(6):
        singles[i, :, i] = 0.5
    cocontraction = np.full((1, n_steps, 6), 0.5)
    random = np.clip(smooth_sequences(rng, n_random, n_steps, 6, scale=0.2, offset=0.2), 0, 1)
    excitation = np.concatenate([singles, cocontraction, random])
    ours, theirs = run_ours(excitation), run_motornet(excitation)
    at = {"100 ms": round(0.1 / DT) - 1, f"{n_steps * DT * 1e3:.0f} ms": n_steps - 1}
    single_rows = {}
    agree = 0
    for i, name in enumerate(MUSCLE_NAMES):
        row = {}
        for label, t in at.items():
            row[label] = {
                "ours_deg": np.degrees(ours[i, t, :2] - POSTURE).tolist(),
                "motornet_deg": np.degrees(theirs[i, t, :2] - POSTURE).tolist(),
            }
        # the joints a muscle crosses: the direction it moves them at 100 ms
        t = at["100 ms"]
        d_ours, d_mn = ours[i, t, :2] - POSTURE, theirs[i, t, :2] - POSTURE
        crossed = np.abs(np.asarray(MuscleArm().moment_arms)[:, i]) > 0
        same = bool(np.all(np.sign(d_ours[crossed]) == np.sign(d_mn[crossed])))
        row["same_direction_on_crossed_joints_at_100ms"] = same
        agree += same
        single_rows[name] = row
    co = {
        label: {
            "ours_deg": np.degrees(ours[6, t, :2] - POSTURE).tolist(),
            "motornet_deg": np.degrees(theirs[6, t, :2] - POSTURE).tolist(),
        }
        for label, t in at.items()
    }
    r_ours, r_mn = ours[7:], theirs[7:]
    corr = [
        float(np.corrcoef(r_ours[k, :, 2 + j], r_mn[k, :, 2 + j])[0, 1])
        for k in range(n_random)
        for j in range(2)
    ]
    rms = float(np.degrees(np.sqrt(np.mean((r_ours[..., :2] - r_mn[..., :2]) ** 2))))
    span = float(np.degrees(np.abs(np.concatenate([r_ours, r_mn])[..., :2] - POSTURE).max()))
    early = round(0.1 / DT)  # the first 100 ms, before MotorNet's arm reaches its limits
    corr_early = [
        float(np.corrcoef(r_ours[k, :early, 2 + j], r_mn[k, :early, 2 + j])[0, 1])
        for k in range(n_random)
        for j in range(2)
    ]
    limits = np.deg2rad([[0.0, 135.0], [0.0, 155.0]])
    pos = theirs[..., :2]
    at_limit = (np.abs(pos - limits[:, 0]) < 1e-4) | (np.abs(pos - limits[:, 1]) < 1e-4)
    pos = ours[..., :2]
    ours_at_limit = (np.abs(pos - limits[:, 0]) < 1e-9) | (np.abs(pos - limits[:, 1]) < 1e-9)
    return {
        "single_muscle": single_rows,
        "single_muscle_direction_agreement": f"{agree}/6",
        "cocontraction": co,
        "random": {
            "n_sequences": n_random,
            "joint_velocity_correlation_mean": float(np.mean(corr)),
            "joint_velocity_correlation_min": float(np.min(corr)),
            "rms_angle_difference_deg": rms,
            "max_excursion_deg": span,
            "joint_velocity_correlation_first_100ms_mean": float(np.mean(corr_early)),
        },
        "motornet_fraction_of_steps_at_a_joint_limit": float(at_limit.any(-1).mean()),
        "ours_fraction_of_steps_at_a_joint_limit": float(ours_at_limit.any(-1).mean()),
    }


def fmt(v) -> str:
    return "(" + ", ".join(f"{x:+.1f}" for x in v) + ")"


def report(result: dict) -> str:
    s, st, w = result["skeleton"], result["strength"], result["whole_arm"]
    lines = [
        "## 1. Skeleton: same torques and endpoint force, same parameters",
        "",
        f"Max |Δθ| {s['max_angle_difference_rad']:.2e} rad over an excursion of "
        f"{s['max_angle_excursion_rad']:.2f} rad (relative {s['relative_angle_difference']:.1e});"
        f" max |Δθ̇| {s['max_velocity_difference_rad_s']:.2e} rad/s.",
        "",
        "## 2. Isometric joint torques at full activation, θ = (45°, 90°) (N·m, shoulder, elbow)",
        "",
        "| muscle | MotorNet name | ours (LT04) | MotorNet |",
        "|---|---|---|---|",
    ]
    for (name, row), mn_name in zip(st["torques_N_m"].items(), MN_NAMES):
        lines.append(f"| {name} | {mn_name} | {fmt(row['ours'])} | {fmt(row['motornet'])} |")
    lines += [
        "",
        f"MotorNet's passive torque at its minimum activation (0.001): "
        f"{fmt(st['motornet_passive_at_min_activation_N_m'])} N·m (ours: exactly 0 at a = 0).",
        "",
        "## 3. Whole arm: same excitations (joint displacement, degrees, shoulder, elbow)",
        "",
    ]
    labels = [k for k, v in next(iter(w["single_muscle"].values())).items() if isinstance(v, dict)]
    head = " | ".join(f"ours {k} | MotorNet {k}" for k in labels)
    lines += [f"| excitation 0.5 on | {head} | same direction |", "|---" * (2 * len(labels) + 2)]
    lines[-1] += "|"
    for name, row in w["single_muscle"].items():
        cells = " | ".join(
            f"{fmt(row[k]['ours_deg'])} | {fmt(row[k]['motornet_deg'])}" for k in labels
        )
        same = "yes" if row["same_direction_on_crossed_joints_at_100ms"] else "**no**"
        lines.append(f"| {name} | {cells} | {same} |")
    cells = " | ".join(
        f"{fmt(w['cocontraction'][k]['ours_deg'])} | {fmt(w['cocontraction'][k]['motornet_deg'])}"
        for k in labels
    )
    lines.append(f"| all six (co-contraction) | {cells} | |")
    r = w["random"]
    lines += [
        "",
        f"Random smooth excitations ({r['n_sequences']} sequences, 0.2 ± 0.2, clipped to "
        f"[0, 1]): joint-velocity correlation {r['joint_velocity_correlation_mean']:.2f} "
        f"(min {r['joint_velocity_correlation_min']:.2f}), RMS angle difference "
        f"{r['rms_angle_difference_deg']:.1f}° for excursions up to {r['max_excursion_deg']:.1f}°;"
        f" over the first 100 ms the correlation is "
        f"{r['joint_velocity_correlation_first_100ms_mean']:.2f}. Over all runs of part 3, "
        f"MotorNet's arm sits at a joint limit in "
        f"{100 * w['motornet_fraction_of_steps_at_a_joint_limit']:.0f} % of the steps, ours "
        f"(given MotorNet's joint box) in "
        f"{100 * w['ours_fraction_of_steps_at_a_joint_limit']:.0f} %.",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="0.2 s runs, 2 random sequences")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    mn, torch = _torch()
    n_steps = 100 if args.quick else 250
    rng = np.random.default_rng(args.seed)
    result = {
        "motornet_version": getattr(mn, "__version__", "?"),
        "torch_version": torch.__version__,
        "neurodyn_version": nd.__version__,
        "dt_s": DT,
        "posture_deg": [45.0, 90.0],
        "skeleton": skeleton_check(n_steps, rng),
        "strength": strength_check(),
        "whole_arm": whole_arm_check(n_steps, rng, 2 if args.quick else 8),
    }
    text = report(result)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "motornet_crosscheck" + ("_quick" if args.quick else "")
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1))
    (out / f"{stem}.md").write_text(
        f"# MotorNet cross-check (motornet {result['motornet_version']}, torch "
        f"{result['torch_version']}; dt = 2 ms, Euler)\n\n{text}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
