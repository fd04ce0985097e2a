"""Reaching results at the CPU default size: SOFO against BPTT + Adam on the same wall-clock.

    python benchmarks/reach_results.py                                # everything (long)
    python benchmarks/reach_results.py --tasks reach --plants torque
    python benchmarks/reach_results.py --sofo-iters 1500 --eval-every 250
    python benchmarks/reach_results.py --cli                          # also time `neurodyn fit`

For each task ("reach", "double-reach") and plant ("torque", "muscle"): the task's default
network trained with SOFO at `task.hyperparameters("sofo")` (iterations from `--sofo-iters`,
default: the task's), then BPTT + Adam at `task.hyperparameters("adam")` for the same training
wall-clock. Both are evaluated with `task.evaluate` (the canonical conditions) every
`--eval-every` iterations (SOFO) or the matching wall-clock (Adam), evaluation time excluded.
Wall-clock excludes the first, compiling, step, which is reported on its own. Results are
appended as JSON lines to `benchmarks/results/reach_results.jsonl` and the table is written to
`benchmarks/results/reach_results.md`.

With `--cli`, `neurodyn fit reach --out <tmp>` (the README's command) is also timed end to
end for each plant, compilation and export included.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import equinox as eqx
import jax.random as jr
import numpy as np

import neurodyn as nd
from neurodyn.config import parse_assignment

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TRAINING_KEYS = nd.optim.TRAINING_KEYS  # the keys of a recipe that go to the loop


def noiseless_metrics(task, model) -> dict[str, float]:
    """The task's metrics with every noise source off (`evaluate(noise=False)`), prefixed
    `noiseless_`: the controller's bias, without the motor variability the rate noise causes."""
    return {f"noiseless_{k}": v for k, v in task.evaluate(model, noise=False).items()}


def train(
    task,
    model,
    name,
    hp,
    *,
    n_iters,
    key,
    eval_every=None,
    time_budget=None,
    max_seconds=None,
    eval_trials=None,
    log=print,
):
    """Train through `nd.fit` (the loop users run); evaluate at iterations (SOFO: every
    `eval_every`) or, with `time_budget`, at the same fractions of the budget. `max_seconds`
    stops an iteration-counted run early once its training time reaches it (a schedule still
    runs over `n_iters`). Training time excludes the first (compiling) iteration, reported
    on its own, and the evaluations. Returns the final model and a record."""
    batch_size = hp["batch_size"]
    opt_hp = {k: v for k, v in hp.items() if k not in TRAINING_KEYS}
    if hp.get("lr_schedule", "constant") != "constant":
        opt_hp["n_iters"] = n_iters  # a schedule runs over the planned iterations
    opt = nd.optim.from_config(name, **opt_hp)
    eval_key = jr.fold_in(key, 10**6)
    curve = []  # (iteration, train seconds, metrics)
    clock = {"compile": None, "next_eval": None if time_budget is None else time_budget / 10}
    losses = []

    def evaluate(it, spent, model):
        metrics = task.evaluate(model, key=eval_key, n_trials=eval_trials)
        metrics.update(noiseless_metrics(task, model))
        curve.append((it, spent, metrics))
        log(
            f"  {name:5s} it {it:6d}  t {spent:7.1f} s  loss {np.mean(losses[-20:]):.4g}  "
            f"endpoint {metrics['endpoint_error_cm']:.2f} cm "
            f"(noiseless {metrics['noiseless_endpoint_error_cm']:.2f})  "
            f"within 2 cm {metrics['fraction_within_2cm']:.2f}"
        )

    def on_log(it, records, model):
        losses.extend(r["loss"] for r in records)
        if clock["compile"] is None:
            clock["compile"] = records[-1]["wall_time"]
            return
        spent = records[-1]["wall_time"] - clock["compile"]
        if time_budget is None and (it % eval_every == 0 or it == n_iters):
            evaluate(it, spent, model)
        elif time_budget is not None and spent >= clock["next_eval"]:
            evaluate(it, spent, model)
            clock["next_eval"] += time_budget / 10

    budget = time_budget if time_budget is not None else max_seconds
    result = nd.fit(
        model,
        task,
        opt,
        n_iters=n_iters if time_budget is None else 10**9,
        batch_size=batch_size,
        key=key,
        eval_every=0,
        # log points are where evaluations happen and where a budget can stop the run
        log_every=math.gcd(eval_every or 10, 10) if budget is not None else eval_every or 10,
        time_budget=budget,
        progress=False,
        callbacks=[on_log],
    )
    model, it = result.model, result.iterations
    wall = result.history["wall_time"].values
    spent = float(wall[-1] - wall[0])
    if not curve or curve[-1][0] != it:
        evaluate(it, spent, model)
    record = {
        "optimizer": name,
        "hyperparameters": hp,
        "iterations": it,
        "train_seconds": spent,
        "compile_seconds": float(wall[0]),
        "seconds_per_iteration": spent / max(it - 1, 1),
        "retries": int(result.history["retries"].values.sum()),
        "loss_curve": [float(np.mean(losses[i : i + 50])) for i in range(0, len(losses), 50)],
        "eval_curve": [
            {"iteration": i, "seconds": s, **{k: float(v) for k, v in m.items()}}
            for i, s, m in curve
        ],
        "final": {k: float(v) for k, v in curve[-1][2].items()},
    }
    reached = [c for c in record["eval_curve"] if c["endpoint_error_cm"] <= 2.0]
    first = reached[0] if reached else None
    record["first_below_2cm"] = (
        {"iteration": first["iteration"], "seconds": first["seconds"]} if first else None
    )
    return model, record


