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

from .._validation import check_real, check_size
from ..optim import AbstractOptimizer, batch_mean, step_sharding
from ._checkpoint import (
    CheckpointError,
    list_checkpoints,
    load_checkpoint,
    remove_stale_temp_files,
    save_checkpoint,
    software_versions,
)
from ._sharding import (
    check_layout,
    constrain_batch,
    default_devices,
    local_copy,
    make_mesh,
    replicate,
)


class FitError(RuntimeError):
    """Training stopped: every retry of a step failed (non-finite, or a catastrophic
    increase of the loss or the parameters), or the gradient stayed exactly zero.

    Attributes, for a record of the failed run: `iteration` (the failed iteration),
    `history` (an `xarray.Dataset` of the iterations done, or None), `model` and
    `opt_state` (the last accepted ones).
    """

    iteration: int | None = None
    history: xr.Dataset | None = None
    model: Any = None
    opt_state: Any = None


@dataclasses.dataclass
class FitResult:
    """What [`neurodyn.fit`][] returns.

    - `model`: the trained model.
    - `opt_state`: the optimizer state after the last step.
    - `history`: an `xarray.Dataset` over `iteration` (1-based) with `loss` (before the
      step), `finite` (whether the step was accepted), `retries`, `wall_time` (seconds of
      training since the start — evaluations, checkpoint writes and callbacks excluded —
      measured at each log point and interpolated in between),
      the optimizer's diagnostics (e.g. `damping`, `top_eigenvalue` of the subspace GGN for
      SOFO, `grad_norm` for BPTT, `learning_rate`) and every evaluation metric as
      `eval_<name>` (NaN between evaluations).
    - `iterations`: the number of iterations completed (fewer than `n_iters` when a
      callback or the time budget stopped training; `stopped` says why).
    - `stopped`: None, or why training stopped early (`"callback"`, `"time_budget"`).
    """

    model: Any
    opt_state: Any
    history: xr.Dataset
    iterations: int
    stopped: str | None = None

    @property
    def final_metrics(self) -> dict[str, float]:
        """The last evaluation's metrics, NaN included (a NaN metric is a finding, not a
        value to skip)."""
        return final_metrics(self.history)


def final_metrics(history: xr.Dataset) -> dict[str, float]:
    """The metrics of the last evaluation recorded in a history (NaN included)."""
    last = history.attrs.get("last_evaluation")
    out = {}
    for name in history.data_vars:
        if not name.startswith("eval_"):
            continue
        values = history[name].values
        if last is not None and int(last) in history["iteration"].values:
            i = int(np.flatnonzero(history["iteration"].values == int(last))[0])
            out[name[5:]] = float(values[i])
        else:  # a history without the attribute (written by an older neurodyn)
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


def _tree_norm(tree) -> jax.Array:
    leaves = jax.tree.leaves(eqx.filter(tree, eqx.is_inexact_array))
    if not leaves:
        return jnp.zeros(())
    return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in leaves))


LOSS_SPIKE_WINDOW = 64
"""How many recent accepted losses `max_loss_spike` takes the median of."""

LOSS_SPIKE_WARMUP = 16
"""Accepted steps before `max_loss_spike` starts rejecting batches."""

AUTO_LOSS_INCREASE = 10.0
"""The factor `max_loss_increase="auto"` uses for the optimizers whose step is much dearer
than a forward pass (SOFO, first-order SOFO, FGD)."""


