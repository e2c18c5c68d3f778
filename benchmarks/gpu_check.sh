#!/usr/bin/env bash
# The GPU check: run on a machine with a CUDA GPU, from a checkout of capas, in a few minutes.
#
#   1. the tests that need CUDA (tests/test_cuda.py: every task on the GPU, the explicit
#      engine, bf16 and fp16 mixed precision with its history, pinned DataLoader batches,
#      exact resume, NCCL ranks) and the mixed-precision tests (tests/test_amp.py);
#   2. throughput of the MLP, LeNet-style and LSTM benchmarks in float32, bf16 and fp16,
#      with peak GPU memory (benchmarks/bench_gpu.py);
#   3. one GPU against the CPU, and 1 against 2 CPU processes (benchmarks/bench_ddp.py).
#
# Usage: benchmarks/gpu_check.sh [OUT_DIR]
# OUT_DIR (default $TMPDIR/capas-gpu-check-<time>) gets the logs, bench_gpu.json and
# bench_ddp.json. PYTHON picks the interpreter (default .venv/bin/python, else python3).
# Exits 2 without a GPU (after the tests, which then skip), 1 when a test fails; the
# benchmarks still run after a failed test, so one run gives every number.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
OUT=${1:-${TMPDIR:-/tmp}/capas-gpu-check-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"

echo "== 1. tests that need CUDA (they skip, saying why, where there is none)"
"$PYTHON" -m pytest -q -rs tests/test_cuda.py tests/test_amp.py 2>&1 | tee "$OUT/tests.log"
tests=${PIPESTATUS[0]}
if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: torch sees no CUDA device here; the benchmarks need one: run this on a GPU machine" >&2
    exit 2
fi
"$PYTHON" -c "import torch; print('GPU:', torch.cuda.get_device_name(0), '| torch', torch.__version__, '| CUDA', torch.version.cuda)" | tee "$OUT/device.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null | tee -a "$OUT/device.txt"

echo "== 2. throughput and peak memory: float32, bf16, fp16"
"$PYTHON" benchmarks/bench_gpu.py --n "${GPU_CHECK_N:-20000}" --epochs 3 --json 2>&1 | tee "$OUT/bench_gpu.log"
tail -n 1 "$OUT/bench_gpu.log" > "$OUT/bench_gpu.json"

echo "== 3. one GPU against the CPU; 1 against 2 CPU processes"
"$PYTHON" benchmarks/bench_ddp.py --n "${GPU_CHECK_DDP_N:-12000}" --epochs 3 --json 2>&1 | tee "$OUT/bench_ddp.log"
tail -n 1 "$OUT/bench_ddp.log" > "$OUT/bench_ddp.json"

echo "gpu_check: tests exit code $tests; logs and numbers in $OUT/"
exit "$tests"
