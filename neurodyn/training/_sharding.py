"""Scaling a fit out over devices: JAX's own `Mesh` and `NamedSharding`, nothing home-made.

A fit runs one jitted step per iteration. On several devices that step is the *same* program:
the batch, the noise and the tangents are drawn with their global shapes from the same keys as
on one device, and sharding constraints tell XLA how to lay them out — trials along the mesh
axis `"batch"`, SOFO's K tangents along the mesh axis `"tangents"`. XLA partitions the rest
and inserts the reductions (the K × K subspace GGN, Vᵀg, BPTT's gradient, FORCE's readout
update). Sharding changes the layout, never the values, so a fit on 4 devices equals the
fit on 1 device up to the order of floating-point sums (JAX's partitionable threefry makes
the random streams independent of the layout).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

BATCH_AXIS = "batch"
"""Mesh axis name along which the trials of a batch are split."""
TANGENT_AXIS = "tangents"
"""Mesh axis name along which SOFO's K tangents are split."""
LAYOUTS = ("batch", "tangents")


def make_mesh(devices: Any = None, layout: Any = "batch") -> Mesh:
    """The device mesh of a fit: axes `("batch", "tangents")`.

    **Arguments:**

    - `devices`: `None` (every device JAX sees: `jax.devices()`, all processes' devices under
      `jax.distributed`), an int n (the first n of `jax.devices()`), a sequence of devices, or
      a `jax.sharding.Mesh` whose axis names are among `"batch"` and `"tangents"` (a missing
      axis has size 1; `layout` is then ignored).
    - `layout`: how the devices are split: `"batch"` (default: every device takes a slice of
      the trials), `"tangents"` (every device takes a slice of SOFO's K tangents), or a pair
      `(n_batch, n_tangents)` whose product is the number of devices (a 2-D mesh).

    **Returns:** a `Mesh` with axis names `("batch", "tangents")`.

    **Raises:** `TypeError`/`ValueError` naming the argument and what is accepted.
    """
    if isinstance(devices, Mesh):
        names = tuple(devices.axis_names)
        unknown = [n for n in names if n not in (BATCH_AXIS, TANGENT_AXIS)]
        if unknown:
            raise ValueError(
                f"a `devices` Mesh must name its axes among ('batch', 'tangents'); got {names}."
            )
        shape = dict(devices.shape)
        grid = np.asarray(devices.devices).reshape([shape[n] for n in names])
        order = [names.index(n) for n in (BATCH_AXIS, TANGENT_AXIS) if n in names]
        grid = np.transpose(grid, order).reshape(
            shape.get(BATCH_AXIS, 1), shape.get(TANGENT_AXIS, 1)
        )
        return Mesh(grid, (BATCH_AXIS, TANGENT_AXIS))
    available = jax.devices()
    if devices is None:
        chosen = list(available)
    elif isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        if not 1 <= devices <= len(available):
            raise ValueError(
                f"`devices` = {devices} but JAX sees {len(available)} device(s) "
                f"({available[0].platform}); on a CPU, set the host device count before JAX "
                "starts (see the docs page 'Scaling out')."
            )
        chosen = list(available[:devices])
    elif isinstance(devices, Sequence) and not isinstance(devices, str):
        chosen = list(devices)
        if not chosen or not all(isinstance(d, jax.Device) for d in chosen):
            raise TypeError("`devices` as a sequence must hold jax.Device objects (non-empty).")
        if len(set(chosen)) != len(chosen):
            raise ValueError("`devices` lists the same device twice.")
    else:
        raise TypeError(
            "`devices` must be None, an int, a sequence of jax devices or a jax.sharding.Mesh; "
            f"got {type(devices).__name__}."
        )
    n = len(chosen)
    if isinstance(layout, str):
        if layout not in LAYOUTS:
            raise ValueError(f"`layout` must be one of {LAYOUTS} or (n_batch, n_tangents).")
        shape = (n, 1) if layout == BATCH_AXIS else (1, n)
    else:
        try:
            shape = tuple(int(s) for s in layout)
        except TypeError:
            raise TypeError(
                f"`layout` must be one of {LAYOUTS} or a pair (n_batch, n_tangents); got "
                f"{layout!r}."
            ) from None
        if len(shape) != 2 or min(shape) < 1 or shape[0] * shape[1] != n:
            raise ValueError(
                f"`layout` = {layout!r} must be a pair (n_batch, n_tangents) of positive ints "
                f"whose product is the number of devices ({n})."
            )
    return Mesh(np.asarray(chosen, dtype=object).reshape(shape), (BATCH_AXIS, TANGENT_AXIS))


