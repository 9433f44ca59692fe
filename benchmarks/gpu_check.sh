#!/usr/bin/env bash
# Prepared check of the reward engine on a lent GPU (H100/H200), sized for one call of at most 600 s: the step
# timeouts add up to 560 s (15 + 100 + 180 + 150 + 80 + 35); expected ~6-7 minutes. Eight files land in $OUT.
#
# Build the site bundle once, here (downloads the .venv's exact wheels, ~40 MB archive):
#   PYTHON=/path/to/.venv/bin/python bash ../shared/device/build_site_bundle.sh    # -> .device/site.tar.xz
# then run (device tool, carry [".device/site.tar.xz"], timeout_s 600):
#   mkdir -p /tmp/site && tar -xJf .device/site.tar.xz -C /tmp/site && export PYTHONPATH=/tmp/site:$PWD \
#     && PYTHON=python3 bash benchmarks/gpu_check.sh
#
# 0. environment, and the hypothesis behind issue 11 checked directly (gpu.txt): cuDNN version, SDPA's backend
#    priority, and the cost of an SDPA call on a never-seen (batch, length) shape, PyTorch's default backends
#    against flash/efficient/math (what UmeScorer's sdpa="auto" picks on CUDA), with and without a key mask;
# 1. scorer tests on CUDA, fp32 (tests/test_scoring.py; on CUDA the shape ladder is on by default);
# 2. the fresh-batch benchmark, UME_mini bf16 (reward_throughput.py): table 1 (128 completions, 32 masked,
#    2 rounds of fresh completions, repeated rows beside them) and table 2 (128 completions in both modes,
#    variants before / no-cudnn / after, each with warm-up, first call, 3 fresh + 3 repeated calls), with a
#    torch.profiler table of one more fresh call per variant and mode (profiles.txt);
# 3. the GRPO step split (grpo_step.py): Qwen2-0.5B shape, 128 completions x 128 new tokens, UME_mini masked
#    bf16, reward engines before and after; prints the reward's share of the step;
# 4. scorer tests on CUDA, bf16;
# 5. device->host synchronisations per score() call (expected: 1), appended to gpu.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 WANDB_MODE=disabled UME_RL_PROFILE=tiny PYTHONWARNINGS=ignore TOKENIZERS_PARALLELISM=false
export PYTHONUNBUFFERED=1
QUIET="warn|hydra|omegaconf|resolver|version_base|USDT|gpuGetDeviceCount"
PROFILES=$(mktemp -d)

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
if $PY -c "import flash_attn" 2>/dev/null; then FA=1; else FA=0; fi
echo "flash_attn importable: $FA" | tee -a "$OUT/gpu.txt"

echo "== SDPA: backend priority and the cost of a new shape" | tee -a "$OUT/gpu.txt"
timeout 15 $PY - <<'PYEOF' 2>&1 | grep -v -i -E "$QUIET" | tee -a "$OUT/gpu.txt"
import contextlib
import random
import time

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

print("torch", torch.__version__, "cudnn", torch.backends.cudnn.version())
order = getattr(torch._C, "_get_sdp_priority_order", None)
print("sdp priority order:", order() if order else "n/a")
rng, seen = random.Random(0), set()
no_cudnn = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
for masked in (False, True):
    for name, backends in (("default", None), ("no-cudnn", no_cudnn)):
        first, again = [], []
        for _ in range(12):  # shapes never seen before by any arm: per-shape costs show in `first`
            while (shape := (rng.randint(8, 256), rng.randint(16, 512))) in seen:
                pass
            seen.add(shape)
            (b, l), heads, dim = shape, 6, 64
            q, k, v = (torch.randn(b, heads, l, dim, device="cuda", dtype=torch.bfloat16) for _ in range(3))
            keys = torch.randint(1, l + 1, (b, 1), device="cuda")
            mask = (torch.arange(l, device="cuda")[None, :] < keys)[:, None, None, :].expand(b, 1, l, l)
            with sdpa_kernel(backends) if backends else contextlib.nullcontext():
                for times in (first, again):
                    torch.cuda.synchronize()
                    start = time.perf_counter()
                    torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask if masked else None)
                    torch.cuda.synchronize()
                    times.append(1e3 * (time.perf_counter() - start))
        first.sort(), again.sort()
        print(f"sdpa {name:8s} key_mask={masked!s:5s}: new shape median {first[6]:.2f} ms (max {first[-1]:.1f}),"
              f" same shape again median {again[6]:.3f} ms")
PYEOF

echo "== scorer tests, cuda fp32"
UME_RL_TEST_DEVICE=cuda timeout 100 $PY -m pytest -q -p no:cacheprovider tests/test_scoring.py 2>&1 \
  | tail -n 15 | tee "$OUT/tests_fp32.txt"

echo "== fresh-batch reward benchmark, cuda bf16"
timeout 180 $PY benchmarks/reward_throughput.py --device cuda --dtype bf16 --n 128 --masked-n 32 --rounds 2 \
  --variants before,no-cudnn,after --variant-n 128 --variant-masked-n 128 --variant-rounds 3 \
  --profile-dir "$PROFILES" --out "$OUT/reward_throughput_cuda_bf16.json" 2>&1 \
  | grep -v -i -E "$QUIET" | tee "$OUT/throughput.txt"
for f in "$PROFILES"/*.txt; do [ -e "$f" ] && { echo "== $(basename "$f")"; cat "$f"; }; done > "$OUT/profiles.txt"

echo "== GRPO step split, cuda: Qwen2-0.5B shape, 128 x 128 tokens, UME_mini masked bf16"
timeout 150 $PY benchmarks/grpo_step.py --device cuda --variants before,after --steps 2 --warmup-steps 1 \
  --out "$OUT/grpo_step_cuda.json" 2>&1 | grep -v -i -E "$QUIET" | tee "$OUT/grpo_step.txt"

echo "== scorer tests, cuda bf16"
UME_RL_TEST_DEVICE=cuda UME_RL_TEST_DTYPE=bf16 timeout 80 $PY -m pytest -q -p no:cacheprovider tests/test_scoring.py 2>&1 \
  | tail -n 15 | tee "$OUT/tests_bf16.txt"

echo "== device->host synchronisations per score() call" | tee -a "$OUT/gpu.txt"
timeout 35 $PY - <<'PYEOF' 2>&1 | grep -v -i -E "$QUIET" | tee -a "$OUT/gpu.txt"
import random
import warnings

import torch

from ume_rl.data.generate import random_sequence
from ume_rl.models.ume import load_ume
from ume_rl.rewards.modalities import MODALITIES
from ume_rl.rewards.engine.scoring import UmeScorer

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
rm -rf "$PROFILES"
ls "$OUT"
