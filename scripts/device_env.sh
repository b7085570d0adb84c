# Sourced by the scripts that run on a lent GPU machine (gpu_train.sh, gpu_check.sh). The machine's image has torch
# but not every package this project imports: `make gpu-wheels` downloads those (scripts/device-wheels.txt) into
# .gpu/wheels, the device tool carries .gpu, and device_env installs them there when a module the caller names is
# missing. It returns non-zero, before any GPU time is spent, when one is still missing.
#
#   cd "$(dirname "$0")/.."; source scripts/device_env.sh
#   device_setup "${1:-${OUT:-out/NAME}}" torch numpy librosa ... || exit 3

device_setup() {  # out folder, modules...: sets OUT and PY, exports PYTHONPATH, writes OUT/env.txt
  OUT=$1
  mkdir -p "$OUT"
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
  PY="${PYTHON:-python3}"
  local ready
  device_env "${@:2}" >"$OUT/env.txt" 2>&1  # not in a pipeline: device_env exports PYTHONPATH to this shell
  ready=$?
  cat "$OUT/env.txt"
  return $ready
}

device_env() {
  local python=${PY:-python3} missing
  missing=$(_device_missing "$python" "$@")
  if [[ -n "$missing" ]] && compgen -G ".gpu/wheels/*.whl" >/dev/null; then
    echo "installing .gpu/wheels for: $missing"
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      .gpu/wheels/*.whl || return 3
    export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}/tmp/site"
    missing=$(_device_missing "$python" "$@")
  fi
  if [[ -n "$missing" ]]; then
    echo "missing Python packages: $missing (make gpu-wheels here, then carry .gpu)"
    return 3
  fi
}

_device_missing() {  # python, modules...: the modules that python cannot import
  "$1" - "${@:2}" <<'PYTHON'
import importlib.util
import sys

print(" ".join(name for name in sys.argv[1:] if importlib.util.find_spec(name) is None))
PYTHON
}
