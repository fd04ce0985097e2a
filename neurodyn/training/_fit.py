"""`nd.fit`: one training loop for every optimizer and every task."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import xarray as xr

from ..optim import SOFO, AbstractOptimizer
from ._checkpoint import (
    CheckpointError,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
    software_versions,
)


class FitError(RuntimeError):
    """Training stopped: the loss or update stayed non-finite after every retry."""


@dataclasses.dataclass
class FitResult:
    """What [`neurodyn.fit`][] returns.

    - `model`: the trained model.
    - `opt_state`: the optimizer state after the last step.
    - `history`: an `xarray.Dataset` over `iteration` (1-based) with `loss` (before the
      step), `finite` (whether the step was accepted), `retries`, `wall_time` (seconds since
      the start of training, measured at each log point and interpolated in between),
      the optimizer's diagnostics (e.g. `damping`, `top_eigenvalue` of the subspace GGN for
      SOFO, `grad_norm` for BPTT, `learning_rate`) and every evaluation metric as
      `eval_<name>` (NaN between evaluations).
    - `iterations`: the number of iterations completed.
    """

    model: Any
    opt_state: Any
    history: xr.Dataset
    iterations: int

    @property
    def final_metrics(self) -> dict[str, float]:
        """The last evaluation's metrics."""
        out = {}
        for name in self.history.data_vars:
            if name.startswith("eval_"):
                values = self.history[name].values
                finite = values[np.isfinite(values)]
                if finite.size:
                    out[name[5:]] = float(finite[-1])
        return out


def _key_data(key) -> np.ndarray:
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return np.asarray(jr.key_data(key))
    return np.asarray(key)


def _scalar_info(info: dict) -> dict:
    return {k: v for k, v in info.items() if jnp.ndim(v) == 0}


def _fingerprint(model, task, optimizer, batch_size, trainable) -> dict:
    from ..optim import count_params

    return {
        "task": getattr(task, "name", type(task).__name__),
        "task_repr": repr(task)[:2000],
        "model": type(model).__name__,
        "n_params": int(count_params(model, trainable)),
        "optimizer": repr(optimizer),
        "batch_size": int(batch_size),
    }


def _learning_rate(optimizer, count):
    """The learning rate in use, when the optimizer knows it (None otherwise)."""
    lr = getattr(optimizer, "learning_rate", None)
    if (
        lr is None
        or getattr(optimizer, "transform", None) is not None
        and not isinstance(lr, (int, float))
    ):
        return None
    return lr(count) if callable(lr) else lr


def make_train_step(task, optimizer, batch_size: int, trainable, max_retries: int, factor: float):
    """The jitted training step: sample, build the problem, step; retry on failure.

    Retries happen on the device (`lax.while_loop`): attempt r uses keys folded with r (a
    fresh batch, noise and tangents) and, for SOFO, damping × `factor`**r. The damping of
    a non-adaptive SOFO returns to its value before the retries once a step is accepted.
    """

    def attempt(model, opt_state, key, task, tries):
        k_batch, k_noise, k_step = jr.split(jr.fold_in(key, tries), 3)
        batch = task.sample(key=k_batch, batch_size=batch_size)
        problem = task.problem(model, batch, key=k_noise)
        state = opt_state
        if isinstance(optimizer, SOFO):
            scale = jnp.asarray(factor, opt_state.damping.dtype) ** tries
            state = opt_state._replace(damping=opt_state.damping * scale)
        new_model, new_state, info = optimizer.step(
            model, state, problem, key=k_step, trainable=trainable
        )
        if isinstance(optimizer, SOFO) and not optimizer.adaptive_damping:
            new_state = new_state._replace(damping=opt_state.damping)
        return new_model, new_state, _scalar_info(info)

    @eqx.filter_jit
    def train_step(model, opt_state, key, task):
        first = attempt(model, opt_state, key, task, jnp.asarray(0))
        # Only the arrays go through the loop: `lax.while_loop` would turn the model's plain
        # Python numbers (an arm's dt, a mass) into arrays, and the next call would recompile.
        dynamic, static = eqx.partition(first, eqx.is_array)

        def cond(carry):
            tries, (_, _, info) = carry
            return (~info["finite"]) & (tries <= max_retries)

        def body(carry):
            tries, _ = carry
            out = attempt(model, opt_state, key, task, tries)
            return tries + 1, eqx.filter(out, eqx.is_array)

        if max_retries > 0:
            tries, dynamic = jax.lax.while_loop(cond, body, (jnp.asarray(1), dynamic))
            new_model, new_state, info = eqx.combine(dynamic, static)
            info = {**info, "retries": tries - 1}
        else:
            new_model, new_state, info = first
            info = {**info, "retries": jnp.asarray(0)}
        lr = _learning_rate(optimizer, getattr(new_state, "count", 0))
        if lr is not None:
            info["learning_rate"] = jnp.asarray(lr, jnp.float32)
        return new_model, new_state, info

    return train_step