def make_train_step(
    task,
    optimizer,
    batch_size: int,
    trainable,
    max_retries: int,
    factor: float,
    max_loss_increase: float | None = None,
    max_norm_growth: float | None = None,
    mesh=None,
    reduction: str = "once",
    max_loss_spike: float | None = None,
):
    """The jitted training step: sample, build the problem, step; retry on failure.

    A step fails when its loss or update is not finite, or (when set) when it raises the
    loss on its own batch above `max_loss_increase` × the loss before it (one extra forward
    pass), or grows the norm of the trained parameters beyond `max_norm_growth` ×
    max(norm before, 1), or (when `max_loss_spike` is set, and not on the last retry) when
    its batch's loss before the step is above `max_loss_spike` × the median of the recent
    accepted losses. A failed step leaves the parameters untouched. Retries happen on
    the device (`lax.while_loop`): attempt r uses keys folded with r (a fresh batch, noise
    and tangents) and the state `optimizer.retry_state(state, factor**r)` (SOFO: the damping
    × factor**r); `optimizer.accepted_state` decides what is kept once a step is accepted.

    With `max_loss_spike`, the step takes and returns one more array, `recent`: the losses
    of the last `LOSS_SPIKE_WINDOW` accepted steps, oldest first, NaN where there are fewer
    (`recent_losses`); the guard acts once `LOSS_SPIKE_WARMUP` of them are known.

    With a `mesh` (see `neurodyn.training._sharding.make_mesh`) the batch and the problem's
    batch-first arrays are laid out over its `"batch"` axis and the tangents over its
    `"tangents"` axis; the values are those of the single-device step.
    """
    from ..optim import split_trainable

    if max_loss_increase == "auto":
        max_loss_increase = AUTO_LOSS_INCREASE if optimizer.cheap_loss_check else None
    guard_loss = max_loss_increase is not None and optimizer.guards_steps
    guard_norm = max_norm_growth is not None
    guard_spike = max_loss_spike is not None

    def trained_norm(model):
        dynamic, _, _ = split_trainable(model, trainable)
        return _tree_norm(dynamic)

    def attempt(model, opt_state, key, task, tries, recent):
        k_batch, k_noise, k_step = jr.split(jr.fold_in(key, tries), 3)
        batch = task.sample(key=k_batch, batch_size=batch_size)
        if mesh is not None:
            batch = constrain_batch(batch, mesh, batch_size)
        problem = task.problem(model, batch, key=k_noise)
        if mesh is not None:
            problem = constrain_batch(problem, mesh, batch_size)
        check_outputs_match_targets(model, problem)  # trace time only: no cost per step
        scale = jnp.asarray(factor, jnp.float32) ** tries
        state = optimizer.retry_state(opt_state, scale)
        new_model, new_state, info = optimizer.step(
            model, state, problem, key=k_step, trainable=trainable
        )
        info = _scalar_info(info)
        ok = info["finite"]
        loss_up = norm_up = jnp.asarray(False)
        if guard_loss:
            loss = info["loss"]
            after = batch_mean(lambda prob, m: prob.value(m), problem, new_model)
            limit = loss + (max_loss_increase - 1.0) * jnp.abs(loss)
            loss_up = ok & ~(after <= limit)
            info["loss_after_step"] = jnp.where(ok, after, jnp.nan)
        if guard_norm:
            before = trained_norm(model)
            grown = trained_norm(new_model) <= max_norm_growth * jnp.maximum(before, 1.0)
            norm_up = ok & ~grown
        blowup = loss_up | norm_up
        info["loss_blowup"], info["norm_blowup"] = loss_up, norm_up
        if guard_spike:
            known = jnp.sum(jnp.isfinite(recent))
            median = jnp.nanmedian(recent)
            # the last retry is taken whatever its loss: six outlier batches in a row mean
            # the parameters, not the batch, are the cause (or the loss level has moved)
            outlier = ok & (known >= LOSS_SPIKE_WARMUP) & ~(info["loss"] <= max_loss_spike * median)
            spike = outlier & (tries < max_retries)
            blowup = blowup | spike
            # in an accepted step's record: an outlier batch taken once the retries ran out
            info["loss_spike"] = outlier
            info["recent_loss_median"] = jnp.where(known > 0, median, jnp.nan)
        if guard_loss or guard_norm or guard_spike:
            new_model, new_state = tree_select_eqx(
                blowup, (model, opt_state), (new_model, new_state)
            )
            info["finite"] = ok & ~blowup
        info["blowup"] = blowup
        new_state = optimizer.accepted_state(opt_state, new_state)
        return new_model, new_state, info

    @eqx.filter_jit
    def train_step(model, opt_state, key, task, recent=None):
        if guard_spike and recent is None:
            raise TypeError("with `max_loss_spike`, the step needs the `recent` losses.")
        with step_sharding(mesh, batch_size, reduction):
            out = _train_step(model, opt_state, key, task, recent)
        if not guard_spike:
            return out
        info = out[2]
        pushed = jnp.concatenate([recent[1:], info["loss"][None].astype(recent.dtype)])
        return (*out, jnp.where(info["finite"], pushed, recent))

    def _train_step(model, opt_state, key, task, recent):
        first = attempt(model, opt_state, key, task, jnp.asarray(0), recent)
        # Only the arrays go through the loop: `lax.while_loop` would turn the model's plain
        # Python numbers (an arm's dt, a mass) into arrays, and the next call would recompile.
        dynamic, static = eqx.partition(first, eqx.is_array)
        blowups0 = first[2]["blowup"].astype(jnp.int32)

        def cond(carry):
            tries, _, (_, _, info) = carry
            return (~info["finite"]) & (tries <= max_retries)

        def body(carry):
            tries, blowups, _ = carry
            out = attempt(model, opt_state, key, task, tries, recent)
            blowups = blowups + out[2]["blowup"].astype(jnp.int32)
            return tries + 1, blowups, eqx.filter(out, eqx.is_array)

        if max_retries > 0:
            tries, blowups, dynamic = jax.lax.while_loop(
                cond, body, (jnp.asarray(1), blowups0, dynamic)
            )
            new_model, new_state, info = eqx.combine(dynamic, static)
            info = {**info, "retries": tries - 1, "rejected_blowups": blowups}
        else:
            new_model, new_state, info = first
            info = {**info, "retries": jnp.asarray(0), "rejected_blowups": blowups0}
        lr = optimizer.learning_rate_at(opt_state)
        if lr is not None:
            info["learning_rate"] = jnp.asarray(lr, jnp.float32)
        return new_model, new_state, info

    return train_step


