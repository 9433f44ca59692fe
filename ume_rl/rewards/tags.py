"""Sequence tags: which tag names which modality, how a reference answer is written, and how an answer is read.

The tag a prompt asks for is the tag the reward reads (upstream asked for ``<amino_acid>`` and
rewarded only ``<protein>``). Canonical tags:

>>> wrap("CCO", "SMILES")
'<smiles>CCO</smiles>'
>>> TAG_TO_MODALITY["dna"], TAG_TO_MODALITY["nucleotide"]
('nucleotide', 'nucleotide')

Reading an answer: the first complete ``<tag>…</tag>`` pair wins (tag names case-insensitive, content
whitespace-stripped), then the content is validated for its modality:

>>> extract_tagged_sequence("Sure! <PROTEIN> mkvl </PROTEIN>")
TaggedSequence(modality='amino_acid', sequence='MKVL', reason=None)
>>> extract_tagged_sequence("<dna>ACGU</dna>").reason
'bad_alphabet'
>>> extract_tagged_sequence("<smiles>CCO</smiles>", expected_modality="amino_acid").reason
'wrong_modality'

Reading a batch as TRL passes it (strings or chat messages, the ``modality`` column):

>>> [t.reason for t in read_completions(["<dna>ACGT</dna>", [{"role": "assistant", "content": "x"}]], "DNA")]
[None, 'no_tag']

Validation here is text-only; the exact ``too_long`` (more tokens than UME's ``max_length``) and
``unknown_token`` (a token UME's tokenizer maps to ``<unk>``) checks need the UME tokenizer and are made in
:mod:`ume_rl.rewards.ume`. Reading is linear in the text length (no regex backtracking
over unclosed tags), so adversarial or huge completions are cheap.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Hashable
from typing import NamedTuple

from ume_rl.rewards.modalities import MODALITY_TABLE, TAG_TO_MODALITY, normalize_modality

# Why a completion is invalid, in the order the checks run.
INVALID_REASONS: tuple[str, ...] = (
    "no_tag",  # no complete <tag>…</tag> pair (or the completion is not text)
    "wrong_modality",  # a tag of another modality than the dataset row asks for
    "empty",  # the tag holds only whitespace
    "bad_alphabet",  # protein outside the 20 standard amino acids, DNA outside ACGT
    "unparsable_smiles",  # RDKit cannot parse the SMILES (or it contains whitespace)
    "too_long",  # more UME tokens than the model's max_length
    "unknown_token",  # the UME tokenizer maps part of it to <unk> (e.g. RDKit accepts [Og], UME does not)
)

# Default bound on tagged content before any parsing: UME's max_length (512) times the longest residue token
# (9 characters, '[195Pt+2]'); longer content cannot fit UME and is ``too_long`` without reaching RDKit.
DEFAULT_MAX_CHARS = 512 * 9

_TAG_NAMES = "|".join(TAG_TO_MODALITY)
_OPEN = re.compile(rf"<({_TAG_NAMES})>", re.IGNORECASE)
_CLOSE = re.compile(rf"</({_TAG_NAMES})>", re.IGNORECASE)


class TaggedSequence(NamedTuple):
    """What a completion holds: ``modality`` and normalised ``sequence`` when found, ``reason`` when invalid."""

    modality: str | None
    sequence: str | None
    reason: str | None


def wrap(sequence: str, modality: str) -> str:
    """Write ``sequence`` inside the canonical tag of ``modality``."""
    tag = MODALITY_TABLE[modality].tag
    return f"<{tag}>{sequence}</{tag}>"


def iter_tagged(text: str):
    """Yield ``(tag_name_lowercase, raw_content)`` for each complete tag pair, in order of the opening tag.

    A pair is an opening tag and the first closing tag of the same name after it. Linear-time apart from a
    binary search per opening tag.
    """
    if not isinstance(text, str):
        return
    closes: dict[str, list[int]] = {}
    for match in _CLOSE.finditer(text):
        closes.setdefault(match.group(1).lower(), []).append(match.start())
    if not closes:
        return
    for match in _OPEN.finditer(text):
        name = match.group(1).lower()
        starts = closes.get(name)
        if not starts:
            continue
        i = bisect.bisect_left(starts, match.end())
        if i < len(starts):
            yield name, text[match.end() : starts[i]]


def completion_text(completion) -> str | None:
    """The text of a completion in TRL's standard (string) or conversational (list of messages) format.

    Conversational completions are joined over their assistant messages (all messages if none is marked as
    the assistant's). Anything else gives ``None``.
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if isinstance(completion, list | tuple):
        messages = [m for m in completion if isinstance(m, dict) and isinstance(m.get("content"), str)]
        assistant = [m for m in messages if m.get("role") == "assistant"] or messages
        return "".join(m["content"] for m in assistant) if assistant else None
    return None


def validate_sequence(sequence: str, modality: str) -> tuple[str | None, str | None]:
    """Check ``sequence`` (already stripped, non-empty) for ``modality``: ``(normalised, None)`` or ``(None, reason)``.

    Amino acids: the 20 standard letters, DNA: ACGT (both case-insensitive, returned upper-case). SMILES:
    no whitespace and parsed by RDKit (returned unchanged).
    """
    if modality == "SMILES":
        if any(ch.isspace() for ch in sequence) or not _smiles_parses(sequence):
            return None, "unparsable_smiles"
        return sequence, None
    upper = sequence.upper()
    if not set(upper) <= set(MODALITY_TABLE[modality].alphabet):
        return None, "bad_alphabet"
    return upper, None


def _smiles_parses(smiles: str) -> bool:
    from rdkit import Chem, rdBase

    with rdBase.BlockLogs():
        return Chem.MolFromSmiles(smiles) is not None


def extract_tagged_sequence(text, expected_modality=None, max_chars: int | None = None) -> TaggedSequence:
    """Read the first tagged sequence of ``text`` and validate it.

    Args:
        text: the completion text (anything else, e.g. ``None``, is ``no_tag``).
        expected_modality: if given (a dataset row's ``modality``), a tag of another modality is
            ``wrong_modality``.
        max_chars: content longer than this is ``too_long`` before any parsing (a cheap bound; the exact
            token-count check is the scorer's).

    Returns:
        :class:`TaggedSequence`; ``reason`` is one of :data:`INVALID_REASONS` or ``None`` when valid.
    """
    first = next(iter_tagged(text), None)
    if first is None:
        return TaggedSequence(None, None, "no_tag")
    name, raw = first
    modality = TAG_TO_MODALITY[name]
    if expected_modality is not None and normalize_modality(expected_modality) != modality:
        return TaggedSequence(modality, None, "wrong_modality")
    content = raw.strip()
    if not content:
        return TaggedSequence(modality, None, "empty")
    if max_chars is not None and len(content) > max_chars:
        return TaggedSequence(modality, None, "too_long")
    sequence, reason = validate_sequence(content, modality)
    return TaggedSequence(modality, sequence, reason)


def read_completions(completions, modality=None, max_chars: int | None = None) -> list[TaggedSequence]:
    """Read a batch of completions as TRL passes them (the one reader of ``UmeReward`` and ``ComplexityReward``).

    Args:
        completions: strings (TRL's standard format) or lists of chat messages (conversational format).
        modality: ``None``, one modality for all completions (a string or lobster ``Modality``; never split
            into characters), or one per completion (TRL's dataset column; ``None`` entries allowed).
        max_chars: content longer than this is ``too_long`` before any parsing.

    Returns:
        One :class:`TaggedSequence` per completion, in order. Raises ``ValueError`` when a per-completion
        ``modality`` list has another length than ``completions``. A completion repeated in the batch (GRPO
        groups repeat themselves) is read and validated (RDKit) once.
    """
    completions = list(completions)
    n = len(completions)
    if modality is None or isinstance(modality, str) or hasattr(modality, "value"):
        expected = [modality] * n
    else:
        expected = list(modality)
    if len(expected) != n:
        raise ValueError(f"{n} completions but {len(expected)} modalities")
    read: dict = {}  # (text, expected modality) -> TaggedSequence
    out = []
    for completion, modality_ in zip(completions, expected, strict=True):
        text = completion_text(completion)
        if not isinstance(modality_, Hashable):  # let extract_tagged_sequence raise its own error
            out.append(extract_tagged_sequence(text, modality_, max_chars=max_chars))
            continue
        if (text, modality_) not in read:
            read[text, modality_] = extract_tagged_sequence(text, modality_, max_chars=max_chars)
        out.append(read[text, modality_])
    return out
