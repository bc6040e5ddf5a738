#!/usr/bin/env bash
# Creates .venv and installs the workspace (every package editable + dev tools).
# Idempotent and quick when nothing changed: `make` reruns it only when a manifest changes.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON_BIN=${PYTHON_BIN:-python3}
if ! command -v "$PYTHON_BIN" >/dev/null; then
  echo "error: $PYTHON_BIN not found; install Python 3.11+ (Debian: apt-get install python3 python3-venv)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON_BIN" -m venv .venv || {
    echo "error: could not create a virtualenv; on Debian run: apt-get install python3-venv" >&2; exit 1; }
fi
if [ ! -x .venv/bin/uv ]; then
  echo "==> installing uv into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check uv
fi
echo "==> installing the workspace into .venv"
.venv/bin/uv pip install --python .venv/bin/python -q -r requirements-dev.txt
