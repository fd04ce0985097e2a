"""Can the muscle arm reach the canonical targets at all? Open-loop optimal excitations.

    python benchmarks/muscle_open_loop.py                 # 8 targets, 0.6 s move + 0.6 s hold
    python benchmarks/muscle_open_loop.py --hold 0.1 --plant torque

For each canonical target of the single reach (CPU size: 8 directions at r = 0.2 m) a
sequence of controls, one per network step (10 ms, held over the arm's 5 substeps of 2 ms,
as in the closed loop), is optimised directly with Adam — no network and no noise — on the
task's own loss: (10/T) · 4 · Σ (|hand − target|² + |hand velocity|²) over the hold (T = the
trial's network steps, the task's scale), which starts
0.6 s after the start of the movement. Muscle excitations are sigmoid(z), so in (0, 1); torques
are z itself. The result bounds what any controller can do: if the best open-loop sequence
misses a target, the plant is the limit there; if it does not, the controller is.
Prints the endpoint error (end of the hold) and the error 0.6 s after the start per direction.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

import neurodyn as nd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402


def optimise(task, *, hold: float, n_steps: int, lr: float):
    loop = task.default_model(key=jr.PRNGKey(0))
    plant, n_sub, dt = loop.plant, loop.n_substeps, task.network_dt
    n_move, n_hold = round(task.movement_time / dt), round(hold / dt)
    n_t = n_move + n_hold
    targets = jnp.asarray(task.conditions().metadata["target"])
    y0 = loop.initial_state().plant  # the closed loop's start: the rest posture, at rest
    muscle = task.plant == "muscle"

    def rollout(z):
        controls = jax.nn.sigmoid(z) if muscle else z

        def body(y, c):
            for _ in range(n_sub):
                y = plant.step(y, c, dt / n_sub)
            return y, jnp.concatenate([plant.hand_position(y), plant.hand_velocity(y)])

        return jax.lax.scan(body, y0, controls)[1]

    weight = (jnp.arange(n_t) >= n_move).astype(y0.dtype)

    def loss(z, target):
        out = rollout(z)
        err = jnp.sum((out[:, :2] - target) ** 2, -1) + jnp.sum(out[:, 2:] ** 2, -1)
        return 10.0 / task.n_steps * task.hold_weight * jnp.sum(weight * err)

    opt = optax.adam(lr)

    @jax.jit
    def solve(target):
        z = jnp.full((n_t, plant.control_size), -3.0 if muscle else 0.0, y0.dtype)

        def body(carry, _):
            z, state = carry
            value, grad = jax.value_and_grad(loss)(z, target)
            update, state = opt.update(grad, state)
            return (optax.apply_updates(z, update), state), value

        (z, _), values = jax.lax.scan(body, (z, opt.init(z)), None, length=n_steps)
        return z, values

    zs, values = jax.vmap(solve)(targets)
    outs = jax.vmap(rollout)(zs)
    end = 100 * np.linalg.norm(np.asarray(outs[:, -1, :2] - targets), axis=-1)
    at_move = 100 * np.linalg.norm(np.asarray(outs[:, n_move - 1, :2] - targets), axis=-1)
    return end, at_move, np.asarray(values)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--plant", default="muscle", choices=["muscle", "torque"])
    p.add_argument("--hold", type=float, default=0.6, help="hold after the 0.6 s movement (s)")
    p.add_argument("--steps", type=int, default=3000, help="Adam steps per target")
    p.add_argument("--lr", type=float, default=0.05)
    args = p.parse_args(argv)
    task = nd.tasks.get("reach", plant=args.plant)
    t0 = time.perf_counter()
    end, at_move, values = optimise(task, hold=args.hold, n_steps=args.steps, lr=args.lr)
    seconds = time.perf_counter() - t0
    directions = np.linspace(*task.angle_range, 8)
    print(f"{machine()}; {args.plant} arm, {args.steps} Adam steps per target, {seconds:.0f} s")
    print(f"movement 0.6 s + hold {args.hold} s; loss at the first / last step per target")
    print("| direction (°) | endpoint error (cm) | error at +0.6 s (cm) | loss first → last |")
    print("|---|---|---|---|")
    for d, e, m, v in zip(directions, end, at_move, values):
        print(f"| {d:.0f} | {e:.2f} | {m:.2f} | {v[0]:.3g} → {v[-1]:.2g} |")
    print(f"| mean | {end.mean():.2f} | {at_move.mean():.2f} | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
