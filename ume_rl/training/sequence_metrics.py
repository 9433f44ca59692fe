"""Realism metrics for residue sequences (protein, DNA): composition, length, repeats, novelty, diversity.

Each function takes plain strings and can be used alone:

>>> round(composition(["AAC"], "ACGT")["A"], 3)  # add-one smoothed: (2 + 1) / (3 + 4)
0.429
>>> gc_content(["GGCA"])
0.75
>>> longest_homopolymer("ACGGGGT")
4
>>> KmerIndex(["ACGTACGTAA"], k=3).novelty(["ACGTAC", "TTTTTT"])  # a train copy (0) and a new one (1)
0.5
>>> kmer_diversity(["ACGTAC", "ACGTAC"], k=3)  # identical sequences: no diversity
0.0

- :func:`composition` and :func:`kl_divergence`: k-mer spectrum divergence (nats) from a reference;
- :class:`KmerIndex`: novelty as 1 − the mean, over sequences, of the largest fraction of a sequence's k-mers
  found in any one reference sequence (a copy of a train-split fragment scores 0);
- :func:`kmer_diversity`: 1 − mean pairwise Jaccard similarity of k-mer sets;
- :func:`low_complexity_fraction`: fraction of residues inside windows of low Shannon entropy (SEG's default
  window of 12 and trigger of 2.2 bits for proteins);
- :func:`longest_homopolymer`, :func:`gc_content`, and :func:`length_distance` (W1 between length samples).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from itertools import product

import numpy as np
from scipy.stats import wasserstein_distance

SEG_WINDOW = 12
SEG_TRIGGER_BITS = 2.2


def composition(sequences: Iterable[str], alphabet: Sequence[str], k: int = 1) -> dict[str, float]:
    """Add-one-smoothed frequencies of the k-mers of ``alphabet`` (every k-mer, in order) over ``sequences``."""
    kmers = ["".join(p) for p in product(alphabet, repeat=k)]
    counts = Counter(s[i : i + k] for s in sequences for i in range(len(s) - k + 1))
    total = sum(counts[m] for m in kmers) + len(kmers)
    return {m: (counts[m] + 1) / total for m in kmers}


def kl_divergence(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """KL(p || q) in nats over the keys of ``p`` (both smoothed, so every term is finite)."""
    return sum(pv * math.log(pv / q[key]) for key, pv in p.items() if pv > 0)


def gc_content(sequences: Iterable[str]) -> float:
    """Fraction of G and C over all residues (NaN without residues)."""
    counts = Counter(ch for s in sequences for ch in s)
    total = sum(counts.values())
    return (counts["G"] + counts["C"]) / total if total else math.nan


def longest_homopolymer(sequence: str) -> int:
    """Length of the longest run of one residue (0 for an empty sequence)."""
    best = run = 0
    for i, ch in enumerate(sequence):
        run = run + 1 if i and ch == sequence[i - 1] else 1
        best = max(best, run)
    return best


def length_distance(sequences: Sequence[str], reference: Sequence[str]) -> float:
    """W1 (earth mover's) distance, in residues, between the length distributions; NaN when either is empty."""
    if not sequences or not reference:
        return math.nan
    return float(wasserstein_distance([len(s) for s in sequences], [len(s) for s in reference]))


def kmer_set(sequence: str, k: int) -> set[str]:
    """The distinct k-mers of ``sequence`` (the whole sequence when shorter than ``k``)."""
    if len(sequence) < k:
        return {sequence} if sequence else set()
    return {sequence[i : i + k] for i in range(len(sequence) - k + 1)}


def kmer_diversity(sequences: Sequence[str], k: int) -> float:
    """1 − mean Jaccard similarity of the k-mer sets over all pairs; NaN below two sequences."""
    sets = [kmer_set(s, k) for s in sequences]
    if len(sets) < 2:
        return math.nan
    total, pairs = 0.0, 0
    for i, a in enumerate(sets):
        for b in sets[i + 1 :]:
            union = len(a | b)
            total += len(a & b) / union if union else 1.0
            pairs += 1
    return 1.0 - total / pairs


def low_complexity_fraction(
    sequences: Sequence[str], window: int = SEG_WINDOW, trigger_bits: float = SEG_TRIGGER_BITS
) -> float:
    """Fraction of all residues covered by a ``window`` whose Shannon entropy is below ``trigger_bits``.

    A sequence shorter than ``window`` is one window. NaN without residues.
    """
    covered = total = 0
    for s in sequences:
        if not s:
            continue
        mask = np.zeros(len(s), dtype=bool)
        for start in range(max(1, len(s) - window + 1)):
            counts = np.array(list(Counter(s[start : start + window]).values()), dtype=float)
            p = counts / counts.sum()
            if -(p * np.log2(p)).sum() < trigger_bits:
                mask[start : start + window] = True
        covered += int(mask.sum())
        total += len(s)
    return covered / total if total else math.nan


class KmerIndex:
    """An inverted k-mer index of reference sequences, for nearest-reference similarity and novelty.

    Args:
        reference: sequences to compare with (a corpus's train split).
        k: k-mer length (the modality table's ``kmer_size``).
    """

    def __init__(self, reference: Sequence[str], k: int):
        self.k = k
        postings: dict[str, list[int]] = {}
        for i, s in enumerate(reference):
            for kmer in kmer_set(s, k):
                postings.setdefault(kmer, []).append(i)
        self.postings = {kmer: np.asarray(ids) for kmer, ids in postings.items()}
        self.size = len(reference)

    def nearest_similarity(self, sequence: str) -> float:
        """Largest fraction of ``sequence``'s k-mers that one reference sequence holds (1: a copy of part of
        one); NaN for an empty sequence."""
        kmers = kmer_set(sequence, self.k)
        hits = [self.postings[m] for m in kmers if m in self.postings]
        if not kmers:
            return math.nan
        if not hits:
            return 0.0
        return float(np.bincount(np.concatenate(hits), minlength=self.size).max() / len(kmers))

    def novelty(self, sequences: Sequence[str]) -> float:
        """1 − mean :meth:`nearest_similarity` over ``sequences``; NaN when none is scored."""
        values = [v for v in map(self.nearest_similarity, sequences) if not math.isnan(v)]
        return 1.0 - float(np.mean(values)) if values else math.nan
