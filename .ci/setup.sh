#!/usr/bin/env bash
# Set up codegym on a fresh machine: a virtual environment in .venv with the CPU build of
# torch (installed first, so pip does not pull a multi-GB CUDA build) and the project with
# its dev, ray, accelerate, trl, tensorboard and lora extras. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  .venv/bin/pip install -q "torch==2.13.0"
fi
.venv/bin/pip install -q -e ".[dev,ray,accelerate,trl,tensorboard,lora]"
.venv/bin/python -c "import codegym, agents, sandboxes, torch; print('codegym', codegym.__version__, '| torch', torch.__version__)"
