r"""One-shot (meta-learned) classification: learn a new item→label mapping in every trial.

The paper's one-shot classification task (Yu et al. 2024; the authors' code
`examples/random_class.ml` at c5d617e), with a target-index bug of the authors' reference code
fixed.
"""

from __future__ import annotations

from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from ..optim import cross_entropy
from ._base import (
    AbstractTask,
    Batch,
    check_positive_int,
    check_size,
    register,
    select_hyperparameters,
)
from ._metrics import rollout_outputs

_HYPERPARAMETERS = {
    "cpu": {
        # λ = 1e-5 rather than the reference's 1e-3: higher accuracy after 800 iterations
        # (benchmarks/results/task_results.md; the sweep below: 0.986 against 0.829 at η 0.02).
        # η = 0.02 (was 0.08; our choice): accuracy 0.986 / 0.981 / 0.976 / 0.986 at η 0.02 /
        # 0.05 / 0.08 / 0.15 on seed 0 (flat; 0.15 spiked ×1.5), 0.986 / 0.999 / 0.999 on seeds
        # 0 / 1 / 2 at 0.02 (benchmarks/sofo_sweep.py --tasks oneshot).
        "sofo": {
            "n_iters": 800,
            "batch_size": 64,
            "learning_rate": 0.02,
            "n_tangents": 64,
            "damping": 1e-5,
        },
        "adam": {"n_iters": 5000, "batch_size": 64, "learning_rate": 1e-3},
        "fgd": {"n_iters": 3000, "batch_size": 64, "learning_rate": 1e-4, "n_tangents": 64},
        "first-order-sofo": {
            "n_iters": 3000,
            "batch_size": 64,
            "learning_rate": 0.1,
            "n_tangents": 64,
        },
    },
    "paper": {
        # The authors' reference code (c5d617e): B = 256, K = 256, η = 0.1, λ = 1e-3, 1000
        # iterations (later runs 1e5–2e5); Adam lr 1e-5. c5d617e is in the "ocaml2024"
        # convention, whose cross-entropy GGN is the consistent one (factor 1), so η = 0.1 carries
        # over; 3c62b01's η = 0.01 ("ocaml2025", factor 2) is 0.005 here
        # (docs/concepts/sofo-conventions.md).
        "sofo": {
            "n_iters": 1000,
            "batch_size": 256,
            "learning_rate": 0.1,
            "n_tangents": 256,
            "damping": 1e-3,
        },
        "adam": {"n_iters": 1000, "batch_size": 256, "learning_rate": 1e-5},
        "fgd": {"n_iters": 1000, "batch_size": 256, "learning_rate": 1e-5, "n_tangents": 256},
        "first-order-sofo": {
            "n_iters": 1000,
            "batch_size": 256,
            "learning_rate": 0.1,
            "n_tangents": 256,
        },
    },
}


def sample_oneshot_trials(
    *,
    key,
    batch_size: int,
    n_classes: int,
    item_steps: int,
    mean: float = 1.0,
    noise: float = 0.1,
    dtype=None,
) -> dict[str, jax.Array]:
    r"""Trials of the one-shot task, jittable.

    Learn phase (C·`item_steps` steps): item i = 0..C−1 in order, stimulus
    `mean`·onehot(i) + N(0, `noise`²) per dimension (drawn once per presentation, held for its
    steps), label onehot(π(i)) with π a random permutation per trial, cue 1. Exploit phase
    (C·`item_steps` steps): the items in a fresh random order, fresh stimulus noise, no label,
    cue 0. The target at every step is π(item shown); it is scored at the last step of each
    exploit item (the reference code's target index, fixed: see `OneShotTask`).

    **Returns:** a dict with `inputs` `[B, T, 2C+1]` (stimulus, label, cue), `targets` (int32
    `[B, T]`, π of the item shown), `weights` (`[B, T]`, 1 at the C query steps),
    `items` (int32 `[B, T]`), `permutation` (int32 `[B, C]`), `query_items` (int32
    `[B, C]`) and `query_steps` (int32 `[B, C]`).
    """
    dtype = jnp.dtype(dtype) if dtype is not None else jnp.result_type(float)
    c, s = n_classes, item_steps
    k_perm, k_order, k_noise = jr.split(key, 3)
    perm = jnp.argsort(jr.uniform(k_perm, (batch_size, c)), axis=-1).astype(jnp.int32)
    order = jnp.argsort(jr.uniform(k_order, (batch_size, c)), axis=-1).astype(jnp.int32)
    learn_items = jnp.broadcast_to(jnp.arange(c, dtype=jnp.int32), (batch_size, c))
    shown = jnp.concatenate([learn_items, order], axis=1)  # [B, 2C] presentations
    stim = mean * jax.nn.one_hot(shown, c, dtype=dtype)
    stim = stim + noise * jr.normal(k_noise, stim.shape, dtype)
    labels = jax.nn.one_hot(perm, c, dtype=dtype)  # label shown with learn item i
    labels = jnp.concatenate([labels, jnp.zeros_like(labels)], axis=1)
    cue = jnp.repeat(jnp.array([1.0, 0.0], dtype), c)[None, :, None]
    cue = jnp.broadcast_to(cue, (batch_size, 2 * c, 1))
    per_item = jnp.concatenate([stim, labels, cue], axis=-1)  # [B, 2C, 2C+1]
    inputs = jnp.repeat(per_item, s, axis=1)
    items = jnp.repeat(shown, s, axis=1)
    targets = jnp.take_along_axis(perm, items, axis=1)
    query_steps = c * s + s * jnp.arange(1, c + 1, dtype=jnp.int32) - 1
    weights = jnp.zeros((batch_size, 2 * c * s), dtype).at[:, query_steps].set(1.0)
    return {
        "inputs": inputs,
        "targets": targets,
        "weights": weights,
        "items": items,
        "permutation": perm,
        "query_items": order,
        "query_steps": jnp.broadcast_to(query_steps, (batch_size, c)),
    }