def _suffix(label: str) -> str:
    """A file-name-safe suffix for a labelled setting."""
    safe = "".join(c if c.isalnum() else "_" for c in label).strip("_")
    return f"_{safe}" if safe else ""


def save(directory, name, model) -> None:
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        eqx.tree_serialise_leaves(Path(directory) / f"{name}.eqx", model)


def time_cli(task_name: str, plant: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable, "-m", "neurodyn.cli", "fit", task_name,
            "--set", f"task.plant={plant}", "--out", str(Path(tmp) / "run"), "--no-progress",
        ]  # fmt: skip
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        summary = {}
        run_json = Path(tmp) / "run" / "run.json"
        if run_json.exists():
            summary = json.loads(run_json.read_text())
    return {
        "command": " ".join(["neurodyn", *cmd[3:-3], "--out", "runs/..."]),
        "returncode": proc.returncode,
        "wall_seconds": seconds,
        "train_seconds": summary.get("timings", {}).get("train_seconds"),
        "iterations": summary.get("timings", {}).get("iterations"),
        "final_metrics": summary.get("final_metrics"),
        "stderr_tail": proc.stderr[-2000:] if proc.returncode else "",
    }


NOTES_MARKER = "<!-- notes: kept when the table is regenerated -->"


def write_table(path, text: str) -> None:
    """Write the generated table, keeping the hand-written notes below `NOTES_MARKER`."""
    path = Path(path)
    notes = ""
    if path.exists() and NOTES_MARKER in path.read_text():
        notes = path.read_text().split(NOTES_MARKER, 1)[1]
    path.write_text(text + ("\n" + NOTES_MARKER + notes if notes else ""))


def load_jsonl(path) -> tuple[list[dict], list[dict]]:
    """The newest record of each (task, plant, optimizer) and of each timed command."""
    runs, cli = {}, {}
    for line in Path(path).read_text().splitlines():
        r = json.loads(line)
        if r.get("kind") == "cli":
            cli[r["command"]] = r
        else:
            runs[(r["task"], r["plant"], r["optimizer"], r.get("label", ""))] = r
    order = {"reach": 0, "double-reach": 1, "torque": 0, "muscle": 1, "sofo": 0, "adam": 1}
    records = sorted(
        runs.values(),
        key=lambda r: (
            r.get("label", ""),
            *(order.get(r[k], 9) for k in ("task", "plant", "optimizer")),
        ),
    )
    return records, list(cli.values())


def _fmt(x, spec=".2f"):
    return "—" if x is None or (isinstance(x, float) and not np.isfinite(x)) else format(x, spec)


OLD_MACHINE = (
    f"{platform.machine()} CPU, {os.cpu_count()} cores, one core **shared with other engineers' "
    "jobs while this ran** (wall-clock inflated by up to ≈3×; rows written before the "
    "machine was recorded)"
)


def _optimizer_label(record: dict) -> str:
    """The optimizer's name; Adam rows from before the 2026-11-27 fix are marked adam†."""
    name = record["optimizer"]
    return f"{name}†" if name == "adam" and not record.get("adam_fixed") else name


def _task_cell(record: dict) -> str:
    """The task, with the setting's label (SOFO rows; other optimizers share only the task's
    overrides, listed instead) and the evaluation repeats when not the default."""
    task_overrides = (record.get("overrides") or {}).get("task") or {}
    if record["optimizer"] != "sofo" and record.get("label"):
        extra = [", ".join(f"{k}={v}" for k, v in task_overrides.items())] if task_overrides else []
    else:
        extra = [record["label"]] if record.get("label") else []
    if record.get("eval_repeats"):
        extra.append(f"{record['eval_repeats']} repeats")
    return record["task"] + (f" ({'; '.join(extra)})" if extra else "")


