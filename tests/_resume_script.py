"""Train the teacher task with checkpoints; used by test_fit.py's kill-and-resume test."""

import sys
import time

import jax.random as jr
import numpy as np

import neurodyn as nd
from tests._fit_fixtures import TeacherTask

ckpt_dir, out, n_iters, resume, slow = (
    sys.argv[1],
    sys.argv[2],
    int(sys.argv[3]),
    sys.argv[4] == "1",
    sys.argv[5] == "1",
)
task = TeacherTask(key=jr.PRNGKey(0))
model = task.default_model(key=jr.PRNGKey(1))
opt = nd.optim.sofo(learning_rate=1.0, n_tangents=16, damping=1e-3)
callbacks = [lambda it, recs, m: time.sleep(0.15)] if slow else []
result = nd.fit(
    model,
    task,
    opt,
    n_iters=n_iters,
    batch_size=16,
    key=jr.PRNGKey(2),
    checkpoint_dir=ckpt_dir,
    checkpoint_every=3,
    log_every=1,
    resume=resume,
    progress=False,
    callbacks=callbacks,
    eval_every=0,
)
np.savez(
    out,
    W=np.asarray(result.model.W),
    W_out=np.asarray(result.model.W_out),
    loss=result.history["loss"].values,
)
