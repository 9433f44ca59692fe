"""Where in a sequence a small UME reads residue order: shuffle one window of a real sequence, in place, and ask
whether the UME still prefers the real sequence.

For each checkpoint and split, ``--n`` real DNA windows and protein fragments of at least 180 residues (cut to
180) are scored with the reward's exact masked pseudo-log-likelihood, once as they are and once with the
residues of one window (0-40, 60-100 or 140-180) shuffled in place; everything outside the window is unchanged,
so only the window's order differs. The number per window is the fraction of sequences the real one outscores
(0.5: the UME cannot tell). A model that reads neighbours everywhere scores every window alike; one that learned
them only where short training examples put them (SMILES fill the first ~60 positions) falls to 0.5 further on.

    python benchmarks/position_probe.py NAME=runs/models/.../small_ume.ckpt [NAME=...]

Writes ``benchmarks/results/position_probe.json`` (one entry per NAME, replaced when measured again).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).parent / "results" / "position_probe.json"
WINDOWS = ((0, 40), (60, 100), (140, 180))
LENGTH = 180


def shuffled_window(sequence: str, start: int, stop: int, rng: random.Random) -> str:
    middle = list(sequence[start:stop])
    rng.shuffle(middle)
    return sequence[:start] + "".join(middle) + sequence[stop:]


def probe(ckpt: str, corpus, n: int, seed: int) -> dict:
    from ume_rl.models.ume import load_ume
    from ume_rl.rewards.engine.ume_scoring import UmeScorer

    scorer = UmeScorer(load_ume(ckpt, device="cpu"))
    out = {}
    for modality in ("nucleotide", "amino_acid"):
        for split in ("heldout", "out_of_source"):
            sequences = [s[:LENGTH] for s in corpus.sequences(modality, split) if len(s) >= LENGTH][:n]
            real = np.array(scorer.score(sequences, [modality] * len(sequences)))
            row = {"n": len(sequences)}
            for start, stop in WINDOWS:
                rng = random.Random(seed)
                decoys = [shuffled_window(s, start, stop, rng) for s in sequences]
                fake = np.array(scorer.score(decoys, [modality] * len(decoys)))
                row[f"{start}-{stop}"] = round(float(np.mean(real > fake)), 3)
            out[f"{modality}/{split}"] = row
            print(ckpt, modality, split, row, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", metavar="NAME=CKPT")
    parser.add_argument("--n", type=int, default=80, help="sequences per modality and split")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from ume_rl.data.corpus import load_real_corpus

    corpus = load_real_corpus(progress=False)
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    for item in args.checkpoints:
        name, _, ckpt = item.partition("=")
        results[name] = {"checkpoint": Path(ckpt).parent.name, **probe(ckpt, corpus, args.n, args.seed)}
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
