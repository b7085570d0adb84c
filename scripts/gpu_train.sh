#!/usr/bin/env bash
# Issue #14, section 6, and #17 on a lent GPU: continue the bundled teacher's run from its shipped training state (or
# re-distil the student from the teacher that run gives), on a training pack of the real-speech caches, for a fixed
# wall time, and bring the newest checkpoint and model back.
#
#   make gpu-pack                                  # here: .gpu/pack (FLAC audio and F0) and .gpu/wheels
#   device tool: run, carry [".gpu"], timeout_s 600, command "bash scripts/gpu_train.sh"
#   then, the teacher brought back copied to .gpu/teacher.safetensors, a second call with the command
#   "KIND=distill TEACHER=.gpu/teacher.safetensors INIT=student TRAIN_SECONDS=240 bash scripts/gpu_train.sh"
#
# Environment (defaults): KIND (train; or distill), TRAIN_SECONDS (390: with the unpacking, the last validation and
# the copies, one call stays under the tool's 10 minutes), DEVICE (cuda), CONFIG (real_teacher_lpc_gpu; for distill
# real_student_lpc_sine_refresh), RESUME_FROM (models/teacher/training/state.pt for train; a state to continue) or
# INIT (a model to start from), TEACHER (distill: the teacher's model file), MAX_STEPS (1000000: the time limit ends
# the run), JOBS (unpacking workers: all cores), WORK (/tmp/gpu-train: the unpacked caches and the run).
#
# Writes to OUT ($OUT where the device tool sets it, else out/gpu-train): env.txt, unpack.log, train.log,
# step_<N>.pt (the newest checkpoint: a training state, `vocoder train|distill --resume-from` continues it),
# model.safetensors (its exported EMA weights: bench it, bundle it) and valid_loss.json (step -> validation loss).
# Back here, docs/TRAINING.md ("On a lent GPU") says how to score and bundle them.
set -uo pipefail

cd "$(dirname "$0")/.."
source scripts/device_env.sh
device_setup "${1:-${OUT:-out/gpu-train}}" torch numpy scipy yaml typer \
  safetensors pydantic librosa soundfile platformdirs tensorboard || exit 3
KIND="${KIND:-train}"
TRAIN_SECONDS="${TRAIN_SECONDS:-390}"
DEVICE="${DEVICE:-cuda}"
case $KIND in
  train)
    CONFIG="${CONFIG:-real_teacher_lpc_gpu}"
    start=(--resume-from "${RESUME_FROM:-models/teacher/training/state.pt}") ;;
  distill) CONFIG="${CONFIG:-real_student_lpc_sine_refresh}" start=(--teacher "${TEACHER:?distill needs TEACHER}") ;;
  *) echo "KIND: expected train or distill, found $KIND"; exit 2 ;;
esac
[[ $KIND == distill && -n "${RESUME_FROM:-}" ]] && start+=(--resume-from "$RESUME_FROM")
[[ -n "${INIT:-}" ]] && start+=(--init "$INIT")
MAX_STEPS="${MAX_STEPS:-1000000}"
WORK="${WORK:-/tmp/gpu-train}"
[[ -f .gpu/pack/pack.json ]] || { echo "no .gpu/pack: run make gpu-pack here and carry .gpu" | tee -a "$OUT/env.txt"; exit 3; }
{
  [[ $DEVICE == cuda ]] && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  date -u +%Y-%m-%dT%H:%MZ
} 2>&1 | tee -a "$OUT/env.txt"

rm -rf "$WORK"
echo "== unpack .gpu/pack with $CONFIG"
started=$SECONDS
"$PY" -m vocoder.cli corpus unpack .gpu/pack --out "$WORK/feats" --config "$CONFIG" ${JOBS:+--jobs "$JOBS"} \
  >"$OUT/unpack.log" 2>&1 || { tail -n 20 "$OUT/unpack.log"; exit 4; }
echo "unpacked in $((SECONDS - started)) s: $(tail -n 1 "$OUT/unpack.log")"

data=()
for cache in "$WORK"/feats/*/; do data+=(--data "${cache%/}"); done
echo "== $KIND --config $CONFIG ${start[*]} --device $DEVICE for ${TRAIN_SECONDS} s"
# --time-limit ends the run on a validated checkpoint and an export of the same step; timeout only guards a hang.
timeout --kill-after=30 $((TRAIN_SECONDS + 180)) "$PY" -m vocoder.cli "$KIND" --config "$CONFIG" "${data[@]}" \
  --out "$WORK/run" "${start[@]}" --device "$DEVICE" --max-steps "$MAX_STEPS" \
  --time-limit "$TRAIN_SECONDS" >"$OUT/train.log" 2>&1 || { tail -c 3000 "$OUT/train.log"; exit 5; }
tail -n 1 "$OUT/train.log"

newest=$(ls "$WORK"/run/checkpoints/step_*.pt 2>/dev/null | sort | tail -n 1)
[[ -n "$newest" ]] || { echo "no checkpoint was written: see train.log"; tail -c 3000 "$OUT/train.log"; exit 6; }
cp "$newest" "$WORK/run/model/model.safetensors" "$OUT/"
"$PY" - "$WORK/run/tensorboard" "$OUT/valid_loss.json" <<'EOF'
import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

events = EventAccumulator(sys.argv[1])
events.Reload()
losses = {event.step: round(event.value, 4) for event in events.Scalars("valid/loss")}
with open(sys.argv[2], "w") as handle:
    json.dump(losses, handle, indent=1)
print("validation loss by step:", losses)
EOF
echo "newest checkpoint: $(basename "$newest"); files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
