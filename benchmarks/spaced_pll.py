"""How close the ``spaced`` reward mode (k spaced masks per row) comes to the exact masked PLL, and how much faster.

On held-out real sequences of the real corpus and their decoys (``ume_rl.inspection.quality``: shuffled,
point-mutated, synthetic SMILES), each modality is scored with the exact ``masked`` mode, with ``spaced`` for
each ``--ks`` value, and with ``unmasked`` (the one-pass baseline every approximation should beat):

- fidelity: Spearman correlation with the exact scores over the held-out real sequences (``spearman``), over
  real sequences and decoys together (``spearman_all``) and over the shortest quarter of real sequences
  (``spearman_short``: where k masks are the largest share of a sequence); the AUROC of real against each decoy
  kind, and its largest gap to the exact AUROC (``max_auroc_gap``);
- cost: encoder rows and wall seconds of scoring everything, and their ratios to ``masked``.

A k passes when, in every modality, ``spearman >= 0.98`` and ``max_auroc_gap <= 0.01``; the recommended k is
the largest that passes. Scoring runs on one thread, each mode once after a warm-up call, so the seconds of
one run compare on one machine.

    python benchmarks/spaced_pll.py                          # the demo UME (trained on first use), CPU
    python benchmarks/spaced_pll.py --ckpt runs/models/.../small_ume.ckpt --ks 2,4,8 --n 100

Writes JSON (default ``benchmarks/results/spaced_pll_<device>.json``) and prints one table per modality.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

SPEARMAN_MIN = 0.98
AUROC_GAP_MAX = 0.01


def score_all(scorer, sequences: list[str], modality: str) -> tuple[list[float], float, int]:
    """Scores, wall seconds and encoder rows of scoring ``sequences`` (after one warm-up call)."""
    scorer.score(sequences[:4], [modality] * min(4, len(sequences)))
    rows = scorer.stats["rows"]
    start = time.perf_counter()
    scores = scorer.score(sequences, [modality] * len(sequences))
    return scores, time.perf_counter() - start, scorer.stats["rows"] - rows


def measure(ume, corpus, modality: str, n: int, ks: list[int], seed: int, device: str) -> dict:
    """Every mode's fidelity and cost on ``n`` held-out sequences of ``modality`` and their decoys."""
    from scipy.stats import spearmanr

    from ume_rl.inspection.quality import auroc, make_decoys
    from ume_rl.rewards.engine.ume_scoring import UmeScorer
    from ume_rl.rewards.modalities import MODALITY_TABLE

    real = corpus.sample(modality, n, "heldout", MODALITY_TABLE[modality].length_range, seed)
    decoys = {kind: [d for d in ds if d] for kind, ds in make_decoys(real, modality, seed).items()}
    sequences = real + [d for ds in decoys.values() for d in ds]
    lengths = np.array([len(t) - 2 for t in UmeScorer(ume).encode(real, [modality] * len(real))])
    short = lengths <= np.quantile(lengths, 0.25)
    modes = {
        "masked": {"mode": "masked"},
        **{f"spaced_k{k}": {"mode": "spaced", "masks_per_row": k} for k in ks},
    }
    modes["unmasked"] = {"mode": "unmasked"}
    out = {
        "n_real": len(real),
        "decoys": {k: len(v) for k, v in decoys.items()},
        "residues": {
            "median": float(np.median(lengths)),
            "min": int(lengths.min()),
            "short_quarter_max": int(lengths[short].max()),
        },
    }
    results, exact = {}, None
    for name, kwargs in modes.items():
        scorer = UmeScorer(ume, dedup=False, **kwargs)
        scores, seconds, rows = score_all(scorer, sequences, modality)
        scores = np.array(scores)
        real_scores, start = scores[: len(real)], len(real)
        aurocs = {}
        for kind, ds in decoys.items():
            aurocs[kind] = auroc(real_scores, scores[start : start + len(ds)])
            start += len(ds)
        if exact is None:
            exact = {"all": scores, "real": real_scores, "auroc": aurocs, "seconds": seconds, "rows": rows}
        results[name] = {
            "spearman": float(spearmanr(real_scores, exact["real"]).statistic),
            "spearman_all": float(spearmanr(scores, exact["all"]).statistic),
            "spearman_short": float(spearmanr(real_scores[short], exact["real"][short]).statistic),
            "mean_abs_diff_nats": float(np.mean(np.abs(real_scores - exact["real"]))),
            "auroc": aurocs,
            "max_auroc_gap": max(abs(aurocs[k] - exact["auroc"][k]) for k in aurocs),
            "rows": rows,
            "seconds": seconds,
            "rows_ratio": exact["rows"] / rows,
            "speedup": exact["seconds"] / seconds,
        }
        results[name]["passes"] = bool(
            results[name]["spearman"] >= SPEARMAN_MIN and results[name]["max_auroc_gap"] <= AUROC_GAP_MAX
        )
    out["modes"] = results
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--ckpt", default=None, help="UME checkpoint (default: the demo UME, trained on first use)"
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--ks", default="2,3,4,6,8", help="masks per row to try, comma-separated")
    parser.add_argument(
        "--n", type=int, default=None, help="held-out sequences per modality (default: the quality defaults)"
    )
    parser.add_argument("--modalities", default="SMILES,amino_acid,nucleotide")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--out", default=None, help="JSON path (default benchmarks/results/spaced_pll_<device>.json)"
    )
    args = parser.parse_args(argv)
    ks = sorted({int(k) for k in args.ks.split(",") if k})
    if not ks or min(ks) < 1:
        parser.error(f"--ks must be positive integers, got {args.ks!r}")
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)

    from ume_rl.data.corpus import load_real_corpus
    from ume_rl.inspection.quality import DEFAULT_N
    from ume_rl.models.small_ume import demo_ume_checkpoint
    from ume_rl.models.ume import load_ume

    ckpt = args.ckpt or demo_ume_checkpoint(os.environ.get("UME_RL_RUNS_DIR", "runs"), progress=False)
    ume = load_ume(str(ckpt), device=args.device)
    corpus = load_real_corpus(seed=args.seed, progress=False)
    report = {
        "ckpt": str(ckpt),
        "device": args.device,
        "device_name": torch.cuda.get_device_name()
        if args.device == "cuda"
        else platform.processor() or "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "args": vars(args),
        "criteria": {"spearman_min": SPEARMAN_MIN, "auroc_gap_max": AUROC_GAP_MAX},
        "modalities": {},
    }
    for modality in args.modalities.split(","):
        n = args.n or DEFAULT_N[modality]
        result = measure(ume, corpus, modality, n, ks, args.seed, args.device)
        report["modalities"][modality] = result
        print(
            f"\n{modality}: {result['n_real']} held-out, decoys {result['decoys']}, residues {result['residues']}"
        )
        print(
            "| mode | Spearman real | all | shortest 25% | max AUROC gap | rows ratio | speed-up | passes |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---|")
        for name, r in result["modes"].items():
            print(
                f"| {name} | {r['spearman']:.4f} | {r['spearman_all']:.4f} | {r['spearman_short']:.4f} "
                f"| {r['max_auroc_gap']:.4f} | {r['rows_ratio']:.2f}x | {r['speedup']:.2f}x | {r['passes']} |"
            )
    passing = [
        k for k in ks if all(m["modes"][f"spaced_k{k}"]["passes"] for m in report["modalities"].values())
    ]
    report["passing_ks"] = passing
    report["recommended_k"] = max(passing) if passing else None
    print(f"\nk passing in every modality: {passing}; recommended: {report['recommended_k']}")
    out = Path(args.out or Path(__file__).parent / "results" / f"spaced_pll_{args.device}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
