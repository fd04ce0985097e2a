"""Run configurations: defaults from the task, a TOML file, flags and `--set key=value`."""

from __future__ import annotations

import copy
import math
import tomllib
from pathlib import Path
from typing import Any

SECTIONS = ("optimizer", "training", "task", "model")
TRAINING_DEFAULTS = {
    "n_iters": 100,
    "batch_size": 32,
    "eval_every": None,
    "log_every": 10,
    "checkpoint_every": None,
}


class ConfigError(ValueError):
    """A configuration a user wrote that cannot be used (the message says why)."""


def parse_value(text: str) -> Any:
    """Parse a `--set` value as a TOML literal (number, bool, string, list), else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_assignment(item: str) -> tuple[list[str], Any]:
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
    node = config
    for part in path[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"cannot set {'.'.join(path)}: {part!r} is not a table.")
        node = nxt
    node[path[-1]] = value


def read_toml(path: str | Path) -> dict:
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
