"""The Python steps of ``benchmarks/gpu_check.sh`` that are not benchmarks of their own, as subcommands.

    python benchmarks/gpu_check.py sdpa             # SDPA backend priority and the cost of a never-seen shape
    python benchmarks/gpu_check.py syncs            # device->host synchronisations per score() call
    python benchmarks/gpu_check.py vllm             # is vLLM importable (for use_vllm)?

Each takes ``--device`` (default ``cuda``) and size options, so ``tests/test_gpu_check.py`` runs every step of
the shell script on CPU at tiny sizes: a moved or renamed name fails there, not on the lent GPU. ``syncs``
counts with ``torch.cuda.set_sync_debug_mode`` on CUDA; on CPU it scores without counting (the CPU count is
``tests/test_host_syncs.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import time
import warnings

import torch


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def sdpa(args) -> None:
    """Per-shape cost of SDPA: PyTorch's default backends against flash/efficient/math, with and without a mask."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    cudnn = torch.backends.cudnn.version() if args.device == "cuda" else None
    print("torch", torch.__version__, "cudnn", cudnn)
    order = getattr(torch._C, "_get_sdp_priority_order", None)
    print("sdp priority order:", order() if order else "n/a")
    rng, seen = random.Random(0), set()
    no_cudnn = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    for masked in (False, True):
        for name, backends in (("default", None), ("no-cudnn", no_cudnn)):
            first, again = [], []
            for _ in range(
                args.shapes
            ):  # shapes never seen before by any arm: per-shape costs show in `first`
                while (shape := (rng.randint(8, args.max_batch), rng.randint(16, args.max_length))) in seen:
                    pass
                seen.add(shape)
                (b, length), heads, dim = shape, 6, 64
                q, k, v = (
                    torch.randn(b, heads, length, dim, device=args.device, dtype=dtype) for _ in range(3)
                )
                keys = torch.randint(1, length + 1, (b, 1), device=args.device)
                mask = (torch.arange(length, device=args.device)[None, :] < keys)[:, None, None, :]
                mask = mask.expand(b, 1, length, length)
                with sdpa_kernel(backends) if backends else contextlib.nullcontext():
                    for times in (first, again):
                        _sync(args.device)
                        start = time.perf_counter()
                        torch.nn.functional.scaled_dot_product_attention(
                            q, k, v, attn_mask=mask if masked else None
                        )
                        _sync(args.device)
                        times.append(1e3 * (time.perf_counter() - start))
            first.sort(), again.sort()
            mid = len(first) // 2
            print(
                f"sdpa {name:8s} key_mask={masked!s:5s}: new shape median {first[mid]:.2f} ms (max {first[-1]:.1f}),"
                f" same shape again median {again[mid]:.3f} ms"
            )


def syncs(args) -> None:
    """Synchronising operations in one ``score()`` call, per mode and dtype (expected: one)."""
    from ume_rl.data.generate import random_sequence
    from ume_rl.models.ume import load_ume
    from ume_rl.rewards.engine.ume_scoring import UmeScorer
    from ume_rl.rewards.modalities import MODALITIES

    rng = random.Random(0)
    mods = [MODALITIES[i % 3] for i in range(args.n)]
    seqs = [random_sequence(m, rng) for m in mods]
    ume = load_ume("tiny", device=args.device)
    cuda = args.device == "cuda"
    for mode in ("unmasked", "masked", "spaced"):
        for dtype in (None, "bf16"):
            scorer = UmeScorer(ume, mode=mode, token_budget=args.token_budget, dtype=dtype)
            scorer.score(seqs, mods)  # warm-up: twins, kernels
            forwards = scorer.stats["forwards"]
            if cuda:
                torch.cuda.set_sync_debug_mode("warn")
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                scorer.score(seqs, mods)
            if cuda:
                torch.cuda.set_sync_debug_mode(0)
            found = [w for w in caught if "synchroniz" in str(w.message).lower()]
            counted = len(found) if cuda else "n/a (CPU: see tests/test_host_syncs.py)"
            print(
                f"{mode} {dtype or 'fp32'} layout={scorer._layout()} "
                f"forwards={scorer.stats['forwards'] - forwards} synchronizing_ops={counted}"
            )
            for w in found:
                print("   ", str(w.message).splitlines()[0], "@", w.filename, w.lineno)


def vllm(args) -> None:
    """Whether ``use_vllm`` could run here (TRL's vLLM generation; not installed by this project)."""
    from ume_rl.training.validation import vllm_problem

    print("vllm:", vllm_problem() or "importable")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    for name, fn in (("sdpa", sdpa), ("syncs", syncs), ("vllm", vllm)):
        p = sub.add_parser(name, help=fn.__doc__.split("\n")[0])
        p.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
        p.set_defaults(fn=fn)
        if name == "sdpa":
            p.add_argument("--shapes", type=int, default=12, help="never-seen shapes per arm")
            p.add_argument("--max-batch", type=int, default=256)
            p.add_argument("--max-length", type=int, default=512)
        if name == "syncs":
            p.add_argument("--n", type=int, default=48, help="sequences per call")
            p.add_argument("--token-budget", type=int, default=2048)
    args = parser.parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    main()
