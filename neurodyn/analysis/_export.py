"""What `neurodyn fit` / `neurodyn export` write next to the checkpoints."""

from __future__ import annotations

from pathlib import Path

from ._plots import plot_learning_curves, save_figure


def export_run(out, model, task, *, key, history=None, n_trials=None) -> dict[str, str]:
    """Write the analysis outputs of a trained model into the run folder `out`.

    Returns a mapping name → path relative to `out`.
    """
    out = Path(out)
    outputs = {}
    if history is not None:
        fig = plot_learning_curves(history, title=getattr(task, "name", ""))
        save_figure(fig, out / "figures" / "learning_curve.png")
        outputs["learning_curve"] = "figures/learning_curve.png"
    return outputs


def export_from_run(run_dir, *, n_trials=None) -> dict[str, str]:
    """Rebuild the analysis outputs of a run folder from its config and last checkpoint."""
    import jax.random as jr

    from .._config import read_toml
    from ..cli import build
    from ..training import CheckpointError, list_checkpoints, load_checkpoint
    from ._io import load

    run_dir = Path(run_dir)
    config = read_toml(run_dir / "config.toml")
    task, model, optimizer = build(config)
    ckpts = list_checkpoints(run_dir / "checkpoints")
    if not ckpts:
        raise CheckpointError(f"{run_dir / 'checkpoints'} holds no checkpoint to export from.")
    opt_state = optimizer.init(model, model.trainable() if hasattr(model, "trainable") else None)
    import numpy as np

    key_data = np.zeros((2,), np.uint32)
    _, _, (model, _, _) = load_checkpoint(ckpts[-1], (model, opt_state, key_data))
    history = load(run_dir / "history.nc") if (run_dir / "history.nc").exists() else None
    key = jr.fold_in(jr.PRNGKey(int(config.get("seed", 0))), 2)
    return export_run(run_dir, model, task, key=key, history=history, n_trials=n_trials)
