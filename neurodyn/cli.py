"""The `neurodyn` command: train, compare, list tasks, export analyses.

    neurodyn fit TASK [--optimizer NAME] [--iters N] [--batch-size B] [--n-tangents K]
                      [--lr X] [--damping X] [--seed S] [--size cpu|paper]
                      [--config run.toml] [--set key=value ...] [--out DIR] [--resume|--force]
    neurodyn compare TASK --optimizers sofo,adam [--seeds 3] [...]
    neurodyn tasks
    neurodyn models
    neurodyn optimizers [--task TASK [--size cpu|paper]]
    neurodyn export RUN_DIR [--n-trials N]
    neurodyn analyse RUN_DIR [--fixed-points] [--jpca] [--dpca] [--n-starts N] [--n-pcs K]

Mistakes a user can make (unknown names, bad values, unreadable configs, an output folder that
would be overwritten) exit with status 2 and one line on stderr (set NEURODYN_DEBUG=1 to see
the traceback instead).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from .config import (
    ConfigError,
    check_config,
    resolve_config,
    set_path,
)
from .runs import prepare_out, resume_config, run_fit

EXIT_USAGE = 2


class UsageError(Exception):
    """A mistake in how the command was called; printed as one line, exit status 2."""


# ------------------------------------------------------------------ configuration


def _flag_overrides(args) -> dict:
    out: dict[str, Any] = {}
    pairs = [
        ("iters", ["training", "n_iters"]),
        ("batch_size", ["training", "batch_size"]),
        ("eval_every", ["training", "eval_every"]),
        ("checkpoint_every", ["training", "checkpoint_every"]),
        ("n_tangents", ["optimizer", "n_tangents"]),
        ("lr", ["optimizer", "learning_rate"]),
        ("damping", ["optimizer", "damping"]),
        ("seed", ["seed"]),
        ("size", ["size"]),
    ]
    for attr, path in pairs:
        value = getattr(args, attr, None)
        if value is not None:
            set_path(out, path, value)
    if getattr(args, "optimizer", None):
        set_path(out, ["optimizer", "name"], args.optimizer)
    if getattr(args, "plant", None):
        set_path(out, ["task_options", "plant"], args.plant)
    return out


def _resolve(task_name, args, base=None) -> dict:
    """The validated configuration of a command, with its task, model and optimizer built
    once (so that every mistake surfaces before a folder is made or changed)."""
    config = resolve_config(
        task_name,
        base=base,
        file=getattr(args, "config", None),
        flags=_flag_overrides(args),
        sets=getattr(args, "set", None) or (),
    )
    check_config(config)
    return config


def _check_resume(out: Path, args) -> dict:
    """The configuration to resume the run in `out` with (`neurodyn.runs.resume_config`)."""
    return resume_config(
        out,
        args.task,
        file=getattr(args, "config", None),
        flags=_flag_overrides(args),
        sets=args.set or (),
    )


def _print_metrics(metrics: dict[str, float], stream=None) -> None:
    stream = stream or sys.stdout
    if not metrics:
        return
    width = max(len(k) for k in metrics)
    print("\nfinal metrics", file=stream)
    print("-" * (width + 16), file=stream)
    for k, v in metrics.items():
        shown = "n/a" if v is None else f"{v:>12.6g}"
        print(f"{k:<{width}}  {shown:>12}", file=stream)


def _success_line(config: dict, metrics: dict) -> str | None:
    """`endpoint_error 1.8 cm: below the success level 2 (reached)`, or None."""
    from .config import build_task

    criterion = build_task(
        config["task"], config.get("size", "cpu"), config.get("task_options", {})
    ).success_criterion()
    if criterion is None or criterion[0] not in metrics:
        return None
    name, level, direction = criterion
    value = metrics[name]
    ok = value <= level if direction == "below" else value >= level
    verdict = "reached" if ok else "NOT reached"
    return f"{name} = {value:.4g} (success level: {direction} {level:g}) — {verdict}"


# ------------------------------------------------------------------ commands


def use_host_cores(n_devices: int | None = None) -> int | None:
    """Make every usable CPU core a JAX device (or `n_devices` of them), before JAX starts.

    JAX's CPU backend is one device unless told otherwise; `nd.fit` splits the trials over
    every device it sees, so this is what lets a laptop use all its cores. Sets the config
    `jax_num_cpu_devices` (the same as `XLA_FLAGS=--xla_force_host_platform_device_count=N`);
    does nothing when `XLA_FLAGS` already sets the count or JAX's backend has started.
    Returns the count set, or None. Only the CPU backend is affected (a GPU stays a GPU).
    """
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return None
    if n_devices is None:
        cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        n_devices = len(cores) if cores else (os.cpu_count() or 1)
    import jax

    try:
        jax.config.update("jax_num_cpu_devices", int(n_devices))
    except RuntimeError:  # the backend has started (e.g. `main` called from Python)
        return None
    return int(n_devices)


def cmd_fit(args) -> int:
    out = Path(args.out) if args.out else None
    if args.resume and args.force:
        raise UsageError("--resume and --force exclude each other.")
    if args.resume:
        if out is None:
            out = Path("runs") / args.task
        config = _check_resume(out, args)
    else:
        config = _resolve(args.task, args)
        out = out if out is not None else Path("runs") / config["task"]
    out, replaced = prepare_out(out, resume=args.resume, force=args.force)
    if replaced is not None:
        print(f"--force: the previous run in {out} was moved to {replaced}")
    summary = run_fit(
        config,
        out,
        resume=args.resume,
        progress=not args.no_progress,
        export=not args.no_export,
        devices=args.devices,
    )
    print(f"\nrun folder: {out}")
    for name, rel in summary["outputs"].items():
        print(f"  {name:<12} {out / rel}")
    _print_metrics({"loss": summary["final_loss"], **summary["final_metrics"]})
    line = _success_line(config, summary["final_metrics"])
    if line:
        print(f"\n{line}")
    if summary["non_finite_metrics"]:
        print(
            "warning: these evaluation metrics are not finite: "
            + ", ".join(summary["non_finite_metrics"]),
            file=sys.stderr,
        )
    print(
        f"\ntrained {summary['timings']['iterations']} iterations in "
        f"{summary['timings']['train_seconds']:.1f} s on {summary['device']['platform']}"
    )
    return 0


def cmd_tasks(args) -> int:
    from . import tasks

    rows = []
    for name, desc in tasks.available().items():
        sizes = []
        for size in ("cpu", "paper"):
            try:
                task = tasks.get(name, size=size)
                opt = task.default_optimizer()
                hp = task.hyperparameters(opt)
                k = f", K={hp['n_tangents']}" if "n_tangents" in hp else ""
                sizes.append(
                    f"{size}: {opt} {hp.get('n_iters', '?')} it × B={hp.get('batch_size', '?')}{k}"
                )
            except Exception as err:  # a task that cannot be built at a size is reported
                sizes.append(f"{size}: unavailable ({type(err).__name__})")
        rows.append((name, desc, "; ".join(sizes)))
    width = max((len(r[0]) for r in rows), default=4)
    for name, desc, sizes in rows:
        print(f"{name:<{width}}  {desc}")
        print(f"{'':<{width}}  sizes — {sizes}")
    for name, desc in tasks.families().items():
        print(f"{name:<{width}}  {desc}")
    return 0


MODEL_NAMES: tuple[str, ...] = (
    "RateRNN",
    "KalmanRNN",
    "LorenzMap",
    "OneShotNet",
    "MLP",
    "motor_rnn",
    "flip_flop_rnn",
    "reservoir_rnn",
)
"""The networks `neurodyn models` lists (classes and builders of `neurodyn.models`)."""


def _plain(value) -> bool:
    if isinstance(value, (tuple, list)):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


def _signature_defaults(fn) -> dict:
    import inspect

    return {
        name: p.default
        for name, p in inspect.signature(fn).parameters.items()
        if name not in ("self", "key") and p.default is not inspect.Parameter.empty
    }


def _show(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (tuple, list)):
        inner = ", ".join(_show(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


def _defaults_text(defaults: dict) -> str:
    return ", ".join(f"{k}={_show(v)}" for k, v in defaults.items() if _plain(v))


def _first_line(obj) -> str:
    doc = (obj.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def _print_rows(rows) -> None:
    width = max((len(r[0]) for r in rows), default=4)
    for name, desc, defaults in rows:
        print(f"{name:<{width}}  {desc}" + (f"  [{defaults}]" if defaults else ""))


def cmd_models(args) -> int:
    import inspect

    from . import models

    rows = []
    for name in MODEL_NAMES:
        obj = getattr(models, name)
        fn = obj.__init__ if inspect.isclass(obj) else obj
        rows.append((name, _first_line(obj), _defaults_text(_signature_defaults(fn))))
    _print_rows(rows)
    print("\n(each task builds its network with `default_model`: see `neurodyn tasks`)")
    return 0


def cmd_optimizers(args) -> int:
    import dataclasses

    from .optim import from_config, optimizer_builder, optimizer_names

    task = None
    if args.task is not None:
        from . import tasks

        task = tasks.get(args.task, size=args.size or "cpu")
    rows = []
    for name, desc in optimizer_names().items():
        builder = optimizer_builder(name)
        defaults = _signature_defaults(builder)
        built = from_config(name)  # the built optimizer's own fields complete the defaults
        if dataclasses.is_dataclass(built):
            for field in dataclasses.fields(built):
                value = getattr(built, field.name, None)
                if field.name not in defaults and not field.name.startswith("_"):
                    defaults[field.name] = value
        if task is not None:
            try:
                defaults = {**defaults, **task.hyperparameters(name)}
            except (KeyError, ValueError):
                desc += f" (no recommendation for {args.task})"
        rows.append((name, desc, _defaults_text(defaults)))
    _print_rows(rows)
    if task is not None:
        print(f"\n(defaults overridden by the recommendations of task {args.task!r})")
    return 0


def cmd_compare(args) -> int:
    from .runs import run_compare

    names = [n.strip() for n in args.optimizers.split(",") if n.strip()]
    if not names:
        raise UsageError("--optimizers needs at least one name, e.g. sofo,adam.")
    from .optim import optimizer_names

    unknown = [n for n in names if n not in optimizer_names()]
    if unknown:
        raise UsageError(
            f"unknown optimizer {unknown[0]!r}; accepted: {', '.join(optimizer_names())}."
        )
    if args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1; got {args.seeds}.")
    configs = {}
    for name in names:
        ns = argparse.Namespace(**{**vars(args), "optimizer": name})
        configs[name] = _resolve(args.task, ns)
    out = Path(args.out) if args.out else Path("runs") / f"compare-{args.task}"
    out, replaced = prepare_out(out, force=args.force)
    if replaced is not None:
        print(f"--force: the previous comparison in {out} was moved to {replaced}")
    summary = run_compare(configs, args.seeds, out, progress=not args.no_progress)
    print(f"\ncomparison folder: {out}")
    for name, rel in summary["outputs"].items():
        print(f"  {name:<12} {out / rel}")
    print()
    print(summary["table"])
    return 0


def cmd_export(args) -> int:
    from .analysis import export_from_run

    run = Path(args.run_dir)
    if not (run / "config.toml").exists():
        raise UsageError(f"{run} is not a run folder (no config.toml).")
    if args.n_trials is not None and args.n_trials < 1:
        raise UsageError(f"--n-trials must be >= 1; got {args.n_trials}.")
    outputs = export_from_run(run, n_trials=args.n_trials)
    print(f"exported from {run}:")
    for name, rel in outputs.items():
        print(f"  {name:<12} {run / rel}")
    return 0


def cmd_analyse(args) -> int:
    from .analysis import analyse_run

    run = Path(args.run_dir)
    if not (run / "config.toml").exists():
        raise UsageError(f"{run} is not a run folder (no config.toml).")
    chosen = [a for a in ("fixed_points", "jpca", "dpca") if getattr(args, a)]
    for flag, value in (("--n-starts", args.n_starts), ("--n-pcs", args.n_pcs)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be >= 1; got {value}.")
    options = {"n_starts": args.n_starts, "n_iters": args.fp_iters, "n_pcs": args.n_pcs}
    outputs = analyse_run(
        run,
        chosen or ("fixed_points", "jpca", "dpca"),
        seed=args.seed,
        **{k: v for k, v in options.items() if v is not None},
    )
    print(f"analysed {run}:")
    for name, rel in outputs.items():
        print(f"  {name:<20} {run / rel}")
    return 0


# ------------------------------------------------------------------ parser


def _add_training_flags(p: argparse.ArgumentParser, with_optimizer: bool = True) -> None:
    if with_optimizer:
        p.add_argument(
            "--optimizer",
            default=None,
            metavar="NAME",
            help="sofo, adam, fgd, first-order-sofo, force (default: the task's, "
            "`neurodyn tasks` lists it — sofo, or adam for the torque reach at size cpu)",
        )
    p.add_argument(
        "--iters",
        type=int,
        default=None,
        metavar="N",
        help="training iterations (default: the task's recommendation)",
    )
    p.add_argument("--batch-size", type=int, default=None, metavar="B", help="trials per batch")
    p.add_argument(
        "--n-tangents", type=int, default=None, metavar="K", help="SOFO subspace dimension K"
    )
    p.add_argument("--lr", type=float, default=None, metavar="X", help="learning rate")
    p.add_argument(
        "--damping",
        type=float,
        default=None,
        metavar="X",
        help="SOFO damping λ (relative to the top GGN eigenvalue)",
    )
    p.add_argument("--seed", type=int, default=None, metavar="S", help="random seed (default 0)")
    p.add_argument(
        "--size",
        choices=["cpu", "paper"],
        default=None,
        help="cpu (default: minutes on a laptop) or paper (the paper's sizes)",
    )
    p.add_argument(
        "--eval-every",
        type=int,
        default=None,
        metavar="N",
        help="evaluate every N iterations (default: at the end)",
    )
    p.add_argument(
        "--plant",
        choices=["muscle", "torque"],
        default=None,
        help="arm tasks: six-muscle arm or torque-driven arm (same as --set task.plant=...)",
    )
    p.add_argument("--config", default=None, metavar="run.toml", help="a TOML run configuration")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="key=value",
        help="override any configuration entry, e.g. --set optimizer.damping=1e-3, "
        "--set task.plant=torque, --set training.log_every=1 (repeatable)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace the run in --out (it is moved aside to OUT.replaced-DATE, not deleted; "
        "only a neurodyn run folder is replaced)",
    )


def make_parser() -> argparse.ArgumentParser:
    from ._version import __version__

    parser = argparse.ArgumentParser(
        prog="neurodyn",
        description="Train biologically constrained RNNs with SOFO and analyse them.",
    )
    parser.add_argument("--version", action="version", version=f"neurodyn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "fit",
        help="train a network on a task and write a run folder",
        description="Train the task's default network and write a run folder: "
        "config.toml, run.json, checkpoints/, history.nc, trials.nc, psth.nc, "
        "figures/*.png.",
    )
    p.add_argument("task", help="task name (see `neurodyn tasks`)")
    _add_training_flags(p)
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        metavar="N",
        help="checkpoint every N iterations (default: n_iters/10)",
    )
    p.add_argument("--out", default=None, metavar="DIR", help="run folder (default runs/TASK)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument(
        "--devices",
        type=int,
        default=None,
        metavar="N",
        help="split the trials over N devices (default: every device; on a CPU, one device "
        "per usable core)",
    )
    p.add_argument(
        "--no-export",
        action="store_true",
        help="skip trials.nc, psth.nc and figures (see `neurodyn export`)",
    )
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser(
        "compare",
        help="train several optimizers (and seeds) and compare them",
        description="Train each optimizer with the task's recommended "
        "hyperparameters; write learning curves against iterations and "
        "wall-clock (PNG) and a table of final metrics and time to target.",
    )
    p.add_argument("task", help="task name (see `neurodyn tasks`)")
    p.add_argument("--optimizers", required=True, help="comma-separated, e.g. sofo,adam")
    p.add_argument("--seeds", type=int, default=1, help="seeds per optimizer (default 1)")
    _add_training_flags(p, with_optimizer=False)
    p.add_argument(
        "--out", default=None, metavar="DIR", help="output folder (default runs/compare-TASK)"
    )
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "tasks",
        help="list the tasks with their default sizes",
        description="List every task with a one-line description and its "
        "recommended SOFO iterations, batch size and K at each size.",
    )
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser(
        "models",
        help="list the networks with their defaults",
        description="List the network classes and builders of neurodyn.models, one line "
        "each: a description and the constructor's defaults.",
    )
    p.set_defaults(func=cmd_models)

    p = sub.add_parser(
        "optimizers",
        help="list the optimizers with their defaults",
        description="List the optimizers --optimizer accepts, one line each: a description "
        "and the default hyperparameters (with --task: that task's recommendations).",
    )
    p.add_argument("--task", default=None, help="show this task's recommended hyperparameters")
    p.add_argument("--size", choices=["cpu", "paper"], default=None, help="the task's size")
    p.set_defaults(func=cmd_optimizers)

    p = sub.add_parser(
        "export",
        help="regenerate trials.nc, psth.nc and figures of a run",
        description="Rebuild trials.nc, psth.nc and figures/*.png from a run "
        "folder's config and last checkpoint.",
    )
    p.add_argument("run_dir", help="a folder written by `neurodyn fit`")
    p.add_argument(
        "--n-trials",
        type=int,
        default=None,
        metavar="N",
        help="trials to simulate (default: the task's evaluation conditions)",
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "analyse",
        help="fixed points, jPCA and dPCA of a trained run",
        description="Write analysis/*.nc and figures/*.png into a run folder: fixed points "
        "(--fixed-points), jPCA (--jpca), dPCA (--dpca); all three when none is chosen.",
    )
    p.add_argument("run_dir", help="a folder written by `neurodyn fit`")
    p.add_argument("--fixed-points", action="store_true", help="fixed points without input")
    p.add_argument("--jpca", action="store_true", help="jPCA of the PSTHs")
    p.add_argument("--dpca", action="store_true", help="dPCA of the PSTHs")
    p.add_argument("--n-starts", type=int, default=None, metavar="N", help="fixed-point starts")
    p.add_argument(
        "--fp-iters", type=int, default=None, metavar="N", help="fixed-point Adam iterations"
    )
    p.add_argument("--n-pcs", type=int, default=None, metavar="K", help="jPCA components")
    p.add_argument("--seed", type=int, default=None, metavar="S", help="default: the run's")
    p.set_defaults(func=cmd_analyse)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    from .training import CheckpointError, FitError

    if args.command == "fit":
        devices = getattr(args, "devices", None)
        if devices is not None and devices < 1:
            print(f"neurodyn: error: --devices must be >= 1; got {devices}.", file=sys.stderr)
            return EXIT_USAGE
        if argv is None:  # the command line (a call from Python keeps its process's devices)
            use_host_cores(devices)
    try:
        return args.func(args)
    except FitError as err:
        print(f"neurodyn: training stopped: {err}", file=sys.stderr)
        return 1
    except (UsageError, ConfigError, CheckpointError) as err:
        print(f"neurodyn: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, TypeError) as err:
        # bad values reach the library's own checks, which name the argument
        if os.environ.get("NEURODYN_DEBUG"):
            raise
        print(f"neurodyn: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("neurodyn: interrupted (resume with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
