"""Small models and tasks for testing the training loop (importable by subprocess scripts)."""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

import neurodyn as nd
from neurodyn.models import AbstractRecurrentModel
from neurodyn.tasks import AbstractTask, Batch


class TinyRNN(AbstractRecurrentModel):
    W: jax.Array
    W_in: jax.Array
    W_out: jax.Array
    b: jax.Array

    def __init__(self, n=8, n_in=2, n_out=2, *, key, scale=0.9):
        k1, k2, k3 = jr.split(key, 3)
        self.W = scale * jr.normal(k1, (n, n)) / jnp.sqrt(n)
        self.W_in = jr.normal(k2, (n_in, n))
        self.W_out = jr.normal(k3, (n, n_out)) / jnp.sqrt(n)
        self.b = jnp.zeros(n)

    def initial_state(self, key=None):
        return jnp.zeros(self.b.shape)

    def step(self, carry, u, noise=None):
        h = carry + 0.3 * (-carry + jnp.tanh(carry) @ self.W + u @ self.W_in + self.b)
        return h, jnp.tanh(h) @ self.W_out


class TeacherTask(AbstractTask):
    """Regress the outputs of a fixed random teacher network."""

    teacher: TinyRNN
    n_steps: int = eqx.field(static=True, default=12)
    p_nan: float = eqx.field(static=True, default=0.0)
    p_spike: float = eqx.field(static=True, default=0.0)
    name: ClassVar[str] = "teacher"

    def __init__(self, *, key, n_steps=12, p_nan=0.0, p_spike=0.0):
        self.teacher = TinyRNN(key=key, scale=1.2)
        self.n_steps = n_steps
        self.p_nan = p_nan
        self.p_spike = p_spike

    def sample(self, *, key, batch_size):
        ku, kn = jr.split(key)
        u = jr.normal(ku, (batch_size, self.n_steps, 2))
        _, targets = nd.models.simulate(self.teacher, u, key=ku)
        if self.p_nan:
            bad = jr.uniform(kn) < self.p_nan
            targets = jnp.where(bad, jnp.nan, targets)
        if self.p_spike:  # an outlier batch: targets 30x off, a loss ~1000x the usual
            spiked = jr.uniform(jr.fold_in(kn, 1)) < self.p_spike
            targets = jnp.where(spiked, 30.0 * targets, targets)
        return Batch(u, targets, None, {"condition": jnp.zeros(batch_size, jnp.int32)})

    def loss(self, y, x):
        return nd.optim.mse(scale=1.0 / self.n_steps)(y, x)

    def default_model(self, *, key):
        return TinyRNN(key=key)

    def evaluate(self, model, *, key, n_trials=None):
        batch = self.sample(key=key, batch_size=n_trials or 64)
        problem = self.problem(model, batch, key=key)
        return {"mse": float(problem.value(model))}

    def hyperparameters(self, optimizer="sofo"):
        if optimizer == "sofo":
            return {
                "learning_rate": 1.0,
                "n_tangents": 16,
                "damping": 1e-3,
                "n_iters": 30,
                "batch_size": 16,
            }
        return {"learning_rate": 1e-2, "n_iters": 30, "batch_size": 16}