def recent_losses(records: Sequence[dict] = ()) -> jax.Array:
    """The `recent` array of `max_loss_spike` (see `make_train_step`): the losses of the last
    `LOSS_SPIKE_WINDOW` accepted steps among `records` (a history's per-iteration records),
    oldest first, NaN-padded in front. Rebuilding it from the records makes a resumed run
    take the same decisions as an uninterrupted one."""
    accepted = [r["loss"] for r in records if r.get("finite")][-LOSS_SPIKE_WINDOW:]
    out = np.full(LOSS_SPIKE_WINDOW, np.nan, np.float32)
    if accepted:
        out[-len(accepted) :] = np.asarray(accepted, np.float32)
    return jnp.asarray(out)


def tree_select_eqx(pred, on_true, on_false):
    """`where(pred, a, b)` over the array leaves of two pytrees of the same structure (other
    leaves taken from `on_false`)."""
    dyn_t, _ = eqx.partition(on_true, eqx.is_array)
    dyn_f, static = eqx.partition(on_false, eqx.is_array)
    chosen = jax.tree.map(lambda a, b: jnp.where(pred, a, b), dyn_t, dyn_f)
    return eqx.combine(chosen, static)


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
    time_budget: float | None = None,
    max_retries: int = 5,
    retry_damping_factor: float = 10.0,
    max_loss_increase: float | str | None = "auto",
    max_norm_growth: float | None = 10.0,
    max_loss_spike: float | None = None,
    zero_gradient_patience: int | None = 50,
    config: dict | None = None,
    devices: Any = None,
    layout: Any = "batch",
) -> FitResult:
    """Train `model` on `task` with `optimizer`.

    Every iteration draws a fresh batch, noise and (for SOFO-like optimizers) tangents from
    keys folded from `key` and the iteration number, so the same seed gives the same run and
    a resumed run continues exactly where the interrupted one would have gone.

    **Arguments:**

    - `model`: the network (or closed loop), an `eqx.Module`; `model.trainable()` says what
      is trained. Its outputs must match the task's targets (checked once at the start).
    - `task`: a [`neurodyn.tasks.AbstractTask`][].
    - `optimizer`: any neurodyn optimizer; default the task's `default_optimizer()` (SOFO,
      except the single reach's torque arm at size `"cpu"`: Adam) with the task's
      recommended hyperparameters for it.
    - `n_iters`, `batch_size`: number of iterations (total, counting resumed ones) and
      trials per batch.
    - `key`: a JAX PRNG key (`jax.random.key(0)` or `jax.random.PRNGKey(0)`).
    - `eval_every`: run `task.evaluate` every this many iterations (and at the end);
      `None` evaluates only at the end; `0` never. `eval_trials`: trials per evaluation
      (default: the task's own evaluation set).
    - `log_every`: bring losses to the host (progress bar, callbacks) every this many steps.
    - `checkpoint_dir`, `checkpoint_every`: write a checkpoint every this many iterations
      (and at the end) into `checkpoint_dir`, keeping the newest `keep_checkpoints`;
      `resume=True` continues from its newest one (an error if there is none).
    - `progress`: show a tqdm progress bar.
    - `callbacks`: functions `callback(iteration, records, model)` called at each log
      point with the list of per-iteration records since the previous one (the last one
      carries `wall_time`, the training seconds so far). A callback that returns `True`
      stops training there (evaluated and checkpointed as at the end); the time spent in
      callbacks is not training time.
    - `time_budget`: stop at the first log point after this many seconds of training,
      counted from the end of the first (compiling) iteration of this call, so that
      optimizers compared at equal budgets get the same training time.
    - `max_retries`, `retry_damping_factor`: a failed step is rejected (parameters
      untouched) and retried with fresh keys and the optimizer's retry state (SOFO: the
      damping × the factor per retry); after `max_retries` failures training stops with
      a `FitError`. A step fails when its loss or update is not finite, when it raises the
      loss on its own batch above `max_loss_increase` × the loss before it, or when it
      grows the norm of the trained parameters beyond `max_norm_growth` × max(norm before,
      1) (`None`: off). The loss check costs one forward pass per iteration: `"auto"` (the
      default) applies it with a factor of 10 to the tangent methods (SOFO, first-order
      SOFO, FGD: < 1/K of their step) and not to BPTT (about a third of its step) — pass a
      number to check every optimizer, `None` for none. The history counts these rejections
      in `rejected_blowups`.
    - `max_loss_spike`: skip a batch whose loss (before the step) is above this factor × the
      median loss of the last 64 accepted steps, and retry the step on a fresh one (counted
      in `retries` and `rejected_blowups`; off until 16 steps were accepted; the history
      records the median it compared with, `recent_loss_median`, and flags `loss_spike` on a
      step taken on an outlier batch because the retries ran out). The last of the
      `max_retries` retries is taken whatever its loss (so `max_retries=0` never skips):
      outliers that many times in a row mean the parameters, not the batch, are the cause,
      or the loss level has moved, and training goes on as without the guard. A rare batch
      on which a closed loop runs away (a loss tens to thousands of times the median, with a
      gradient to match) can throw the parameters where the loss keeps growing even when the
      gradient is clipped; skipping it costs one more batch. `None` (default): off.
    - `zero_gradient_patience`: stop with a `FitError` after this many consecutive accepted
      steps whose gradient (SOFO: its projection Vᵀg; BPTT: ∇L) is exactly zero, i.e. the
      loss no longer depends on the parameters and no optimizer can move them again: a
      network whose units are all silent, or whose outputs sit where the read-out map passes
      no gradient (the muscle arm's `tanh(relu(z))` for every muscle: z ≤ 0, or z ≳ 8 where
      float32's tanh is exactly 1). `None` never stops.
    - `config`: a JSON-able description of the run, stored in checkpoints.
    - `devices`: where the steps run: `None` (default: every device JAX sees; in one
      process, the largest number of them that divides `batch_size`), an int n
      (the first n devices), a sequence of devices, or a `jax.sharding.Mesh` with axes
      among `"batch"` and `"tangents"`. On several devices each takes a slice of the
      trials (and, with `layout`, of SOFO's tangents); the batch, noise and tangents are the
      single-device ones, so the run equals the single-device run up to float round-off and
      checkpoints resume on any number of devices. On a CPU, JAX sees one device unless the
      host device count is set before it starts (the `neurodyn` CLI does it; see the docs
      page "Scaling out"). Under `jax.distributed` only process 0 writes checkpoints.
    - `layout`: `"batch"` (default), `"tangents"` (SOFO-like optimizers: K split over the
      devices) or `(n_batch, n_tangents)`, a 2-D mesh. Ignored when `devices` is a Mesh.

    **Returns:** a [`neurodyn.training.FitResult`][].

    **Raises:** `TypeError`/`ValueError` naming a bad argument (before any work);
    `FitError` (with the partial history attached); `CheckpointError` for a missing,
    corrupt or mismatched checkpoint; `ValueError` for a `batch_size` (or K) that does not
    divide over the devices.
    """
    from tqdm.auto import tqdm

    from ..tasks import AbstractTask

    _check_key(key)
    if not isinstance(task, AbstractTask):
        raise TypeError(
            f"`task` must be a neurodyn task (nd.tasks.get(...) or an AbstractTask subclass); "
            f"got {type(task).__name__}."
        )
    if not isinstance(model, eqx.Module):
        raise TypeError(
            "`model` must be an equinox Module (a neurodyn model, e.g. "
            f"task.default_model(key=...)); got {type(model).__name__}."
        )
    _check_int(n_iters, "n_iters", 0)
    _check_int(batch_size, "batch_size", 1)
    _check_int(log_every, "log_every", 1)
    _check_int(max_retries, "max_retries", 0)
    _check_int(keep_checkpoints, "keep_checkpoints", 1)
    if eval_every is not None:
        _check_int(eval_every, "eval_every", 0)
    if eval_trials is not None:
        _check_int(eval_trials, "eval_trials", 1)
    _check_number(retry_damping_factor, "retry_damping_factor", 1.0)
    for name, value in (
        ("max_loss_increase", None if max_loss_increase == "auto" else max_loss_increase),
        ("max_norm_growth", max_norm_growth),
        ("max_loss_spike", max_loss_spike),
        ("time_budget", time_budget),
    ):
        if value is not None:
            _check_number(value, name, 1.0 if name != "time_budget" else 0.0)
    if checkpoint_every is not None:
        _check_int(checkpoint_every, "checkpoint_every", 1)
        if checkpoint_dir is None:
            raise ValueError("`checkpoint_every` needs a `checkpoint_dir`.")
    if resume and checkpoint_dir is None:
        raise ValueError("`resume=True` needs the `checkpoint_dir` of the run to resume.")
    if zero_gradient_patience is not None:
        _check_int(zero_gradient_patience, "zero_gradient_patience", 1)
    if callable(callbacks):
        callbacks = (callbacks,)
    if not all(callable(cb) for cb in callbacks):
        raise TypeError("`callbacks` must be a sequence of functions (iteration, records, model).")
    if optimizer is None:
        from ..optim import from_config

        name = task.default_optimizer()
        optimizer = from_config(name, **{**task.hyperparameters(name), "n_iters": n_iters})
    if not isinstance(optimizer, AbstractOptimizer):
        raise TypeError(
            f"`optimizer` must be a neurodyn optimizer (nd.optim.*); got {type(optimizer)}."
        )
    if max_loss_increase == "auto":
        max_loss_increase = AUTO_LOSS_INCREASE if optimizer.cheap_loss_check else None
    if devices is None:
        devices = default_devices(batch_size, optimizer, layout)
    mesh = make_mesh(devices, layout)
    check_layout(mesh, batch_size, optimizer)
    if mesh.size == 1:
        mesh = None  # the single-device path, untouched
    writer = jax.process_index() == 0  # under jax.distributed only process 0 writes files
    trainable = model.trainable() if hasattr(model, "trainable") else None
    _check_finite_parameters(model)
    opt_state = optimizer.init(model, trainable)
    base_key_data = _key_data(key)
    fingerprint = _fingerprint(model, task, optimizer, batch_size, trainable)
    config = {**(config or {}), "fingerprint": fingerprint}

    records: list[dict] = []
    evals: dict[str, dict[int, float]] = {}
    wall_points: list[tuple[int, float]] = []
    start_iter = 0
    elapsed_before = 0.0
    if checkpoint_dir is not None and writer:
        remove_stale_temp_files(checkpoint_dir)
    if resume:
        ckpts = list_checkpoints(checkpoint_dir)
        if not ckpts:
            raise CheckpointError(
                f"cannot resume: {checkpoint_dir} holds no checkpoint (the run stopped before "
                "its first one); start it again without resuming."
            )
        header, hist, (model, opt_state, saved_key) = load_checkpoint(
            ckpts[-1], (model, opt_state, base_key_data)
        )
        _check_resume(header, fingerprint, base_key_data, saved_key, ckpts[-1])
        start_iter = header["iteration"]
        records = hist["records"]
        if records and records[-1]["iteration"] != start_iter:
            raise CheckpointError(
                f"{ckpts[-1]} is inconsistent: its header says iteration {start_iter}, its "
                f"history ends at {records[-1]['iteration']}."
            )
        if n_iters < start_iter:
            raise ValueError(
                f"`n_iters` ({n_iters}) is below the {start_iter} iterations the run to resume "
                "has done; pass n_iters >= that."
            )
        evals = {k: {int(i): v for i, v in d.items()} for k, d in hist["evals"].items()}
        wall_points = [tuple(p) for p in hist["wall_points"]]
        elapsed_before = wall_points[-1][1] if wall_points else 0.0

    train_step = make_train_step(
        task,
        optimizer,
        batch_size,
        trainable,
        max_retries,
        retry_damping_factor,
        max_loss_increase,
        max_norm_growth,
        mesh,
        max_loss_spike=max_loss_spike,
    )
    recent = recent_losses(records) if max_loss_spike is not None else None
    eval_key = jr.fold_in(key, 2**31 - 1)
    if mesh is not None:
        # the task's arrays (a data set) on every device for the step; evaluations keep the
        # task as given, with a single-device copy of the model
        model, opt_state, key, step_task = replicate((model, opt_state, key, task), mesh)
    else:
        step_task = task

    def evaluate(it):
        metrics = task.evaluate(
            local_copy(model), key=jr.fold_in(eval_key, it), n_trials=eval_trials
        )
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
        if not writer:
            return
        save_checkpoint(
            checkpoint_dir,
            it,
            (local_copy(model), local_copy(opt_state), base_key_data),
            history=history_dict(),
            config=config,
            keep=keep_checkpoints,
        )

    def failure(message, it):
        err = FitError(message)
        err.iteration = it
        err.history = _finish_history(
            build_history(records, evals, wall_points, _metric_units(task, evals)),
            fingerprint,
            batch_size,
        )
        err.model, err.opt_state = local_copy(model), local_copy(opt_state)
        return err

    bar = tqdm(
        total=n_iters,
        initial=start_iter,
        disable=not progress or not writer,
        desc=fingerprint["task"],
        dynamic_ncols=True,
    )
    t0 = time.perf_counter() - elapsed_before
    pending: list[tuple[int, dict]] = []
    zero_run = 0  # consecutive accepted steps with an exactly zero gradient
    last = start_iter
    stopped = None
    compiled_at = 0.0
    try:
        for it in range(start_iter + 1, n_iters + 1):
            if recent is None:
                model, opt_state, info = train_step(
                    model, opt_state, jr.fold_in(key, it), step_task
                )
            else:
                model, opt_state, info, recent = train_step(
                    model, opt_state, jr.fold_in(key, it), step_task, recent
                )
            pending.append((it, info))
            at_eval = bool(eval_every) and it % eval_every == 0 and it != n_iters
            at_ckpt = checkpoint_every is not None and it % checkpoint_every == 0
            first = it == start_iter + 1  # includes compilation: logged on its own
            if len(pending) >= log_every or it == n_iters or at_eval or at_ckpt or first:
                host = jax.device_get(local_copy([i for _, i in pending]))
                now = time.perf_counter() - t0
                wall_points.append((it, now))
                if first:
                    compiled_at = now  # the time budget starts after the compiling step
                new_records = []
                for (i, _), h in zip(pending, host):
                    rec = {"iteration": i, **{k: _to_py(v) for k, v in h.items()}}
                    new_records.append(rec)
                new_records[-1]["wall_time"] = now  # training seconds so far, for callbacks
                records.extend(new_records)
                pending = []
                last = it
                bar.set_postfix(loss=f"{new_records[-1]['loss']:.4g}", refresh=False)
                bar.update(len(new_records))
                failed = [r for r in new_records if not r["finite"]]
                for r in new_records:
                    norm = r.get("vg_norm", r.get("grad_norm"))
                    dead = r["finite"] and norm == 0.0 and r["loss"] > 0
                    zero_run = zero_run + 1 if dead else 0
                    if zero_gradient_patience is not None and zero_run >= zero_gradient_patience:
                        raise failure(
                            f"iteration {r['iteration']}: the gradient has been exactly zero "
                            f"for {zero_run} iterations (loss {r['loss']:.4g}): the loss no "
                            "longer depends on the parameters, so no optimizer can move them "
                            "again. The network's units are all silent, or its outputs sit "
                            "where the read-out map passes no gradient (the muscle arm's "
                            "excitation tanh(relu(z)) at z <= 0, or z > 8 where float32's tanh "
                            "is exactly 1, for every muscle). Restart from an earlier "
                            "checkpoint or from scratch with a smaller learning rate, more "
                            "damping or less momentum.",
                            r["iteration"],
                        )
                if failed:
                    r = failed[0]
                    if r.get("loss_blowup"):
                        why = (
                            f"the step raised the loss on its batch above {max_loss_increase:g}x "
                            f"its value before the step"
                        )
                        detail = f" ({r['loss']:.4g} -> {r.get('loss_after_step', math.nan):.4g})"
                    elif r.get("norm_blowup"):
                        why = (
                            f"the step grew the norm of the trained parameters beyond "
                            f"{max_norm_growth:g}x"
                        )
                        detail = ""
                    else:
                        why = "the loss or update was not finite"
                        detail = f" (loss = {r['loss']})"
                    raise failure(
                        f"iteration {r['iteration']}: {why} after {max_retries} retries{detail}; "
                        "parameters were left at their last accepted values. Lower the learning "
                        "rate, raise the damping, or check the task's inputs.",
                        r["iteration"],
                    )
                t_cb = time.perf_counter()
                shown = local_copy(model) if callbacks else model
                stop_now = any(cb(it, new_records, shown) is True for cb in callbacks)
                t0 += time.perf_counter() - t_cb  # callbacks are not training time
                if stop_now:
                    stopped = "callback"
                elif time_budget is not None and now - compiled_at >= time_budget:
                    stopped = "time_budget"
                if stopped and it != n_iters:
                    break
                stopped = None
            t_pause = time.perf_counter()
            if at_eval:
                metrics = evaluate(it)
                bar.set_postfix(_progress_metrics(task, metrics), refresh=False)
            if at_ckpt:
                checkpoint(it)
            t0 += time.perf_counter() - t_pause  # nor are evaluations and checkpoints
        end = last if stopped else n_iters
        if eval_every != 0 and (end > start_iter or not evals):
            evaluate(end)
        if checkpoint_dir is not None and (
            end > start_iter and (checkpoint_every is None or end % checkpoint_every or stopped)
        ):
            checkpoint(end)
    except KeyboardInterrupt as err:  # the caller may record what was done
        err.history = _finish_history(
            build_history(records, evals, wall_points, _metric_units(task, evals)),
            fingerprint,
            batch_size,
        )
        raise
    finally:
        bar.close()
    history = _finish_history(
        build_history(records, evals, wall_points, _metric_units(task, evals)),
        fingerprint,
        batch_size,
    )
    if stopped:
        history.attrs["stopped"] = stopped
    return FitResult(local_copy(model), local_copy(opt_state), history, end, stopped)


