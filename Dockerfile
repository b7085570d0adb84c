# The synthesis service: `vocoder serve` on port 8000 with the bundled models under models/ (docs/SERVICE.md).
#
#   docker build -t wavenet-service .
#   docker run --rm -p 8000:8000 wavenet-service
#
# CPU by default. For a GPU image, take PyTorch's CUDA wheels (they bundle the CUDA runtime; the host needs the
# NVIDIA driver and container toolkit) and run with `--gpus all`:
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 -t wavenet-service:cuda .
# BASE_IMAGE may name another Debian bookworm image with Python 3.11 (a CUDA base, say): both stages use it.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# Build stage: a compiler for any dependency without a wheel, then the project installed as `make install` does
# (a virtual environment in .venv, pip >= 24, an editable install of the project), less the test extra. The
# editable install maps server/ to the import name vocoder_server and finds configs/ and models/ beside vocoder/.
FROM ${BASE_IMAGE} AS build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
RUN python3 -m venv .venv && .venv/bin/pip install --quiet --upgrade "pip>=24"
COPY pyproject.toml README* ./
COPY configs configs
COPY models models
COPY vocoder vocoder
COPY server server
RUN .venv/bin/pip install --quiet --extra-index-url "${TORCH_INDEX_URL}" -e .

# Runtime stage: the Debian packages of the Makefile's APT_PACKAGES that the service uses (Festival and its
# voices for the text front end, sox, espeak-ng; not chromium, which only the browser tests need), and g++: the
# fused Fast-WaveNet CPU kernel is compiled for the CPU it runs on (-march=native) at the first model load and
# cached in the user's cache directory (~/.cache/wavenet-service/kernels; mount a volume there to keep builds across
# containers); without a compiler the service falls back to the slower PyTorch loop.
FROM ${BASE_IMAGE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        festival festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k sox espeak-ng g++ \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home --shell /usr/sbin/nologin vocoder
WORKDIR /app
COPY --from=build /app /app
COPY examples examples
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    VOCODER_PORT=8000
USER vocoder
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s \
    CMD python3 -c "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ['VOCODER_PORT']}/readyz\", timeout=4)"
CMD ["vocoder", "serve", "--host", "0.0.0.0"]