def default_devices(batch_size: int, optimizer, layout: Any = "batch") -> int | None:
    """What `devices=None` means: every device, or (one process, a string `layout`) the
    largest number of them that the batch (`"batch"`) or K (`"tangents"`) divides evenly.
    Returns an int for `make_mesh`, or `None` for every device."""
    n = len(jax.devices())
    if jax.process_count() > 1 or not isinstance(layout, str) or n == 1:
        return None
    size = batch_size if layout == BATCH_AXIS else getattr(optimizer, "n_tangents", None)
    if size is None:
        return None
    return max(d for d in range(1, n + 1) if size % d == 0)


def mesh_sizes(mesh: Mesh) -> tuple[int, int]:
    """`(n_batch, n_tangents)`: the sizes of the two axes of a fit's mesh."""
    return int(mesh.shape[BATCH_AXIS]), int(mesh.shape[TANGENT_AXIS])


def check_layout(mesh: Mesh, batch_size: int, optimizer) -> None:
    """Errors for a batch or a K that does not split evenly over the mesh."""
    n_batch, n_tangents = mesh_sizes(mesh)
    if batch_size % n_batch:
        raise ValueError(
            f"`batch_size` = {batch_size} does not divide over the {n_batch} devices of the "
            f"batch axis; pick a batch_size that is a multiple of {n_batch} (e.g. "
            f"{batch_size + (-batch_size) % n_batch}) or fewer `devices`."
        )
    if n_tangents > 1:
        k = getattr(optimizer, "n_tangents", None)
        if not getattr(optimizer, "uses_tangents", False) or k is None:
            raise ValueError(
                f"a tangents axis of {n_tangents} devices needs an optimizer with tangents "
                f"(SOFO, first-order SOFO); got {type(optimizer).__name__}: use "
                "layout='batch'."
            )
        if k % n_tangents:
            raise ValueError(
                f"`n_tangents` = {k} does not divide over the {n_tangents} devices of the "
                "tangents axis; pick a multiple or another `layout`."
            )


def replicate(tree, mesh: Mesh):
    """Every array leaf of `tree` copied onto every device of `mesh`."""
    sharding = NamedSharding(mesh, PartitionSpec())
    arrays, rest = eqx.partition(tree, eqx.is_array)
    return eqx.combine(jax.device_put(arrays, sharding), rest)


def local_copy(tree):
    """Every array leaf spread over several devices, as one array on this process's first
    device (a replicated array's local copy; nothing moves for a single-device array)."""

    def one(x):
        if isinstance(x, jax.Array) and len(x.sharding.device_set) > 1:
            if not x.is_fully_replicated:
                x = jax.device_put(x, NamedSharding(x.sharding.mesh, PartitionSpec()))
            return x.addressable_data(0)
        return x

    return jax.tree.map(one, tree)


def constrain_batch(tree, mesh: Mesh, batch_size: int):
    """Inside jit: lay every array leaf whose leading axis has `batch_size` entries out along
    the mesh's batch axis. A layout hint only: it never changes a value."""
    if mesh.shape[BATCH_AXIS] == 1:
        return tree
    sharding = NamedSharding(mesh, PartitionSpec(BATCH_AXIS))

    def one(x):
        if eqx.is_array(x) and x.ndim >= 1 and x.shape[0] == batch_size:
            return jax.lax.with_sharding_constraint(x, sharding)
        return x

    return jax.tree.map(one, tree)
