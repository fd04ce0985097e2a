"""Fits on 1 and on several host devices; run in a subprocess by tests/test_sharding.py.

Usage: `python -m tests._sharding_script N_DEVICES OUT.npz TMP_DIR CASE ...`, with CASE one
of `sofo`, `adam`, `adam-spike` (outlier batches skipped: `max_loss_spike`), `force`,
`sofo-custom-loss`, `digits`, optionally with a layout after a colon
(`sofo:tangents`, `sofo:2x2`), or `resume:n1` / `resume:1n`. The host device count must be
set before JAX starts its backend, which is why this runs in its own process. For each case
it runs the same 20-iteration fit on 1 device and on N devices and saves both loss
histories, both final parameters and both first updates (θ₁ − θ₀: the first direction
times the learning rate). It also records the errors for a batch or K that does not divide,
and resumes the `sofo` case from a checkpoint written on N devices on 1 device
(`resume:n1`) or the other way round (`resume:1n`).
"""

import os
import sys

import equinox as eqx
import jax
import jax.random as jr
import numpy as np

import neurodyn as nd
from tests._fit_fixtures import TeacherTask

N_ITERS = 20


def case(name):
    task = nd.tasks.get("flipflop", n_steps=8, n_neurons=16)
    if name == "force":
        model = nd.models.reservoir_rnn(n_neurons=16, key=jr.PRNGKey(0))
        return task, model, nd.optim.force(alpha=1.0)
    model = task.default_model(key=jr.PRNGKey(1))
    if name == "sofo":  # the package's mse: one reduction per iteration
        return task, model, nd.optim.sofo(learning_rate=0.5, n_tangents=8, damping=1e-3)
    if name == "adam":
        return task, model, nd.optim.adam(1e-2)
    if name == "adam-spike":  # outlier batches, skipped and retried on a fresh one
        task = TeacherTask(key=jr.PRNGKey(0), n_steps=6, p_spike=0.25)
        model = task.default_model(key=jr.PRNGKey(1))
        return task, model, nd.optim.adam(1e-2)
    if name == "digits":  # a feedforward problem
        task = nd.tasks.get("digits")
        model = task.default_model(key=jr.PRNGKey(1))
        return task, model, nd.optim.sofo(learning_rate=0.5, n_tangents=8, damping=1e-3)
    if name == "sofo-custom-loss":  # a loss XLA partitions (a reduction per time step)
        task = TeacherTask(key=jr.PRNGKey(0), n_steps=6)
        model = task.default_model(key=jr.PRNGKey(1))
        return task, model, nd.optim.sofo(learning_rate=1.0, n_tangents=8, damping=1e-3)
    raise ValueError(name)


def flat(model):
    leaves = jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))
    return np.concatenate([np.ravel(np.asarray(x)) for x in leaves])


SPIKE = {"max_loss_spike": 5.0, "max_retries": 3}


def run(name, devices, layout="batch", n_iters=N_ITERS, **kwargs):
    """(loss history, final parameters, first update, skipped batches) of a 20-iteration
    fit (40 for `adam-spike`)."""
    task, model, opt = case(name)
    kwargs = {"max_retries": 0, **(SPIKE if name == "adam-spike" else {}), **kwargs}
    if name == "adam-spike":  # the check starts after 16 accepted steps
        n_iters = 2 * N_ITERS
    first = {}

    def keep_first(it, records, m):
        first.setdefault("update", flat(m) - flat(model))

    res = nd.fit(
        model, task, opt, n_iters=n_iters, batch_size=16, key=jr.PRNGKey(2), progress=False,
        eval_every=None, eval_trials=8, log_every=5, devices=devices, layout=layout,
        callbacks=[keep_first], **kwargs,
    )  # fmt: skip
    skipped = int(res.history["rejected_blowups"].values.sum())
    return res.history["loss"].values, flat(res.model), first["update"], skipped


def main(n_dev, out_path, tmp, cases):
    out = {"devices": len(jax.devices()), "cores": len(os.sched_getaffinity(0))}
    resume = [c.split(":")[1] for c in cases if c.startswith("resume:")]
    cases = [c for c in cases if not c.startswith("resume:")]
    for what in cases:
        name, _, layout = what.partition(":")
        layout = layout or "batch"
        if "x" in layout:
            layout = tuple(int(s) for s in layout.split("x"))
        for tag, devs, lay in (("1", 1, "batch"), ("n", n_dev, layout)):
            loss, params, update, skipped = run(name, devs, lay)
            out[f"{what}_loss{tag}"], out[f"{what}_p{tag}"] = loss, params
            out[f"{what}_u{tag}"], out[f"{what}_skipped{tag}"] = update, skipped

    errors = []
    for batch_size, layout, opt in (
        (10, "batch", nd.optim.sofo(n_tangents=6)),
        (16, "tangents", nd.optim.sofo(n_tangents=6)),
        (16, "tangents", nd.optim.adam()),
    ):
        task, model, _ = case("sofo")
        try:
            nd.fit(model, task, opt, n_iters=1, batch_size=batch_size, key=jr.PRNGKey(0),
                   devices=n_dev, layout=layout, progress=False)  # fmt: skip
        except ValueError as err:
            errors.append(str(err))
    out["errors"] = np.array(errors)

    # checkpoints written on N devices resumed on 1, and the other way round (the persistent
    # compilation cache makes these fits' programs, compiled above, free)
    for tag in resume:
        a, b = {"n1": (n_dev, 1), "1n": (1, n_dev)}[tag]
        d = os.path.join(tmp, tag)
        run("sofo", a, n_iters=N_ITERS // 2, checkpoint_dir=d)
        loss, params, _, _ = run("sofo", b, checkpoint_dir=d, resume=True)
        out[f"resume_{tag}_loss"], out[f"resume_{tag}_p"] = loss, params
    np.savez(out_path, **out)


if __name__ == "__main__":
    from neurodyn.cli import use_host_cores

    n_dev = int(sys.argv[1])
    assert use_host_cores(n_dev) == n_dev  # what `neurodyn fit` does, before JAX starts
    jax.config.update("jax_enable_x64", False)
    jax.config.update("jax_compilation_cache_dir", os.path.join(sys.argv[3], "jax-cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    main(n_dev, sys.argv[2], sys.argv[3], sys.argv[4:])
