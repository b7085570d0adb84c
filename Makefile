# wavenet-service: set up, test, lint, demo.
# `make install` is idempotent: a second run only checks stamps and takes seconds.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
# Debian packages: Festival and three voices (TTS front end, demo corpus), sox and espeak-ng (audio tools),
# chromium (browser tests of the MOS listening page).
APT_PACKAGES := festival festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k sox espeak-ng chromium

.PHONY: install test test-fast lint demo serve corpus-real corpus-demo gpu-wheels gpu-pack clean

# Let the suite's many Python processes (xdist workers, CLI and service subprocesses) reuse compiled modules and
# pytest's rewritten tests where the environment turns bytecode caches off: about 1.5 CPU-s saved per process.
unexport PYTHONDONTWRITEBYTECODE

install: $(VENV)/.installed $(VENV)/.apt

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# torch is pinned in pyproject.toml; its wheel lies on this machine's disk, so pip takes it from there.
$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install --quiet --upgrade "pip>=24"
	$(PIP) install --quiet -e ".[test]"
	touch $@

$(VENV)/.apt: | $(VENV)/bin/python
	@if dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then echo "Debian packages present"; \
	else apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES); fi
	touch $@

test: install
	$(PY) -m pytest -n 2 --dist loadgroup tests

# The suite less the tests marked slow (end-to-end, multi-process, browser): 57-60 s wall on 2 idle cores, about
# 105 CPU-s (kernels built, bytecode cached; measured 2026-12-01 with the machine's training jobs paused).
test-fast: install
	$(PY) -m pytest -n 2 --dist loadgroup -m "not slow" tests

lint: install
	$(VENV)/bin/ruff check vocoder server tests benchmarks scripts
	$(VENV)/bin/ruff format --check vocoder server tests benchmarks scripts

# The main job: start the service on the bundled models, synthesize examples/ through HTTP into out/*.wav, print a
# table (model, audio seconds, wall seconds, real-time factor), stop the service.
demo: install
	$(PY) scripts/demo.py

# The synthesis service on 127.0.0.1:8000 with the models under models/ (docs/SERVICE.md); SERVE_ARGS adds flags.
serve: install
	$(VENV)/bin/vocoder serve $(SERVE_ARGS)

# Optional, not needed by demo or test: real recorded speech from Debian (festvox-ru, ktuberling, asterisk-en; about
# 150 MB of packages, 140 min of audio) as feature caches under data/real/ (docs/DATA.md); a few minutes on 2 cores.
corpus-real: install
	$(VENV)/bin/vocoder corpus real --out data/real --config real_student_lpc_sine

# The demo corpus (Festival's three voices, synthetic) as a cache with F0, the third source the bundled teacher and
# student train on (data/feats-demo); resumable, about 10 minutes on 2 cores the first time.
corpus-demo: install
	$(VENV)/bin/vocoder corpus demo --out data/demo
	$(VENV)/bin/vocoder preprocess data/demo --layout demo --config real_student_lpc_sine --out data/feats-demo

# For a session lent a GPU (docs/TRAINING.md, "On a lent GPU"); the device tool carries .gpu beside the working tree,
# 64 MiB in all. gpu-wheels: the Python packages the GPU machine lacks (scripts/device-wheels.txt), 5 MB.
# gpu-pack: also GPU_PACK_MB of the caches' training audio as FLAC, what scripts/gpu_train.sh trains on there.
GPU_PACK_MB ?= 32
DEVICE_TREE_MB := 64
gpu-wheels: install
	$(PIP) download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 -d .gpu/wheels -r scripts/device-wheels.txt

gpu-pack: gpu-wheels corpus-real corpus-demo
	rm -rf .gpu/pack
	$(VENV)/bin/vocoder corpus pack data/real/feats/festvox-ru data/real/feats/ktuberling data/feats-demo \
		--out .gpu/pack --max-mb $(GPU_PACK_MB)
	@total=$$( (git ls-files -z; git ls-files -z --others --exclude-standard; find .gpu -type f -print0) | \
		du -cb --files0-from=- | tail -n 1 | cut -f1); \
	echo "working tree + .gpu: $$((total / 1048576)) MiB of the device tool's $(DEVICE_TREE_MB)"; \
	test $$total -le $$(($(DEVICE_TREE_MB) * 1048576)) || { echo "too large: lower GPU_PACK_MB"; exit 1; }

clean:
	rm -rf $(VENV) out runs .pytest_cache .ruff_cache
