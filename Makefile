# wavenet-service: set up, test, lint, demo.
# `make install` is idempotent: a second run only checks stamps and takes seconds.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
# Debian packages: Festival and three voices (TTS front end, demo corpus), sox and espeak-ng (audio tools),
# chromium (browser tests of the MOS listening page).
APT_PACKAGES := festival festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k sox espeak-ng chromium

.PHONY: install test test-fast lint demo serve corpus-real clean

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

clean:
	rm -rf $(VENV) out runs .pytest_cache .ruff_cache