def fit(
    model,
    task,
    optimizer: AbstractOptimizer | None = None,
    *,
    n_iters: int,
    batch_size: int,
    key,
    eval_every: int | None = None,
    eval_trials: int | None = None,
    log_every: int = 10,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    keep_checkpoints: int = 2,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[Callable] = (),
    max_retries: int = 5,
    retry_damping_factor: float = 10.0,
    zero_gradient_patience: int | None = 50,
    config: dict | None = None,
) -> FitResult:
    """Train `model` on `task` with `optimizer`.

    Every iteration draws a fresh batch, noise and (for SOFO-like optimizers) tangents from
    keys folded from `key` and the iteration number, so the same seed gives the same run and
    a resumed run continues exactly where the interrupted one would have gone.

    **Arguments:**

    - `model`: the network (or closed loop); `model.trainable()` says what is trained.
    - `task`: a [`neurodyn.tasks.AbstractTask`][].
    - `optimizer`: any neurodyn optimizer; default SOFO with the task's recommended
      hyperparameters.
    - `n_iters`, `batch_size`: number of iterations (total, counting resumed ones) and
      trials per batch.
    - `key`: a JAX PRNG key.
    - `eval_every`: run `task.evaluate` every this many iterations (and at the end);
      `None` evaluates only at the end; `0` never.
    - `log_every`: bring losses to the host (progress bar, callbacks) every this many steps.
    - `checkpoint_dir`, `checkpoint_every`: write a checkpoint every this many iterations
      (and at the end) into `checkpoint_dir`; `resume=True` continues from its newest one.
    - `progress`: show a tqdm progress bar.
    - `callbacks`: functions `callback(iteration, records, model)` called at each log
      point with the list of per-iteration records since the previous one.
    - `max_retries`, `retry_damping_factor`: a step with a non-finite loss or update is
      rejected (parameters untouched) and retried with fresh keys and, for SOFO, the damping
      multiplied by the factor per retry; after `max_retries` failures training stops with
      a `FitError`.
    - `zero_gradient_patience`: stop with a `FitError` after this many consecutive accepted
      steps whose gradient (SOFO: its projection Vᵀg; BPTT: ∇L) is exactly zero, i.e. the
      loss no longer depends on the parameters and no optimizer can move them again: a
      network whose units are all silent, or whose outputs sit where the read-out map passes
      no gradient (the muscle arm's `tanh(relu(z))` for every muscle: z ≤ 0, or z ≳ 8 where
      float32's tanh is exactly 1). `None` never stops.
    - `config`: a JSON-able description of the run, stored in checkpoints.

    **Returns:** a [`neurodyn.training.FitResult`][].

    **Raises:** `FitError`; `CheckpointError` for a corrupt or mismatched checkpoint.
    """
    from tqdm.auto import tqdm

    _check_int(n_iters, "n_iters", 0)
    _check_int(batch_size, "batch_size", 1)
    _check_int(log_every, "log_every", 1)
    if checkpoint_every is not None:
        _check_int(checkpoint_every, "checkpoint_every", 1)
        if checkpoint_dir is None:
            raise ValueError("`checkpoint_every` needs a `checkpoint_dir`.")
    if resume and checkpoint_dir is None:
        raise ValueError("`resume=True` needs the `checkpoint_dir` of the run to resume.")
    if zero_gradient_patience is not None:
        _check_int(zero_gradient_patience, "zero_gradient_patience", 1)
    if optimizer is None:
        from ..optim import from_config

        optimizer = from_config("sofo", **{**task.hyperparameters("sofo"), "n_iters": n_iters})
    if not isinstance(optimizer, AbstractOptimizer):
        raise TypeError(
            f"`optimizer` must be a neurodyn optimizer (nd.optim.*); got {type(optimizer)}."
        )
    trainable = model.trainable() if hasattr(model, "trainable") else None
    opt_state = optimizer.init(model, trainable)
    base_key_data = _key_data(key)
    fingerprint = _fingerprint(model, task, optimizer, batch_size, trainable)
    config = {**(config or {}), "fingerprint": fingerprint}

    records: list[dict] = []
    evals: dict[str, dict[int, float]] = {}
    wall_points: list[tuple[int, float]] = []
    start_iter = 0
    elapsed_before = 0.0
    if resume:
        ckpts = list_checkpoints(checkpoint_dir)
        if ckpts:
            header, hist, (model, opt_state, saved_key) = load_checkpoint(
                ckpts[-1], (model, opt_state, base_key_data)
            )
            _check_resume(header, fingerprint, base_key_data, saved_key, ckpts[-1])
            start_iter = header["iteration"]
            records = hist["records"]
            evals = {k: {int(i): v for i, v in d.items()} for k, d in hist["evals"].items()}
            wall_points = [tuple(p) for p in hist["wall_points"]]
            elapsed_before = wall_points[-1][1] if wall_points else 0.0

    train_step = make_train_step(
        task, optimizer, batch_size, trainable, max_retries, retry_damping_factor
    )
    eval_key = jr.fold_in(key, 2**31 - 1)

    def evaluate(it):
        metrics = task.evaluate(model, key=jr.fold_in(eval_key, it), n_trials=eval_trials)
        for name, value in metrics.items():
            evals.setdefault(name, {})[it] = float(value)
        return metrics

    def history_dict():
        return {
            "records": records,
            "evals": {k: {str(i): v for i, v in d.items()} for k, d in evals.items()},
            "wall_points": wall_points,
        }

    def checkpoint(it):
        save_checkpoint(
            checkpoint_dir,
            it,
            (model, opt_state, base_key_data),
            history=history_dict(),
            config=config,
            keep=keep_checkpoints,
        )

    bar = tqdm(
        total=n_iters,
        initial=start_iter,
        disable=not progress,
        desc=fingerprint["task"],
        dynamic_ncols=True,
    )
    t0 = time.perf_counter() - elapsed_before
    pending: list[tuple[int, dict]] = []
    zero_run = 0  # consecutive accepted steps with an exactly zero gradient
    try:
        for it in range(start_iter + 1, n_iters + 1):
            model, opt_state, info = train_step(model, opt_state, jr.fold_in(key, it), task)
            pending.append((it, info))
            at_eval = bool(eval_every) and it % eval_every == 0 and it != n_iters
            at_ckpt = checkpoint_every is not None and it % checkpoint_every == 0
            first = it == start_iter + 1  # includes compilation: logged on its own
            if len(pending) >= log_every or it == n_iters or at_eval or at_ckpt or first:
                host = jax.device_get([i for _, i in pending])
                now = time.perf_counter() - t0
                wall_points.append((it, now))
                new_records = []
                for (i, _), h in zip(pending, host):
                    rec = {"iteration": i, **{k: _to_py(v) for k, v in h.items()}}
                    new_records.append(rec)
                records.extend(new_records)
                pending = []
                last = new_records[-1]
                bar.set_postfix(loss=f"{last['loss']:.4g}", refresh=False)
                bar.update(len(new_records))
                for cb in callbacks:
                    cb(it, new_records, model)
                failed = [r for r in new_records if not r["finite"]]
                for r in new_records:
                    norm = r.get("vg_norm", r.get("grad_norm"))
                    dead = r["finite"] and norm == 0.0 and r["loss"] > 0
                    zero_run = zero_run + 1 if dead else 0
                    if zero_gradient_patience is not None and zero_run >= zero_gradient_patience:
                        raise FitError(
                            f"iteration {r['iteration']}: the gradient has been exactly zero "
                            f"for {zero_run} iterations (loss {r['loss']:.4g}): the loss no "
                            "longer depends on the parameters, so no optimizer can move them "
                            "again. The network's units are all silent, or its outputs sit "
                            "where the read-out map passes no gradient (the muscle arm's "
                            "excitation tanh(relu(z)) at z <= 0, or z > 8 where float32's tanh "
                            "is exactly 1, for every muscle). Restart from an earlier "
                            "checkpoint or from scratch with a smaller learning rate, more "
                            "damping or less momentum."
                        )
                if failed:
                    r = failed[0]
                    raise FitError(
                        f"iteration {r['iteration']}: the loss or update was not finite after "
                        f"{max_retries} retries (loss = {r['loss']}); parameters were left at "
                        "their last finite values. Lower the learning rate, raise the damping, "
                        "or check the task's inputs."
                    )
            if at_eval:
                metrics = evaluate(it)
                bar.set_postfix(
                    {k: f"{v:.4g}" for k, v in list(metrics.items())[:3]}, refresh=False
                )
            if at_ckpt:
                checkpoint(it)
        if eval_every != 0 and (n_iters > start_iter or not evals):
            evaluate(n_iters)
        if checkpoint_dir is not None and (
            n_iters > start_iter and (checkpoint_every is None or n_iters % checkpoint_every)
        ):
            checkpoint(n_iters)
    finally:
        bar.close()
    history = build_history(records, evals, wall_points)
    history.attrs.update(
        {
            "task": fingerprint["task"],
            "optimizer": fingerprint["optimizer"],
            "n_params": fingerprint["n_params"],
            "batch_size": batch_size,
            "versions": str(software_versions()),
        }
    )
    return FitResult(model, opt_state, history, n_iters)