def _progress_metrics(task, metrics: dict) -> dict[str, str]:
    """What the progress bar shows after an evaluation: the task's success metric first, with
    its level (`endpoint_error_cm=3.21 (<=2)`), then the next metrics, three in all."""
    shown = {}
    criterion = task.success_criterion()
    if criterion is not None and criterion[0] in metrics:
        name, level, direction = criterion
        sign = "<=" if direction == "below" else ">="
        shown[name] = f"{float(metrics[name]):.4g} ({sign}{level:g})"
    for k, v in metrics.items():
        if len(shown) >= 3:
            break
        shown.setdefault(k, f"{float(v):.4g}")
    return shown


def _metric_units(task, evals) -> dict[str, str]:
    """UDUNITS units of the evaluation metrics (`AbstractTask.metric_units`; "1" without)."""
    return {name: getattr(task, "metric_units", lambda _: "1")(name) for name in evals}


def _finish_history(history, fingerprint, batch_size):
    history.attrs.update(
        {
            "task": fingerprint["task"],
            "optimizer": fingerprint["optimizer"],
            "n_params": fingerprint["n_params"],
            "batch_size": batch_size,
            "versions": software_versions(),  # a dict: JSON text in history.nc
        }
    )
    return history


def _check_key(key) -> None:
    dtype = getattr(key, "dtype", None)
    ok = dtype is not None and (
        jnp.issubdtype(dtype, jax.dtypes.prng_key)
        or (dtype == jnp.uint32 and getattr(key, "shape", None) == (2,))
    )
    if not ok:
        raise TypeError(
            "`key` must be a JAX PRNG key, e.g. jax.random.key(0) or jax.random.PRNGKey(0); "
            f"got {type(key).__name__} {key!r}."
        )


