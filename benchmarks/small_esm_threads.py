"""How much a second torch thread speeds up training one small ESM-style model (a ``demo-esm`` model).

Trains the SMILES model of :class:`~ume_rl.models.small_esm.SmallEsmConfig` for ``--steps`` steps on 1 thread,
then on ``--threads`` threads, alternating ``--rounds`` times (fresh weights and batches each time, the same
seed), and prints the seconds per round and the ratio of the medians (1 thread / N threads: above 1 is faster):

    python benchmarks/small_esm_threads.py            # 1 vs 2 threads, 150 steps, 3 rounds (about a minute)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path

import torch


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    from ume_rl.data.corpus import load_real_corpus
    from ume_rl.models import small_esm

    corpus = load_real_corpus(progress=False)
    sequences = corpus.sequences("SMILES", "train")
    config = replace(small_esm.SmallEsmConfig(), steps=3 * args.steps, token_shares=(1.0, 1.0, 1.0))
    assert config.steps_of("SMILES") == args.steps
    seconds: dict[int, list[float]] = {1: [], args.threads: []}
    before = torch.get_num_threads()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for round_ in range(args.rounds):
                for threads in seconds:
                    torch.set_num_threads(threads)
                    run = small_esm.train_modality(
                        "SMILES", sequences, config, Path(scratch) / f"{round_}-{threads}", 0
                    )
                    seconds[threads].append(run["seconds"])
                    print(
                        f"round {round_}: {threads} thread(s) {run['seconds']:.1f} s for {run['steps']} steps",
                        flush=True,
                    )
    finally:
        torch.set_num_threads(before)
    ratio = statistics.median(seconds[1]) / statistics.median(seconds[args.threads])
    print(f"speed-up of {args.threads} threads over 1 (median seconds): {ratio:.2f}x")
    return ratio


if __name__ == "__main__":
    main()
