#!/usr/bin/env bash
# End-to-end recipe: demo corpus -> features -> teacher -> synthesis of the test split -> objective evaluation.
#
#   scripts/recipe.sh [--quick] [OUT_DIR]       (default OUT_DIR: runs/recipe; --quick: a minute, as CI runs it)
#
# Each step is one `vocoder` command, so the recipe doubles as documentation of the CLI. Steps are incremental:
# the corpus and the feature cache are reused when present; the teacher resumes if its run directory holds
# checkpoints. The student (distillation) step is added once `vocoder distill` exists.
set -euo pipefail

QUICK=0
if [[ "${1:-}" == "--quick" ]]; then QUICK=1; shift; fi
OUT="${1:-runs/recipe}"
VOCODER="${VOCODER:-vocoder}"

if (( QUICK )); then
  CONFIG="${CONFIG:-demo_teacher_quick}" SENTENCES=3 VOICES=slt,kal STEPS=3 TEST_UTTERANCES=2
else
  CONFIG="${CONFIG:-demo_teacher}" SENTENCES=200 VOICES=slt,kal,ked STEPS=20000 TEST_UTTERANCES=24
fi

step() { printf '\n== %s\n' "$*"; }

step "1. demo corpus: ${SENTENCES} sentences x ${VOICES}"
"$VOCODER" corpus demo --out "$OUT/corpus" --sentences "$SENTENCES" --voices "$VOICES"

step "2. features for ${CONFIG}"
"$VOCODER" preprocess --layout demo "$OUT/corpus" --out "$OUT/features" --config "$CONFIG"

step "3. train the teacher (${STEPS} steps)"
RESUME=()
if compgen -G "$OUT/teacher/checkpoints/step_*.pt" > /dev/null; then RESUME=(--resume); fi
"$VOCODER" train --config "$CONFIG" --data "$OUT/features" --out "$OUT/teacher" --max-steps "$STEPS" \
  "${RESUME[@]}"

step "4. synthesize the test utterances (the test split, or the first utterances of a tiny corpus)"
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

step "5. objective evaluation"
"$VOCODER" evaluate --reference "$OUT/reference" --system "teacher=$OUT/synthesized/teacher" --out "$OUT/report"
echo
echo "report: $OUT/report"
