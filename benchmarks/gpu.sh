#!/usr/bin/env bash
# Benchmarks 1-3 (step cost, memory against the horizon, time to solution) in one prepared run
# on a GPU, sized to finish in about 10 minutes on one H100-class card. Writes the tables,
# JSON and PNGs under $OUT (default benchmarks/results) with a gpu_ prefix, so they never
# overwrite the CPU figures. Needs a CUDA build of JAX (e.g. pip install "jax[cuda12]")
# installed beforehand: nothing is downloaded here.
#
#   bash benchmarks/gpu.sh              # or: OUT=/some/dir bash benchmarks/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results}
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

# 1. step cost: the full K grid, T up to 1000 (T = 5000 adds little on a GPU: the scan is
#    launch-bound there), both networks
python benchmarks/step_cost.py --horizons 100 1000 --out "$OUT/gpu_step_cost"
# 2. memory against the horizon at the paper's batch (B = 256, K = 128)
python benchmarks/memory.py --batch-size 256 --n-tangents 128 --out "$OUT/gpu_memory"
# 3. time to solution on the two tasks whose goals name wall-clock (Kalman, flip-flop), 3 seeds,
#    a fifth of the CPU budgets (18 s per run)
python benchmarks/time_to_solution.py --tasks flipflop kalman --budget-scale 0.2 \
    --out "$OUT/gpu_time_to_solution"
