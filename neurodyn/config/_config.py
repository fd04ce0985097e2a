"""Run configurations: defaults from the task, a TOML file, flags and `--set key=value`.

A configuration is resolved and validated completely before anything is written: every key
is known, every value has the accepted type and range, and the task, its default network and
the optimizer are built once from it. `config.toml` records exactly the values a run used.

Sections a user may write (in a TOML file or with `--set section.key=value`):

- top level: `task` (name), `size` (`"cpu"` or `"paper"`), `seed` (int >= 0);
- `[task]` (or `[task_options]` as saved runs write it): the task's options, e.g.
  `n_steps`, `n_neurons`, `plant` — the names the task class accepts;
- `[optimizer]`: `name` (or `optimizer = "adam"` at the top level; default the task's
  `default_optimizer()`) and the optimizer's hyperparameters, e.g. `learning_rate`,
  `n_tangents`, `damping`;
- `[training]`: the loop's settings (`TRAINING_SCHEMA`).

There is no `[model]` section: the network is the task's default model, sized by task
options (e.g. `task.n_neurons`). Anything else is an error naming the key.
"""

from __future__ import annotations

import copy
import math
import tomllib
from pathlib import Path
from typing import Any

TRAINING_DEFAULTS = {
    "n_iters": 100,
    "batch_size": 32,
    "eval_every": None,
    "log_every": 10,
    "checkpoint_every": None,
}
"""The `[training]` settings a run starts from, before the task's recommendations."""

TRAINING_SCHEMA: dict[str, tuple[int, bool, str]] = {
    "n_iters": (1, False, ""),
    "batch_size": (1, False, ""),
    "eval_every": (0, True, "evaluate only at the end; 0 never"),
    "eval_trials": (1, True, "the task's own evaluation set"),
    "log_every": (1, False, ""),
    "checkpoint_every": (1, True, "n_iters / 10"),
    "keep_checkpoints": (1, True, "2"),
    "max_retries": (0, True, "5"),
    "max_loss_spike": (1, True, "off"),
}
"""The `[training]` keys: `key: (minimum, may be absent, what absent means)`; every value is
an integer except those of `TRAINING_REAL_KEYS`."""

TRAINING_REAL_KEYS = frozenset({"max_loss_spike"})
"""The `[training]` keys that take a real number (>= their minimum)."""

TOP_LEVEL_KEYS = ("task", "size", "seed", "optimizer", "training", "task_options")


class ConfigError(ValueError):
    """A configuration a user wrote that cannot be used (the message says why)."""


def parse_value(text: str) -> Any:
    """Parse a `--set` value as a TOML literal (number, bool, string, list), else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_assignment(item: str) -> tuple[list[str], Any]:
    """A `--set key=value` string as (the key's dotted path split into parts, the parsed
    value). **Raises:** `ConfigError` without `=` or with an empty key."""
    if "=" not in item:
        raise ConfigError(
            f"--set expects key=value (e.g. optimizer.learning_rate=0.3); got {item!r}."
        )
    key, _, value = item.partition("=")
    path = [p for p in key.strip().split(".") if p]
    if not path:
        raise ConfigError(f"--set has an empty key in {item!r}.")
    return path, parse_value(value.strip())


def set_path(config: dict, path: list[str], value: Any) -> None:
    """Set `config[path[0]][path[1]]... = value` in place, creating the tables on the way.
    **Raises:** `ConfigError` when a part of the path is not a table."""
    node = config
    for part in path[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"cannot set {'.'.join(path)}: {part!r} is not a table.")
        node = nxt
    node[path[-1]] = value


def read_toml(path: str | Path) -> dict:
    """A TOML file as a dict. **Raises:** `ConfigError` for a missing, unreadable or invalid
    file."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist.") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}.") from None
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err}.") from None


def merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write {type(value).__name__} value {value!r} to TOML.")


def to_toml(config: dict) -> str:
    """Write a (two-level) configuration as TOML. `None` values are left out."""
    lines = []
    tables = []
    for key, value in config.items():
        if value is None:
            continue
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")

    def emit(prefix, table):
        lines.append("")
        lines.append(f"[{prefix}]")
        sub = []
        for k, v in table.items():
            if v is None:
                continue
            if isinstance(v, dict):
                sub.append((f"{prefix}.{k}", v))
            else:
                lines.append(f"{k} = {_toml_value(v)}")
        for name, t in sub:
            emit(name, t)

    for key, table in tables:
        emit(key, table)
    return "\n".join(lines).lstrip("\n") + "\n"


# ------------------------------------------------------------------ validation


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _type_name(value) -> str:
    return "a boolean" if isinstance(value, bool) else f"{type(value).__name__} {value!r}"


