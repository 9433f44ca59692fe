#!/usr/bin/env bash
# Prepared check of the reward engine on a lent GPU, sized for one call of at most 600 s: the step
# timeouts add up to 500 s (120 + 120 + 60 + 120 + 80), so a lent H100 (600 s per call, 15 min in all)
# can run it once and still rerun a step.
#
#   PYTHON=/path/to/venv/bin/python OUT=/tmp/out bash benchmarks/gpu_check.sh
#
# 1. scorer tests on CUDA in fp32 and in bf16 (tests/test_scoring.py with UME_RL_TEST_DEVICE/DTYPE).
#    load_ume("tiny") picks the unpadded (varlen, cu_seqlens from true lengths) layout exactly when
#    flash-attn is used (CUDA and flash_attn importable), else the padded layout; the tests also build
#    both layouts with build_tiny_ume(seed, layout) (identical weights), so without flash-attn the
#    unpadded checkpoint is exercised through the scorer's padded twin;
# 2. the number of device->host synchronisations in one score() call (expected: 1);
# 3. a short throughput table on UME_mini (bf16: 128 completions, 32 masked, 2 rounds; fp32: 64, 8, 1
#    round); ratios are per round, the median is reported. JSON results and logs land in $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 WANDB_MODE=disabled UME_RL_PROFILE=tiny PYTHONWARNINGS=ignore
QUIET="warn|hydra|omegaconf|resolver|version_base"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
if $PY -c "import flash_attn" 2>/dev/null; then FA=1; else FA=0; fi
echo "flash_attn importable: $FA" | tee -a "$OUT/gpu.txt"

echo "== scorer tests, cuda fp32"
UME_RL_TEST_DEVICE=cuda timeout 120 $PY -m pytest -q -p no:cacheprovider tests/test_scoring.py 2>&1 \
  | tail -n 15 | tee "$OUT/gpu_tests_fp32.txt"
echo "== scorer tests, cuda bf16"
UME_RL_TEST_DEVICE=cuda UME_RL_TEST_DTYPE=bf16 timeout 120 $PY -m pytest -q -p no:cacheprovider tests/test_scoring.py 2>&1 \
  | tail -n 15 | tee "$OUT/gpu_tests_bf16.txt"

echo "== device->host synchronisations per score() call"
timeout 60 $PY - <<'PYEOF' 2>&1 | grep -v -i -E "$QUIET" | tee "$OUT/gpu_syncs.txt"
import random
import warnings

import torch

from ume_rl.data import random_sequence
from ume_rl.models import load_ume
from ume_rl.rewards.scoring import UmeScorer
from ume_rl.rewards.tags import MODALITIES

rng = random.Random(0)
mods = [MODALITIES[i % 3] for i in range(48)]
seqs = [random_sequence(m, rng) for m in mods]
ume = load_ume("tiny", device="cuda")
for mode in ("unmasked", "masked"):
    for dtype in (None, "bf16"):
        scorer = UmeScorer(ume, mode=mode, token_budget=2048, dtype=dtype)
        scorer.score(seqs, mods)  # warm-up: twins, kernels
        forwards = scorer.stats["forwards"]
        torch.cuda.set_sync_debug_mode("warn")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scorer.score(seqs, mods)
        torch.cuda.set_sync_debug_mode(0)
        syncs = [w for w in caught if "synchroniz" in str(w.message).lower()]
        print(f"{mode} {dtype or 'fp32'} layout={scorer._layout()} forwards={scorer.stats['forwards'] - forwards} "
              f"synchronizing_ops={len(syncs)}")
        for w in syncs:
            print("   ", str(w.message).splitlines()[0], "@", w.filename, w.lineno)
PYEOF

echo "== throughput, cuda bf16"
timeout 120 $PY benchmarks/reward_throughput.py --device cuda --dtype bf16 --n 128 --masked-n 32 --rounds 2 \
  --out "$OUT/reward_throughput_cuda_bf16.json" 2>&1 | grep -v -i -E "$QUIET" | tee "$OUT/throughput_bf16.txt"
echo "== throughput, cuda fp32"
timeout 80 $PY benchmarks/reward_throughput.py --device cuda --dtype fp32 --n 64 --masked-n 8 --rounds 1 \
  --out "$OUT/reward_throughput_cuda_fp32.json" 2>&1 | grep -v -i -E "$QUIET" | tee "$OUT/throughput_fp32.txt"
