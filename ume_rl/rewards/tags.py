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

A bare sequence (no tag pair) is ``no_tag`` unless the caller asks for detection (``untagged="detect"``,
as lobster's reward reads a bare SMILES): then the whole text is read as one sequence of the row's
modality, or of the modality :func:`detect_modality` finds (lobster's rules):

>>> detect_modality("CC(C)CC1=CC=C(C=C1)C(C)C(=O)O"), detect_modality("MKTAYIAKQR"), detect_modality("ACGTAC")
('SMILES', 'amino_acid', 'nucleotide')
>>> read_completions(["CCO", "no sequence here"], untagged="detect")[0]
TaggedSequence(modality='SMILES', sequence='CCO', reason=None)

Validation here is text-only; the exact ``too_long`` (more tokens than UME's ``max_length``) and
``unknown_token`` (a token UME's tokenizer maps to ``<unk>``) checks need the UME tokenizer and are made in
:mod:`ume_rl.rewards.masked_lm`. Reading is linear in the text length (no regex backtracking
over unclosed tags), so adversarial or huge completions are cheap.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from typing import NamedTuple

from ume_rl.rewards.modalities import MODALITY_TABLE, TAG_TO_MODALITY, normalize_modality

# Why a completion is invalid, in the order the checks run.
INVALID_REASONS: tuple[str, ...] = (
    "no_tag",  # no complete <tag>…</tag> pair (or not text; untagged="detect": no sequence detected)
    "wrong_modality",  # a tag of another modality than the dataset row asks for
    "empty",  # the tag holds only whitespace
    "bad_alphabet",  # protein outside the 20 standard amino acids, DNA outside ACGT
    "unparsable_smiles",  # RDKit cannot parse the SMILES (or it contains whitespace)
    "too_long",  # more UME tokens than the model's max_length
    "unknown_token",  # the UME tokenizer maps part of it to <unk> (e.g. RDKit accepts [Og], UME does not)
)

UNTAGGED = ("invalid", "detect")
"""What a completion without a tag pair is: ``invalid`` (``no_tag``) or ``detect`` (a bare sequence)."""

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


def detect_modality(text: str) -> str:
    """The modality of a bare sequence by lobster's rules (``lobster.model.utils._detect_modality``).

    In order, on the stripped text: fewer than 3 characters is an error; only ``ACGT`` (any case) is
    ``nucleotide``; only the 20 standard amino-acid letters is ``amino_acid``; text RDKit parses is ``SMILES``;
    anything else is an error. Returns the lobster ``Modality`` value (``"SMILES"`` == ``Modality.SMILES``,
    a ``StrEnum``).

    Where it differs from lobster's (which upper-cases the text before every check, including RDKit's):
    SMILES are parsed in their own case, so ``ClCCl``, ``CBr``, ``[Na+]`` or ``c1ccsc1`` are SMILES here, where
    lobster reads ``CLCCL`` as a protein or rejects the upper-cased text; and mixed-case text (``CCl``) is
    never DNA or protein. Like lobster's, short all-capital aliphatic SMILES are ambiguous and read as DNA or
    protein first (``CCC``, ``CNC``): pass the modality when you know it.

    Raises:
        ValueError: too short, or no modality fits (the message names the text).

    >>> detect_modality("c1ccccc1Cl")
    'SMILES'
    """
    stripped = text.strip() if isinstance(text, str) else ""
    if len(stripped) < 3:
        raise ValueError(f"Sequence too short (length {len(stripped)}): at least 3 characters are needed.")
    upper = stripped.upper()
    single_case = stripped in (upper, stripped.lower())
    for modality in ("nucleotide", "amino_acid"):
        if single_case and set(upper) <= set(MODALITY_TABLE[modality].alphabet):
            return modality
    if not any(ch.isspace() for ch in stripped) and _smiles_parses(stripped):
        return "SMILES"
    raise ValueError(f"Unable to determine the modality of {stripped[:60]!r}: not DNA, protein or SMILES.")


def read_bare_sequence(text, expected_modality=None, max_chars: int | None = None) -> TaggedSequence:
    """Read a whole completion as one untagged sequence (``untagged="detect"``).

    With ``expected_modality`` (the dataset row's), text valid for it is that modality; otherwise the modality
    is :func:`detect_modality`'s, and ``wrong_modality`` when it differs from the expected one. Text that is
    no sequence (whitespace inside, nothing detected) is ``no_tag``; longer than ``max_chars`` is ``too_long``.
    """
    content = text.strip() if isinstance(text, str) else ""
    if not content or any(ch.isspace() for ch in content):
        return TaggedSequence(None, None, "no_tag")
    if max_chars is not None and len(content) > max_chars:
        return TaggedSequence(None, None, "too_long")
    if expected_modality is not None:
        expected = normalize_modality(expected_modality)
        sequence, reason = validate_sequence(content, expected)
        if reason is None:
            return TaggedSequence(expected, sequence, None)
    try:
        modality = detect_modality(content)
    except ValueError:
        return TaggedSequence(None, None, "no_tag")
    if expected_modality is not None:
        return TaggedSequence(modality, None, "wrong_modality")
    sequence, reason = validate_sequence(content, modality)
    return TaggedSequence(modality, sequence, reason)


def extract_tagged_sequence(
    text, expected_modality=None, max_chars: int | None = None, untagged: str = "invalid"
) -> TaggedSequence:
    """Read the first tagged sequence of ``text`` and validate it.

    Args:
        text: the completion text (anything else, e.g. ``None``, is ``no_tag``).
        expected_modality: if given (a dataset row's ``modality``), a tag of another modality is
            ``wrong_modality``.
        max_chars: content longer than this is ``too_long`` before any parsing (a cheap bound; the exact
            token-count check is the scorer's).
        untagged: ``"invalid"`` (no tag pair is ``no_tag``) or ``"detect"`` (:func:`read_bare_sequence`).

    Returns:
        :class:`TaggedSequence`; ``reason`` is one of :data:`INVALID_REASONS` or ``None`` when valid.
    """
    first = next(iter_tagged(text), None)
    if first is None:
        if untagged == "detect":
            return read_bare_sequence(text, expected_modality, max_chars=max_chars)
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


def check_completion(completion, index: int) -> None:
    """``TypeError`` naming ``completions[index]`` unless ``completion`` is a string, one chat message or a list
    of chat messages (dicts whose ``content`` is a string), TRL's two completion formats.

    >>> check_completion([{"role": "assistant", "content": "<dna>ACGT</dna>"}], 0)
    >>> check_completion(None, 3)
    Traceback (most recent call last):
    ...
    TypeError: completions[3] must be a string or a list of chat messages, got None
    """
    if isinstance(completion, str):
        return
    messages = [completion] if isinstance(completion, dict) else completion
    if not isinstance(messages, list | tuple):
        raise TypeError(
            f"completions[{index}] must be a string or a list of chat messages, got "
            + ("None" if completion is None else f"{type(completion).__name__} {completion!r:.60}")
        )
    for j, message in enumerate(messages):
        if not (isinstance(message, dict) and isinstance(message.get("content"), str)):
            raise TypeError(
                f"completions[{index}][{j}] must be a chat message, a dict with a string 'content', "
                f"got {type(message).__name__} {message!r:.60}"
            )


def check_batch(completions, modality=None) -> tuple[list, list]:
    """The reward input contract, checked before anything is scored: ``(completions, expected modalities)``.

    Args:
        completions: a list of completions (any sequence: tuple, a ``datasets`` column); a bare string or
            ``None`` is a ``TypeError`` (a string would otherwise be read as one completion per character).
            Each item must be a string, one chat message or a list of chat messages (dicts whose ``content``
            is a string): anything else (``None``, a number, ``bytes``, a message without ``content``) is a
            ``TypeError`` naming its index, not a completion to penalise.
        modality: ``None``, one modality for all completions (a name, tag name or lobster ``Modality``), or a
            sequence of one per completion (``None`` entries allowed). Every value is checked here, even
            when no completion has a tag.

    Returns:
        The completions as a list and one normalised modality (or ``None``) per completion.

    Raises:
        TypeError: ``completions`` is not a sequence or is one string, an item is not a completion
            (:func:`check_completion`), or ``modality`` is not a string, ``Modality`` or sequence.
        ValueError: an unknown modality, or a per-completion list of another length than ``completions``.

    >>> check_batch(["<dna>ACGT</dna>"], "DNA")
    (['<dna>ACGT</dna>'], ['nucleotide'])
    >>> check_batch("<dna>ACGT</dna>")
    Traceback (most recent call last):
    ...
    TypeError: completions must be a list of completions (strings or chat-message lists), got one str of 15 characters: pass [completion] to score a single completion
    """
    if isinstance(completions, str | bytes):
        raise TypeError(
            "completions must be a list of completions (strings or chat-message lists), got one str of "
            f"{len(completions)} characters: pass [completion] to score a single completion"
        )
    if not isinstance(completions, Sequence):
        raise TypeError(
            "completions must be a list of completions (strings or chat-message lists), got "
            + ("None" if completions is None else f"{type(completions).__name__} {completions!r:.60}")
            + ("" if completions is None else ": pass list(completions)")
        )
    completions = list(completions)
    for i, completion in enumerate(completions):
        check_completion(completion, i)
    n = len(completions)
    if modality is None:
        return completions, [None] * n
    if isinstance(modality, str) or hasattr(modality, "value"):
        return completions, [normalize_modality(modality)] * n
    if not isinstance(modality, Sequence) or isinstance(modality, bytes):
        raise TypeError(
            "modality must be None, one modality (e.g. 'SMILES', 'protein', 'dna') or a list of one per "
            f"completion, got {type(modality).__name__} {modality!r:.60}"
        )
    if len(modality) != n:
        raise ValueError(f"{n} completions but {len(modality)} modalities: pass one modality per completion")
    expected = []
    for i, value in enumerate(modality):
        if value is not None and not (isinstance(value, str) or hasattr(value, "value")):
            raise TypeError(
                f"modality[{i}] must be a modality name or None, got {type(value).__name__} {value!r:.60}"
            )
        try:
            expected.append(None if value is None else normalize_modality(value))
        except ValueError as err:
            raise ValueError(f"modality[{i}]: {err}") from None
    return completions, expected


def read_completions(
    completions, modality=None, max_chars: int | None = None, untagged: str = "invalid"
) -> list[TaggedSequence]:
    """Read a batch of completions as TRL passes them (the one reader of ``MaskedLMReward`` and ``ComplexityReward``).

    Args:
        completions: a list of strings (TRL's standard format) or lists of chat messages (conversational format).
        modality: ``None``, one modality for all completions (a string or lobster ``Modality``; never split
            into characters), or one per completion (TRL's dataset column; ``None`` entries allowed).
        max_chars: content longer than this is ``too_long`` before any parsing.
        untagged: ``"invalid"`` or ``"detect"`` (see :func:`extract_tagged_sequence`).

    Returns:
        One :class:`TaggedSequence` per completion, in order. The batch is checked first
        (:func:`check_batch`): a bare string, ``None``, an unknown modality or a modality list of another
        length than ``completions`` is an error, raised before anything is read. A completion repeated in
        the batch (GRPO groups repeat themselves) is read and validated (RDKit) once.
    """
    if untagged not in UNTAGGED:
        raise ValueError(f"untagged must be one of {UNTAGGED}, got {untagged!r}")
    completions, expected = check_batch(completions, modality)
    read: dict = {}  # (text, expected modality) -> TaggedSequence (immutable, so shared)
    out = []
    for completion, expected_modality in zip(completions, expected, strict=True):
        text = completion_text(completion)
        key = (text, expected_modality)  # check_batch normalised the modality: a str or None
        if key not in read:
            read[key] = extract_tagged_sequence(
                text, expected_modality, max_chars=max_chars, untagged=untagged
            )
        out.append(read[key])
    return out


def check_reader(reader):
    """``reader`` unless it is neither ``None`` nor an object with a ``read(completions, modality)`` method (a
    ``MaskedLMReward``): then a ``TypeError`` at construction, not at the first batch."""
    if reader is not None and not callable(getattr(reader, "read", None)):
        raise TypeError(
            f"reader must be None or a reward with a read(completions, modality) method (a MaskedLMReward), "
            f"got {type(reader).__name__}"
        )
    return reader


def read_valid(completions, modality, max_chars: int | None, reader=None) -> list[TaggedSequence]:
    """How an auxiliary reward reads a batch: through ``reader.read`` (the validity rules of the reward it
    defers to, e.g. the run's ``MaskedLMReward``), else :func:`read_completions` with ``max_chars``."""
    if reader is not None:
        return reader.read(completions, modality)
    return read_completions(completions, modality, max_chars=max_chars)
