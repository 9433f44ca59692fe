"""Realism of generated sequences against a real corpus: metrics the reward does not compute.

A likelihood reward can rise while the sequences drift away from anything real (repeats, one favourite
molecule). These metrics compare a policy's valid sequences with held-out real ones, per modality:

- SMILES: ``valid`` (fraction of the modality's completions that are valid), ``unique`` (distinct canonical
  SMILES / valid), ``novel`` (distinct canonical SMILES not in the known corpus / distinct), ``qed`` (mean
  RDKit QED drug-likeness; reference: the corpus's);
- protein: ``aa_kl`` (KL divergence, nats, of the amino-acid composition from the corpus's);
- DNA: ``kmer3_kl`` (KL divergence, nats, of the 3-mer spectrum from the corpus's) and ``gc`` (GC content;
  reference: the corpus's).

>>> import pandas as pd
>>> samples = pd.DataFrame({"modality": ["nucleotide"] * 2, "valid": [True, False],
...                         "sequence": ["ACGTACGTGG", None]})
>>> table = realism_metrics(samples, {"nucleotide": ["ACGTTGCAAC", "GGCCAATTGC"]})
>>> table.loc[("nucleotide", "gc")].round(2).tolist()
[0.6, 0.55]

KL divergences use add-one (Laplace) smoothing on both sides, so an absent residue costs a finite amount; 0 means
the same composition. Lower is closer for KL, closer to the reference is better for ``qed`` and ``gc``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from itertools import product

import pandas as pd

from ume_rl.rewards.modalities import MODALITY_TABLE

COLUMNS = ("value", "reference")


def composition(sequences: Iterable[str], alphabet: Sequence[str], k: int = 1) -> dict[str, float]:
    """Add-one-smoothed frequencies of the k-mers of ``alphabet`` (every k-mer, in order) over ``sequences``.

    >>> round(composition(["AAC"], "ACGT")["A"], 3)  # (2 + 1) / (3 + 4)
    0.429
    """
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


def canonical_smiles(smiles: str) -> str | None:
    """RDKit's canonical SMILES, or ``None`` when RDKit cannot parse it."""
    from rdkit import Chem, rdBase

    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles)
    return Chem.MolToSmiles(mol) if mol is not None else None


def mean_qed(smiles: Iterable[str]) -> float:
    """Mean RDKit QED (drug-likeness in [0, 1]) of the parseable SMILES; NaN when none parses."""
    from rdkit import Chem, rdBase
    from rdkit.Chem import QED

    values = []
    with rdBase.BlockLogs():
        for s in smiles:
            mol = Chem.MolFromSmiles(s)
            if mol is not None:
                values.append(QED.qed(mol))
    return sum(values) / len(values) if values else math.nan


def _smiles_rows(frame: pd.DataFrame, reference: Sequence[str], known: set[str]) -> dict[str, tuple]:
    valid = frame[frame["valid"]]["sequence"].tolist()
    canonical = {c for c in map(canonical_smiles, valid) if c is not None}
    return {
        "valid": (len(valid) / len(frame) if len(frame) else math.nan, 1.0),
        "unique": (len(canonical) / len(valid) if valid else math.nan, 1.0),
        "novel": (len(canonical - known) / len(canonical) if canonical else math.nan, math.nan),
        "qed": (mean_qed(valid), mean_qed(reference)),
    }


def realism_metrics(
    completions: pd.DataFrame, reference: Mapping[str, Sequence[str]], known: Iterable[str] | None = None
) -> pd.DataFrame:
    """Realism of the valid sequences in ``completions`` against ``reference`` sequences, per modality.

    Args:
        completions: one row per completion with ``modality``, ``valid`` and ``sequence`` (as
            :func:`~ume_rl.training.evaluation.generate_completions` returns them).
        reference: modality → real sequences (held-out), the distribution to compare with.
        known: sequences counted as not novel (default: the SMILES of ``reference``); pass the whole corpus,
            train split included, to measure novelty against everything the reward model saw.

    Returns:
        A frame indexed by (modality, metric) with columns ``value`` (the policy's) and ``reference`` (the
        corpus's own value, where one exists). Modalities missing from ``completions`` or ``reference`` are
        skipped.
    """
    known_canonical = {
        c for c in map(canonical_smiles, known or reference.get("SMILES", ())) if c is not None
    }
    rows: dict[tuple[str, str], tuple] = {}
    for modality, spec in MODALITY_TABLE.items():
        frame = completions[completions["modality"] == modality]
        if frame.empty or not reference.get(modality):
            continue
        real = list(reference[modality])
        valid = frame[frame["valid"]]["sequence"].tolist()
        if spec.alphabet is None:
            metrics = _smiles_rows(frame, real, known_canonical)
        else:
            k = 3 if modality == "nucleotide" else 1
            name = "kmer3_kl" if k == 3 else "aa_kl"
            kl = kl_divergence(composition(valid, spec.alphabet, k), composition(real, spec.alphabet, k))
            metrics = {"valid": (len(valid) / len(frame), 1.0), name: (kl if valid else math.nan, 0.0)}
            if modality == "nucleotide":
                metrics["gc"] = (gc_content(valid), gc_content(real))
        rows.update({(modality, metric): values for metric, values in metrics.items()})
    index = pd.MultiIndex.from_tuples(list(rows), names=["modality", "metric"])
    return pd.DataFrame(list(rows.values()), index=index, columns=list(COLUMNS))


def moved_toward_corpus(table: pd.DataFrame, before: str, after: str) -> pd.DataFrame:
    """Which realism metrics moved toward the corpus between two policies' columns of ``table``.

    Args:
        table: metrics indexed by (modality, metric), one column per policy and a ``corpus`` column (the
            reference value; NaN where there is none, as for ``novel``), as notebook 04 builds it.
        before, after: the two policy columns to compare (e.g. ``"warm start"`` and ``"GRPO"``).

    Returns:
        The frame with ``before``, ``after``, ``corpus``, the distances ``|value - corpus|`` before and after,
        and ``toward_corpus``: True (closer), False (farther or equal) or None (no reference, or a value is
        missing).

    >>> table = pd.DataFrame({"warm": [0.30, 0.40], "grpo": [0.10, 0.60], "corpus": [0.0, 0.45]},
    ...                      index=pd.MultiIndex.from_tuples([("amino_acid", "aa_kl"), ("nucleotide", "gc")]))
    >>> moved_toward_corpus(table, "warm", "grpo")["toward_corpus"].tolist()
    [True, False]
    """
    out = pd.DataFrame(
        {"before": table[before], "after": table[after], "corpus": table["corpus"]}, index=table.index
    )
    out["distance_before"] = (out["before"] - out["corpus"]).abs()
    out["distance_after"] = (out["after"] - out["corpus"]).abs()
    known = out[["distance_before", "distance_after"]].notna().all(axis=1)
    closer = out["distance_after"] < out["distance_before"]
    out["toward_corpus"] = [bool(c) if k else None for c, k in zip(closer, known, strict=True)]
    return out
