"""The `neurodyn` command: train, compare, list tasks, export analyses.

    neurodyn fit TASK [--optimizer NAME] [--iters N] [--batch-size B] [--n-tangents K]
                      [--lr X] [--damping X] [--seed S] [--size cpu|paper]
                      [--config run.toml] [--set key=value ...] [--out DIR] [--resume|--force]
    neurodyn compare TASK --optimizers sofo,adam [--seeds 3] [...]
    neurodyn tasks
    neurodyn export RUN_DIR [--n-trials N]

Mistakes a user can make (unknown names, bad values, unreadable configs, an output folder that
would be overwritten) exit with status 2 and one line on stderr (set NEURODYN_DEBUG=1 to see
the traceback instead).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from ._config import (
    TRAINING_DEFAULTS,
    ConfigError,
    merge,
    parse_assignment,
    read_toml,
    set_path,
    to_toml,
)

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


def resolve_config(task_name: str | None, args, base: dict | None = None) -> dict:
    """Defaults from the task < base (a saved run) < config file < flags < --set."""
    from . import tasks

    user = base or {}
    if getattr(args, "config", None):
        user = merge(user, read_toml(args.config))
    user = merge(user, _flag_overrides(args))
    for item in getattr(args, "set", None) or []:
        path, value = parse_assignment(item)
        if path[0] == "task" and len(path) > 1:  # --set task.plant=torque: a task option
            path = ["task_options", *path[1:]]
        set_path(user, path, value)
    if isinstance(user.get("task"), dict):
        user["task_options"] = merge(user.get("task_options", {}), user.pop("task"))
    name = task_name or user.get("task")
    if not name:
        raise ConfigError("no task given (as the TASK argument or `task = ...` in the config).")
    if user.get("task") not in (None, name):
        raise ConfigError(f"the config file is for task {user['task']!r}, not {name!r}.")
    size = user.get("size", "cpu")
    opt_name = user.get("optimizer", {}).get("name", "sofo")
    from .optim import optimizer_names

    if opt_name not in optimizer_names():
        raise ConfigError(
            f"unknown optimizer {opt_name!r}; accepted: {', '.join(optimizer_names())}."
        )
    task_options = dict(user.get("task_options", {}))
    task = tasks.get(name, size=size, **task_options)
    try:
        hp = dict(task.hyperparameters(opt_name))
    except (KeyError, ValueError) as err:
        raise ConfigError(
            f"task {name!r} has no hyperparameters for optimizer {opt_name!r}: {err}"
        ) from None
    from .optim._registry import TRAINING_KEYS

    defaults = {
        "task": name,
        "size": size,
        "seed": 0,
        "optimizer": {"name": opt_name, **{k: v for k, v in hp.items() if k not in TRAINING_KEYS}},
        "training": {**TRAINING_DEFAULTS, **{k: v for k, v in hp.items() if k in TRAINING_KEYS}},
    }
    user = {k: v for k, v in user.items() if k not in ("task", "task_options")}
    config = merge(defaults, user)
    config["task_options"] = task_options
    return config


def build(config: dict):
    """(task, model, optimizer) from a resolved configuration."""
    import jax.random as jr

    from . import optim, tasks

    task = tasks.get(
        config["task"], size=config.get("size", "cpu"), **config.get("task_options", {})
    )
    opt_cfg = dict(config["optimizer"])
    name = opt_cfg.pop("name")
    optimizer = optim.from_config(name, n_iters=int(config["training"]["n_iters"]), **opt_cfg)
    model = task.default_model(key=jr.fold_in(jr.PRNGKey(int(config["seed"])), 0))
    return task, model, optimizer


# ------------------------------------------------------------------ run directories


def _prepare_out(out: Path, resume: bool, force: bool) -> None:
    if resume and force:
        raise UsageError("--resume and --force exclude each other.")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder.")
    nonempty = out.exists() and any(out.iterdir())
    if nonempty and not (resume or force):
        raise UsageError(
            f"output folder {out} is not empty; pass --resume to continue that run or --force "
            "to overwrite it."
        )
    if resume and not (out / "config.toml").exists():
        raise UsageError(f"--resume: {out} holds no run (no config.toml).")
    if nonempty and force:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _device_description() -> dict:
    import jax

    dev = jax.devices()[0]
    return {
        "platform": dev.platform,
        "device_kind": getattr(dev, "device_kind", ""),
        "n_devices": jax.device_count(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
    }


def _atomic_text(path: Path, text: str) -> None:
    from .training._checkpoint import atomic_write_bytes

    atomic_write_bytes(path, text.encode())


def write_history(history, path: Path) -> None:
    from .analysis import save

    save(history, path)


def _print_metrics(metrics: dict[str, float], stream=None) -> None:
    stream = stream or sys.stdout
    if not metrics:
        return
    width = max(len(k) for k in metrics)
    print("\nfinal metrics", file=stream)
    print("-" * (width + 16), file=stream)
    for k, v in metrics.items():
        print(f"{k:<{width}}  {v:>12.6g}", file=stream)


def run_fit(
    config: dict, out: Path, *, resume: bool = False, progress: bool = True, export: bool = True
) -> dict:
    """Train as configured, writing the run folder; return the run summary (run.json)."""
    import jax.random as jr

    from . import fit

    task, model, optimizer = build(config)
    training = config["training"]
    seed = int(config["seed"])
    key = jr.PRNGKey(seed)
    checkpoint_every = training.get("checkpoint_every") or max(1, training["n_iters"] // 10)
    if not resume:
        _atomic_text(out / "config.toml", to_toml(config))
    t0 = time.perf_counter()
    result = fit(
        model,
        task,
        optimizer,
        n_iters=int(training["n_iters"]),
        batch_size=int(training["batch_size"]),
        key=jr.fold_in(key, 1),
        eval_every=training.get("eval_every"),
        log_every=int(training.get("log_every") or 10),
        checkpoint_dir=out / "checkpoints",
        checkpoint_every=int(checkpoint_every),
        resume=resume,
        progress=progress,
        config=config,
    )
    train_seconds = time.perf_counter() - t0
    write_history(result.history, out / "history.nc")
    from . import __version__
    from .training._checkpoint import software_versions

    summary = {
        "neurodyn": __version__,
        "versions": software_versions(),
        "command": " ".join(["neurodyn", *sys.argv[1:]]) if sys.argv else "",
        "task": config["task"],
        "size": config.get("size", "cpu"),
        "optimizer": config["optimizer"]["name"],
        "seed": seed,
        "n_params": int(result.history.attrs.get("n_params", 0)),
        "device": _device_description(),
        "timings": {
            "train_seconds": train_seconds,
            "iterations": int(result.iterations),
            "median_seconds_per_iteration": _median_step(result.history),
        },
        "final_metrics": result.final_metrics,
        "final_loss": float(result.history["loss"].values[-1]) if result.iterations else None,
    }
    outputs = {"config": "config.toml", "history": "history.nc", "checkpoints": "checkpoints/"}
    if export:
        from .analysis import export_run

        t1 = time.perf_counter()
        outputs.update(
            export_run(out, result.model, task, key=jr.fold_in(key, 2), history=result.history)
        )
        summary["timings"]["export_seconds"] = time.perf_counter() - t1
    summary["outputs"] = outputs
    _atomic_text(out / "run.json", json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def _median_step(history) -> float | None:
    import numpy as np

    if "wall_time" not in history or history.sizes.get("iteration", 0) < 2:
        return None
    return float(np.median(np.diff(history["wall_time"].values)))


# ------------------------------------------------------------------ commands


def cmd_fit(args) -> int:
    out = Path(args.out) if args.out else Path("runs") / args.task
    base = None
    if args.resume and (out / "config.toml").exists():
        base = read_toml(out / "config.toml")
    _prepare_out(out, args.resume, args.force)
    config = resolve_config(args.task, args, base)
    summary = run_fit(
        config, out, resume=args.resume, progress=not args.no_progress, export=not args.no_export
    )
    print(f"\nrun folder: {out}")
    for name, rel in summary["outputs"].items():
        print(f"  {name:<12} {out / rel}")
    _print_metrics({"loss": summary["final_loss"], **summary["final_metrics"]})
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
                hp = tasks.get(name, size=size).hyperparameters("sofo")
                sizes.append(
                    f"{size}: {hp.get('n_iters', '?')} it × B={hp.get('batch_size', '?')}"
                    f", K={hp.get('n_tangents', '?')}"
                )
            except Exception as err:  # a task that cannot be built at a size is reported
                sizes.append(f"{size}: unavailable ({type(err).__name__})")
        rows.append((name, desc, "; ".join(sizes)))
    width = max((len(r[0]) for r in rows), default=4)
    for name, desc, sizes in rows:
        print(f"{name:<{width}}  {desc}")
        print(f"{'':<{width}}  sizes — {sizes}")
    return 0


def cmd_compare(args) -> int:
    from .training._compare import run_compare

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
    out = Path(args.out) if args.out else Path("runs") / f"compare-{args.task}"
    _prepare_out(out, False, args.force)
    configs = {}
    for name in names:
        ns = argparse.Namespace(**{**vars(args), "optimizer": name})
        configs[name] = resolve_config(args.task, ns)
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


# ------------------------------------------------------------------ parser


def _add_training_flags(p: argparse.ArgumentParser, with_optimizer: bool = True) -> None:
    if with_optimizer:
        p.add_argument(
            "--optimizer",
            default=None,
            metavar="NAME",
            help="sofo (default), adam, fgd, first-order-sofo, force",
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
    p.add_argument("--force", action="store_true", help="overwrite a non-empty --out folder")


def make_parser() -> argparse.ArgumentParser:
    from . import __version__

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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    from .training import CheckpointError, FitError

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
