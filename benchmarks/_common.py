"""Pieces shared by the benchmark scripts: the jitted training step and the machine's name."""

from __future__ import annotations

import os
import platform

import equinox as eqx
import jax
import jax.random as jr


def make_step(task, opt, batch_size: int, trainable):
    """One jitted iteration as `nd.fit` takes it: a fresh batch, noise and tangents per key."""

    @eqx.filter_jit
    def step(model, state, key):
        k_data, k_problem, k_opt = jr.split(key, 3)
        batch = task.sample(key=k_data, batch_size=batch_size)
        problem = task.problem(model, batch, key=k_problem)
        return opt.step(model, state, problem, key=k_opt, trainable=trainable)

    return step


def machine() -> str:
    """The processor, the cores this process may use, the OS and the JAX backend."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{platform.processor() or platform.machine()}, {cores} of {os.cpu_count()} CPU cores "
        f"available to the process, {platform.system()} {platform.release()}, jax "
        f"{jax.__version__} ({jax.default_backend()}: {jax.devices()[0].device_kind}), float32"
    )
