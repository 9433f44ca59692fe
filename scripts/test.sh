#!/usr/bin/env bash
# The test job: lint, unit tests (slow ones included, and tests/browser: notebooks 02 and 03 in JupyterLab in
# headless Chromium, skipped when no Chromium is installed), then every notebook under nbmake on the demo profile.
#   bash scripts/test.sh            # everything CI runs
#   bash scripts/test.sh -m "not slow"  # extra pytest arguments go to the unit-test run
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
echo "[ume_rl] $(date +%T) ruff"
ruff check .
ruff format --check .
echo "[ume_rl] $(date +%T) unit tests"
python -m pytest --doctest-modules tests ume_rl "$@"
echo "[ume_rl] $(date +%T) notebooks (nbmake, demo profile)"
# Copies of the notebooks run with their outputs kept (--overwrite; the committed ones stay output-free), then
# tests/test_notebook_outputs.py checks those outputs for Python warnings and stray stderr.
NB_RUNS="$(mktemp -d)"
cp -r notebooks "$NB_RUNS/notebooks"
UME_RL_PROFILE=demo UME_RL_RUNS_DIR="$NB_RUNS" HF_HUB_OFFLINE=1 \
  python -m pytest --rootdir "$ROOT" -c "$ROOT/pyproject.toml" --nbmake --nbmake-timeout=1200 --overwrite \
  "$NB_RUNS/notebooks"
UME_RL_EXECUTED_NOTEBOOKS="$NB_RUNS/notebooks" python -m pytest tests/test_notebook_outputs.py
rm -rf "$NB_RUNS"
echo "[ume_rl] $(date +%T) all green"
