"""One process of a `jax.distributed` fit; run twice by tests/test_sharding.py.

Usage: `python -m tests._multiprocess_script PROCESS_ID N_PROCESSES PORT OUT.npz`. Every
process runs the same program (the batch, noise and tangents are drawn inside the step from
the same keys, so no process loads data for another); the trials are split over the processes'
devices and CPU collectives (gloo) sum their parts. Process 0 saves the loss history, the
final parameters and the first update, to be compared with a fit in one process.
"""

import sys

import jax

process_id, n_processes, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(
    coordinator_address=f"127.0.0.1:{port}",
    num_processes=n_processes,
    process_id=process_id,
    local_device_ids=[0],
)
jax.config.update("jax_enable_x64", False)

import numpy as np  # noqa: E402

from tests._sharding_script import run  # noqa: E402

assert jax.process_count() == n_processes and len(jax.devices()) == n_processes
loss, params, update, _ = run("sofo", None)  # devices=None: every process's devices
if process_id == 0:
    np.savez(out, loss=loss, params=params, update=update, devices=len(jax.devices()))
jax.distributed.shutdown()
