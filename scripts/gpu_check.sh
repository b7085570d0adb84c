#!/usr/bin/env bash
# Issue #20 on a GPU, in one run of at most 9 minutes: the persistent Triton kernel (vocoder/generate/triton_kernel.py)
# compiled for CUDA, its tests against the naive reference on CUDA, and `vocoder bench generation --device cuda` for
# the seed-size and demo teachers at batch 1 to 512, CUDA graphs (`fast`) beside the kernel (`triton`).
#
#   scripts/gpu_check.sh [OUT]          (default OUT: $OUT where the device tool sets it, else out/gpu-check)
#
# Writes OUT/env.txt (GPU, driver, torch, triton), OUT/tests.log, and OUT/bench-seed_size.json,
# bench-demo_teacher.json and bench-seed_size-fp16.json (each with its .log): 8 files, as many as the device tool
# brings back. Each step has its own time limit, so one that hangs leaves time for the others. Then, from the JSON:
# the table for docs/BENCHMARKS.md, and `TRITON_AUTO_MAX_BATCH` (vocoder/generate/backends.py): the largest batch
# at which `triton_batch{N}_samples_per_s` (`triton_samples_per_s` at batch 1) beats `fast_...` (CUDA graphs).
#
# The device image has torch and triton but not every package this project imports: `make gpu-wheels` here, carry
# .gpu (device tool: run, carry [".gpu"], command "bash scripts/gpu_check.sh"); scripts/device_env.sh installs them
# there and stops the script before it spends GPU time if one is still missing.
set -uo pipefail

cd "$(dirname "$0")/.."
source scripts/device_env.sh
device_setup "${1:-${OUT:-out/gpu-check}}" torch triton numpy scipy yaml typer \
  safetensors pydantic librosa soundfile platformdirs pytest xdist || exit 3
BATCHES=2,4,8,16,32,64,128,256,512

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  "$PY" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
  date -u +%Y-%m-%dT%H:%MZ
} 2>&1 | tee -a "$OUT/env.txt"

echo "== the kernel's tests on CUDA against the naive reference (compiled: TRITON_INTERPRET unset)"
env -u TRITON_INTERPRET timeout 200 "$PY" -m pytest -q -n 8 -p no:cacheprovider tests/test_triton_kernel.py 2>&1 |
  tee "$OUT/tests.log"

bench() {  # name, time limit (s), config, bench options
  local name=$1 limit=$2 config=$3
  shift 3
  echo "== bench generation --config $config --device cuda $*"
  env -u TRITON_INTERPRET timeout "$limit" "$PY" -m vocoder.cli bench generation --config "$config" --device cuda \
    --fast-steps 1000 --batch-steps 250 --naive-steps 32 --student-seconds 1 --repeats 3 --json "$@" \
    2>"$OUT/$name.log" | tee "$OUT/$name.out"
  tail -n 1 "$OUT/$name.out" >"$OUT/$name.json" && cat "$OUT/$name.out" >>"$OUT/$name.log"
  rm "$OUT/$name.out"
}
bench bench-seed_size 140 seed_size --batch-sizes "$BATCHES"
bench bench-demo_teacher 110 demo_teacher --batch-sizes "$BATCHES"
# fp16 weights (the Triton figure only; graphs stay fp32): half the bytes each step reads
bench bench-seed_size-fp16 90 seed_size --batch-sizes 8,64,512 --precision fp16
