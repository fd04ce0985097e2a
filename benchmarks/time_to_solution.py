"""Time to solution: SOFO against BPTT + Adam (best learning rate of a small sweep), first-order
SOFO and FGD on every task, on the same wall-clock budget, over several seeds.

For each task (CPU defaults, `nd.tasks.get(name)`; `--size paper` for the paper's, on a GPU):

1. Every optimizer's step size is tuned by the same protocol (SPEC §4, cut to fit a laptop):
   a sweep of the learning rate over `--lr-factors` × the task's default rate
   (`task.hyperparameters(name)["learning_rate"]`; 1/3, 1 and 3 by default; `--adam-lrs`
   replaces Adam's grid by absolute rates), each run on seed 0 for half the task's budget,
   the best final task metric wins; a best value at an edge of the grid is extended (×3 or ÷3,
   at most 2 more runs) while it improves. SOFO's damping is tuned too: its best η is rerun at each
   other value of `--sofo-dampings` (same seed and budget). `--no-sweep` uses the task's
   defaults as they are.
2. Every optimizer (`sofo`, `adam`, `first-order-sofo`, `fgd`, each at its best setting of
   step 1) trains for the task's wall-clock budget with each seed. The task metric is
   measured at 8 points evenly spaced in training time and at the end; compilation (the
   first step) and evaluation are excluded from the clock.
3. Reported: the loss against iterations and against wall-clock (PNG per task), the final task
   metric (mean ± sd over seeds), and the training seconds at which the task's success level
   (`task.success_criterion()`) was first met at an evaluation point (median over seeds; ∞
   when a seed never met it; the resolution is the evaluation spacing, budget / 8).

    python benchmarks/time_to_solution.py                        # 5 tasks × 4 optimizers × 3 seeds
    python benchmarks/time_to_solution.py --tasks flipflop --seeds 1 --budget-scale 0.2
    python benchmarks/time_to_solution.py --quick --out /tmp/tts   # smoke test (digits, 1 s runs)

The arm tasks and the reservoir flip-flop are accepted too (`--tasks reach double-reach
flipflop-reservoir`, `--optimizers ... force` for the reservoir) but are not in the default run:
an arm-task run takes 10 minutes on one core. `benchmarks/reach_results.py` compares SOFO and
Adam on them at equal wall-clock, and `neurodyn compare flipflop-reservoir --optimizers
sofo,force` the reservoir. Writes `benchmarks/results/
time_to_solution.md`, `.json` and `time_to_solution_<task>.png`.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

import jax.random as jr
import numpy as np

import neurodyn as nd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import better, machine, sweep_step_size  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
# [PROPOSED] Training seconds per run on one core of the 2-core benchmark machine: enough for
# the fastest method to reach each task's success level in the calibration runs
# (benchmarks/results/task_results.md), small enough for the whole table to run in ~1 hour.
BUDGETS = {
    "flipflop": 90.0,
    "kalman": 90.0,
    "lorenz": 90.0,
    "oneshot": 30.0,
    "digits": 20.0,
    # [PROPOSED] the arm tasks need ~0.2-0.3 s per SOFO iteration on one core and ~1500
    # iterations: 10 minutes per run (4 optimizers x 3 seeds: 2 hours per task)
    "reach": 600.0,
    "double-reach": 600.0,
    "flipflop-reservoir": 60.0,
}
DEFAULT_TASKS = ("flipflop", "kalman", "lorenz", "oneshot", "digits")
OPTIMIZERS = ("sofo", "adam", "first-order-sofo", "fgd", "force")
DEFAULT_OPTIMIZERS = ("sofo", "adam", "first-order-sofo", "fgd")
N_EVALS = 8


def train(task, optimizer_name, hp, *, budget, key, eval_key, n_iters=None):
    """Train through `nd.fit` (the loop users run: retries, step checks, the same key
    streams) for `budget` seconds of training time (or `n_iters` iterations, whichever ends
    first); returns the run's record (with the final model under `"model"` when the run ended
    without a `FitError`).

    A callback at each log point (every 10 iterations) records the losses and evaluates the
    task metric at the first iteration and every budget / `N_EVALS` seconds of training;
    nd.fit excludes the callback's time (and the compiling first iteration) from its clock.
    """
    model = task.default_model(key=jr.fold_in(key, 0))
    opt = nd.optim.from_config(optimizer_name, **hp)
    metric, threshold, direction = task.success_criterion()

    def evaluate(m):
        value = task.evaluate(m, key=eval_key)[metric]
        return value if math.isfinite(value) else math.nan

    losses, evals = [], []
    clock = {"compiled": None, "next": 0.0, "spent": 0.0}

    def record(iteration, records, m):
        now = records[-1]["wall_time"]
        if clock["compiled"] is None:
            clock["compiled"] = now  # the first log point is the compiling iteration alone
        spent = clock["spent"] = now - clock["compiled"]
        losses.extend((r["iteration"], spent, float(r["loss"])) for r in records)
        if spent >= clock["next"] or spent >= budget:
            evals.append((iteration, spent, evaluate(m)))
            clock["next"] += budget / N_EVALS

    error, iterations, trained = None, 0, None
    try:
        result = nd.fit(
            model,
            task,
            opt,
            n_iters=10**8 if n_iters is None else n_iters,
            batch_size=hp["batch_size"],
            key=key,
            eval_every=0,
            log_every=10,
            progress=False,
            callbacks=[record],
            time_budget=budget if math.isfinite(budget) else None,
            max_loss_spike=hp.get("max_loss_spike"),  # a recipe's loop setting, as the CLI
        )
        iterations, trained = result.iterations, result.model
    except nd.training.FitError as err:
        error = str(err)[:200]
        iterations = losses[-1][0] if losses else 0
        evals.append((iterations, clock["spent"], math.nan))
    if trained is not None and (not evals or evals[-1][0] != iterations):
        evals.append((iterations, clock["spent"], evaluate(trained)))  # the end of the run
    met = [
        (i, s) for i, s, v in evals if (v >= threshold if direction == "above" else v <= threshold)
    ]
    return {
        "iterations": iterations,
        "train_seconds": clock["spent"],
        "compile_seconds": clock["compiled"],
        "losses": losses[:: max(1, len(losses) // 400)] + losses[-1:],
        "evals": evals,
        "final": evals[-1][2] if evals else math.nan,
        "iterations_to_target": met[0][0] if met else math.inf,
        "seconds_to_target": met[0][1] if met else math.inf,
        "error": error,
        "model": trained,
    }


def sweep_settings(opt, hp, *, lr_factors, adam_lrs) -> list[dict]:
    """The step sizes tried for `opt` in the first sweep stage (dicts of overrides)."""
    if opt == "force":
        return []
    if opt == "adam" and adam_lrs:
        return [{"learning_rate": lr} for lr in adam_lrs]
    base = hp["learning_rate"]
    return [{"learning_rate": float(f"{base * f:.3g}")} for f in lr_factors]


def run_task(
    name,
    *,
    seeds,
    scale,
    adam_lrs,
    optimizers,
    log,
    lr_factors=(1 / 3, 1.0, 3.0),
    sofo_dampings=(1e-5, 1e-3),
    sweep=True,
    hp_overrides=None,
    size="cpu",
):
    task = nd.tasks.get(name, size=size)
    budget = BUDGETS[name] * scale
    metric, threshold, direction = task.success_criterion()
    eval_key = jr.PRNGKey(12345)
    hps = {o: {**task.hyperparameters(o), **(hp_overrides or {}).get(o, {})} for o in optimizers}
    sweeps: dict[str, list] = {}

    def trial(opt, overrides):
        rec = train(
            task,
            opt,
            {**hps[opt], **overrides},
            budget=budget / 2,
            key=jr.PRNGKey(1000),
            eval_key=eval_key,
        )
        entry = {**overrides, "final": rec["final"], "iterations": rec["iterations"]}
        sweeps.setdefault(opt, []).append(entry)
        shown = ", ".join(f"{k} {v:g}" for k, v in overrides.items())
        log(f"  {name} {opt} sweep {shown}: {metric} {rec['final']:.4g}")
        return entry

    for opt in optimizers if sweep else ():
        grid = sweep_settings(opt, hps[opt], lr_factors=lr_factors, adam_lrs=adam_lrs)
        if len(grid) < 2 and not (opt == "sofo" and len(sofo_dampings) > 1):
            continue
        best, _ = sweep_step_size(
            lambda rate, opt=opt: trial(opt, {"learning_rate": rate}),
            [g["learning_rate"] for g in grid],
            direction,
        )
        if opt == "sofo":
            tried = hps[opt].get("damping")
            for damping in sofo_dampings:
                if damping == tried:
                    continue
                entry = trial(opt, {"learning_rate": best["learning_rate"], "damping": damping})
                if better(entry["final"], best["final"], direction):
                    best = entry
        hps[opt] = {
            **hps[opt],
            **{k: v for k, v in best.items() if k not in ("final", "iterations")},
        }
    runs = []
    for opt in optimizers:
        for seed in range(seeds):
            rec = train(task, opt, hps[opt], budget=budget, key=jr.PRNGKey(seed), eval_key=eval_key)
            del rec["model"]
            rec.update(optimizer=opt, seed=seed)
            runs.append(rec)
            log(
                f"  {name} {opt:16s} seed {seed}: {rec['iterations']:6d} it, "
                f"{metric} {rec['final']:.4g}, to target {rec['seconds_to_target']:.4g} s"
            )
    hp_out = {o: {k: v for k, v in h.items() if k != "n_iters"} for o, h in hps.items()}
    return {
        "task": name,
        "size": size,
        "budget_s": budget,
        "criterion": [metric, threshold, direction],
        "hyperparameters": hp_out,
        "sweeps": sweeps,
        "adam_sweep": sweeps.get("adam", []),
        "runs": runs,
    }


def _done(results) -> set:
    return {r["task"] for r in results}


def merge_task(old: dict, new: dict, optimizers) -> dict:
    """`new`'s runs of `optimizers` with `old`'s runs of the other optimizers (`--append`
    with a subset of `--optimizers` reruns only those; the budgets must match)."""
    if not math.isclose(old["budget_s"], new["budget_s"]):
        raise SystemExit(
            f"--append: {new['task']} was run with a {old['budget_s']:g} s budget, now "
            f"{new['budget_s']:g} s; rerun every optimizer or match --budget-scale."
        )
    kept = [r for r in old["runs"] if r["optimizer"] not in optimizers]
    if not kept:
        return new
    commands = [old.get("command"), new["command"]]
    return {
        **new,
        "hyperparameters": {**old["hyperparameters"], **new["hyperparameters"]},
        "adam_sweep": new["adam_sweep"] if "adam" in optimizers else old["adam_sweep"],
        "sweeps": {
            **{k: v for k, v in old.get("sweeps", {}).items() if k not in optimizers},
            **new.get("sweeps", {}),
        },
        "runs": kept + new["runs"],
        "command": " ; then ".join(c for c in commands if c),
    }


def _fmt(x, digits=4):
    return "∞" if not math.isfinite(x) else f"{x:.{digits}g}"


def table(results, command, machine_text=None) -> str:
    commands = list(dict.fromkeys(r.get("command", command) for r in results))
    lines = [
        "# Time to solution",
        "",
        f"Machine: {machine_text or machine()}. Commands (each task's rows come from one):",
        "",
        *(f"- `{c}`" for c in commands),
        "",
        "Each optimizer trains for the task's budget of training seconds (compilation and "
        "evaluation excluded), with each seed; the metric is measured every budget/8. "
        "'to target': training seconds at the first evaluation that met the success level "
        "(median over seeds; ∞ if not all seeds met it — the count says how many did). "
        "Every optimizer's step size (and SOFO's damping) is the best of its sweep (seed 0, half "
        "budget; a best value at an edge of the grid is extended ×3 or ÷3 while it improves, "
        "at most twice), where a 'sweeps' line below says so; older rows tuned Adam only.",
        "",
        "| task | success level | budget (s) | optimizer | hyperparameters | iterations (median) "
        "| final metric (mean ± sd) | seeds solved | to target (s, median) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        metric, threshold, direction = res["criterion"]
        level = f"{metric} {'≥' if direction == 'above' else '≤'} {threshold:g}"
        for opt in dict.fromkeys(r["optimizer"] for r in res["runs"]):
            runs = [r for r in res["runs"] if r["optimizer"] == opt]
            finals = [r["final"] for r in runs]
            solved = [r for r in runs if math.isfinite(r["seconds_to_target"])]
            hp = res["hyperparameters"][opt]
            hp_s = ", ".join(f"{k}={v}" for k, v in hp.items())
            med_t = (
                statistics.median(r["seconds_to_target"] for r in runs)
                if len(solved) == len(runs)
                else math.inf
            )
            # a diverged run's metric may be inf/nan: numpy's statistics propagate it as text
            mean, sd = (
                float(np.mean(finals)),
                float(np.std(finals, ddof=1)) if len(finals) > 1 else 0.0,
            )
            lines.append(
                f"| {res['task']}{' †' if res.get('not_rerun') else ''} | {level} | "
                f"{res['budget_s']:.0f} | {opt} | {hp_s} | "
                f"{int(statistics.median(r['iterations'] for r in runs))} | "
                f"{mean:.4g} ± {sd:.2g} | {len(solved)}/{len(runs)} | "
                f"{_fmt(med_t, 3)} |"
            )
    if any(r.get("not_rerun") for r in results):
        lines += [
            "",
            "† Not rerun under the current protocol: kept from an earlier table, where only "
            "Adam's learning rate was swept (and, for the double reach, before its CPU-size "
            "scoring window changed).",
        ]
    swept = [r for r in results if r.get("sweeps") or r.get("adam_sweep")]
    if swept:
        lines += [
            "",
            "Step-size sweeps (seed 0, half budget, final metric; SOFO also over the damping "
            "at its best η; results without a 'sweeps' record swept Adam only):",
            "",
        ]
        for res in swept:
            sweeps = res.get("sweeps") or {"adam": res["adam_sweep"]}
            for opt, entries in sweeps.items():
                parts = []
                for e in entries:
                    setting = ", ".join(
                        f"{'η' if k == 'learning_rate' else 'λ'} {v:g}"
                        for k, v in e.items()
                        if k in ("learning_rate", "damping")
                    )
                    parts.append(f"{setting} → {e['final']:.4g}")
                lines.append(f"- {res['task']} {opt}: " + "; ".join(parts))
    return "\n".join(lines) + "\n"


def plot(res, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric, threshold, _ = res["criterion"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    colours = {}
    for r in res["runs"]:
        c = colours.setdefault(r["optimizer"], f"C{len(colours)}")
        lab = r["optimizer"] if r["seed"] == 0 else None
        it, sec, loss = np.asarray(r["losses"], float).T
        axes[0].plot(it, loss, color=c, alpha=0.7, lw=0.8, label=lab)
        axes[1].plot(sec, loss, color=c, alpha=0.7, lw=0.8, label=lab)
        _, esec, val = np.asarray(r["evals"], float).T
        axes[2].plot(esec, val, "o-", color=c, alpha=0.7, ms=3, label=lab)
    axes[2].axhline(threshold, color="k", ls=":", lw=1, label="success level")
    axes[0].set(xscale="log", yscale="log", xlabel="iteration", ylabel="training loss")
    axes[1].set(yscale="log", xlabel="training seconds", ylabel="training loss")
    axes[2].set(xlabel="training seconds", ylabel=metric)
    vals = np.array([v for r in res["runs"] for _, _, v in r["evals"]], float)
    vals = vals[np.isfinite(vals)]
    if vals.size and vals.min() > 0 and vals.max() > 10 * vals.min():
        axes[2].set_yscale("log")  # e.g. an MSE that starts from a divergence
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle(f"{res['task']}: {len({r['seed'] for r in res['runs']})} seeds per optimizer")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS), choices=list(BUDGETS))
    parser.add_argument(
        "--optimizers", nargs="+", default=list(DEFAULT_OPTIMIZERS), choices=OPTIMIZERS
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget-scale", type=float, default=1.0)
    parser.add_argument(
        "--adam-lrs",
        type=float,
        nargs="+",
        default=[3e-4, 1e-3, 3e-3],
        help="Adam's learning-rate grid (absolute; the other optimizers use --lr-factors)",
    )
    parser.add_argument(
        "--lr-factors",
        type=float,
        nargs="+",
        default=[1 / 3, 1.0, 3.0],
        help="step-size grid of SOFO, first-order SOFO and FGD, × each task's default rate",
    )
    parser.add_argument("--sofo-dampings", type=float, nargs="+", default=[1e-5, 1e-3])
    parser.add_argument("--no-sweep", action="store_true", help="use the task defaults as is")
    parser.add_argument(
        "--size", default="cpu", choices=["cpu", "paper"], help="the tasks' size (default cpu)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: digits, 1 seed, tiny budget and networks (for the test suite)",
    )
    parser.add_argument("--out", default=str(RESULTS / "time_to_solution"), help="output prefix")
    parser.add_argument(
        "--append", action="store_true", help="keep the other tasks' results already in --out"
    )
    parser.add_argument(
        "--table-only", action="store_true", help="rewrite --out's table from its JSON and stop"
    )
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.budget_scale <= 0:
        parser.error("--seeds must be ≥ 1 and --budget-scale > 0")
    hp_overrides = None
    if args.quick:
        args.tasks, args.seeds, args.budget_scale = ["digits"], 1, 0.1
        args.adam_lrs, args.lr_factors, args.sofo_dampings = [1e-3, 3e-3], [1.0, 3.0], [1e-3]
        small = {"batch_size": 32, "n_tangents": 8}
        hp_overrides = {o: dict(small) for o in DEFAULT_OPTIMIZERS}
        hp_overrides["adam"] = {"batch_size": 32}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/time_to_solution.py" + (" " + " ".join(argv) if argv else "")
    if args.table_only:
        saved = json.loads(out.with_suffix(".json").read_text())
        text = table(saved["results"], command, saved.get("machine"))
        out.with_suffix(".md").write_text(text)
        print(text)
        return 0
    results, previous = [], {}
    if args.append and out.with_suffix(".json").exists():
        results = json.loads(out.with_suffix(".json").read_text())["results"]
        previous = {r["task"]: r for r in results if r["task"] in args.tasks}
        results = [r for r in results if r["task"] not in args.tasks]
    for name, old in previous.items():
        if not math.isclose(old["budget_s"], BUDGETS[name] * args.budget_scale):
            parser.error(
                f"--append: {name} was run with a {old['budget_s']:g} s budget, now "
                f"{BUDGETS[name] * args.budget_scale:g} s; match --budget-scale or rerun "
                "every optimizer without --append."
            )
    for name in args.tasks:
        print(f"== {name}", flush=True)
        res = run_task(
            name,
            seeds=args.seeds,
            size=args.size,
            scale=args.budget_scale,
            adam_lrs=args.adam_lrs,
            optimizers=args.optimizers,
            log=lambda s: print(s, flush=True),
            lr_factors=args.lr_factors,
            sofo_dampings=args.sofo_dampings,
            sweep=not args.no_sweep,
            hp_overrides=hp_overrides,
        )
        res["command"] = command
        if name in previous:
            res = merge_task(previous[name], res, args.optimizers)
        results.append(res)
        plot(res, out.parent / f"{out.name}_{name}.png")
        # rewritten after each task; tasks still to rerun keep their old entry meanwhile, so
        # an interrupted run loses nothing
        pending = [previous[t] for t in args.tasks if t in previous and t not in _done(results)]
        text = table(results + pending, command)
        out.with_suffix(".md").write_text(text)
        out.with_suffix(".json").write_text(
            json.dumps({"machine": machine(), "results": results + pending}, default=str) + "\n"
        )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
