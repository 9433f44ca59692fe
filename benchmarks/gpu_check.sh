#!/usr/bin/env bash
# Prepared check of the reward engine and the GRPO step on a lent GPU (H100/H200), sized for one call of at most
# 600 s: the step timeouts add up to 480 s (15 + 70 + 60 + 200 + 100 + 35), so the whole check stays within 8
# minutes. Every Python step is a file that tests/test_gpu_check.py runs on CPU at tiny sizes (no heredocs here).
#
# Build the site bundle once, here (downloads the .venv's exact wheels, ~40 MB archive):
#   PYTHON=/path/to/.venv/bin/python bash ../shared/device/build_site_bundle.sh    # -> .device/site.tar.xz
# then run (device tool, carry [".device/site.tar.xz"], timeout_s 600):
#   mkdir -p /tmp/site && tar -xJf .device/site.tar.xz -C /tmp/site && export PYTHONPATH=/tmp/site:$PWD \
#     && PYTHON=python3 bash benchmarks/gpu_check.sh
#
# 0. environment (gpu.txt): GPU, flash-attn and vLLM importable, cuDNN version, SDPA's backend priority and the
#    cost of an SDPA call on a never-seen (batch, length) shape, default backends against flash/efficient/math;
# 1. scorer tests on CUDA, fp32 (tests/test_scoring.py; on CUDA the shape ladder is on by default);
# 2. the fresh-batch reward benchmark, UME_mini bf16, this engine only (reward_throughput.py, table 2: 128
#    completions unmasked and masked, warm-up, first call, 2 fresh + 2 repeated calls);
# 3. generation options side by side (grpo_step.py): Qwen2-0.5B shape, 128 completions x 128 new tokens, UME_mini
#    masked bf16; policy fp32 vs bf16 weights, static KV cache with and without torch.compile, a generation
#    batch of two steps; prints each option's step, generation, reward and update seconds;
# 4. the large reward model (reward_throughput.py): UME_large bf16, 128 completions, masked against spaced
#    (k = 3, the recommended k): warm-up, first call, one fresh and one repeated call each, and the speed-up;
#    with step 3's best generation time this gives the reward's share of a step at UME_large;
# 5. device->host synchronisations per score() call (expected: 1), appended to gpu.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 WANDB_MODE=disabled UME_RL_PROFILE=tiny PYTHONWARNINGS=ignore TOKENIZERS_PARALLELISM=false
export PYTHONUNBUFFERED=1
QUIET="warn|hydra|omegaconf|resolver|version_base|USDT|gpuGetDeviceCount"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
if $PY -c "import flash_attn" 2>/dev/null; then FA=1; else FA=0; fi
echo "flash_attn importable: $FA" | tee -a "$OUT/gpu.txt"

echo "vllm: $($PY benchmarks/gpu_check.py vllm 2>&1 | tail -n 1)" | tee -a "$OUT/gpu.txt"

echo "== SDPA: backend priority and the cost of a new shape" | tee -a "$OUT/gpu.txt"
timeout 15 $PY benchmarks/gpu_check.py sdpa 2>&1 | grep -v -i -E "$QUIET" | tee -a "$OUT/gpu.txt"

echo "== scorer tests, cuda fp32"
UME_RL_TEST_DEVICE=cuda timeout 70 $PY -m pytest -q -p no:cacheprovider tests/test_scoring.py 2>&1 \
  | tail -n 15 | tee "$OUT/tests_fp32.txt"

echo "== fresh-batch reward benchmark, cuda bf16, UME_mini"
timeout 60 $PY benchmarks/reward_throughput.py --device cuda --dtype bf16 --rounds 0 --variants after \
  --variant-n 128 --variant-masked-n 128 --variant-rounds 2 --out "$OUT/reward_throughput_cuda_bf16.json" 2>&1 \
  | grep -v -i -E "$QUIET" | tee "$OUT/throughput.txt"

echo "== GRPO step, generation options, cuda: Qwen2-0.5B shape, 128 x 128 tokens, UME_mini masked bf16"
timeout 200 $PY benchmarks/grpo_step.py --device cuda --variants after --steps 2 --warmup-steps 2 \
  --generation fp32,bf16,bf16-static,bf16-static-compile,bf16-gen2x \
  --out "$OUT/grpo_step_cuda_generation.json" 2>&1 | grep -v -i -E "$QUIET" | tee "$OUT/grpo_step.txt"

echo "== the large reward model: UME_large bf16, 128 completions, masked vs spaced (k=3)"
timeout 100 $PY benchmarks/reward_throughput.py --device cuda --dtype bf16 --arch UME_large --rounds 0 \
  --variants after --modes masked,spaced --masks-per-row 3 --variant-n 128 --variant-masked-n 128 \
  --variant-rounds 1 --out "$OUT/reward_throughput_cuda_bf16_ume_large.json" 2>&1 \
  | grep -v -i -E "$QUIET" | tee "$OUT/ume_large.txt"

echo "== device->host synchronisations per score() call" | tee -a "$OUT/gpu.txt"
timeout 35 $PY benchmarks/gpu_check.py syncs 2>&1 | grep -v -i -E "$QUIET" | tee -a "$OUT/gpu.txt"
ls "$OUT"