def _to_py(v):
    v = np.asarray(v)
    if v.dtype == bool:
        return bool(v)
    if np.issubdtype(v.dtype, np.integer):
        return int(v)
    return float(v)


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an int; got {value!r}.")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}; got {value}.")


def _check_resume(header, fingerprint, key_data, saved_key, path):
    saved = header["config"].get("fingerprint", {})
    diffs = [
        f"{k}: checkpoint {saved.get(k)!r} vs now {fingerprint[k]!r}"
        for k in fingerprint
        if k != "task_repr" and saved.get(k) != fingerprint[k]
    ]
    if diffs:
        raise CheckpointError(
            f"{path} belongs to a different run configuration:\n  " + "\n  ".join(diffs)
        )
    if not np.array_equal(np.asarray(saved_key), key_data):
        raise CheckpointError(
            f"{path} was written with a different seed (PRNG key); resume with the same seed."
        )


_DESCRIPTIONS = {
    "loss": ("training loss before the step", "1"),
    "finite": ("step accepted (loss and update finite)", "1"),
    "retries": ("rejected attempts before this step", "1"),
    "wall_time": ("wall-clock time since the start of training", "s"),
    "damping": ("damping lambda", "1"),
    "gamma": ("damping added to the subspace GGN (gamma)", "1"),
    "top_eigenvalue": ("largest eigenvalue of the subspace GGN", "1"),
    "learning_rate": ("learning rate", "1"),
    "grad_norm": ("norm of the exact gradient", "1"),
    "vg_norm": ("norm of the projected gradient V^T g", "1"),
    "lm_ratio": ("Levenberg-Marquardt ratio actual/predicted decrease", "1"),
    "predicted_decrease": ("decrease predicted by the quadratic model", "1"),
}


