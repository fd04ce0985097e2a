"""`neurodyn compare`: several optimizers (and seeds) on one task, curves and a table.

A comparison folder holds `compare.md`, `compare.json`, `figures/` and one run folder per
optimizer and seed (`NAME-seedS/`)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np


def time_to_target(history, criterion) -> tuple[float, float]:
    """(iteration, wall-clock seconds) at which the success criterion is first met (∞ if not)."""
    if criterion is None:
        return math.inf, math.inf
    metric, threshold, direction = criterion
    name = f"eval_{metric}"
    if name not in history:
        return math.inf, math.inf
    values = np.asarray(history[name].values, float)
    ok = np.isfinite(values) & (
        (values <= threshold) if direction == "below" else (values >= threshold)
    )
    if not ok.any():
        return math.inf, math.inf
    i = int(np.argmax(ok))
    return float(history["iteration"].values[i]), float(history["wall_time"].values[i])


def run_compare(configs: dict[str, dict], n_seeds: int, out: Path, *, progress=True) -> dict:
    """Train every configuration with `n_seeds` seeds; write curves and a table into `out`."""
    from ..analysis import load, plot_learning_curves, save_figure
    from ..config import build
    from ._run import run_fit

    histories: dict[str, list] = {}
    rows = []
    criterion = None
    for name, config in configs.items():
        histories[name] = []
        for seed in range(n_seeds):
            cfg = {**config, "seed": int(config.get("seed", 0)) + seed}
            if cfg["training"].get("eval_every") is None:
                n = int(cfg["training"]["n_iters"])
                cfg["training"] = {**cfg["training"], "eval_every": max(1, n // 20)}
            run_dir = out / f"{name}-seed{cfg['seed']}"
            run_dir.mkdir(parents=True, exist_ok=True)
            summary = run_fit(cfg, run_dir, progress=progress, export=False)
            history = load(run_dir / "history.nc")
            histories[name].append(history)
            if criterion is None:
                task, _, _ = build(cfg)
                criterion = task.success_criterion()
            it, wall = time_to_target(history, criterion)
            rows.append(
                {
                    "optimizer": name,
                    "seed": cfg["seed"],
                    **summary["final_metrics"],
                    "final_loss": summary["final_loss"],
                    "train_seconds": summary["timings"]["train_seconds"],
                    "iterations_to_target": it,
                    "seconds_to_target": wall,
                }
            )
    outputs = {}
    for metric in ["loss"] + ([f"eval_{criterion[0]}"] if criterion else []):
        fig = plot_learning_curves(histories, metric=metric)
        fname = f"figures/curves_{metric}.png"
        save_figure(fig, out / fname)
        outputs[f"curves_{metric}"] = fname
    table = format_table(rows, criterion)
    (out / "compare.md").write_text(table + "\n")
    (out / "compare.json").write_text(
        json.dumps({"criterion": criterion, "runs": rows}, indent=2, default=str) + "\n"
    )
    outputs.update({"table": "compare.md", "runs": "compare.json"})
    return {"outputs": outputs, "table": table, "rows": rows}


def format_table(rows, criterion) -> str:
    metrics = sorted(
        {k for r in rows for k in r}
        - {"optimizer", "seed", "iterations_to_target", "seconds_to_target", "train_seconds"}
    )
    by_opt: dict[str, list] = {}
    for r in rows:
        by_opt.setdefault(r["optimizer"], []).append(r)
    target = (
        f"{criterion[0]} {'≤' if criterion[2] == 'below' else '≥'} {criterion[1]:g}"
        if criterion
        else "no success criterion"
    )
    head = ["optimizer", "seeds", *metrics, "train s", f"s to target ({target})"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, rs in by_opt.items():
        cells = [name, str(len(rs))]
        for m in metrics:
            vals = np.array([r.get(m, np.nan) for r in rs], float)
            cells.append(_mean_sd(vals))
        cells.append(_mean_sd(np.array([r["train_seconds"] for r in rs], float)))
        reached = [r["seconds_to_target"] for r in rs]
        finite = [v for v in reached if math.isfinite(v)]
        cells.append(
            f"{np.median(finite):.1f} ({len(finite)}/{len(rs)} reached)"
            if finite
            else f"∞ (0/{len(rs)} reached)"
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mean_sd(vals):
    vals = vals[np.isfinite(vals)]
    if not vals.size:
        return "–"
    if vals.size == 1:
        return f"{vals[0]:.4g}"
    return f"{vals.mean():.4g} ± {vals.std(ddof=1):.2g}"
