r"""Tasks from trial-based environments: any NeuroGym task, or any environment that follows
NeuroGym's trial protocol.

**The protocol.** An environment whose `new_trial()` draws one trial and leaves on the
unwrapped environment `ob` (`[T, n_obs]`: the observation at every step) and `gt` (`[T]`
integer actions for a `Discrete` action space, or `[T, n_act]` for a `Box` one: the correct
action at every step), with `action_space`, and optionally `dt` (ms per step) and the period
boundaries `start_ind` / `end_ind` (dicts period → step index). Every NeuroGym `TrialEnv` is
one; so is a custom `gymnasium.Env` with these attributes.

**The mapping to a neurodyn batch.** A bank of `n_train` trials (and a held-out bank of
`n_test`) is drawn once from the environment, seeded, when the task is built; sampling a batch
picks trials from the bank with the JAX key, so training stays one compiled program.
Trials are padded to `n_steps` (default: the longest trial of the training bank; longer
trials are cut) with zero inputs and zero loss weight.

- `inputs[b, t] = ob[t]`;
- `targets[b, t] = gt[t]`; the per-step loss is the softmax cross-entropy of the network's
  `n_actions` outputs against `gt` (discrete), or the squared error (continuous), scaled by
  1/`n_steps`;
- `weights[b, t]` = 1 on the trial's steps (× `period_weights[p]` within period `p`, e.g.
  `{"decision": 5.0}`), 0 on padding.

**Metrics** (`evaluate`): on the held-out bank, `loss`, `accuracy` (discrete: fraction of the
weighted steps whose arg-max output is `gt`) and `final_accuracy` (the arg-max at each
trial's last step against its `gt`, the convention of NeuroGym's supervised examples), or
`mse` (continuous); and, when the task can re-create its environment (NeuroGym tasks can),
the environment's **own** metrics, obtained by running the network in closed loop — its
action at every step is the arg-max of its output (or the output itself, continuous) —
for `online_trials` trials: `performance` (mean of the `info["performance"]` that the
environment reports at the end of each trial) and `reward` (mean summed reward per trial).

NeuroGym is imported lazily: `pip install "neurodyn[neurogym]"`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from ..optim import cross_entropy, mse
from ._base import (
    AbstractTask,
    Batch,
    check_positive_int,
    check_size,
    register_family,
    select_hyperparameters,
)
from ._metrics import rollout_outputs

_INSTALL_HINT = (
    'NeuroGym tasks need the optional package neurogym: pip install "neurodyn[neurogym]" '
    "(neurogym 2.x also imports torch)."
)

# Generic settings (our choice): NeuroGym tasks differ, these train PerceptualDecisionMaking-v0
# and GoNogo-v0 in minutes on a CPU (see docs/how-to/neurogym.md for measured runs).
_HYPERPARAMETERS = {
    "cpu": {
        "sofo": {
            "n_iters": 300,
            "batch_size": 32,
            "learning_rate": 0.1,
            "n_tangents": 32,
            "damping": 1e-3,
        },
        "adam": {"n_iters": 2000, "batch_size": 32, "learning_rate": 3e-3},
        "fgd": {"n_iters": 2000, "batch_size": 32, "learning_rate": 1e-3, "n_tangents": 32},
        "first-order-sofo": {
            "n_iters": 2000,
            "batch_size": 32,
            "learning_rate": 0.1,
            "n_tangents": 32,
        },
    },
    "paper": {
        "sofo": {
            "n_iters": 1000,
            "batch_size": 128,
            "learning_rate": 0.1,
            "n_tangents": 128,
            "damping": 1e-3,
        },
        "adam": {"n_iters": 5000, "batch_size": 128, "learning_rate": 1e-3},
        "fgd": {"n_iters": 5000, "batch_size": 128, "learning_rate": 1e-3, "n_tangents": 128},
        "first-order-sofo": {
            "n_iters": 5000,
            "batch_size": 128,
            "learning_rate": 0.1,
            "n_tangents": 128,
        },
    },
}


class TrialEnvTask(AbstractTask):
    """A neurodyn task made of trials drawn from a trial-based environment (see the module
    docstring for the protocol, the mapping and the metrics).

    Build one with [`neurodyn.tasks.trial_env_task`][] (any environment object) or
    [`neurodyn.tasks.neurogym_task`][] / `nd.tasks.get("neurogym:<env id>")`.

    The default network is a [`neurodyn.models.RateRNN`][] with Dale's law
    (`excitatory_fraction` = 0.8, read out from the excitatory units), rectified-tanh rates
    (`activation`; bounded: with ReLU rates 1 of 3 seeds on a toy task ran away, loss
    ~1e18, where rectified tanh trained all 4),
    τ = `tau_ms` (default 2 steps), dt = the environment's step, additive noise `noise_std`,
    `n_neurons` units, `n_obs` inputs and `n_actions` outputs.
    """

    inputs: Any
    targets: Any
    weights: Any
    test_inputs: Any
    test_targets: Any
    test_weights: Any
    test_lengths: Any
    env_name: str = eqx.field(static=True)
    n_actions: int = eqx.field(static=True)
    discrete: bool = eqx.field(static=True)
    step_ms: float = eqx.field(static=True)
    n_neurons: int = eqx.field(static=True, default=64)
    excitatory_fraction: float | None = eqx.field(static=True, default=0.8)
    noise_std: float = eqx.field(static=True, default=0.05)
    tau_ms: float | None = eqx.field(static=True, default=None)
    activation: str = eqx.field(static=True, default="rectified_tanh")
    size: str = eqx.field(static=True, default="cpu")
    env_factory: Any = eqx.field(static=True, default=None)
    online_trials: int = eqx.field(static=True, default=100)
    env_description: str = eqx.field(static=True, default="")

    def __check_init__(self):
        check_positive_int(self.n_neurons, "n_neurons")
        check_positive_int(self.online_trials, "online_trials", 0)
        check_size(self.size)
        if self.excitatory_fraction is not None and not 0 <= self.excitatory_fraction <= 1:
            raise ValueError(
                f"`excitatory_fraction` must lie in [0, 1] or be None; got "
                f"{self.excitatory_fraction!r}."
            )
        if not self.noise_std >= 0:
            raise ValueError(f"`noise_std` must be >= 0; got {self.noise_std!r}.")
        if self.tau_ms is not None and not self.tau_ms >= self.step_ms:
            raise ValueError(
                f"`tau_ms` must be >= the environment's step ({self.step_ms} ms); "
                f"got {self.tau_ms!r}."
            )

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.env_name

    @property
    def description(self) -> str:  # type: ignore[override]
        return self.env_description

    @property
    def n_steps(self) -> int:
        return int(self.inputs.shape[1])

    @property
    def n_inputs(self) -> int:
        return int(self.inputs.shape[2])

    @property
    def dt(self) -> float:
        """Seconds per step (the environment's `dt`, given in ms)."""
        return self.step_ms / 1000.0

    def sample(self, *, key, batch_size: int) -> Batch:
        check_positive_int(batch_size, "batch_size")
        index = jr.randint(key, (batch_size,), 0, self.inputs.shape[0])
        return Batch(
            self.inputs[index],
            self.targets[index],
            self.weights[index],
            {"bank_index": index},
        )

    def loss_function(self):
        if self.discrete:
            return cross_entropy(target="target", weight="weight", scale=1.0 / self.n_steps)
        return mse(target="target", weight="weight", scale=1.0 / self.n_steps)

    def loss(self, y, x) -> jax.Array:
        """Cross-entropy (discrete actions) or squared error at one step, weighted, ÷ T."""
        return self.loss_function()(y, x)

    def evaluate(self, model, *, key, n_trials: int | None = None) -> dict[str, float]:
        """Metrics on the held-out bank (all of it, or its first `n_trials`) and, when the
        environment can be re-created, the environment's own `performance` and `reward` over
        `online_trials` closed-loop trials (see the module docstring)."""
        n = self.test_inputs.shape[0] if n_trials is None else check_positive_int(n_trials, "n")
        n = min(n, self.test_inputs.shape[0])
        k_run, k_online = jr.split(key)
        y = np.asarray(_outputs(model, self.test_inputs[:n], k_run), np.float64)
        target = np.asarray(self.test_targets[:n])
        w = np.asarray(self.test_weights[:n], np.float64)
        out: dict[str, float] = {}
        if self.discrete:
            logp = y - y.max(-1, keepdims=True)
            logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
            ce = -np.take_along_axis(logp, target[..., None], -1)[..., 0]
            out["loss"] = float(np.sum(w * ce) / (n * self.n_steps))
            choice = y.argmax(-1)
            scored = w > 0
            out["accuracy"] = float(np.mean(choice[scored] == target[scored]))
            last = np.asarray(self.test_lengths[:n]) - 1
            rows = np.arange(n)
            out["final_accuracy"] = float(np.mean(choice[rows, last] == target[rows, last]))
        else:
            w3 = w.reshape(w.shape[:2] + (-1,))
            err = np.sum(w3 * (y - target) ** 2) / max(np.sum(np.broadcast_to(w3, y.shape)), 1)
            out["mse"] = float(err)
        if self.env_factory is not None and self.online_trials > 0:
            out.update(self.run_in_environment(model, key=k_online, n_trials=self.online_trials))
        return out

    def run_in_environment(self, model, *, key, n_trials: int) -> dict[str, float]:
        """Run `model` in closed loop in a fresh environment for `n_trials` trials.

        At every step the network receives the observation and acts (arg-max of its output
        for a discrete action space, the output itself otherwise); the environment's reward
        and its end-of-trial `info["performance"]` are averaged over the trials (the first
        trial, which `reset` starts with a random action, is not counted). The network's
        state is reset at every new trial.

        **Returns:** `{"performance", "reward"}` (`performance` is NaN when the environment
        reports none).

        **Raises:** `ValueError` when the task has no `env_factory`.
        """
        if self.env_factory is None:
            raise ValueError("this task has no `env_factory`: it cannot re-create its env.")
        n_trials = check_positive_int(n_trials, "n_trials")
        seed = int(jr.randint(key, (), 0, 2**31 - 1))
        env = self.env_factory()
        _seed_env(env, seed)
        ob, _ = env.reset(seed=seed)
        cap = 4 * self.n_steps  # a trial longer than this is cut and counted as it stands
        step = _single_step(model)
        perf, rewards = [], []
        trial = 0
        while len(rewards) < n_trials + 1:
            k = jr.fold_in(key, trial)
            carry = model.initial_state(k)
            noise = model.sample_noise(jr.fold_in(k, 1), cap)
            total, info = 0.0, {}
            for t in range(cap):
                noise_t = None if noise is None else jax.tree.map(lambda a, t=t: a[t], noise)
                carry, y = step(model, carry, jnp.asarray(ob, self.inputs.dtype), noise_t)
                y = np.asarray(y)
                action = int(y.argmax()) if self.discrete else y
                ob, reward, terminated, truncated, info = env.step(action)
                total += float(reward)
                if info.get("new_trial") or terminated or truncated:
                    break
            if trial > 0:
                perf.append(float(info.get("performance", math.nan)))
                rewards.append(total)
            else:
                rewards.append(math.nan)  # placeholder for the uncounted first trial
            trial += 1
        return {"performance": float(np.mean(perf)), "reward": float(np.nanmean(rewards))}

    def default_model(self, *, key):
        """The Dale's-law rate network of the class docstring."""
        from ..models import RateRNN

        dt = self.dt
        tau = 2 * dt if self.tau_ms is None else self.tau_ms / 1000.0
        return RateRNN(
            self.n_neurons,
            self.n_inputs,
            self.n_actions,
            tau=tau,
            dt=dt,
            activation=self.activation,
            excitatory_fraction=self.excitatory_fraction,
            readout_from="excitatory" if self.excitatory_fraction else "all",
            noise_std=self.noise_std,
            key=key,
        )

    def success_criterion(self) -> tuple[str, float, str] | None:
        """Final-step accuracy ≥ 0.8 (discrete; our choice); none for continuous actions."""
        return ("final_accuracy", 0.8, "above") if self.discrete else None

    def hyperparameters(self, optimizer: str = "sofo") -> dict[str, Any]:
        """Generic recommended settings (the same for every environment; our choice)."""
        return select_hyperparameters(_HYPERPARAMETERS, self.size, optimizer, self.name)


@eqx.filter_jit
def _outputs(model, inputs, key):
    return rollout_outputs(model, inputs, key=key)


def _single_step(model):
    return eqx.filter_jit(lambda m, c, u, n: m.step(c, u, n))


# ----------------------------------------------------------------------------- building


def _trial_source(env):
    """The outermost object of a (wrapped) environment that has `new_trial`."""
    obj = env
    while obj is not None:
        if callable(getattr(type(obj), "new_trial", None)):
            return obj
        obj = getattr(obj, "env", None)
    raise TypeError(
        f"`env` ({type(env).__name__}) has no `new_trial()`: it does not follow the trial "
        "protocol (NeuroGym's TrialEnv: new_trial(), then `ob` and `gt` on the env)."
    )


def _seed_env(env, seed: int) -> None:
    core = getattr(env, "unwrapped", env)
    if callable(getattr(core, "seed", None)):
        core.seed(seed)
    elif callable(getattr(env, "reset", None)):
        env.reset(seed=seed)


def _draw(env, n: int) -> tuple[list, list, list]:
    source = _trial_source(env)
    core = getattr(env, "unwrapped", env)
    obs, gts, spans = [], [], []
    for _ in range(n):
        source.new_trial()
        ob, gt = np.asarray(core.ob, np.float64), np.asarray(core.gt)
        if ob.ndim != 2 or gt.shape[0] != ob.shape[0]:
            raise ValueError(
                f"the environment's trial has ob {ob.shape} and gt {gt.shape}; expected "
                "ob [T, n_obs] and gt [T] or [T, n_act]."
            )
        starts, ends = getattr(core, "start_ind", {}) or {}, getattr(core, "end_ind", {}) or {}
        spans.append({p: (int(starts[p]), int(ends[p])) for p in starts if p in ends})
        obs.append(ob)
        gts.append(gt)
    return obs, gts, spans


def _pack(obs, gts, spans, n_steps, discrete, period_weights, dtype):
    n, n_obs = len(obs), obs[0].shape[1]
    inputs = np.zeros((n, n_steps, n_obs), dtype)
    targets = np.zeros((n, n_steps) + gts[0].shape[1:], np.int32 if discrete else dtype)
    weights = np.zeros((n, n_steps), dtype)
    lengths = np.zeros(n, np.int32)
    for i, (ob, gt, span) in enumerate(zip(obs, gts, spans)):
        T = min(len(ob), n_steps)
        inputs[i, :T], targets[i, :T], weights[i, :T], lengths[i] = ob[:T], gt[:T], 1.0, T
        for period, factor in period_weights:
            if period in span:
                a, b = span[period]
                weights[i, a : min(b, T)] *= factor
    if not discrete:
        weights = weights[..., None]
    return inputs, targets, weights, lengths


def trial_env_task(
    env,
    *,
    name: str | None = None,
    n_train: int = 1024,
    n_test: int = 256,
    n_steps: int | None = None,
    seed: int = 0,
    period_weights: dict[str, float] | None = None,
    env_factory: Callable[[], Any] | None = None,
    size: str = "cpu",
    n_neurons: int | None = None,
    **network,
) -> TrialEnvTask:
    """A neurodyn task from an environment that follows the trial protocol (module docstring).

    **Arguments:**

    - `env`: the environment (possibly wrapped): NeuroGym's `ngym.make(...)`, or any object
      with `new_trial()`, `ob`, `gt`, `action_space`.
    - `name`: the task's name (default the environment's class name).
    - `n_train`, `n_test`: trials drawn for the training and the held-out banks.
    - `n_steps`: the padded trial length (default: the longest training trial).
    - `seed`: seeds the environment before drawing (the banks are a function of it).
    - `period_weights`: loss weight per period name, e.g. `{"decision": 5.0}` (default 1).
    - `env_factory`: a function returning a fresh environment, for the closed-loop metrics
      (`performance`, `reward`); `None` skips them.
    - `size`: `"cpu"` (64 units) or `"paper"` (256 units): the network and the recommended
      hyperparameters.
    - `n_neurons` and `**network`: the default network's `n_neurons`,
      `excitatory_fraction`, `noise_std`, `tau_ms`, `activation`, and `online_trials`.

    **Returns:** a [`neurodyn.tasks.TrialEnvTask`][].

    **Raises:** `TypeError` for an environment without `new_trial`; `ValueError` for bad
    sizes, trials with mismatched `ob`/`gt`, or an action space neither `Discrete` nor `Box`.
    """
    check_size(size)
    n_train = check_positive_int(n_train, "n_train")
    n_test = check_positive_int(n_test, "n_test")
    space = getattr(env, "action_space", None)
    if hasattr(space, "n") and not getattr(space, "shape", None):
        discrete, n_actions = True, int(space.n)
    elif getattr(space, "shape", None):
        discrete, n_actions = False, int(np.prod(space.shape))
    else:
        raise ValueError(f"the environment's action_space must be Discrete or Box; got {space!r}.")
    pw = tuple(sorted((str(k), float(v)) for k, v in (period_weights or {}).items()))
    for period, factor in pw:
        if not factor >= 0:
            raise ValueError(f"`period_weights[{period!r}]` must be >= 0; got {factor}.")
    _seed_env(env, seed)
    train = _draw(env, n_train)
    test = _draw(env, n_test)
    longest = max(len(o) for o in train[0])
    n_steps = longest if n_steps is None else check_positive_int(n_steps, "n_steps")
    dtype = np.float32 if not jax.config.jax_enable_x64 else np.float64
    x, y, w, _ = _pack(*train, n_steps, discrete, pw, dtype)
    tx, ty, tw, tl = _pack(*test, n_steps, discrete, pw, dtype)
    core = getattr(env, "unwrapped", env)
    if n_neurons is None:
        n_neurons = 64 if size == "cpu" else 256
    doc = (type(core).__doc__ or "").strip().splitlines()
    return TrialEnvTask(
        inputs=jnp.asarray(x),
        targets=jnp.asarray(y),
        weights=jnp.asarray(w),
        test_inputs=jnp.asarray(tx),
        test_targets=jnp.asarray(ty),
        test_weights=jnp.asarray(tw),
        test_lengths=jnp.asarray(tl),
        env_name=name or type(core).__name__,
        n_actions=n_actions,
        discrete=discrete,
        step_ms=float(getattr(core, "dt", 1000.0)),
        size=size,
        n_neurons=int(n_neurons),
        env_factory=env_factory,
        env_description=doc[0] if doc else "",
        **network,
    )


# ----------------------------------------------------------------------------- NeuroGym


def import_neurogym():
    """`import neurogym`, or an `ImportError` that says how to install it."""
    try:
        import neurogym
    except ImportError as err:
        raise ImportError(f"{_INSTALL_HINT} ({err})") from None
    return neurogym


@dataclasses.dataclass(frozen=True)
class NeuroGymFactory:
    """A hashable recipe for a fresh NeuroGym environment:
    `neurogym.make(env_id, **json.loads(env_kwargs))`."""

    env_id: str
    env_kwargs: str = "{}"

    def __call__(self):
        return import_neurogym().make(self.env_id, **json.loads(self.env_kwargs))


def neurogym_task(
    env_id: str, *, env_kwargs: dict | None = None, size: str = "cpu", **options
) -> TrialEnvTask:
    """Any NeuroGym environment as a neurodyn task: `nd.tasks.get("neurogym:<env_id>")`.

    **Arguments:**

    - `env_id`: a NeuroGym environment id, e.g. `"PerceptualDecisionMaking-v0"`,
      `"GoNogo-v0"`, `"DelayMatchSample-v0"` (`neurogym.envs.registration.all_envs()` lists
      them).
    - `env_kwargs`: passed to `neurogym.make` (e.g. `{"dt": 20}`, `{"timing": {...}}`).
    - `size`, `**options`: as for [`neurodyn.tasks.trial_env_task`][] (`n_train`, `n_test`,
      `n_steps`, `seed`, `period_weights`, `n_neurons`, `excitatory_fraction`, `noise_std`,
      `tau_ms`, `online_trials`).

    **Returns:** a [`neurodyn.tasks.TrialEnvTask`][] named `"neurogym:<env_id>"`, whose
    evaluation includes NeuroGym's own `performance` in closed loop.

    **Raises:** `ImportError` with an install hint when neurogym is missing; `ValueError`
    for an unknown environment id (naming a few accepted ones).

    **Example:** `task = nd.tasks.get("neurogym:GoNogo-v0", n_train=512)`
    """
    ngym = import_neurogym()
    from neurogym.envs.registration import all_envs

    known = all_envs(collections=True)
    if env_id not in known:
        close = [e for e in known if env_id.split("-")[0].lower() in e.lower()][:5]
        raise ValueError(
            f"unknown NeuroGym environment {env_id!r}; e.g. "
            f"{', '.join(close or known[:8])} (neurogym.envs.registration.all_envs() lists "
            f"all {len(known)})."
        )
    factory = NeuroGymFactory(env_id, json.dumps(env_kwargs or {}, sort_keys=True))
    env = ngym.make(env_id, **(env_kwargs or {}))
    return trial_env_task(env, name=f"neurogym:{env_id}", env_factory=factory, size=size, **options)


NEUROGYM_OPTIONS: tuple[str, ...] = (
    "env_kwargs",
    "n_train",
    "n_test",
    "n_steps",
    "seed",
    "period_weights",
    "n_neurons",
    "excitatory_fraction",
    "noise_std",
    "tau_ms",
    "activation",
    "online_trials",
)
"""The options `nd.tasks.get("neurogym:<id>", ...)` accepts (and `--set task.<name>=`)."""

register_family("neurogym", neurogym_task, NEUROGYM_OPTIONS)
