#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install ume_rl with its dev extras.
# Sourced by scripts/main.sh and scripts/test.sh. Override the location with UME_RL_VENV.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${UME_RL_VENV:-$ROOT/.venv}"
PYTHON_BIN="${PYTHON:-python3.11}"
command -v "$PYTHON_BIN" >/dev/null 2>&1 || PYTHON_BIN=python3

if [ ! -x "$VENV/bin/python" ]; then
  echo "[ume_rl] creating virtual environment at $VENV"
  "$PYTHON_BIN" -m venv "$VENV"
fi
# Reinstall only when the dependency spec changed since the last install.
STAMP="$VENV/.ume_rl-installed"
WANT="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "[ume_rl] installing ume_rl[dev] into $VENV (first time: a few minutes)"
  # This machine's pip config lists local wheel folders that may not exist; drop those warnings only.
  quiet() { grep -v -e "^WARNING: Location 'file:" -e "does not provide the extra" || true; }
  "$VENV/bin/python" -m pip install --quiet --upgrade pip 2>&1 | quiet
  "$VENV/bin/python" -m pip install --quiet -e "$ROOT[dev]" 2>&1 | quiet
  echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
# wandb comes with lbster; keep it off unless the caller set WANDB_MODE (e.g. WANDB_MODE=online for a
# full run that passes report_to="wandb").
export WANDB_MODE="${WANDB_MODE:-disabled}"
export TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"
