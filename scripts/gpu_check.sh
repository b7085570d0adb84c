#!/usr/bin/env bash
# Issue #20 on a GPU, in one run of at most 9 minutes: the persistent Triton kernel (vocoder/generate/triton_kernel.py)
# compiled for CUDA, its tests against the naive reference on CUDA, and `vocoder bench generation --device cuda` for
# the seed-size and demo teachers at batch 1 to 512, CUDA graphs (`fast`) beside the kernel (`triton`).
#
#   scripts/gpu_check.sh [OUT]          (default OUT: $OUT where the device tool sets it, else out/gpu-check)
#
# Writes OUT/env.txt (GPU, driver, torch, triton), OUT/tests.log, OUT/bench-seed_size.json and
# OUT/bench-demo_teacher.json (each with its .log): at most 8 files, as the device tool brings back. Each step has
# its own time limit, so one that hangs leaves time for the others. Then: the table for docs/BENCHMARKS.md and
# `TRITON_AUTO_MAX_BATCH` (vocoder/generate/backends.py) from the two JSON files: the largest batch at which
# `triton_batch{N}_samples_per_s` (or `triton_samples_per_s` at batch 1) beats `fast_...`.
#
# The device image has torch and triton but not every package this project imports. Missing ones are listed and the
# script stops before it spends GPU time. Carry them as wheels (docs: the device tool's README, "Notes"), e.g. here:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl pydantic pydantic-core annotated-types typing-inspection librosa audioread decorator pooch soxr \
#       soundfile cffi pycparser platformdirs
# and run it (carry: [".whl"]) as
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
#       .whl/*.whl && export PYTHONPATH=/tmp/site; bash scripts/gpu_check.sh
set -uo pipefail

OUT="${1:-${OUT:-out/gpu-check}}"
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
BATCHES=2,4,8,16,32,64,128,256,512

missing=$("$PY" - <<'EOF'
import importlib.util
needed = ["torch", "triton", "numpy", "scipy", "yaml", "typer", "safetensors", "pydantic", "librosa", "soundfile",
          "platformdirs", "pytest", "xdist"]
print(" ".join(name for name in needed if importlib.util.find_spec(name) is None))
EOF
)
if [[ -n "$missing" ]]; then
  echo "missing Python packages: $missing (carry them as wheels: see the top of this script)" | tee "$OUT/env.txt"
  exit 3
fi

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  "$PY" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
  date -u +%Y-%m-%dT%H:%MZ
} 2>&1 | tee "$OUT/env.txt"

echo "== the kernel's tests on CUDA against the naive reference (compiled: TRITON_INTERPRET unset)"
env -u TRITON_INTERPRET timeout 240 "$PY" -m pytest -q -n 8 -p no:cacheprovider tests/test_triton_kernel.py 2>&1 |
  tee "$OUT/tests.log"

bench() {  # config, time limit (s)
  echo "== bench generation --config $1 --device cuda"
  env -u TRITON_INTERPRET timeout "$2" "$PY" -m vocoder.cli bench generation --config "$1" --device cuda \
    --batch-sizes "$BATCHES" --fast-steps 1000 --batch-steps 250 --naive-steps 32 --student-seconds 1 \
    --repeats 3 --json 2>"$OUT/bench-$1.log" | tee "$OUT/bench-$1.out"
  tail -n 1 "$OUT/bench-$1.out" >"$OUT/bench-$1.json" && cat "$OUT/bench-$1.out" >>"$OUT/bench-$1.log"
  rm "$OUT/bench-$1.out"
}
bench seed_size 150
bench demo_teacher 120
