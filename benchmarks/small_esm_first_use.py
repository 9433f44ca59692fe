"""``demo-esm``'s first use: the three small ESM-style models one after the other, or beside a background process.

Trains :func:`~ume_rl.models.small_esm.train_small_esm` with the ``demo-esm`` config at ``--steps`` steps (the
same shares) on ``--threads`` threads, in turn one model after the other (``sequential``) and with
``background=True`` (SMILES here, protein and DNA in a forked process, each on half the threads; this process
takes them all when the other ends), ``--rounds`` times, fresh weights each time. Prints each round's wall seconds
and the ratio of the medians (sequential / background: above 1, the background schedule is faster), and writes
them as JSON (``--out``, default ``benchmarks/results/small_esm_first_use.json``):

    python benchmarks/small_esm_first_use.py                          # 1,118 steps (a fifth), 2 rounds: ~4 min
    python benchmarks/small_esm_first_use.py --steps 5590 --rounds 1  # the demo's own budget: ~11 min
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import torch


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=1118)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "small_esm_first_use.json"
    )
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    from ume_rl.data.corpus import load_real_corpus
    from ume_rl.models import small_esm

    if not small_esm.background_supported(args.threads):
        raise SystemExit(
            "background training needs --threads >= 2, Linux (fork), no CUDA device and 2+ cores"
        )
    corpus = load_real_corpus(progress=False)
    config = replace(small_esm.DEMO_CONFIG, steps=args.steps)
    seconds: dict[str, list[float]] = {"sequential": [], "background": []}
    runs: dict[str, list[dict]] = {"sequential": [], "background": []}
    before = torch.get_num_threads()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for round_ in range(args.rounds):
                for schedule in seconds:
                    start = time.perf_counter()
                    folder = small_esm.train_small_esm(
                        Path(scratch) / f"{round_}-{schedule}",
                        corpus,
                        config,
                        num_threads=args.threads,
                        background=schedule == "background",
                    )
                    seconds[schedule].append(round(time.perf_counter() - start, 1))
                    sidecar = json.loads((folder / small_esm.SIDECAR_NAME).read_text())
                    runs[schedule].append(
                        {m: {k: run[k] for k in run if k != "losses"} for m, run in sidecar["runs"].items()}
                    )
                    per_model = ", ".join(f"{m} {run['seconds']:.0f} s" for m, run in sidecar["runs"].items())
                    print(
                        f"round {round_}: {schedule} {seconds[schedule][-1]:.1f} s ({per_model})", flush=True
                    )
    finally:
        torch.set_num_threads(before)
    ratio = statistics.median(seconds["sequential"]) / statistics.median(seconds["background"])
    print(f"background over sequential on {args.threads} threads (median wall seconds): {ratio:.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "cpu_count": os.cpu_count(),
                "threads": args.threads,
                "config": asdict(config),
                "seconds": seconds,
                "runs": runs,
                "ratio_sequential_over_background": round(ratio, 3),
            },
            indent=1,
        )
    )
    return ratio


if __name__ == "__main__":
    main()