@register("oneshot")
class OneShotTask(AbstractTask):
    r"""One-shot classification with a new random item→label mapping per trial (Yu et al. 2024).

    **Trial** (T = 2·C·`item_steps` steps: 60 for C = 3 and 10 steps per item). Learn
    phase: the C items in order, each for `item_steps` steps, shown with its label π(i) (π a
    random permutation per trial) and cue = 1.
    Exploit phase: the items in a fresh random order, no label, cue = 0; at the last step of
    each item the network must output the label π(item). Stimuli are onehot(item) (μ = 1)
    plus N(0, σ² = 0.01) noise per dimension, drawn anew for every presentation (it is not
    known whether the reference reuses the learn-phase draw; fresh noise makes the task about the
    item's identity rather than its exact pattern).

    **Reference bug fixed** (a quirk of the authors' reference code, whose target index
    trunc((t − learn_T − 10)/10) scores queries 2–C against the previous item's label and never
    scores the last item): each query is scored against the label of the item shown at that
    step (index (t − learn_T − 9)/10), not the previous item's.

    **Batch.** `inputs` `[B, T, 2C+1]` (stimulus C, label C, cue 1; no bias channel: the
    network has biases); `targets` int32 `[B, T]` (π of the item shown, defined at every
    step); `weights` `[B, T]` (1 at the C query steps); `metadata`: `items` (`[B, T]`),
    `permutation` (`[B, C]`), `query_items` and `query_steps` (`[B, C]`, the event times).

    **Loss.** Softmax cross-entropy at the query steps, mean over the batch, scale 1/C
    (as in the reference code).

    **Metrics.** `accuracy` (argmax of the logits at the query steps equals the label),
    `chance` (1/C), `loss` (mean cross-entropy per query).

    **Arguments:** `n_classes` (C; the constructor's default 5 is the 2025-04 reference's,
    both sizes of `nd.tasks.get` use 3; ≥ 2), `item_steps` (10), `stimulus_mean`
    (μ = 1), `stimulus_noise` (σ = 0.1), `n_latent` (r), `n_hidden` (c'), `logits`
    (`"linear"`, our option, by default; `"relu"` is the reference's
    relu(z O), whose rectified logits cannot push a wrong class below 0), `size`. The
    paper's network has r = 100, c' = 400 (P = 91,500 at C = 3; 92,100 at C = 5).

    **Sizes.** `nd.tasks.get("oneshot", size="paper")` is the reference code's task with its
    current class count: C = 3 classes (the reference's value since 2025-09; the paper's own C
    is not known, the 2025-04 code had C = 5), 10 steps per item
    (T = 60), r = 100, c' = 400; `n_classes=5` gives the 2025-04 variant. The CPU size
    (`size="cpu"`, the default of `nd.tasks.get`) is smaller so that SOFO reaches ≥ 90 % in
    minutes on 2 cores (our choice): C = 3 classes, 5 steps per item (T = 30), r = 64,
    c' = 128 (P ≈ 17k). With C = 5 and 10 steps per item, 400
    SOFO iterations at this size stayed at chance: the bindings must survive 50+ steps of a
    network initialised with A = 0, and the reference trained for 10³–10⁵ iterations. The
    class constructor's defaults are the 2025-04 reference task (C = 5, 10 steps) with the CPU
    network.
    """

    n_classes: int = eqx.field(static=True, default=5)
    item_steps: int = eqx.field(static=True, default=10)
    stimulus_mean: float = eqx.field(static=True, default=1.0)
    stimulus_noise: float = eqx.field(static=True, default=0.1)
    n_latent: int = eqx.field(static=True, default=64)
    n_hidden: int = eqx.field(static=True, default=128)
    logits: str = eqx.field(static=True, default="linear")
    size: str = eqx.field(static=True, default="cpu")

    name: ClassVar[str] = "oneshot"
    description: ClassVar[str] = (
        "One-shot classification: bind items to new labels in every trial (Yu et al. 2024)."
    )

    def __check_init__(self):
        check_positive_int(self.n_classes, "n_classes", 2)
        check_positive_int(self.item_steps, "item_steps")
        check_positive_int(self.n_latent, "n_latent")
        check_positive_int(self.n_hidden, "n_hidden")
        check_size(self.size)
        if not float(self.stimulus_noise) >= 0:
            raise ValueError(f"`stimulus_noise` must be >= 0; got {self.stimulus_noise!r}.")

    @classmethod
    def from_size(cls, size: str = "cpu", **overrides) -> OneShotTask:
        """C = 3, 5 steps per item, r = 64, c' = 128 at `"cpu"`; C = 3, 10 steps per item,
        r = 100, c' = 400 at `"paper"` (the reference code's; see the class docstring)."""
        check_size(size)
        c, steps, r, h = {"cpu": (3, 5, 64, 128), "paper": (3, 10, 100, 400)}[size]
        defaults = {
            "n_classes": c,
            "item_steps": steps,
            "n_latent": r,
            "n_hidden": h,
            "size": size,
        }
        return cls(**{**defaults, **overrides})

    @property
    def n_steps(self) -> int:
        return 2 * self.n_classes * self.item_steps

    @property
    def n_inputs(self) -> int:
        return 2 * self.n_classes + 1

    def sample(self, *, key, batch_size: int) -> Batch:
        check_positive_int(batch_size, "batch_size")
        t = sample_oneshot_trials(
            key=key,
            batch_size=batch_size,
            n_classes=self.n_classes,
            item_steps=self.item_steps,
            mean=self.stimulus_mean,
            noise=self.stimulus_noise,
        )
        metadata = {k: t[k] for k in ("items", "permutation", "query_items", "query_steps")}
        return Batch(t["inputs"], t["targets"], t["weights"], metadata)

    def loss_function(self):
        return cross_entropy(target="target", weight="weight", scale=1.0 / self.n_classes)

    def loss(self, y, x) -> jax.Array:
        """Cross-entropy at one step, weighted by the query mask, scale 1/C."""
        return self.loss_function()(y, x)

    def evaluate(self, model, *, key, n_trials: int | None = None) -> dict[str, float]:
        """Query accuracy on `n_trials` (default 1024) fresh sessions, with chance 1/C."""
        n_trials = 1024 if n_trials is None else check_positive_int(n_trials, "n_trials")
        k_data, k_run = jr.split(key)
        logits, batch = _oneshot_outputs(self, model, k_data, k_run, n_trials)
        steps = np.asarray(batch.metadata["query_steps"][0])
        q_logits = np.asarray(logits)[:, steps]  # [B, C, C]
        q_target = np.asarray(batch.targets)[:, steps]
        logp = q_logits - q_logits.max(-1, keepdims=True)
        logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
        ce = -np.take_along_axis(logp, q_target[..., None], -1).mean()
        return {
            "accuracy": float(np.mean(q_logits.argmax(-1) == q_target)),
            "chance": 1.0 / self.n_classes,
            "loss": float(ce),
        }

    def default_model(self, *, key):
        """The paper's two-layer recurrent map (Yu et al. 2024) at this task's size."""
        return _default_oneshot_network(
            self.n_classes, self.n_latent, self.n_hidden, self.logits, key
        )

    def success_criterion(self) -> tuple[str, float, str]:
        """Query accuracy ≥ 0.9 (issue 4's target; our choice)."""
        return ("accuracy", 0.9, "above")

    def hyperparameters(self, optimizer: str = "sofo") -> dict[str, Any]:
        """Recommended settings for `optimizer` at this task's size (paper: the authors' code;
        CPU: tuned; see docs/concepts/sofo-conventions.md)."""
        return select_hyperparameters(_HYPERPARAMETERS, self.size, optimizer, self.name)


@eqx.filter_jit
def _oneshot_outputs(task, model, k_data, k_run, n_trials):
    batch = task.sample(key=k_data, batch_size=n_trials)
    return rollout_outputs(model, batch.inputs, key=k_run), batch


def _default_oneshot_network(n_classes, n_latent, n_hidden, logits, key):
    from ..models import OneShotNet

    return OneShotNet(
        n_classes=n_classes, n_latent=n_latent, n_hidden=n_hidden, logits=logits, key=key
    )
