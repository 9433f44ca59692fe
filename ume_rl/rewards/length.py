"""A length reward, the lever against a likelihood reward's taste for short answers.

A per-residue likelihood reward with a low invalid penalty can be climbed by writing *less*: a short valid
sequence is the surest way past the penalty, and the policy's shortest answers are often its most typical
residues. Notebook 04 shows this signature on the ``demo`` profile (DNA 72 -> 28 nt in 40 GRPO steps).
:class:`LengthReward` scores the tagged sequence's length against its modality's expected range (the
dataset's ``length_range``, :mod:`ume_rl.rewards.modalities`: SMILES 10-50 characters, protein 20-100
residues, DNA 50-200 nucleotides):

- 1.0 inside ``[low, high]``;
- ``length / low`` below it (a sequence half the minimum length gets 0.5);
- ``high / length`` above it.

Compose it with ``MaskedLMReward`` (and ``ComplexityReward``) through TRL, as a recipe does with
``reward_funcs: [ume, complexity, length]`` and ``reward_weights``; with
``multi_objective_aggregation: normalize_then_sum`` each weight is a relative importance.

Completions are read exactly as ``MaskedLMReward`` reads them (:func:`ume_rl.rewards.tags.read_completions`);
invalid ones get ``penalty``, by default ``None``: TRL leaves them out of this reward, so validity stays
MaskedLMReward's job.

>>> reward = LengthReward()
>>> reward(["<dna>" + "ACGT" * 25 + "</dna>", "<dna>" + "ACGTA" * 5 + "</dna>", "no tag"])
[1.0, 0.5, None]
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

from ume_rl.rewards.checks import check_penalty_and_max_chars
from ume_rl.rewards.engine.ume_scoring import DEFAULT_MAX_CHARS
from ume_rl.rewards.modalities import MODALITY_TABLE, normalize_modality
from ume_rl.rewards.tags import check_reader, read_valid


def length_score(length: int, low: int, high: int) -> float:
    """1.0 for ``low <= length <= high``, ``length / low`` below, ``high / length`` above (0.0 for ``0``)."""
    if length < low:
        return length / low
    if length > high:
        return high / length
    return 1.0


def _check_ranges(ranges: Mapping) -> dict[str, tuple[int, int]]:
    checked = {}
    for modality, bounds in ranges.items():
        name = normalize_modality(modality)
        try:
            low, high = bounds
        except (TypeError, ValueError):
            raise ValueError(
                f"length range of {modality!r} must be (low, high), got {bounds!r:.40}"
            ) from None
        if not all(isinstance(b, numbers.Integral) and not isinstance(b, bool) for b in (low, high)):
            raise TypeError(f"length range of {modality!r} must be two integers, got {bounds!r:.40}")
        if not 1 <= low <= high:
            raise ValueError(
                f"length range of {modality!r} must satisfy 1 <= low <= high, got {bounds!r:.40}"
            )
        checked[name] = (int(low), int(high))
    return checked


class LengthReward:
    """TRL reward: how well the first tagged sequence's length fits its modality's range, in ``[0, 1]``.

    Args:
        ranges: modality -> ``(low, high)`` characters; modalities left out use the modality table's
            ``length_range``.
        penalty: reward for an invalid completion; ``None`` (default): not scored (TRL skips it).
        max_chars: longer tagged content is invalid (``too_long``) before any parsing.
        reader: the reward whose rules decide what is invalid (the run's ``MaskedLMReward``, see
            :class:`~ume_rl.rewards.complexity.ComplexityReward`); default ``None``: text rules only.

    >>> LengthReward(ranges={"amino_acid": (10, 20)})(["<protein>MKVLAAGIVK</protein>"])
    [1.0]
    """

    def __init__(
        self,
        ranges: Mapping[str, tuple[int, int]] | None = None,
        penalty: float | None = None,
        max_chars: int = DEFAULT_MAX_CHARS,
        reader=None,
    ):
        defaults = {name: spec.length_range for name, spec in MODALITY_TABLE.items()}
        self.ranges = {**defaults, **_check_ranges(ranges or {})}
        check_penalty_and_max_chars(penalty, max_chars)
        self.penalty = penalty
        self.max_chars = max_chars
        self.reader = check_reader(reader)
        self.__name__ = "length_reward"

    def __repr__(self) -> str:
        return f"LengthReward(ranges={self.ranges!r}, penalty={self.penalty!r})"

    def __call__(self, completions: Sequence, modality=None, **kwargs) -> list[float | None]:
        """One reward per completion (other dataset columns are ignored)."""
        return [
            self.penalty if t.reason is not None else length_score(len(t.sequence), *self.ranges[t.modality])
            for t in read_valid(completions, modality, self.max_chars, self.reader)
        ]
