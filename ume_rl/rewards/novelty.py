"""A cross-step novelty memory, the lever against a policy that keeps writing the sequences it was paid for.

A likelihood reward pays the same sequence (or the same kind of sequence) again at every step, so a policy can
settle on a few high-scoring answers. REINVENT's diversity filter answers this with a memory across steps;
:class:`NoveltyMemory` does the same for every modality. Each valid completion is remembered under its
identity (canonical SMILES; the sequence itself for proteins and DNA) and a **bucket**:

- SMILES: its canonical Bemis-Murcko scaffold (RDKit); acyclic molecules share the empty scaffold;
- protein and DNA: a k-mer signature, the ``signature_size`` most frequent k-mers (k = the modality's
  ``kmer_size``), so repeats and low-complexity answers of the same kind share a bucket.

The reward of a completion is ``decay ** (seen + overflow)``: ``seen`` counts the earlier steps' completions
with the same identity, ``overflow`` how far its bucket is past ``bucket_size`` completions from earlier
steps. A new sequence in a bucket with room gets 1.0; each earlier copy and each completion over the
bucket's size multiplies it by ``decay``. Completions of the current step are remembered once the step is
scored, so one step's group is scored against earlier steps only (TRL passes ``trainer_state``; without it,
each call is a step). Invalid completions get ``penalty`` (default ``None``: TRL leaves them out, so validity
stays MaskedLMReward's job).

>>> memory = NoveltyMemory(decay=0.5, bucket_size=2)
>>> memory(["<dna>" + "ACGTTGCA" * 8 + "</dna>", "no tag"])
[1.0, None]
>>> memory(["<dna>" + "ACGTTGCA" * 8 + "</dna>"])  # produced once before
[0.5]

A recipe turns it on with ``reward_funcs: [ume, novelty]`` (weights in ``reward_weights``).
"""

from __future__ import annotations

import numbers
from collections import Counter
from collections.abc import Sequence

from rdkit import Chem, rdBase
from rdkit.Chem.Scaffolds import MurckoScaffold

from ume_rl.rewards.checks import check_penalty_and_max_chars
from ume_rl.rewards.engine.ume_scoring import DEFAULT_MAX_CHARS
from ume_rl.rewards.modalities import MODALITY_TABLE
from ume_rl.rewards.tags import check_reader, read_valid


def smiles_identity_and_scaffold(smiles: str) -> tuple[str, str]:
    """Canonical SMILES and canonical Murcko scaffold (``""`` for acyclic molecules); the input twice when RDKit
    cannot parse it (the reward only sees SMILES MaskedLMReward's checks accepted)."""
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles)
        if mol is None:
            return smiles, smiles
        return Chem.MolToSmiles(mol), MurckoScaffold.MurckoScaffoldSmiles(mol=mol)


def kmer_signature(sequence: str, k: int, size: int = 3) -> str:
    """The ``size`` most frequent k-mers of ``sequence`` (ties broken alphabetically), joined by ``+``; the
    sequence itself when it is shorter than ``k``.

    >>> kmer_signature("AAAAAAAAAA", 3), kmer_signature("ACGTACGTAC", 3, size=2)
    ('AAA', 'ACG+CGT')
    """
    if len(sequence) < k:
        return sequence
    counts = Counter(sequence[i : i + k] for i in range(len(sequence) - k + 1))
    return "+".join(sorted(counts, key=lambda kmer: (-counts[kmer], kmer))[:size])


class NoveltyMemory:
    """TRL reward with a memory across steps: ``decay ** (seen + overflow)`` per valid completion (module docstring).

    Args:
        decay: factor per earlier copy and per completion over the bucket's size, in ``(0, 1)``.
        bucket_size: completions a bucket (scaffold or k-mer signature) holds before its members are decayed.
        signature_size: k-mers in a protein/DNA bucket's signature.
        penalty: reward of an invalid completion; ``None`` (default): not scored (TRL skips it).
        max_chars: longer tagged content is invalid (``too_long``) before any parsing.
        reader: the reward whose rules decide what is invalid (the run's ``MaskedLMReward``, as the registry passes
            it), so this reward leaves out what that one penalises; default ``None``: the text rules.

    State: :attr:`seen` (identity -> count) and :attr:`buckets` ((modality, bucket) -> count) hold every
    earlier step's valid completions; :meth:`reset` clears them.
    """

    def __init__(
        self,
        decay: float = 0.5,
        bucket_size: int = 25,
        signature_size: int = 3,
        penalty: float | None = None,
        max_chars: int = DEFAULT_MAX_CHARS,
        reader=None,
    ):
        if isinstance(decay, bool) or not isinstance(decay, numbers.Real) or not 0 < decay < 1:
            raise ValueError(f"decay must be a number in (0, 1), got {decay!r}")
        for name, value in (("bucket_size", bucket_size), ("signature_size", signature_size)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        check_penalty_and_max_chars(penalty, max_chars)
        self.decay = float(decay)
        self.bucket_size = int(bucket_size)
        self.signature_size = int(signature_size)
        self.penalty = penalty
        self.max_chars = max_chars
        self.reader = check_reader(reader)
        self.__name__ = "novelty_reward"
        self.reset()

    def __repr__(self) -> str:
        return (
            f"NoveltyMemory(decay={self.decay!r}, bucket_size={self.bucket_size!r}, "
            f"signature_size={self.signature_size!r}, penalty={self.penalty!r})"
        )

    def reset(self) -> None:
        """Forget every remembered completion."""
        self.seen: Counter = Counter()
        self.buckets: Counter = Counter()
        self._pending: list[tuple[tuple, tuple]] = []
        self._step = None

    def keys(self, sequence: str, modality: str) -> tuple[tuple, tuple]:
        """``(identity, bucket)`` of a valid sequence, each prefixed with its modality."""
        if modality == "SMILES":
            identity, bucket = smiles_identity_and_scaffold(sequence)
        else:
            identity = sequence
            bucket = kmer_signature(sequence, MODALITY_TABLE[modality].kmer_size, self.signature_size)
        return (modality, identity), (modality, bucket)

    def _commit(self) -> None:
        for identity, bucket in self._pending:
            self.seen[identity] += 1
            self.buckets[bucket] += 1
        self._pending = []

    def __call__(
        self, completions: Sequence, modality=None, trainer_state=None, **kwargs
    ) -> list[float | None]:
        """One reward per completion; remembers the valid ones for later steps (other dataset columns ignored)."""
        step = getattr(trainer_state, "global_step", None)
        if step is None or step != self._step:  # a new step: what earlier calls produced becomes memory
            self._commit()
            self._step = step
        rewards: list[float | None] = []
        for tagged in read_valid(completions, modality, self.max_chars, self.reader):
            if tagged.reason is not None:
                rewards.append(self.penalty)
                continue
            identity, bucket = self.keys(tagged.sequence, tagged.modality)
            overflow = max(0, self.buckets[bucket] - self.bucket_size + 1)
            rewards.append(self.decay ** (self.seen[identity] + overflow))
            self._pending.append((identity, bucket))
        return rewards
