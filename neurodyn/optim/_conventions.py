r"""GGN scale conventions of the reference implementations.

See docs/concepts/sofo-conventions.md for the factors and the reference step sizes.

neurodyn's subspace GGN is *consistent*: it is exactly Vᵀ G V for the Gauss–Newton matrix of
the loss as written. The reference implementations scale their GGN differently from their own
loss. With relative damping, scaling G̃ by c scales the SOFO direction by 1/c, so a step size
η quoted from a reference implicitly contains that reference's factor c: the same update in
our convention takes η / c.

| convention | source | MSE c | cross-entropy c |
|---|---|---|---|
| `"consistent"` | neurodyn | 1 | 1 |
| `"ocaml2024"` | OCaml `lib/`, 2024 – Apr 2025 (30f3eb2, fc267b5, c5d617e, a88e0d4) | d | 1 |
| `"jax2024"` | JAX `jax/api.py` (its `ggn_mse` drops 2/d); PyTorch `pytorch/api.py` | d / 2 | 1 |
| `"ocaml2025"` | OCaml `sofo/` since b42e13b, 2025-07-21 (3c62b01, HEAD e9b6ea6) | B·d / K | 2 |

d is the number of output entries of one trial at one step that the per-trial squared error
averages over (`nd.optim.mse(reduction="mean")`; d = 1 for `reduction="sum"`, the weighted
sum of the reaching tasks, whose 2024 reference also summed), B the batch size, K the number
of tangents. A short-lived intermediate version
(c1812e0, 2025-07-17 → b42e13b) summed its MSE GGN without any normalisation, c = B·d: pass
that number as `ggn_scale_convention` to reproduce it. Any positive number is accepted as an
explicit factor c.
"""

from __future__ import annotations

import math
import numbers

import jax

from ._losses import MeanSquaredError, SoftmaxCrossEntropy
from ._problem import FeedforwardProblem, RecurrentProblem

GGN_SCALE_CONVENTIONS: tuple[str, ...] = ("consistent", "ocaml2024", "jax2024", "ocaml2025")
"""Named GGN scale conventions (see `neurodyn.optim.ggn_scale_factor`)."""


def check_ggn_scale_convention(convention) -> None:
    """Trace-time validation: one of `GGN_SCALE_CONVENTIONS` or a finite number > 0."""
    if isinstance(convention, str):
        if convention not in GGN_SCALE_CONVENTIONS:
            raise ValueError(
                f"`ggn_scale_convention` must be one of {GGN_SCALE_CONVENTIONS} or a number > 0; "
                f"got {convention!r}."
            )
        return
    if isinstance(convention, bool) or not isinstance(convention, numbers.Real):
        raise TypeError(
            f"`ggn_scale_convention` must be one of {GGN_SCALE_CONVENTIONS} or a number > 0; "
            f"got {convention!r}."
        )
    if not (math.isfinite(convention) and convention > 0):
        raise ValueError(
            f"`ggn_scale_convention` as a number must be finite and > 0; got {convention}."
        )


def ggn_scale_factor(loss, output_shape: tuple[int, ...], convention, n_tangents: int) -> float:
    r"""The factor c with G̃_reference = c · G̃_consistent for one loss.

    A step size η stated in `convention` moves the parameters as η / c does in neurodyn's
    consistent convention (relative or no damping).

    **Arguments:**

    - `loss`: a [`neurodyn.optim.MeanSquaredError`][] or
      [`neurodyn.optim.SoftmaxCrossEntropy`][] (any loss when `convention="consistent"`).
    - `output_shape`: the shape of one step's outputs y, batch first (`[B, ...]`).
    - `convention`: a name of `GGN_SCALE_CONVENTIONS` or an explicit factor c > 0.
    - `n_tangents`: K.

    **Returns:** c as a Python float.

    **Raises:** `ValueError` for an unknown convention, or a named convention other than
    `"consistent"` with a loss whose reference scaling is not known (a plain callable).
    """
    check_ggn_scale_convention(convention)
    if not isinstance(convention, str):
        return float(convention)
    if convention == "consistent":
        return 1.0
    shape = tuple(int(s) for s in output_shape)
    batch = shape[0] if len(shape) > 0 else 1
    if isinstance(loss, MeanSquaredError):
        # the reference GGNs are 2s·Σ ẎẎᵀ/B (ocaml2024), s·Σ ẎẎᵀ/B (jax2024), 2s·Σ ẎẎᵀ/K
        # (ocaml2025); ours is 2s·Σ ẎẎᵀ/(B·d), d averaged-over entries (1 for a sum)
        per_trial = math.prod(shape[1:]) if len(shape) > 1 else 1
        d = per_trial if loss.reduction == "mean" else 1
        return {
            "ocaml2024": float(d),
            "jax2024": d / 2.0,
            "ocaml2025": batch * d / float(n_tangents),
        }[convention]
    if isinstance(loss, SoftmaxCrossEntropy):
        return {"ocaml2024": 1.0, "jax2024": 1.0, "ocaml2025": 2.0}[convention]
    raise ValueError(
        f"`ggn_scale_convention={convention!r}` needs the problem's loss to be a "
        "neurodyn.optim.MeanSquaredError or SoftmaxCrossEntropy (`nd.optim.mse`, "
        f"`nd.optim.cross_entropy`), whose reference scaling is known; got "
        f"{type(loss).__name__}. Pass the factor c itself as a number instead."
    )


def problem_ggn_scale_factor(problem, params, convention, n_tangents: int) -> float:
    """`ggn_scale_factor` for a problem: the output shape is read by `jax.eval_shape`."""
    check_ggn_scale_convention(convention)
    if not isinstance(convention, str) or convention == "consistent":
        return ggn_scale_factor(None, (), convention, n_tangents)
    if isinstance(problem, RecurrentProblem):
        y = jax.eval_shape(
            lambda p: problem.step(p, problem.initial_carry(p), problem.x_at(0))[1], params
        )
    elif isinstance(problem, FeedforwardProblem):
        y = jax.eval_shape(lambda p: problem.fun(p, *problem.args), params)
    else:
        raise TypeError(
            "`problem` must be a neurodyn.optim.RecurrentProblem or FeedforwardProblem; got "
            f"{type(problem).__name__}."
        )
    leaves = jax.tree.leaves(y)
    if len(leaves) != 1:
        raise ValueError(
            f"`ggn_scale_convention={convention!r}` needs a single output array per step; "
            f"got {len(leaves)} leaves."
        )
    return ggn_scale_factor(problem.loss, leaves[0].shape, convention, n_tangents)


def convert_learning_rate(
    learning_rate: float,
    loss,
    output_shape,
    *,
    from_convention,
    to_convention="consistent",
    n_tangents: int,
) -> float:
    """η stated in `from_convention` → the η giving the same update in `to_convention`.

    η_to = η_from · c_to / c_from, with the factors of [`neurodyn.optim.ggn_scale_factor`][].
    """
    c_from = ggn_scale_factor(loss, output_shape, from_convention, n_tangents)
    c_to = ggn_scale_factor(loss, output_shape, to_convention, n_tangents)
    return float(learning_rate) * c_to / c_from
