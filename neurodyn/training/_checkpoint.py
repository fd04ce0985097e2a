"""Checkpoints: atomic, self-describing files that resume a run bit for bit.

File layout: one JSON header line, then the history as JSON bytes, then the
`eqx.tree_serialise_leaves` bytes of `(model, optimizer state, key data)`. The header records
the format version, the software versions, the iteration, the run configuration, the byte
lengths and a SHA-256 of the rest of the header and everything after it, so a truncated,
corrupted or edited file is recognised and named, never silently loaded. Files are written to
a temporary name, fsynced and renamed (`os.replace`), so a crash mid-write leaves the previous
checkpoint intact.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np

FORMAT = "neurodyn-checkpoint"
FORMAT_VERSION = 2
"""Version 2: the SHA-256 covers the header (all but its `sha256` field) and the payload;
version 1 (read too) covered the payload only."""
READABLE_VERSIONS = (1, 2)
_NAME = re.compile(r"^ckpt_(\d{8})\.eqx$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: corrupt, truncated or from another configuration."""


def software_versions() -> dict[str, str]:
    """Versions of neurodyn, JAX, jaxlib, Equinox and Optax (recorded in checkpoints, run
    folders and exported datasets)."""
    import equinox
    import jaxlib
    import optax

    from .._version import __version__

    return {
        "neurodyn": __version__,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "equinox": equinox.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
    }


def checkpoint_path(directory: str | os.PathLike, iteration: int) -> Path:
    return Path(directory) / f"ckpt_{iteration:08d}.eqx"


def list_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Checkpoint files in `directory`, oldest first (temporary files are ignored)."""
    d = Path(directory)
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if _NAME.match(p.name))


_TEMP = re.compile(r"^\..+\.tmp-\d+$")


def is_temp_file(name: str) -> bool:
    """Whether `name` is the temporary name of an atomic write (`.NAME.tmp-PID`)."""
    return bool(_TEMP.match(name))


def remove_stale_temp_files(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files an interrupted atomic write left in `directory` (one
    process writes a run folder, so any such file is stale); return them."""
    d = Path(directory)
    if not d.is_dir():
        return []
    stale = [p for p in d.iterdir() if p.is_file() and is_temp_file(p.name)]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically: temp file in the same folder, fsync, rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


def save_checkpoint(
    directory: str | os.PathLike,
    iteration: int,
    tree: Any,
    *,
    history: dict,
    config: dict,
    keep: int = 2,
) -> Path:
    """Write `tree` (model, optimizer state, key data) and the history at `iteration`.

    Older checkpoints beyond the newest `keep` are removed only after the new file is safely
    in place, so a good checkpoint always exists.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, tree)
    state_bytes = buf.getvalue()
    history_bytes = json.dumps(history, allow_nan=True).encode()
    payload = history_bytes + state_bytes
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "iteration": int(iteration),
        "versions": software_versions(),
        "config": config,
        "history_bytes": len(history_bytes),
        "state_bytes": len(state_bytes),
    }
    header["sha256"] = _digest(header, payload)
    data = json.dumps(header).encode() + b"\n" + payload
    path = checkpoint_path(directory, iteration)
    atomic_write_bytes(path, data)
    existing = list_checkpoints(directory)
    for old in existing[: max(0, len(existing) - max(keep, 1))]:
        if old != path:
            old.unlink(missing_ok=True)
    return path


def _digest(header: dict, payload: bytes) -> str:
    """SHA-256 of the header (without its `sha256` field, keys sorted) and the payload."""
    fields = {k: v for k, v in header.items() if k != "sha256"}
    text = json.dumps(fields, sort_keys=True, allow_nan=True).encode()
    return hashlib.sha256(text + b"\n" + payload).hexdigest()


def read_header(path: str | os.PathLike) -> tuple[dict, bytes]:
    """Parse and verify a checkpoint; return (header, payload). Raises `CheckpointError`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {err}") from None
    line, sep, payload = raw.partition(b"\n")
    try:
        header = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        header = None
    if not sep or not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a neurodyn checkpoint (bad header).")
    version = header.get("format_version")
    if version not in READABLE_VERSIONS:
        raise CheckpointError(
            f"{path} has checkpoint format version {version}; this neurodyn reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}."
        )
    try:
        expected = int(header["history_bytes"]) + int(header["state_bytes"])
        iteration = header["iteration"]
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{path} is not a neurodyn checkpoint (bad header).") from None
    if not isinstance(iteration, int) or isinstance(iteration, bool) or iteration < 0:
        raise CheckpointError(f"{path} is corrupt: bad iteration {iteration!r} in its header.")
    if len(payload) != expected:
        raise CheckpointError(
            f"{path} is truncated: {len(payload)} bytes of data where the header announces "
            f"{expected}."
        )
    digest = _digest(header, payload) if version >= 2 else hashlib.sha256(payload).hexdigest()
    if digest != header.get("sha256"):
        raise CheckpointError(
            f"{path} is corrupt: its SHA-256 does not match its contents (header or data "
            "changed after it was written)."
        )
    return header, payload


def load_checkpoint(path: str | os.PathLike, like: Any) -> tuple[dict, dict, Any]:
    """Load a checkpoint into the structure of `like`; return (header, history, tree)."""
    header, payload = read_header(path)
    n_hist = header["history_bytes"]
    history = json.loads(payload[:n_hist])
    try:
        tree = eqx.tree_deserialise_leaves(io.BytesIO(payload[n_hist:]), like)
    except Exception as err:
        raise CheckpointError(
            f"{path} does not match this run's model/optimizer (different sizes or "
            f"structure?): {type(err).__name__}: {err}"
        ) from None
    return header, history, tree
