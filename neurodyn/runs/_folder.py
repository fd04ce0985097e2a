"""Run folders: what `neurodyn fit` may write into, replace, or resume.

A run folder is recognised by its `config.toml` or `run.json` (a comparison folder by its
`compare.json`) and holds only the entries in `RUN_ENTRIES`, run folders (a comparison's
runs) and the hidden temporary files of an interrupted atomic write. `--force`
never deletes anything: it moves a run folder aside to `OUT.replaced-YYYYmmdd-HHMMSS` and
says where; it refuses a folder that holds anything else, and the current folder or one of
its parents. Every check here runs before the first byte is written.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..config import ConfigError
from ..training import is_temp_file, remove_stale_temp_files

RUN_MARKERS = ("config.toml", "run.json", "compare.json")
RUN_ENTRIES = frozenset(
    {
        "config.toml",
        "run.json",
        "checkpoints",
        "history.nc",
        "trials.nc",
        "psth.nc",
        "trajectories.nc",
        "figures",
        "analysis",
        "compare.md",
        "compare.json",
    }
)


class RunFolderError(ConfigError):
    """An output folder that cannot be used as asked (the message says why and what to do)."""


def is_run_folder(path: str | os.PathLike) -> bool:
    """Whether `path` is a folder written by `neurodyn fit` (it holds config.toml or run.json)."""
    path = Path(path)
    return path.is_dir() and any((path / m).is_file() for m in RUN_MARKERS)


def foreign_entries(path: Path) -> list[str]:
    """Entries of a folder that no neurodyn run writes."""
    return sorted(
        p.name
        for p in path.iterdir()
        if p.name not in RUN_ENTRIES and not is_temp_file(p.name) and not is_run_folder(p)
    )


def _writable_ancestor(path: Path) -> None:
    """Raise unless `path` can be created: no file on the way, the nearest folder writable."""
    for parent in [path, *path.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise RunFolderError(
                    f"--out {path}: {parent} is a file, not a folder; choose another --out."
                )
            if not os.access(parent, os.W_OK | os.X_OK):
                raise RunFolderError(
                    f"--out {path}: cannot write in {parent} (permission denied); choose "
                    "another --out."
                )
            return


def check_out(out: str | os.PathLike, *, resume: bool = False, force: bool = False) -> Path:
    """Check that `out` may be used as asked, touching nothing; return it as a `Path`.

    - a new or empty folder: fine;
    - `resume=True`: `out` must be a run folder (its config is compared by the caller);
    - `force=True`: `out` must be a run folder holding only run files, and neither the
      current folder nor one of its parents;
    - otherwise a non-empty folder is an error.

    **Raises:** `RunFolderError` naming the folder and what to do.
    """
    out = Path(out)
    if resume and force:
        raise RunFolderError("--resume and --force exclude each other.")
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"--out {out} exists and is not a folder.")
    _writable_ancestor(out)
    nonempty = out.is_dir() and any(out.iterdir())
    if resume:
        if not is_run_folder(out):
            raise RunFolderError(f"--resume: {out} holds no run (no config.toml).")
        return out
    if not nonempty:
        return out
    if not force:
        raise RunFolderError(
            f"output folder {out} is not empty; pass --resume to continue that run or --force "
            "to replace it (the old run is moved aside, not deleted)."
        )
    cwd = Path.cwd().resolve()
    resolved = out.resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise RunFolderError(
            f"--force will not replace {out}: it is the current folder or one of its parents; "
            "choose a run folder below it."
        )
    if not is_run_folder(out):
        raise RunFolderError(
            f"--force replaces only a neurodyn run folder, and {out} holds no config.toml or "
            "run.json; choose an empty or new --out."
        )
    foreign = foreign_entries(out)
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise RunFolderError(
            f"--force will not replace {out}: besides the run it holds {shown}, which no "
            "neurodyn run writes; move them away or choose another --out."
        )
    return out


def prepare_out(
    out: str | os.PathLike, *, resume: bool = False, force: bool = False
) -> tuple[Path, Path | None]:
    """`check_out`, then create the folder; with `force`, move an existing run aside first.

    **Returns:** `(folder, replaced)`: `replaced` is where the old run was moved (None if
    nothing was moved).
    """
    out = check_out(out, resume=resume, force=force)
    replaced = None
    if force and out.is_dir() and any(out.iterdir()):
        stamp = time.strftime("%Y%m%d-%H%M%S")
        replaced = out.with_name(f"{out.name}.replaced-{stamp}")
        n = 1
        while replaced.exists():
            n += 1
            replaced = out.with_name(f"{out.name}.replaced-{stamp}-{n}")
        os.replace(out, replaced)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunFolderError(f"cannot create --out {out}: {err.strerror or err}.") from None
    remove_stale_temp_files(out)
    return out, replaced


def resume_config(out: str | os.PathLike, task: str, *, file=None, flags=None, sets=()) -> dict:
    """The validated configuration to resume the run in `out` with.

    `file`, `flags` and `sets` are the settings asked for now (a TOML file, flag overrides as
    a nested dict, `--set KEY=VALUE` strings; see [`neurodyn.config.resolve_config`][]).

    **Raises:** [`neurodyn.runs.RunFolderError`][] when `out` holds no run, when a setting
    differs from the saved run's (only `training.n_iters` may grow), when the run has no
    checkpoint yet, when fewer iterations than done are asked for, or when a non-constant
    learning-rate schedule would be stretched.
    """
    from ..config import check_config, differences, read_toml, resolve_config, user_settings
    from ..training import list_checkpoints, read_header

    out = check_out(out, resume=True)
    base = read_toml(out / "config.toml")
    saved = resolve_config(task, base=base)
    asked = user_settings(file=file, flags=flags or {}, sets=sets)
    diffs = differences(saved, asked, only_now=True)
    if diffs:
        raise RunFolderError(
            f"--resume: these settings differ from the run in {out}: "
            + "; ".join(diffs)
            + ". Resume with the run's own settings (only --iters may grow), or start a new "
            "run in another --out."
        )
    config = resolve_config(task, base=base, file=file, flags=flags or {}, sets=sets)
    check_config(config)
    ckpts = list_checkpoints(out / "checkpoints")
    if not ckpts:
        raise RunFolderError(
            f"--resume: {out / 'checkpoints'} holds no checkpoint (the run stopped before its "
            "first one); start it again with --force."
        )
    header, _ = read_header(ckpts[-1])
    done = header["iteration"]
    n_iters = config["training"]["n_iters"]
    if n_iters < done:
        raise RunFolderError(
            f"--resume: the run has done {done} iterations; --iters must be >= {done} "
            f"(got {n_iters})."
        )
    schedule = config["optimizer"].get("lr_schedule", "constant")
    if schedule != "constant" and n_iters != saved["training"]["n_iters"]:
        raise RunFolderError(
            f"--resume: the run's {schedule} learning-rate schedule spans its "
            f"{saved['training']['n_iters']} iterations; it cannot be extended to {n_iters}."
        )
    return config
