"""A sequence-complexity reward, the lever against a likelihood reward's taste for repeats.

Pseudo-likelihood rewards tend to favour low-complexity sequences: a homopolymer (``AAAA…``) or a short
tandem repeat is easy to predict, so its mean log-prob is high. Notebook 03 measures this for the UME you
use (hacking probes vs. references). :class:`ComplexityReward` scores the tagged sequence in ``[0, 1]``:

- ``entropy``: Shannon entropy of the residue composition, divided by its maximum ``log(min(A, L))``
  (``A`` the modality's alphabet size, ``L`` the length): 0 for a homopolymer, about 1 for uniform
  random residues;
- ``kmer``: distinct k-mers / k-mers (1 minus TRL's repeat fraction): near 0 for a repeat, 1 when no
  k-mer repeats (k = 3 for SMILES and proteins, 6 for DNA);
- ``both`` (default): the mean of the two.

When to use it: when notebook 03 shows homopolymers or repeats scoring at or above the references, or when
a run's ``rewards/ume_reward/mean`` rises while ``rewards/complexity_reward/mean`` falls (the policy is
collapsing into repeats). Compose it with ``MaskedLMReward`` through TRL:

>>> config = GRPOConfig(reward_weights=[1.0, 0.5], multi_objective_aggregation="normalize_then_sum")  # doctest: +SKIP
>>> trainer = GRPOTrainer(model, reward_funcs=[MaskedLMReward(ume), ComplexityReward()], args=config)  # doctest: +SKIP

With ``normalize_then_sum`` each reward is standardised within its group before weighting, so the weight is
the relative importance (0.5: complexity counts half as much as likelihood). With TRL's default
``sum_then_normalize`` the weight must be on MaskedLMReward's scale (score / temperature): pick it larger than the
reward gap between a homopolymer and a reference in notebook 03.

Completions are read exactly as ``MaskedLMReward`` reads them (:func:`ume_rl.rewards.tags.read_completions`: TRL's
standard or conversational format, the ``modality`` column, the first tag pair wins, content validated for
its modality, content over ``max_chars`` rejected before parsing). Invalid ones (no tag, empty, wrong
modality, bad alphabet, unparsable SMILES, too long) get ``penalty``; the default ``None`` makes TRL leave
them out of this reward (it sums and averages only the rewards given), so validity stays MaskedLMReward's job and
is not penalised twice.

>>> reward = ComplexityReward()
>>> reward(["<dna>AAAAAAAAAAAAAAAAAAAA</dna>", "<dna>ACGTTGCAAGCTTACGGATC</dna>", "no tag"])
[0.03333333333333333, 1.0, None]
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from ume_rl.rewards.checks import check_penalty_and_max_chars
from ume_rl.rewards.engine.ume_scoring import DEFAULT_MAX_CHARS
from ume_rl.rewards.modalities import MODALITY_TABLE
from ume_rl.rewards.tags import check_reader, read_valid

MEASURES: tuple[str, ...] = ("entropy", "kmer", "both")
# The entropy maximum uses each modality's ``entropy_alphabet_size`` and the k-mer fraction its ``kmer_size``
# (ume_rl.rewards.modalities).


def normalized_entropy(sequence: str, alphabet_size: int) -> float:
    """Shannon entropy of the residue composition over its maximum ``log(min(alphabet_size, len))``; 0 if len < 2."""
    n = len(sequence)
    max_entropy = math.log(min(alphabet_size, n)) if n > 1 else 0.0
    if max_entropy == 0.0:
        return 0.0
    entropy = sum(c / n * math.log(n / c) for c in Counter(sequence).values())
    return min(1.0, entropy / max_entropy)


def kmer_diversity(sequence: str, k: int) -> float:
    """Distinct k-mers / k-mers (``k`` capped at the length); 1.0 when no k-mer repeats, 0.0 for ``""``."""
    if not sequence:
        return 0.0
    k = min(k, len(sequence))
    kmers = [sequence[i : i + k] for i in range(len(sequence) - k + 1)]
    return len(set(kmers)) / len(kmers)


def sequence_complexity(sequence: str, modality: str, measure: str = "both") -> float:
    """Complexity of an untagged ``sequence`` of ``modality`` in ``[0, 1]`` (see the module docstring)."""
    if measure not in MEASURES:
        raise ValueError(f"unknown measure {measure!r}; choose from {MEASURES}")
    if modality not in MODALITY_TABLE:
        raise ValueError(f"unknown modality {modality!r}; expected one of {tuple(MODALITY_TABLE)}")
    entropy = normalized_entropy(sequence, MODALITY_TABLE[modality].entropy_alphabet_size)
    kmer = kmer_diversity(sequence, MODALITY_TABLE[modality].kmer_size)
    return {"entropy": entropy, "kmer": kmer, "both": (entropy + kmer) / 2}[measure]


class ComplexityReward:
    """TRL reward: complexity in ``[0, 1]`` of the first tagged sequence of each completion.

    Args:
        measure: ``"entropy"``, ``"kmer"`` or ``"both"`` (their mean).
        penalty: reward for an invalid completion (see the module docstring); ``None`` (default) means
            "not scored": TRL leaves it out of this reward's sum and mean.
        max_chars: longer tagged content is invalid (``too_long``) before any parsing (default: what can fit
            UME, :data:`ume_rl.rewards.engine.ume_scoring.DEFAULT_MAX_CHARS`).
        reader: the reward whose rules decide what is invalid, e.g. the run's ``MaskedLMReward``
            (:meth:`~ume_rl.rewards.masked_lm.MaskedLMReward.read`: its text rules, ``too_long`` and ``unknown_token``), so
            both rewards leave out the same completions; default ``None``: the text rules of
            :func:`~ume_rl.rewards.tags.read_completions` with ``max_chars``.

    Call it as ``reward(completions, **kwargs) -> list[float | None]``; completions are strings or chat
    messages; a ``modality`` kwarg (the dataset column TRL forwards, or one modality for all) makes a tag of
    another modality invalid.

    >>> ComplexityReward(measure="kmer")([[{"role": "assistant", "content": "<protein>ACACACACAC</protein>"}]])
    [0.25]
    """

    def __init__(
        self,
        measure: str = "both",
        penalty: float | None = None,
        max_chars: int = DEFAULT_MAX_CHARS,
        reader=None,
    ):
        if measure not in MEASURES:
            raise ValueError(f"unknown measure {measure!r}; choose from {MEASURES}")
        check_penalty_and_max_chars(penalty, max_chars)
        self.measure = measure
        self.penalty = penalty
        self.max_chars = max_chars
        self.reader = check_reader(reader)
        self.__name__ = "complexity_reward"

    def __repr__(self) -> str:
        return f"ComplexityReward(measure={self.measure!r}, penalty={self.penalty!r}, max_chars={self.max_chars!r})"

    def __call__(self, completions: Sequence, modality=None, **kwargs) -> list[float | None]:
        """One reward per completion (``prompts``, ``completion_ids`` and other columns are ignored)."""
        return [
            self.penalty
            if t.reason is not None
            else sequence_complexity(t.sequence, t.modality, self.measure)
            for t in read_valid(completions, modality, self.max_chars, self.reader)
        ]
