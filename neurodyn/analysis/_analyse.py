"""What `neurodyn analyse RUN` writes: fixed points, jPCA and dPCA of a trained run.

| analysis | data file | figure |
|---|---|---|
| `fixed_points` | `analysis/fixed_points.nc` | `figures/fixed_points.png` |
| `jpca` | `analysis/jpca.nc` | `figures/jpca.png` |
| `dpca` | `analysis/dpca.nc` | `figures/dpca.png` |

jPCA and dPCA run on the run's `psth.nc` when it exists (the trial averages per condition
that `neurodyn fit` wrote), else on `trials.nc` (each trial a condition when the task has
no conditions, as for the flip-flop), else on freshly simulated trials.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

from ._dpca import dpca, plot_dpca
from ._fixed_points import fixed_points, plot_fixed_points
from ._io import load, save
from ._jpca import jpca, plot_jpca
from ._plots import save_figure

ANALYSES: tuple[str, ...] = ("fixed_points", "jpca", "dpca")


def analyse_run(
    run_dir,
    analyses: Sequence[str] = ANALYSES,
    *,
    n_starts: int = 256,
    n_iters: int = 2000,
    n_pcs: int = 6,
    n_components: int = 3,
    seed: int | None = None,
) -> dict[str, str]:
    """Fixed points, jPCA and dPCA of a run folder's trained model, written into the folder.

    **Arguments:**

    - `run_dir`: a folder written by `neurodyn fit`.
    - `analyses`: any of `"fixed_points"`, `"jpca"`, `"dpca"`.
    - `n_starts`, `n_iters`: for [`neurodyn.analysis.fixed_points`][] (the starts come from
      32 fresh trials of the task, the input held at zero).
    - `n_pcs`: for [`neurodyn.analysis.jpca`][]; `n_components`: for
      [`neurodyn.analysis.dpca`][].
    - `seed`: the random seed (default: the run's), folded with 3 for the analyses' keys.

    **Returns:** a mapping name → path relative to `run_dir` (see the module docstring).

    **Raises:** `ValueError` for unknown analyses; `CheckpointError` for a run without
    checkpoints.

    **Example:** `analyse_run("runs/flipflop", ["fixed_points"], n_starts=512)`
    """
    import jax.random as jr

    from ._export import trained_run
    from ._simulate import simulate

    unknown = [a for a in analyses if a not in ANALYSES]
    if unknown or not analyses:
        raise ValueError(f"`analyses` must be among {ANALYSES}; got {list(analyses)}.")
    run_dir = Path(run_dir)
    config, task, model, _ = trained_run(run_dir)
    seed = int(config.get("seed", 0)) if seed is None else int(seed)
    key = jr.fold_in(jr.PRNGKey(seed), 3)
    k_fp, k_trials, k_sim = jr.split(key, 3)
    name = getattr(task, "name", "") or type(task).__name__
    outputs: dict[str, str] = {}

    trials = load(run_dir / "trials.nc") if (run_dir / "trials.nc").exists() else None
    if trials is None and ("jpca" in analyses or "dpca" in analyses):
        trials = simulate(model, task, key=k_sim)
    population = load(run_dir / "psth.nc") if (run_dir / "psth.nc").exists() else trials

    def write(label, ds, figure):
        save(ds, run_dir / "analysis" / f"{label}.nc")
        outputs[label] = f"analysis/{label}.nc"
        try:
            save_figure(figure(), run_dir / "figures" / f"{label}.png")
            outputs[f"{label}_figure"] = f"figures/{label}.png"
        except Exception as err:  # a figure must not lose the data file
            warnings.warn(f"figure {label!r} failed: {type(err).__name__}: {err}", stacklevel=3)

    if "fixed_points" in analyses:
        batch = task.sample(key=k_trials, batch_size=32)
        fp = fixed_points(model, batch, key=k_fp, n_starts=n_starts, n_iters=n_iters)
        rates = trials if trials is not None and "rates" in fp else None
        counts = (
            fp["stability"].to_series().value_counts().to_dict() if fp.sizes["fixed_point"] else {}
        )
        summary = ", ".join(f"{v} {k}" for k, v in counts.items()) or "none found"
        write(
            "fixed_points",
            fp,
            lambda: plot_fixed_points(
                fp, trials=rates, title=f"{name}: fixed points without input ({summary})"
            ),
        )
    if "jpca" in analyses:
        jp = jpca(population, n_pcs=n_pcs)
        write("jpca", jp, lambda: plot_jpca(jp))
    if "dpca" in analyses:
        dp = dpca(population, n_components=n_components)
        write("dpca", dp, lambda: plot_dpca(dp, title=f"{name}: dPCA"))
    return outputs