def _check_number(value, name, minimum):
    check_real(value, name, minimum=minimum)


def _shapes(tree):
    shapes = jax.tree.map(lambda a: tuple(a.shape), tree)
    return shapes if not isinstance(shapes, dict) else {k: shapes[k] for k in sorted(shapes)}


def _check_finite_parameters(model) -> None:
    leaves = jax.tree_util.tree_leaves_with_path(eqx.filter(model, eqx.is_inexact_array))
    for path, leaf in leaves:
        if not bool(jnp.all(jnp.isfinite(leaf))):
            raise ValueError(
                f"the model's initial parameters are not finite: `{jax.tree_util.keystr(path)}` "
                "holds NaN or inf values."
            )


def check_outputs_match_targets(model, problem) -> None:
    """At trace time: one step of `model` on the problem's first step, its output against
    the target. **Raises:** `ValueError` with both shapes, or naming the inputs the model
    cannot take."""
    from ..optim import RecurrentProblem

    if not isinstance(problem, RecurrentProblem):
        return
    x0 = problem.x_at(0)
    try:
        _, y0 = jax.eval_shape(problem.step, model, problem.initial_carry(model), x0)
    except (TypeError, ValueError) as err:  # shapes that do not fit together
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"the model cannot run one step of the task's trials (inputs of shape "
            f"{_shapes(x0)}): {first}"
        ) from None
    target = x0.get("target") if isinstance(x0, dict) else None
    if hasattr(y0, "shape") and hasattr(target, "shape"):
        if len(y0.shape) == len(target.shape) and tuple(y0.shape) != tuple(target.shape):
            raise ValueError(
                f"the model's outputs do not match the task's targets: one step gives outputs "
                f"of shape {tuple(y0.shape)} (batch, outputs) but the targets have shape "
                f"{tuple(target.shape)}; build the model with as many outputs as the task's "
                "targets have channels."
            )


