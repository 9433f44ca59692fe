"""Count baselines for masked-token likelihood: a unigram and a ±2 context model, and an audit scorer built on them.

:class:`ContextBaseline` counts a token given its neighbours in token-id sequences (CLS … EOS);
:func:`context_baseline` fits it on a corpus's train split with a UME tokenizer (reward quality, notebook 03).
:class:`ContextAudit` fits one per modality on **characters** of real sequences and scores sequences with it:
a second scorer that shares nothing with the reward model (not even its tokenizer), so a policy trained on the
reward cannot have learnt its quirks. Training logs it beside the reward at every logging step.

>>> audit = ContextAudit({"nucleotide": ["ACGTTGCAACGT" * 5] * 30})
>>> real, repeat = audit.scores(["ACGTTGCAACGT" * 3, "ACACACACACACACAC"], "nucleotide")
>>> bool(real > repeat)
True
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import numpy as np

from ume_rl.rewards.modalities import normalize_modality


class ContextBaseline:
    """The simplest masked model: counts of a token given its ±2 neighbours, smoothed towards its ±1
    neighbours, smoothed towards the unigram (hierarchical Dirichlet smoothing, concentration ``alpha``).

    Works on UME token ids (CLS … EOS): every token between CLS and EOS is scored; CLS and EOS are context,
    positions outside the sequence a token of their own. ``fit`` picks ``alpha`` from ``alphas`` by
    likelihood on 10% of the training sequences, then counts all of them. Counting and scoring are vectorised
    (numpy), about a second for the whole corpus.

    >>> base = ContextBaseline().fit([[0, 5, 6, 7, 5, 6, 7, 2]] * 30)
    >>> bool(base.score([0, 5, 6, 7, 5, 6, 7, 2]) > base.score([0, 7, 6, 5, 7, 6, 5, 2]))
    True
    """

    _BASE = 1 << 11  # token ids + 1 (0: outside) are below 2048

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    @classmethod
    def _features(cls, token_ids: Sequence[Sequence[int]]):
        """Per scored token: (sequence index, token, ±1 context key, ±2 context key)."""
        lengths = np.array([len(ids) for ids in token_ids])
        if len(lengths) == 0 or lengths.min() < 3:
            raise ValueError("every sequence needs CLS, at least one residue token and EOS")
        flat = np.concatenate([np.pad(np.asarray(ids, dtype=np.int64) + 1, 2) for ids in token_ids])
        if flat.max() >= cls._BASE:
            raise ValueError(f"token ids must be below {cls._BASE - 1}")
        starts = np.concatenate([[0], np.cumsum(lengths + 4)[:-1]])
        seq = np.repeat(np.arange(len(lengths)), lengths - 2)
        pos = np.concatenate([start + np.arange(3, n + 1) for start, n in zip(starts, lengths, strict=True)])
        b = cls._BASE
        near = flat[pos - 1] * b + flat[pos + 1]
        far = ((flat[pos - 2] * b + flat[pos - 1]) * b + flat[pos + 1]) * b + flat[pos + 2]
        return seq, flat[pos], near, far

    def fit(self, token_ids: Sequence[Sequence[int]], alphas=(0.5, 2.0, 8.0, 32.0), seed: int = 0):
        """Count ``token_ids`` (one list of ids per training sequence); returns ``self``."""
        token_ids = list(token_ids)
        if alphas and len(token_ids) >= 20:
            order = random.Random(seed).sample(range(len(token_ids)), len(token_ids))
            cut = len(order) // 10
            self._count([token_ids[i] for i in order[cut:]])
            valid = [token_ids[i] for i in order[:cut]]
            likelihood = {}
            for alpha in alphas:
                self.alpha = alpha
                likelihood[alpha] = float(np.mean(self.scores(valid)))
            self.alpha = max(likelihood, key=likelihood.get)
        self._count(token_ids)
        return self

    def _count(self, token_ids) -> None:
        _, x, near, far = self._features(token_ids)
        b = self._BASE
        self.unigram = np.bincount(x, minlength=b).astype(float)
        self.vocab = int((self.unigram > 0).sum()) + 1  # one slot for tokens never seen
        self.tables = {}
        for name, key in (("near", near), ("far", far)):
            pairs, pair_counts = np.unique(key * b + x, return_counts=True)
            contexts, context_counts = np.unique(key, return_counts=True)
            self.tables[name] = (pairs, pair_counts, contexts, context_counts)

    @staticmethod
    def _lookup(keys: np.ndarray, counts: np.ndarray, query: np.ndarray) -> np.ndarray:
        index = np.clip(np.searchsorted(keys, query), 0, len(keys) - 1)
        return np.where(keys[index] == query, counts[index], 0).astype(float)

    def scores(self, token_ids: Sequence[Sequence[int]], order: int = 2) -> np.ndarray:
        """Mean log-probability of the residue tokens of each sequence (order 0: unigram; 1: ±1; 2: ±2)."""
        seq, x, near, far = self._features(token_ids)
        p = (self.unigram[x] + 1) / (self.unigram.sum() + self.vocab)
        b = self._BASE
        for name, key in (("near", near), ("far", far))[:order]:
            pairs, pair_counts, contexts, context_counts = self.tables[name]
            total = self._lookup(contexts, context_counts, key)
            p = (self._lookup(pairs, pair_counts, key * b + x) + self.alpha * p) / (total + self.alpha)
        sums = np.bincount(seq, weights=np.log(p), minlength=len(token_ids))
        return sums / np.bincount(seq, minlength=len(token_ids))

    def score(self, ids: Sequence[int], order: int = 2) -> float:
        """:meth:`scores` of one sequence."""
        return float(self.scores([ids], order)[0])


_BASELINES: dict[tuple[int, str], tuple[object, ContextBaseline]] = {}
_UME_TOKENIZERS: dict[str, object] = {}


def ume_tokenizer(modality, max_length: int = 512):
    """lobster's UME tokenizer of ``modality`` (the one every UME uses), built without a model, once per
    process: the baselines count UME tokens whichever reward model they are compared with."""
    from lobster.tokenization import UMETokenizerTransform

    modality = normalize_modality(modality)
    if (modality, max_length) not in _UME_TOKENIZERS:
        _UME_TOKENIZERS[modality, max_length] = UMETokenizerTransform(
            modality, max_length=max_length
        ).tokenizer
    return _UME_TOKENIZERS[modality, max_length]


def context_baseline(corpus, modality: str, tokenizer) -> ContextBaseline:
    """The :class:`ContextBaseline` of ``corpus``'s train split for ``modality`` (UME tokens), fitted once per
    corpus and modality in a process (UME tokenizers are lobster's, the same for every UME)."""
    key = (id(corpus), modality)
    if key not in _BASELINES or _BASELINES[key][0] is not corpus:
        train_ids = tokenizer(list(corpus.sequences(modality, "train")))["input_ids"]
        _BASELINES[key] = (corpus, ContextBaseline().fit(train_ids))
    return _BASELINES[key][1]


CHAR_CLS, CHAR_EOS, CHAR_OFFSET = 1, 2, 3


def char_ids(sequence: str) -> list[int]:
    """``sequence`` as :class:`ContextBaseline` token ids: CLS, one id per character, EOS.

    Raises:
        ValueError: an empty sequence, or a character beyond the baseline's id range.

    >>> char_ids("AC")
    [1, 68, 70, 2]
    """
    if not sequence:
        raise ValueError("char_ids: the sequence is empty; score only valid, non-empty sequences")
    ids = [ord(ch) + CHAR_OFFSET for ch in sequence]
    if max(ids) >= ContextBaseline._BASE - 1:
        raise ValueError(f"char_ids: {sequence[:20]!r} holds a character beyond code point 2043")
    return [CHAR_CLS, *ids, CHAR_EOS]


class ContextAudit:
    """An audit score the policy is not trained on: per modality, the mean log-probability per character of a
    sequence under a :class:`ContextBaseline` fitted on real sequences' characters (higher: more like them).

    Args:
        references: modality → real sequences to fit on (a corpus's train split); a modality without
            sequences is not audited.

    A model trained on one tokenizer's view of the data and a policy trained against it can agree on
    artefacts; this scorer reads characters and counts, so it disagrees with the reward where the reward is
    being gamed in ways count statistics see (repeats, off-distribution composition).
    """

    __name__ = "context_audit"

    def __init__(self, references: Mapping[str, Sequence[str]]):
        self.baselines: dict[str, ContextBaseline] = {}
        for modality, sequences in references.items():
            sequences = [s for s in sequences if s]
            if sequences:
                fitted = ContextBaseline().fit([char_ids(s) for s in sequences])
                self.baselines[normalize_modality(modality)] = fitted

    @property
    def modalities(self) -> tuple[str, ...]:
        """The audited modalities."""
        return tuple(self.baselines)

    def scores(self, sequences: Sequence[str], modality) -> list[float]:
        """Mean log-probability per character of each sequence under ``modality``'s baseline.

        Raises:
            KeyError: ``modality`` was not fitted (it had no reference sequences).
        """
        modality = normalize_modality(modality)
        if modality not in self.baselines:
            raise KeyError(f"ContextAudit has no {modality} baseline: pass {modality} reference sequences")
        if not sequences:
            return []
        return [float(x) for x in self.baselines[modality].scores([char_ids(s) for s in sequences])]
