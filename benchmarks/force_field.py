"""Force-field adaptation (Shadmehr & Mussa-Ivaldi 1994) with a trained reaching network.

    python benchmarks/force_field.py                 # CPU size (torque arm, ≈12 min, 1 core)
    python benchmarks/force_field.py --quick         # a few iterations (the test's smoke run)
    python benchmarks/force_field.py --strength 5 --null-model null.eqx   # reuse the network

Four phases, each evaluated on the 8 canonical centre-out reaches with every noise source
off (`ReachTask.eval_outputs(noise=False)`):

1. **baseline**: a network trained in the null field (`--null-iters` SOFO iterations at the
   task's CPU hyperparameters with B = 32 and K = 32 by default, `--batch-size`,
   `--tangents`), reaching in the null field;
2. **field, before adaptation**: the same network in a curl field F = b·(−v_y, v_x)
   (`--strength` b, N·s/m; b > 0 counter-clockwise; default 1 — the trained torque-arm
   network has little impedance, and at 5 N·s/m or the 10–20 N·s/m of human experiments its
   hand is thrown into loops, see docs/how-to/force-field-adaptation.md): curved paths;
3. **field, adapted**: after `--field-iters` further SOFO iterations in the field;
4. **washout**: the adapted network back in the null field: the after-effects, curved the
   other way.

Per phase: the signed maximum perpendicular deviation of the hand from the straight line
centre → target between the go cue and the end of the movement window (cm, positive = left
of the reach direction, i.e. counter-clockwise; mean over the 8 reaches, and the mean of its
absolute value), and the endpoint error (cm). Writes `force_field.json`, `force_field.md` and
the hand-path figure `force_field.png` (one panel per phase) to `--out`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import equinox as eqx
import jax.random as jr
import numpy as np

import neurodyn as nd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402

OUT = Path(__file__).resolve().parent / "results"
PHASES = ("baseline", "field, before adaptation", "field, adapted", "washout")
TRAINING_KEYS = nd.optim.TRAINING_KEYS  # the keys of a recipe that go to the loop


def perpendicular_deviation(position, start, target, first, last) -> np.ndarray:
    """Signed maximum distance (m) of each path `position [B, T, 2]` from the line through
    `start [2]` and `target [B, 2]` over steps `first..last` (inclusive, `[B]`): the value
    of largest magnitude, positive to the left of the reach direction."""
    position = np.asarray(position, np.float64)
    direction = np.asarray(target, np.float64) - np.asarray(start, np.float64)
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    rel = position - np.asarray(start, np.float64)
    perp = direction[:, None, 0] * rel[..., 1] - direction[:, None, 1] * rel[..., 0]
    t = np.arange(position.shape[1])[None, :]
    window = (t >= np.asarray(first)[:, None]) & (t <= np.asarray(last)[:, None])
    masked = np.where(window, perp, 0.0)
    idx = np.argmax(np.abs(masked), axis=1)
    return masked[np.arange(len(idx)), idx]


def train(task, model, n_iters, *, key, overrides=None, log=print):
    """`n_iters` SOFO iterations through `nd.fit` at the task's CPU hyperparameters (updated
    with `overrides`); returns the model, the loss curve and the seconds spent (the first,
    compiling, step included)."""
    hp = {**task.hyperparameters("sofo"), **(overrides or {})}
    opt = nd.optim.from_config("sofo", **{k: v for k, v in hp.items() if k not in TRAINING_KEYS})
    every = max(n_iters // 5, 1)
    marks = {"next": every}

    def report(iteration, records, m):  # a line at about every fifth of the run
        if iteration >= marks["next"] or iteration == n_iters:
            log(f"    it {iteration:5d}  loss {records[-1]['loss']:.4g}")
            marks["next"] += every

    t0 = time.perf_counter()
    result = nd.fit(
        model,
        task,
        opt,
        n_iters=n_iters,
        batch_size=hp["batch_size"],
        key=key,
        eval_every=0,
        progress=False,
        callbacks=[report],
    )
    losses = [float(v) for v in result.history["loss"].values]
    return result.model, losses, time.perf_counter() - t0


def evaluate(task, model) -> dict:
    """Noiseless paths on the canonical conditions and the phase's metrics."""
    outputs, batch = task.eval_outputs(model, key=None, noise=False)
    md = {k: np.asarray(v) for k, v in batch.metadata.items()}
    go = md["go_cue"]
    last = go + task.movement_steps
    dev = perpendicular_deviation(outputs[..., :2], task.center, md["target"], go, last)
    metrics = task.metrics_from_outputs(outputs, batch)
    return {
        "paths": outputs[..., :2],
        "go_cue": go,
        "targets": md["target"],
        "max_perpendicular_deviation_cm": 100 * dev,
        "mean_signed_max_deviation_cm": float(100 * dev.mean()),
        "mean_abs_max_deviation_cm": float(100 * np.abs(dev).mean()),
        "endpoint_error_cm": float(metrics["endpoint_error_cm"]),
        "peak_speed_cm_s": float(metrics["peak_speed_cm_s"]),
    }