def check_training(training: dict) -> dict:
    """Validate the `[training]` table; return it with `None` entries dropped."""
    if not isinstance(training, dict):
        raise ConfigError(f"[training] must be a table; got {_type_name(training)}.")
    unknown = sorted(set(training) - set(TRAINING_SCHEMA))
    if unknown:
        raise ConfigError(
            f"unknown key training.{unknown[0]}; accepted: {', '.join(TRAINING_SCHEMA)}."
        )
    out = {}
    for key, value in training.items():
        minimum, optional, _ = TRAINING_SCHEMA[key]
        if value is None and optional:
            continue
        if key in TRAINING_REAL_KEYS:
            real = isinstance(value, int | float) and not isinstance(value, bool)
            if not real or not math.isfinite(value) or value < minimum:
                raise ConfigError(
                    f"training.{key} must be a number >= {minimum}; got {_type_name(value)}."
                )
            out[key] = float(value)
            continue
        if not _is_int(value):
            raise ConfigError(
                f"training.{key} must be an integer >= {minimum}; got {_type_name(value)}."
            )
        if value < minimum:
            raise ConfigError(f"training.{key} must be an integer >= {minimum}; got {value}.")
        out[key] = value
    for key in ("n_iters", "batch_size", "log_every"):
        if key not in out:
            raise ConfigError(f"training.{key} is missing (an integer >= 1).")
    return out


def normalize(config: dict, *, where: str) -> dict:
    """One spelling of a user's table: `optimizer = "adam"` becomes `[optimizer] name`,
    a `[task]` table becomes `task_options`. Unknown top-level keys are errors."""
    if not isinstance(config, dict):
        raise ConfigError(f"{where} must be a table of settings; got {_type_name(config)}.")
    out = dict(config)
    if "model" in out:
        raise ConfigError(
            f"{where}: there is no [model] section: the network is the task's default model, "
            "configured through task options (e.g. task.n_neurons); accepted sections: "
            "[task], [optimizer], [training]."
        )
    if isinstance(out.get("optimizer"), str):
        out["optimizer"] = {"name": out["optimizer"]}
    if "optimizer" in out and not isinstance(out["optimizer"], dict):
        raise ConfigError(
            f"{where}: optimizer must be a name or a table; got {_type_name(out['optimizer'])}."
        )
    if isinstance(out.get("task"), dict):
        table = dict(out.pop("task"))
        name = table.pop("name", None)
        if name is not None:
            out["task"] = name
        out["task_options"] = merge(out.get("task_options", {}), table)
    unknown = sorted(set(out) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; accepted: task, size, seed and the "
            "tables [task], [optimizer], [training]."
        )
    for table in ("training", "task_options"):
        if table in out and not isinstance(out[table], dict):
            raise ConfigError(f"{where}: {table} must be a table; got {_type_name(out[table])}.")
    return out


def _check_seed(seed) -> int:
    if not _is_int(seed) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0; got {_type_name(seed)}.")
    return seed


def build_task(name, size: str, options: dict):
    """The task `name` at `size` with `options`, or a `ConfigError` naming a bad option."""
    from .. import tasks

    known = isinstance(name, str) and (name in tasks.available() or tasks._base._family(name))
    if not known:
        raise ConfigError(f"unknown task {name!r}; accepted: {', '.join(tasks.available())}.")
    if size not in tasks.SIZES:
        raise ConfigError(f"size must be one of {', '.join(tasks.SIZES)}; got {size!r}.")
    accepted = tasks.options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"task {name!r} has no option {unknown[0]!r}; accepted: {', '.join(accepted)}."
        )
    try:
        return tasks.get(name, size=size, **options)
    except (TypeError, ValueError, ImportError) as err:  # ImportError: an optional extra
        raise ConfigError(f"task {name!r}: {err}") from None


def user_settings(
    *,
    base: dict | None = None,
    file: str | Path | None = None,
    flags: dict | None = None,
    sets: tuple[str, ...] | list[str] = (),
) -> dict:
    """The settings a user gave (a saved config, a file, flags, `--set`), merged in that
    order and spelled one way (see `normalize`), without the task's defaults."""
    user: dict = {}
    if base:
        user = normalize(base, where="the saved run's config.toml")
    if file is not None:
        user = merge(user, normalize(read_toml(file), where=f"config file {file}"))
    if flags:
        user = merge(user, normalize(flags, where="the command line"))
    for item in sets:
        path, value = parse_assignment(item)
        if path[0] == "task" and len(path) > 1:  # --set task.plant=torque: a task option
            path = ["task_options", *path[1:]]
        one: dict = {}
        set_path(one, path, value)
        user = merge(user, normalize(one, where=f"--set {item}"))
    return user


