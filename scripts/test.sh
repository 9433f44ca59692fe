#!/usr/bin/env bash
# The test job: lint, then side by side the unit tests (slow ones included, and tests/browser: notebooks 02 and 03
# in JupyterLab in headless Chromium, skipped when no Chromium is installed) and every notebook under nbmake on the
# demo profile.
#   bash scripts/test.sh            # everything CI runs
#   bash scripts/test.sh -m "not slow"  # extra pytest arguments go to the unit-test run
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
echo "[ume_rl] $(date +%T) ruff"
ruff check .
ruff format --check .
# The unit tests and the notebooks run side by side, one core each (every model here runs on one thread): CI takes
# the longer of the two, not their sum. The notebooks' output is shown after the unit tests finish. One OpenMP thread
# per process: two processes of two threads on two cores oversubscribe them (measured up to 30x slower).
export OMP_NUM_THREADS=1
echo "[ume_rl] $(date +%T) unit tests, and beside them the notebooks (nbmake, demo profile)"
# Copies of the notebooks run with their outputs kept (--overwrite; the committed ones stay output-free), then
# tests/test_notebook_outputs.py checks those outputs for Python warnings and stray stderr.
NB_RUNS="$(mktemp -d)"
cp -r notebooks "$NB_RUNS/notebooks"
UME_RL_PROFILE=demo UME_RL_RUNS_DIR="$NB_RUNS" HF_HUB_OFFLINE=1 \
  python -m pytest --rootdir "$ROOT" -c "$ROOT/pyproject.toml" -p no:cacheprovider --nbmake \
  --nbmake-timeout=1200 --overwrite "$NB_RUNS/notebooks" >"$NB_RUNS/nbmake.log" 2>&1 &
NOTEBOOKS=$!
UNIT=0
python -m pytest --doctest-modules tests ume_rl "$@" || UNIT=$?
echo "[ume_rl] $(date +%T) unit tests done (exit $UNIT); waiting for the notebooks"
NB=0
wait "$NOTEBOOKS" || NB=$?
echo "[ume_rl] $(date +%T) notebooks done (exit $NB):"
cat "$NB_RUNS/nbmake.log"
if [ "$UNIT" -ne 0 ] || [ "$NB" -ne 0 ]; then
  echo "[ume_rl] $(date +%T) FAILED: unit tests exit $UNIT, notebooks exit $NB"
  exit 1
fi
UME_RL_EXECUTED_NOTEBOOKS="$NB_RUNS/notebooks" python -m pytest tests/test_notebook_outputs.py
rm -rf "$NB_RUNS"
echo "[ume_rl] $(date +%T) all green"
