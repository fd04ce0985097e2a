#!/usr/bin/env bash
# The GPU benchmarks in one prepared run (docs/benchmarks.md#gpu, docs/reproducing.md):
#   1. step cost of the README's N = 128 tanh RNN, T in {100, 1000}, K in {16, 64, 256} (~45 s)
#   2. memory against the horizon at the paper's batch (B = 256, K = 128), T up to 10,000 (~60 s)
#   3. the single reach with the muscle arm: SOFO K = 256 with momentum 0.9 and a cosine η,
#      training targets widened by the margins, 4500 iterations (~155 s), then BPTT + Adam for
#      the same training time (~5 min with compilation and evaluations)
#   4. the long horizon at the paper's size: the Kalman task at T = 5000 (N = 100, B = 256,
#      K = 128, the paper's step sizes) trained by SOFO, BPTT + Adam, checkpointed BPTT +
#      Adam and first-order SOFO for 60 s each (5 min 6 s on one H200, 2026-12-04)
#   5. the double reach at the paper's size (2 ms steps, B = K = 256, the reference's η = 0.05
#      and Adam lr 5e-4): SOFO and BPTT + Adam for 100 s of training each, one seed (4 min 7 s
#      on one H200, 2026-12-04: SOFO 13.0 cm, Adam 12.1 cm). Steps 4 and 5 together are
#      the paper's two headline experiments in under 10 minutes: STEPS="4 5".
#   6. the SOFO step's per-op profile and chunk sizes 1, 4, 16 and auto at N = 128, T = 1000,
#      K in {32, 256} (not run yet; a few minutes)
# Steps 1-3 took about 7 minutes on one H100 (2026-11-27, jax 0.11.2). STEPS selects steps
# (default "1 2 3 4 5 6"); one 10-minute lease holds steps 1, 2 and 4, or step 3 alone.
# Writes the tables, JSON and PNGs under $OUT (default benchmarks/results) with a gpu_ prefix,
# so they never overwrite the CPU figures. Needs a CUDA build of JAX installed beforehand
# (e.g. pip install "jax[cuda12]"): nothing is downloaded here. SKIP_REACH=1 skips step 3.
#
#   bash benchmarks/gpu.sh              # or: OUT=/some/dir STEPS="4" bash benchmarks/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results}
STEPS=${STEPS:-1 2 3 4 5 6}
step() { [[ " $STEPS " == *" $1 "* ]]; }
mkdir -p "$OUT"

python - <<'EOF'
import sys

import jax

device = jax.devices()[0]
if device.platform != "gpu":
    sys.exit(
        f"benchmarks/gpu.sh: JAX sees no GPU (default device: {device}); install a CUDA "
        "build of JAX first, or run the CPU scripts (docs/benchmarks.md)."
    )
print(f"GPU: {device.device_kind}", flush=True)
EOF

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu_device.csv" || true

# 1. step cost (the GPU is launch-bound at these sizes: T = 5000 and the flip-flop / Kalman
#    networks add little; run `python benchmarks/step_cost.py` for the full grid)
step 1 && python benchmarks/step_cost.py --nets rnn128 --horizons 100 1000 --tangents 16 64 256 \
    --out "$OUT/gpu_step_cost_rnn128"
# 2. memory against the horizon at the paper's batch and K
step 2 && python benchmarks/memory.py --batch-size 256 --n-tangents 128 --horizons 100 1000 10000 \
    --out "$OUT/gpu_memory"
# 3. the muscle arm below 2 cm with SOFO (the network, batch and task of the CPU size)
if [ -z "${SKIP_REACH:-}" ] && step 3; then
    python benchmarks/reach_results.py --tasks reach --plants muscle --sofo-iters 4500 \
        --eval-every 900 --eval-repeats 64 --set task.angle_margin=18 \
        --set task.radius_margin=0.05 --set sofo.n_tangents=256 --set sofo.momentum=0.9 \
        --set sofo.lr_schedule=cosine --set sofo.lr_decay_start=0.5 --set sofo.lr_final=0.25 \
        --label "GPU: K=256, momentum 0.9, cosine η, margins 18°/0.05 m" \
        --jsonl "$OUT/gpu_reach_results.jsonl" --out "$OUT/gpu_reach_results.md"
fi
# 4. the long horizon at the paper's size (docs/reproducing.md#the-long-horizon)
if step 4; then
    python benchmarks/horizon_sweep.py --size paper --horizons 5000 --seeds 1 --budget 60 \
        --out "$OUT/gpu_horizon_sweep"
fi

# 5. the double reach at the paper's size (docs/reproducing.md#the-double-reach)
if step 5; then
    python benchmarks/time_to_solution.py --tasks double-reach --size paper --optimizers sofo adam \
        --no-sweep --seeds 1 --budget-scale 0.1667 --out "$OUT/gpu_double_reach"
fi

# 6. whether chunking the SOFO scan pays on the accelerator (the CPU rule, chunk 1, is measured
#    in docs/benchmarks.md#where-the-time-goes; `chunk_size=None` on a GPU uses the 64 MiB
#    budget rule, unmeasured until this step runs), and the per-op profile at N = 128
if step 6; then
    python benchmarks/step_profile.py --units 128 --tangents 32 256 --horizon 1000 \
        --chunk-sizes 1 4 16 auto --out "$OUT/gpu_step_profile"
fi
