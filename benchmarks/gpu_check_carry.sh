#!/bin/bash
# Fills .whl/ (git-ignored) with what the GPU machine lacks for benchmarks/gpu_check.py: DeepSpeed, built here
# into a pure-Python wheel from its sdist (PyPI has no DeepSpeed wheel; DS_BUILD_OPS=0, its ops JIT-build
# there if ever needed), and the dependencies that machine does not have, as CPython 3.12 wheels. Versions are
# this checkout's .venv's. About 5 MiB; the device tool carries at most 64 MiB a call.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
version() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  "hjson==$(version hjson)" "pydantic==$(version pydantic)" "pydantic-core==$(version pydantic-core)" \
  "annotated-types==$(version annotated-types)" "typing-inspection==$(version typing-inspection)"
sdist=$(mktemp -d)
"$PY" -m pip download -q --no-deps --no-binary=:all: -d "$sdist" "deepspeed==$(version deepspeed)"
DS_BUILD_OPS=0 "$PY" -m pip wheel -q --no-deps --no-build-isolation -w .whl "$sdist"/deepspeed-*.tar.gz
rm -rf "$sdist"
ls -1 .whl && du -sh .whl
