#!/usr/bin/env bash
# The main job: execute notebooks 01 -> 04 headless and keep the executed copies and figures under runs/.
#   bash scripts/main.sh                       # demo profile (offline: tiny Qwen + a UME trained here), the default
#   UME_RL_PROFILE=full bash scripts/main.sh   # real Qwen + real UME (GPU box)
# The kernel talks to nbconvert over local IPC sockets (TCP would make ipykernel warn that it is unencrypted).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
export UME_RL_PROFILE="${UME_RL_PROFILE:-demo}"
export UME_RL_RUNS_DIR="${UME_RL_RUNS_DIR:-$ROOT/runs}"
mkdir -p "$UME_RL_RUNS_DIR/notebooks"
IPC_DIR="$(mktemp -d)"  # the kernel's sockets: an absolute path (the kernel runs in notebooks/, nbconvert here)
trap 'rm -rf "$IPC_DIR"' EXIT
for nb in notebooks/0*.ipynb; do
  echo "[ume_rl] $(date +%T) executing $nb (profile $UME_RL_PROFILE)"
  start=$SECONDS
  jupyter nbconvert --to notebook --execute "$nb" --output-dir "$UME_RL_RUNS_DIR/notebooks" \
    --ExecutePreprocessor.timeout=3600 --KernelManager.transport=ipc \
    --KernelManager.ip="$IPC_DIR/kernel" --log-level=WARN
  echo "[ume_rl] $nb done in $((SECONDS - start)) s"
done
echo "[ume_rl] executed notebooks: $UME_RL_RUNS_DIR/notebooks; figures: $UME_RL_RUNS_DIR/figures"