def figure(results: dict, task, strength: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(results), figsize=(3.2 * len(results), 3.6), sharex=True, sharey=True
    )
    c = np.asarray(task.center)
    for ax, (phase, r) in zip(axes, results.items()):
        for b in range(r["paths"].shape[0]):
            p = r["paths"][b, int(r["go_cue"][b]) :]
            ax.plot(100 * (p[:, 0] - c[0]), 100 * (p[:, 1] - c[1]), lw=1.2)
            g = r["targets"][b] - c
            ax.plot(100 * g[0], 100 * g[1], "o", mfc="none", mec="k", ms=7)
        ax.plot(0, 0, "k+", ms=8)
        field = 0.0 if phase in ("baseline", "washout") else strength
        ax.set_title(f"{phase}\nb = {field:g} N·s/m", fontsize=9)
        ax.set_xlabel(f"x (cm)   |dev| {r['mean_abs_max_deviation_cm']:.1f} cm", fontsize=8)
        ax.set_aspect("equal")
    axes[0].set_ylabel("y (cm)")
    axes[0].set_xlim(-40, 40)
    axes[0].set_ylim(-35, 35)
    fig.suptitle("Curl force field: hand paths from the go cue (noiseless)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args, log=print) -> dict:
    key = jr.PRNGKey(args.seed)
    k_model, k_null, k_field = jr.split(key, 3)
    null_task = nd.tasks.ReachTask.from_size("cpu", plant=args.plant)
    field_task = nd.tasks.ReachTask.from_size(
        "cpu", plant=args.plant, perturbations=(nd.tasks.CurlField(strength=args.strength),)
    )
    model = null_task.default_model(key=k_model)
    log(f"null field: {args.null_iters} SOFO iterations ({args.plant} arm)")
    overrides = {}
    if args.batch_size:
        overrides["batch_size"] = args.batch_size
    if args.tangents:
        overrides["n_tangents"] = args.tangents
    cache = Path(args.null_model) if args.null_model else None
    if cache is not None and cache.exists():
        model = eqx.tree_deserialise_leaves(cache, model)
        null_losses, null_s = [float("nan")], 0.0
        log(f"  loaded the null-field network from {cache}")
    else:
        model, null_losses, null_s = train(
            null_task, model, args.null_iters, key=k_null, overrides=overrides, log=log
        )
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            eqx.tree_serialise_leaves(cache, model)
    results = {"baseline": evaluate(null_task, model)}
    in_field = model.with_perturbation_inputs(field_task.perturbation_inputs)
    results["field, before adaptation"] = evaluate(field_task, in_field)
    log(f"curl field b = {args.strength:g} N·s/m: {args.field_iters} SOFO iterations")
    in_field, field_losses, field_s = train(
        field_task, in_field, args.field_iters, key=k_field, overrides=overrides, log=log
    )
    results["field, adapted"] = evaluate(field_task, in_field)
    results["washout"] = evaluate(null_task, in_field.with_perturbation_inputs(()))
    rows = []
    for phase, r in results.items():
        rows.append(
            f"| {phase} | {r['mean_signed_max_deviation_cm']:+.2f} | "
            f"{r['mean_abs_max_deviation_cm']:.2f} | {r['endpoint_error_cm']:.2f} | "
            f"{r['peak_speed_cm_s']:.0f} |"
        )
    table = "\n".join(
        [
            "| phase | mean signed max ⟂ deviation (cm) | mean abs max ⟂ deviation (cm) | "
            "endpoint error (cm) | peak speed (cm/s) |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
    log(table)
    record = {
        "plant": args.plant,
        "strength_N_s_per_m": args.strength,
        "null_iters": args.null_iters,
        "field_iters": args.field_iters,
        "seed": args.seed,
        "sofo": {**null_task.hyperparameters("sofo"), **overrides},
        "null_seconds": null_s,
        "field_seconds": field_s,
        "null_final_loss": float(np.mean(null_losses[-20:])),
        "field_first_loss": float(field_losses[0]) if field_losses else None,
        "field_final_loss": float(np.mean(field_losses[-20:])) if field_losses else None,
        "machine": machine(),
        "phases": {
            phase: {
                k: (v.tolist() if k == "max_perpendicular_deviation_cm" else v)
                for k, v in r.items()
                if k not in ("paths", "go_cue", "targets")
            }
            for phase, r in results.items()
        },
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "force_field" + ("_quick" if args.quick else "")
    (out / f"{stem}.json").write_text(json.dumps(record, indent=1))
    (out / f"{stem}.md").write_text(
        f"# Curl force-field adaptation ({args.plant} arm, b = {args.strength:g} N·s/m)\n\n"
        f"{args.null_iters} SOFO iterations in the null field, then {args.field_iters} in "
        f"the field (B = {record['sofo']['batch_size']}, K = {record['sofo']['n_tangents']}, "
        f"seed {args.seed}; {null_s + field_s:.0f} s of training on {machine()}).\n"
        "Noiseless evaluation on the 8 canonical reaches; deviation from the straight line "
        "centre → target between the go cue and the end of the movement window, positive "
        "= counter-clockwise.\n\n" + table + "\n"
    )
    figure(results, null_task, args.strength, out / f"{stem}.png")
    log(f"wrote {out / stem}.{{json,md,png}}")
    return record


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--plant", choices=nd.tasks.PLANTS, default="torque")
    p.add_argument("--strength", type=float, default=1.0, help="curl field b (N·s/m)")
    p.add_argument("--null-iters", type=int, default=1000)
    p.add_argument("--field-iters", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=32, help="0: the task's (64)")
    p.add_argument("--tangents", type=int, default=32, help="SOFO K; 0: the task's (48)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--null-model",
        default=None,
        help="a file: load the null-field network from it if it exists, else save it there",
    )
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--quick", action="store_true", help="3 + 2 iterations (a smoke run)")
    args = p.parse_args(argv)
    if args.quick:
        args.null_iters, args.field_iters = 3, 2
    if args.null_iters < 1 or args.field_iters < 0:
        p.error("--null-iters must be >= 1 and --field-iters >= 0")
    run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