def build_history(records, evals, wall_points) -> xr.Dataset:
    """Assemble the per-iteration records and evaluations into an `xarray.Dataset`."""
    iterations = np.array([r["iteration"] for r in records], dtype=np.int64)
    data = {}
    names = sorted({k for r in records for k in r} - {"iteration"})
    for name in names:
        values = [r.get(name, math.nan) for r in records]
        arr = np.asarray(values)
        if arr.dtype == object:
            arr = arr.astype(float)
        long_name, units = _DESCRIPTIONS.get(name, (name.replace("_", " "), "1"))
        data[name] = ("iteration", arr, {"long_name": long_name, "units": units})
    if len(wall_points) and len(iterations):
        wp = np.asarray(wall_points, dtype=float)
        wall = np.interp(
            iterations,
            np.concatenate([[iterations[0] - 1], wp[:, 0]]),
            np.concatenate([[0.0], wp[:, 1]]),
        )
        data["wall_time"] = (
            "iteration",
            wall,
            {"long_name": _DESCRIPTIONS["wall_time"][0], "units": "s"},
        )
    index = {int(i): n for n, i in enumerate(iterations)}
    for name, points in evals.items():
        arr = np.full(len(iterations), np.nan)
        for i, v in points.items():
            if i in index:
                arr[index[i]] = v
        data[f"eval_{name}"] = (
            "iteration",
            arr,
            {"long_name": f"evaluation: {name}", "units": "1"},
        )
    return xr.Dataset(
        data,
        coords={"iteration": ("iteration", iterations, {"long_name": "iteration", "units": "1"})},
    )
