#!/usr/bin/env bash
# End-to-end recipe: demo corpus -> features -> teacher -> student (distillation) -> synthesis of the test split
# with both -> objective evaluation.
#
#   scripts/recipe.sh [--quick] [OUT_DIR]       (default OUT_DIR: runs/recipe; --quick: a minute, as CI runs it)
#
# Each step is one `vocoder` command, so the recipe doubles as documentation of the CLI. Steps are incremental:
# the corpus and the feature cache are reused when present; the teacher resumes if its run directory holds
# checkpoints, and so does the student.
set -euo pipefail

QUICK=0
if [[ "${1:-}" == "--quick" ]]; then QUICK=1; shift; fi
OUT="${1:-runs/recipe}"
VOCODER="${VOCODER:-vocoder}"

if (( QUICK )); then
  CONFIG="${CONFIG:-demo_teacher_quick}" STUDENT_CONFIG="${STUDENT_CONFIG:-demo_student_quick}"
  SENTENCES=3 VOICES=slt,kal STEPS=3 STUDENT_STEPS=2 TEST_UTTERANCES=2
else
  CONFIG="${CONFIG:-demo_teacher}" STUDENT_CONFIG="${STUDENT_CONFIG:-demo_student}"
  SENTENCES=200 VOICES=slt,kal,ked STEPS=20000 STUDENT_STEPS=1500 TEST_UTTERANCES=24
fi

step() { printf '\n== %s\n' "$*"; }

step "1. demo corpus: ${SENTENCES} sentences x ${VOICES}"
"$VOCODER" corpus demo --out "$OUT/corpus" --sentences "$SENTENCES" --voices "$VOICES"

step "2. features for ${CONFIG}"
"$VOCODER" preprocess --layout demo "$OUT/corpus" --out "$OUT/features" --config "$CONFIG"

step "3. train the teacher (${STEPS} steps)"
resume_flag() { if compgen -G "$1/checkpoints/step_*.pt" > /dev/null; then echo --resume; fi; }
"$VOCODER" train --config "$CONFIG" --data "$OUT/features" --out "$OUT/teacher" --max-steps "$STEPS" \
  $(resume_flag "$OUT/teacher")

step "4. distill the student (${STUDENT_STEPS} steps)"
"$VOCODER" distill --teacher "$OUT/teacher/model" --config "$STUDENT_CONFIG" --data "$OUT/features" \
  --out "$OUT/student" --max-steps "$STUDENT_STEPS" $(resume_flag "$OUT/student")

step "5. synthesize the test utterances (the test split, or the first utterances of a tiny corpus)"
mapfile -t TEST_IDS < <(python3 - "$OUT/features/manifest.jsonl" "$TEST_UTTERANCES" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
chosen = [r["id"] for r in rows if r["split"] == "test"] or [r["id"] for r in rows]
print("\n".join(chosen[: int(sys.argv[2])]))
PY
)
rm -rf "$OUT/reference" && mkdir -p "$OUT/reference"
FEATURES=()
for id in "${TEST_IDS[@]}"; do
  cp "$OUT/features/audio/$id.wav" "$OUT/reference/"
  FEATURES+=("$OUT/features/features/$id.npz")
done
"$VOCODER" synthesize "${FEATURES[@]}" --model "$OUT/teacher/model" --out "$OUT/synthesized/teacher" --seed 0
"$VOCODER" synthesize "${FEATURES[@]}" --model "$OUT/student/model" --out "$OUT/synthesized/student" --seed 0

step "6. objective evaluation"
"$VOCODER" evaluate --reference "$OUT/reference" --system "teacher=$OUT/synthesized/teacher" \
  --system "student=$OUT/synthesized/student" --out "$OUT/report"
echo
echo "report: $OUT/report"