def resolve_config(
    task_name: str | None,
    *,
    base: dict | None = None,
    file: str | Path | None = None,
    flags: dict | None = None,
    sets: tuple[str, ...] | list[str] = (),
) -> dict:
    """The complete, validated run configuration.

    Sources, later ones winning: the task's recommended hyperparameters < `base` (a saved
    run's config) < the TOML `file` < `flags` (a nested dict) < `sets` (`"key=value"`
    strings). Every key is checked (see the module docstring); the task is built to check
    its options. `build(config)` then builds the optimizer and the model.

    **Raises:** `ConfigError` naming the key and what is accepted.
    """
    from ..optim import TRAINING_KEYS, optimizer_names

    user = user_settings(base=base, file=file, flags=flags, sets=sets)
    name = task_name or user.get("task")
    if not name:
        raise ConfigError("no task given (as the TASK argument or `task = ...` in the config).")
    if user.get("task") not in (None, name):
        raise ConfigError(f"the config is for task {user['task']!r}, not {name!r}.")
    size = user.get("size", "cpu")
    seed = _check_seed(user.get("seed", 0))
    optimizer = dict(user.get("optimizer", {}))
    task_options = dict(user.get("task_options", {}))
    task = build_task(name, size, task_options)
    opt_name = optimizer.get("name", task.default_optimizer())
    if opt_name not in optimizer_names():
        raise ConfigError(
            f"unknown optimizer {opt_name!r}; accepted: {', '.join(optimizer_names())}."
        )
    misplaced = sorted(k for k in optimizer if k in TRAINING_KEYS)
    if misplaced:
        raise ConfigError(
            f"optimizer.{misplaced[0]} belongs in [training] (training.{misplaced[0]})."
        )
    try:
        hp = dict(task.hyperparameters(opt_name))
    except (KeyError, ValueError) as err:
        raise ConfigError(
            f"task {name!r} has no hyperparameters for optimizer {opt_name!r}: {err}"
        ) from None
    defaults = {
        "task": name,
        "size": size,
        "seed": seed,
        "optimizer": {"name": opt_name, **{k: v for k, v in hp.items() if k not in TRAINING_KEYS}},
        "training": {**TRAINING_DEFAULTS, **{k: v for k, v in hp.items() if k in TRAINING_KEYS}},
    }
    rest = {k: v for k, v in user.items() if k not in ("task", "task_options")}
    config = merge(defaults, rest)
    config["seed"] = seed
    config["task_options"] = task_options
    config["training"] = check_training(config["training"])
    return config


def build(config: dict):
    """(task, model, optimizer) from a resolved configuration.

    **Raises:** `ConfigError` when the optimizer rejects a hyperparameter or the task its
    options (the message names the key).
    """
    from .. import optim
    from ._seeds import run_keys

    task = build_task(config["task"], config.get("size", "cpu"), config.get("task_options", {}))
    opt_cfg = dict(config["optimizer"])
    name = opt_cfg.pop("name")
    try:
        optimizer = optim.from_config(name, n_iters=int(config["training"]["n_iters"]), **opt_cfg)
    except (TypeError, ValueError) as err:
        message = str(err)
        if not message.startswith("optimizer"):
            message = f"optimizer {name!r}: {message}"
        raise ConfigError(message) from None
    model = task.default_model(key=run_keys(config["seed"])["model"])
    return task, model, optimizer


def check_config(config: dict):
    """Build the task, model and optimizer of a resolved config and initialise the optimizer
    on the model (which checks, e.g., that K does not exceed the number of parameters);
    return `(task, model, optimizer)`.

    **Raises:** `ConfigError` naming the problem — before anything is written.
    """
    task, model, optimizer = build(config)
    trainable = model.trainable() if hasattr(model, "trainable") else None
    try:
        optimizer.init(model, trainable)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"optimizer {config['optimizer']['name']!r}: {err}") from None
    return task, model, optimizer


def differences(
    saved: dict, now: dict, *, ignore=(("training", "n_iters"),), only_now: bool = False
) -> list[str]:
    """Lines `key: the run has X, now Y` for every setting that differs between two configs
    (`only_now=True`: only the keys `now` sets — a user's overrides against a saved run)."""

    def flat(d, prefix=()):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from flat(v, (*prefix, k))
            elif v is not None:
                yield (*prefix, k), v

    a, b = dict(flat(saved)), dict(flat(now))
    out = []
    for key in sorted(set(b) if only_now else set(a) | set(b)):
        if key in ignore or a.get(key) == b.get(key):
            continue
        name = ".".join(key).replace("task_options.", "task.")
        was = repr(a[key]) if key in a else "(not set)"
        now_ = repr(b[key]) if key in b else "(not set)"
        out.append(f"{name}: the run has {was}, now {now_}")
    return out
