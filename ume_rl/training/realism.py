"""Realism of generated sequences against a real corpus, per modality: the metrics the reward does not compute.

A likelihood reward can rise while the sequences drift away from anything real (repeats, one favourite
molecule). :class:`RealismSuite` compares a policy's sequences with real ones, fitted once on a corpus:

>>> suite = RealismSuite.from_corpus(load_real_corpus())  # doctest: +SKIP
>>> suite.metrics("nucleotide", ["ACGTTGCA" * 8, None])  # None: an invalid completion  # doctest: +SKIP
{'valid': 0.5, 'unique': 1.0, 'novel': ..., 'gc': 0.5, ...}
>>> suite.table(completions)  # (modality, metric) x (value, reference)  # doctest: +SKIP

The metrics of each modality are named in the modality table (``ModalitySpec.realism``):

- everywhere: ``valid`` (valid / completions), ``unique`` (distinct / valid; SMILES canonical), ``novel``
  (against the train split: SMILES distinct canonical molecules not in it; protein and DNA 1 − the mean largest
  fraction of a sequence's k-mers held by one train sequence, so a copied train fragment counts 0), ``int_div``
  (internal diversity: 1 − mean pairwise Tanimoto of Morgan r=2 fingerprints, or of k-mer sets);
- SMILES: ``scaffold_novel``, ``qed``/``sa`` (means) and ``qed_w1``/``sa_w1`` (W1 distance to the corpus's
  distribution), ``fcd_corpus`` and ``fcd_moses`` (Fréchet ChemNet Distance to the corpus's held-out molecules
  and to a seeded sample of the MOSES test set; evaluation only, see :data:`EVALUATION_ONLY`);
- protein: ``aa_kl`` (amino-acid composition KL, nats), ``length_w1`` (W1 of lengths, residues),
  ``low_complexity`` (fraction of residues in low-entropy windows);
- DNA: ``gc``, ``kmer3_kl`` (3-mer spectrum KL), ``homopolymer`` (mean longest homopolymer), ``length_w1``.

Each metric's ``reference`` is the same metric computed on the corpus's held-out sample (the distances are
0 there; ``novel`` is how new real held-out sequences are to the train split), so ``|value − reference|`` is
the distance to real data: :func:`moved_toward_corpus` and :mod:`ume_rl.training.monitor` read it that way.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from ume_rl.rewards.modalities import MODALITY_TABLE, normalize_modality
from ume_rl.training import sequence_metrics as seqm
from ume_rl.training import smiles_metrics as molm

logger = logging.getLogger(__name__)

COLUMNS = ("value", "reference")
EVALUATION_ONLY = frozenset({"fcd_corpus", "fcd_moses"})
"""Metrics that need a few hundred molecules (a covariance of 512 ChemNet features): not computed live."""
LOG_PREFIX = "realism"


@dataclass
class ModalityReference:
    """What one modality's metrics compare with: the train split (novelty) and a held-out sample
    (distributions), with what is derived from them computed once (indices, property samples)."""

    modality: str
    train: Sequence[str]
    heldout: list[str]
    moses: list[str] = field(default_factory=list)
    cache: dict = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)

    def get(self, key: str, build):
        """``cache[key]``, built by ``build()`` the first time."""
        if key not in self.cache:
            self.cache[key] = build()
        return self.cache[key]


def _unique(seqs: list[str], ref: ModalityReference) -> float:
    if not seqs:
        return math.nan
    distinct = molm.canonical_set(seqs) if ref.modality == "SMILES" else set(seqs)
    return len(distinct) / len(seqs)


def _novel(seqs: list[str], ref: ModalityReference) -> float:
    if ref.modality == "SMILES":
        return molm.novelty(seqs, ref.get("known", lambda: molm.canonical_set(ref.train)))
    k = MODALITY_TABLE[ref.modality].kmer_size
    return ref.get("index", lambda: seqm.KmerIndex(ref.train, k)).novelty(seqs)


def _int_div(seqs: list[str], ref: ModalityReference) -> float:
    if ref.modality == "SMILES":
        return molm.internal_diversity(seqs)
    return seqm.kmer_diversity(seqs, MODALITY_TABLE[ref.modality].kmer_size)


def _scaffold_novel(seqs: list[str], ref: ModalityReference) -> float:
    known = ref.get("scaffolds", lambda: {s for s in map(molm.scaffold, ref.train) if s is not None})
    return molm.scaffold_novelty(seqs, known)


def _property_w1(values, name: str):
    def metric(seqs: list[str], ref: ModalityReference) -> float:
        return molm.wasserstein(values(seqs), ref.get(name, lambda: values(ref.heldout)))

    return metric


def _fcd(target: str):
    def metric(seqs: list[str], ref: ModalityReference) -> float:
        pool = ref.heldout if target == "corpus" else ref.moses
        if not pool:
            return math.nan
        corpus_stats = ref.get("chemnet_corpus", lambda: molm.chemnet_stats(ref.heldout))
        stats = corpus_stats if seqs is ref.heldout else molm.chemnet_stats(seqs)
        return molm.frechet_distance(stats, ref.get(f"chemnet_{target}", lambda: molm.chemnet_stats(pool)))

    return metric


def _kl(k: int):
    def metric(seqs: list[str], ref: ModalityReference) -> float:
        if not seqs:
            return math.nan
        alphabet = MODALITY_TABLE[ref.modality].alphabet
        reference = ref.get(f"composition{k}", lambda: seqm.composition(ref.heldout, alphabet, k))
        return seqm.kl_divergence(seqm.composition(seqs, alphabet, k), reference)

    return metric


def _mean_of(fn):
    return lambda seqs, ref: molm.mean([fn(s) for s in seqs])


METRICS = {
    "unique": _unique,
    "novel": _novel,
    "int_div": _int_div,
    "scaffold_novel": _scaffold_novel,
    "qed": lambda seqs, ref: molm.mean(molm.qed_values(seqs)),
    "qed_w1": _property_w1(molm.qed_values, "qed_values"),
    "sa": lambda seqs, ref: molm.mean(molm.sa_values(seqs)),
    "sa_w1": _property_w1(molm.sa_values, "sa_values"),
    "fcd_corpus": _fcd("corpus"),
    "fcd_moses": _fcd("moses"),
    "aa_kl": _kl(1),
    "kmer3_kl": _kl(3),
    "gc": lambda seqs, ref: seqm.gc_content(seqs),
    "homopolymer": _mean_of(seqm.longest_homopolymer),
    "length_w1": lambda seqs, ref: seqm.length_distance(seqs, ref.heldout),
    "low_complexity": lambda seqs, ref: seqm.low_complexity_fraction(seqs),
}
"""Metric name → ``fn(valid sequences, reference) -> float`` (``valid`` is computed from the completions)."""


class RealismSuite:
    """Every realism metric of every modality, against one corpus (see the module docstring).

    Args:
        train: modality → the train split's sequences (novelty, scaffolds).
        heldout: modality → held-out real sequences (distributions, each metric's reference value).
        moses: SMILES of the MOSES test set (or a sample) for ``fcd_moses``; without them it is NaN.
    """

    def __init__(
        self,
        train: Mapping[str, Sequence[str]],
        heldout: Mapping[str, Sequence[str]],
        moses: Sequence[str] | None = None,
    ):
        self.references: dict[str, ModalityReference] = {}
        for modality, real in heldout.items():
            modality = normalize_modality(modality)
            if real:
                self.references[modality] = ModalityReference(
                    modality, tuple(train.get(modality, ())), list(real), list(moses or ())
                )

    @classmethod
    def from_corpus(cls, corpus, n: int = 300, seed: int = 0, moses: int = 300) -> RealismSuite:
        """A suite on ``corpus`` (a :class:`~ume_rl.data.corpus.RealCorpus`): its train split, ``n`` held-out
        sequences per modality in the modality's length range (whole molecules, protein fragments, DNA
        sub-windows, as the dataset's references), and ``moses`` seeded MOSES test SMILES (0: none).

        The MOSES set comes from the cached ``molsets`` wheel (:mod:`ume_rl.data.moses`); when it cannot be
        fetched, a warning says so and ``fcd_moses`` is NaN.
        """
        from ume_rl.data.moses import moses_smiles
        from ume_rl.data.wheels import WheelError

        heldout = {}
        for modality, spec in MODALITY_TABLE.items():
            sample = corpus.sample(modality, n, "heldout", spec.length_range, seed)
            heldout[modality] = list(dict.fromkeys(sample)) if modality == "SMILES" else sample
        train = {m: corpus.sequences(m, "train") for m in MODALITY_TABLE}
        moses_sample: list[str] = []
        if moses:
            try:
                pool = moses_smiles("test")
                moses_sample = random.Random(seed).sample(pool, min(moses, len(pool)))
            except WheelError as err:
                logger.warning("fcd_moses will be NaN: the MOSES test set is unavailable (%s)", err)
        return cls(train, heldout, moses_sample)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.references)

    def metrics(self, modality, sequences: Sequence[str | None], live: bool = False) -> dict[str, float]:
        """The metrics of ``modality`` on one batch of completions' sequences (``None``: invalid).

        Args:
            modality: the modality the completions were asked for.
            sequences: the extracted sequence of each completion, ``None`` where it was invalid.
            live: skip :data:`EVALUATION_ONLY` metrics (one logging step's completions are too few).
        """
        ref = self.references[normalize_modality(modality)]
        valid = [s for s in sequences if s]
        out = {}
        for name in MODALITY_TABLE[ref.modality].realism:
            if live and name in EVALUATION_ONLY:
                continue
            if name == "valid":
                out[name] = len(valid) / len(sequences) if sequences else math.nan
            else:
                out[name] = float(METRICS[name](valid, ref)) if valid else math.nan
        return out

    def reference(self, modality, live: bool = False) -> dict[str, float]:
        """Each metric of ``modality`` on the held-out sample itself (computed once; ``live`` leaves out
        :data:`EVALUATION_ONLY`, whose reference needs ChemNet on the held-out and MOSES samples)."""
        ref = self.references[normalize_modality(modality)]
        names = MODALITY_TABLE[ref.modality].realism
        if not ref.values:
            ref.values = self.metrics(ref.modality, ref.heldout, live=True)
            ref.values["valid"] = 1.0
        if not live:
            if "fcd_corpus" in names:
                ref.values["fcd_corpus"] = 0.0  # the held-out sample against itself
            if "fcd_moses" in names and "fcd_moses" not in ref.values:
                ref.values["fcd_moses"] = METRICS["fcd_moses"](ref.heldout, ref)
        return {name: ref.values[name] for name in names if name in ref.values}

    def log_values(
        self, modalities: Sequence[str | None], sequences: Sequence[str | None], live: bool = True
    ):
        """``{"realism/<label>/<metric>": value}`` over a batch: completions grouped by requested modality
        (``None`` modalities and modalities without a reference are skipped)."""
        out: dict[str, float] = {}
        for modality in self.modalities:
            group = [s for m, s in zip(modalities, sequences, strict=True) if m == modality]
            if group:
                label = MODALITY_TABLE[modality].label
                values = self.metrics(modality, group, live=live)
                out.update({f"{LOG_PREFIX}/{label}/{name}": v for name, v in values.items()})
        return out

    def reference_log_values(self, live: bool = True) -> dict[str, float]:
        """:meth:`reference` of every modality under the keys :meth:`log_values` uses."""
        return {
            f"{LOG_PREFIX}/{MODALITY_TABLE[m].label}/{name}": v
            for m in self.modalities
            for name, v in self.reference(m, live=live).items()
        }

    def table(self, completions: pd.DataFrame) -> pd.DataFrame:
        """Realism of evaluation completions (rows with ``modality``, ``valid``, ``sequence``, as
        :func:`~ume_rl.training.evaluation.generate_completions` returns them): a frame indexed by
        (modality, metric) with columns ``value`` and ``reference``."""
        rows: dict[tuple[str, str], tuple[float, float]] = {}
        for modality in self.modalities:
            frame = completions[completions["modality"] == modality]
            if frame.empty:
                continue
            sequences = [s if v else None for s, v in zip(frame["sequence"], frame["valid"], strict=True)]
            values, reference = self.metrics(modality, sequences), self.reference(modality)
            rows.update({(modality, name): (v, reference[name]) for name, v in values.items()})
        index = pd.MultiIndex.from_tuples(list(rows), names=["modality", "metric"])
        return pd.DataFrame(list(rows.values()), index=index, columns=list(COLUMNS))

    def compare(self, samples: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        """:meth:`table` of several policies' completions side by side: indexed by (modality, metric), one
        ``value`` column per policy (``samples``' keys, in order), then ``corpus`` (the reference)."""
        tables = {name: self.table(frame) for name, frame in samples.items()}
        out = pd.concat({name: table["value"] for name, table in tables.items()}, axis=1)
        references = pd.concat([table["reference"] for table in tables.values()])
        out["corpus"] = references[~references.index.duplicated()].reindex(out.index)
        return out


def moved_toward_corpus(table: pd.DataFrame, before: str, after: str) -> pd.DataFrame:
    """Which realism metrics moved toward the corpus between two policies' columns of ``table``.

    Args:
        table: metrics indexed by (modality, metric), one column per policy and a ``corpus`` column (the
            reference value; NaN where there is none).
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