def table(records: list[dict], cli: list[dict]) -> str:
    machines = list(dict.fromkeys(r.get("machine", OLD_MACHINE) for r in records))
    lines = [
        "# Reaching results (CPU default size)",
        "",
        "Generated by `benchmarks/reach_results.py`. Machines (each row's, by number):",
        "",
        *(f"{i}. {m}" for i, m in enumerate(machines, 1)),
        "",
        "Endpoint error: |hand − target| at the end of each reach's scored window, mean over "
        "the canonical conditions (single reach: the 8 directions linspace(−36°, 216°, 8) at "
        "r = 0.2 m, 4 noisy repeats unless the row says otherwise; double reach: the 64 "
        "ordered direction pairs at 0.2 m). "
        '"bias / scatter": the single reach\'s endpoint error split per condition into '
        "|mean endpoint − target| and the root mean square distance of the repeats from "
        "their mean (`endpoint_bias_cm`, `endpoint_scatter_cm`). "
        '"noiseless": the same conditions once each with every noise source off '
        "(`task.evaluate(model, noise=False)`: the controller's bias without the motor "
        "variability that the rate noise causes; — where not measured). "
        "Adam (BPTT) runs for the same training wall-clock as SOFO. Wall-clock excludes "
        "compilation (separate column) and evaluation. adam†: run before the fix of "
        "2026-11-27, when Adam's bias correction stayed at its first step (its late steps "
        "≈0.32× the stated learning rate; see docs/benchmarks.md).",
        "",
        "| machine | task | plant | optimizer | iterations | train s | compile s "
        "| endpoint error (cm) | bias / scatter (cm) | noiseless (cm) | within 2 cm "
        "| peak speed (cm/s) | reaction time (ms) | first ≤ 2 cm (it / s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        f = r["final"]
        if "endpoint_error_1_cm" in f:
            err = (
                f"{_fmt(f['endpoint_error_1_cm'])} / {_fmt(f['endpoint_error_2_cm'])} "
                f"(mean {_fmt(f['endpoint_error_cm'])})"
            )
            clean = (
                f"{_fmt(f.get('noiseless_endpoint_error_1_cm'))} / "
                f"{_fmt(f.get('noiseless_endpoint_error_2_cm'))} "
                f"(mean {_fmt(f.get('noiseless_endpoint_error_cm'))})"
            )
            peak = f"{_fmt(f['peak_speed_1_cm_s'], '.0f')} / {_fmt(f['peak_speed_2_cm_s'], '.0f')}"
            rt = f"{_fmt(f['reaction_time_1_ms'], '.0f')} / {_fmt(f['reaction_time_2_ms'], '.0f')}"
            split = "—"
        else:
            err = _fmt(f["endpoint_error_cm"])
            clean = _fmt(f.get("noiseless_endpoint_error_cm"))
            peak = _fmt(f["peak_speed_cm_s"], ".0f")
            rt = _fmt(f["reaction_time_ms"], ".0f")
            split = f"{_fmt(f.get('endpoint_bias_cm'))} / {_fmt(f.get('endpoint_scatter_cm'))}"
        first = r["first_below_2cm"]
        first = f"{first['iteration']} / {first['seconds']:.0f}" if first else "not reached"
        lines.append(
            f"| {machines.index(r.get('machine', OLD_MACHINE)) + 1} | "
            f"{_task_cell(r)} | {r['plant']} | {_optimizer_label(r)} | {r['iterations']} | "
            f"{r['train_seconds']:.0f} | {r['compile_seconds']:.0f} | {err} | {split} | "
            f"{clean} | "
            f"{_fmt(f['fraction_within_2cm'])} | {peak} | {rt} | {first} |"
        )
    if cli:
        lines += [
            "",
            "## `neurodyn fit` at the defaults (compilation, evaluation and export included)",
            "",
            "| command | iterations | train s | total wall s | endpoint error (cm) |",
            "|---|---|---|---|---|",
        ]
        for c in cli:
            fm = c.get("final_metrics") or {}
            lines.append(
                f"| `{c['command']}` | {c['iterations']} | {_fmt(c['train_seconds'], '.0f')} | "
                f"{c['wall_seconds']:.0f} | {_fmt(fm.get('endpoint_error_cm'))} |"
            )
    lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=["reach", "double-reach"])
    p.add_argument("--plants", nargs="+", default=["torque", "muscle"])
    p.add_argument("--sofo-iters", type=int, default=None, help="default: the task's n_iters")
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument(
        "--sofo-budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop SOFO once its training time reaches SECONDS, before --sofo-iters if need be "
        "(a schedule still runs over --sofo-iters); Adam then gets SOFO's actual time",
    )
    p.add_argument("--no-adam", action="store_true")
    p.add_argument(
        "--adam-only",
        type=float,
        default=None,
        metavar="SECONDS",
        help="skip SOFO; train Adam for SECONDS of training time (e.g. a SOFO row's train s)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="GROUP.KEY=VALUE",
        help="override a task argument (task.angle_margin=18) or a SOFO / Adam hyperparameter "
        "(sofo.n_tangents=128, sofo.lr_schedule=cosine, adam.batch_size=64); repeatable",
    )
    p.add_argument(
        "--label", default="", help="names the setting in the table (rows are kept per label)"
    )
    p.add_argument(
        "--eval-repeats",
        type=int,
        default=None,
        help="noisy repeats of each canonical condition per evaluation (default: the task's)",
    )
    p.add_argument("--cli", action="store_true", help="also time `neurodyn fit TASK`")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-dir", default=None, help="save the trained models here (.eqx)")
    p.add_argument("--out", default=str(RESULTS / "reach_results.md"))
    p.add_argument("--jsonl", default=str(RESULTS / "reach_results.jsonl"))
    p.add_argument(
        "--table-only",
        action="store_true",
        help="rebuild the table from the newest JSON line of each (task, plant, optimizer)",
    )
    args = p.parse_args(argv)
    if args.adam_only is not None and (args.no_adam or args.adam_only <= 0):
        p.error("--adam-only SECONDS needs SECONDS > 0 and cannot be combined with --no-adam")
    overrides = {"task": {}, "sofo": {}, "adam": {}}
    for item in args.set:
        path, value = parse_assignment(item)
        if len(path) != 2 or path[0] not in overrides:
            p.error(f"--set takes task.KEY=VALUE, sofo.KEY=VALUE or adam.KEY=VALUE; got {item!r}")
        overrides[path[0]][path[1]] = value
    if args.sofo_budget is not None and args.sofo_budget <= 0:
        p.error("--sofo-budget SECONDS needs SECONDS > 0")
    if args.eval_repeats is not None and args.eval_repeats < 2:
        p.error("--eval-repeats must be >= 2 (the scatter needs two repeats)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.table_only:
        records, cli = load_jsonl(args.jsonl)
        write_table(args.out, table(records, cli))
        print(table(records, cli))
        return 0
    records, cli = [], []
    setting = {"label": args.label, "overrides": overrides, "eval_repeats": args.eval_repeats}
    for task_name in args.tasks:
        for plant in args.plants:
            task = nd.tasks.get(task_name, plant=plant, **overrides["task"])
            n_conditions = task.conditions().inputs.shape[0]
            eval_trials = None if args.eval_repeats is None else args.eval_repeats * n_conditions
            key = jr.PRNGKey(args.seed)
            model0 = task.default_model(key=jr.fold_in(key, 0))
            print(f"{task_name} / {plant}: P = {model0.n_params}", flush=True)
            hp = {**task.hyperparameters("sofo"), **overrides["sofo"]}
            hp_adam = {**task.hyperparameters("adam"), **overrides["adam"]}
            n_iters = args.sofo_iters or hp["n_iters"]
            new = []
            if args.adam_only is None:
                model, rec = train(
                    task, model0, "sofo", hp, n_iters=n_iters, key=jr.fold_in(key, 1),
                    eval_every=args.eval_every, eval_trials=eval_trials,
                    max_seconds=args.sofo_budget,
                )  # fmt: skip
                save(args.save_dir, f"{task_name}_{plant}_sofo{_suffix(args.label)}", model)
                rec.update(
                    task=task_name, plant=plant, n_params=model0.n_params, machine=machine(),
                    **setting,
                )  # fmt: skip
                new.append(rec)
            budget = args.adam_only if args.adam_only is not None else new[0]["train_seconds"]
            if not args.no_adam:
                model, rec_adam = train(
                    task, model0, "adam", hp_adam, n_iters=0,
                    key=jr.fold_in(key, 1), time_budget=budget, eval_trials=eval_trials,
                )  # fmt: skip
                save(args.save_dir, f"{task_name}_{plant}_adam{_suffix(args.label)}", model)
                rec_adam.update(
                    task=task_name,
                    plant=plant,
                    n_params=model0.n_params,
                    machine=machine(),
                    adam_fixed=True,  # Adam's step counts advance (fix of 2026-11-27)
                    **setting,
                )
                new.append(rec_adam)
            records.extend(new)
            with open(args.jsonl, "a") as fh:
                for r in new:
                    fh.write(json.dumps(r) + "\n")
            write_table(args.out, table(records, cli))
            if args.cli and task_name == "reach":
                cli.append(time_cli(task_name, plant))
                with open(args.jsonl, "a") as fh:
                    fh.write(json.dumps({"kind": "cli", "plant": plant, **cli[-1]}) + "\n")
                print(f"  cli: {cli[-1]['wall_seconds']:.0f} s", flush=True)
                write_table(args.out, table(records, cli))
    print(table(records, cli))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