def _to_py(v):
    v = np.asarray(v)
    if v.dtype == bool:
        return bool(v)
    if np.issubdtype(v.dtype, np.integer):
        return int(v)
    return float(v)


def _check_int(value, name, minimum):
    check_size(value, name, minimum=minimum)


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
    "wall_time": (
        "training time since the start (evaluations, checkpoints, callbacks excluded)",
        "s",
    ),
    "damping": ("damping lambda", "1"),
    "gamma": ("damping added to the subspace GGN (gamma)", "1"),
    "top_eigenvalue": ("largest eigenvalue of the subspace GGN", "1"),
    "learning_rate": ("learning rate", "1"),
    "grad_norm": ("norm of the exact gradient", "1"),
    "vg_norm": ("norm of the projected gradient V^T g", "1"),
    "lm_ratio": ("Levenberg-Marquardt ratio actual/predicted decrease", "1"),
    "blowup": ("the last attempt raised the loss or the parameter norm too much", "1"),
    "loss_blowup": ("the last attempt raised the loss too much", "1"),
    "norm_blowup": ("the last attempt grew the parameter norm too much", "1"),
    "rejected_blowups": ("attempts rejected for raising the loss or parameter norm", "1"),
    "loss_after_step": ("loss on the same batch after the step", "1"),
    "predicted_decrease": ("decrease predicted by the quadratic model", "1"),
}


def build_history(records, evals, wall_points, metric_units=None) -> xr.Dataset:
    """Assemble the per-iteration records and evaluations into an `xarray.Dataset`
    (`metric_units`: evaluation metric name → UDUNITS units, default `"1"`)."""
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
    evaluated = [int(i) for points in evals.values() for i in points if int(i) in index]
    for name, points in evals.items():
        arr = np.full(len(iterations), np.nan)
        for i, v in points.items():
            if i in index:
                arr[index[i]] = v
        data[f"eval_{name}"] = (
            "iteration",
            arr,
            {"long_name": f"evaluation: {name}", "units": (metric_units or {}).get(name, "1")},
        )
    history = xr.Dataset(
        data,
        coords={"iteration": ("iteration", iterations, {"long_name": "iteration", "units": "1"})},
    )
    if evaluated:
        history.attrs["last_evaluation"] = max(evaluated)
    return history
