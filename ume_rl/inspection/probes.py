"""Seeded test inputs for inspecting a reward: corrupted variants of references, and hacking probes.

:func:`make_variants` corrupts each reference sequence in the ways a policy gets answers wrong; a good
reward ranks every variant below its reference (or gives it the invalid penalty):

- ``shuffled``: the same residues in a random order (composition kept);
- ``mutated``: ``n_mutations`` point substitutions (exactly that many positions differ);
- ``wrong_alphabet``: a fifth of the residues replaced by characters outside the modality's alphabet;
- ``truncated``: the first ``truncate_fraction`` of the sequence;
- ``untagged``: the reference with no tags around it.

:func:`make_probes` builds the sequences a likelihood reward is known to over-reward: ``homopolymer``
(``AAAA…``, ``CCCC…``), ``tandem_repeat`` (a 2–6 character unit repeated) and ``low_entropy`` (90% one
residue). Probes are valid for their modality (SMILES probes parse in RDKit), so the reward must score
them rather than reject them.

Both return one dict per row (``modality``, ``kind``, ``detail``, ``sequence``, ``completion``, ``length``,
``source``), ready for ``pandas.DataFrame``; the same seed gives the same rows. :func:`score_rows` scores
them with a ``MaskedLMReward`` (and ``ComplexityReward``) into one DataFrame, the input of ``ume_rl.inspection.plots``.

>>> rows = make_variants(["MKVLA"], ["amino_acid"], kinds=("reference", "shuffled"), seed=0)
>>> [(r["kind"], sorted(r["sequence"]) == sorted("MKVLA")) for r in rows]
[('reference', True), ('shuffled', True)]
>>> probes = make_probes(["nucleotide"], n_per_kind=1, seed=0)
>>> [r["kind"] for r in probes]
['homopolymer', 'tandem_repeat', 'low_entropy']
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ume_rl.rewards.modalities import MODALITIES, MODALITY_TABLE
from ume_rl.rewards.tags import wrap

VARIANT_KINDS: tuple[str, ...] = (
    "reference",
    "shuffled",
    "mutated",
    "wrong_alphabet",
    "truncated",
    "untagged",
)
PROBE_KINDS: tuple[str, ...] = ("homopolymer", "tandem_repeat", "low_entropy")

# Point mutations draw from each modality's ``mutation_alphabet`` and wrong-alphabet corruptions from its
# ``foreign_alphabet`` (ume_rl.rewards.modalities).
# Repeat units whose concatenations are valid SMILES.
SMILES_REPEAT_UNITS: tuple[str, ...] = ("CCO", "CN", "CCN", "CC(C)", "CC(=O)", "COC")


def _rng(seed: int, *keys: object) -> random.Random:
    """A generator for one (seed, keys) pair, independent of what else is generated (string seeds are stable)."""
    return random.Random(":".join(map(str, (seed, *keys))))


def shuffle_sequence(sequence: str, rng: random.Random) -> str:
    """The residues of ``sequence`` in a random order."""
    chars = list(sequence)
    rng.shuffle(chars)
    return "".join(chars)


def mutable_positions(sequence: str, modality: str) -> list[int]:
    """Positions :func:`point_mutations` may change (SMILES: aliphatic C/N/O outside brackets, not the C of Cl)."""
    if modality != "SMILES":
        return list(range(len(sequence)))
    positions, depth = [], 0
    for i, char in enumerate(sequence):
        depth += (char == "[") - (char == "]")
        if depth == 0 and char in "CNO" and not (char == "C" and sequence[i + 1 : i + 2] == "l"):
            positions.append(i)
    return positions


def point_mutations(sequence: str, modality: str, k: int, rng: random.Random) -> str:
    """``sequence`` with exactly ``k`` positions substituted by a different residue of the same modality.

    Raises:
        ValueError: fewer than ``k`` positions can be mutated.
    """
    positions = mutable_positions(sequence, modality)
    if k > len(positions):
        raise ValueError(f"cannot mutate {k} positions of {sequence!r}: only {len(positions)} are mutable")
    chars = list(sequence)
    for i in rng.sample(positions, k):
        chars[i] = rng.choice([c for c in MODALITY_TABLE[modality].mutation_alphabet if c != chars[i]])
    return "".join(chars)


def wrong_alphabet(sequence: str, modality: str, rng: random.Random, fraction: float = 0.2) -> str:
    """``sequence`` with ``max(1, round(fraction * len))`` residues replaced by characters outside its alphabet."""
    chars = list(sequence)
    for i in rng.sample(range(len(chars)), max(1, round(fraction * len(chars)))):
        chars[i] = rng.choice(MODALITY_TABLE[modality].foreign_alphabet)
    return "".join(chars)


def truncate(sequence: str, fraction: float = 0.5) -> str:
    """The first ``max(1, int(fraction * len))`` residues of ``sequence``."""
    return sequence[: max(1, int(fraction * len(sequence)))]


def _row(
    modality: str, kind: str, sequence: str, detail: str = "", source: int | None = None, tagged: bool = True
):
    return {
        "modality": modality,
        "kind": kind,
        "detail": detail,
        "sequence": sequence,
        "completion": wrap(sequence, modality) if tagged else sequence,
        "length": len(sequence),
        "source": source,
    }


def make_variants(
    sequences: Sequence[str],
    modalities: Sequence[str],
    kinds: Sequence[str] = VARIANT_KINDS,
    n_mutations: int = 3,
    truncate_fraction: float = 0.5,
    seed: int = 0,
) -> list[dict]:
    """Corrupted variants of each reference sequence, one row per (reference, kind).

    Args:
        sequences: reference sequences (untagged).
        modalities: one modality per sequence (``"SMILES"``, ``"amino_acid"``, ``"nucleotide"``).
        kinds: which rows to make, from :data:`VARIANT_KINDS` (``"reference"`` is the unchanged sequence).
        n_mutations: substitutions per ``mutated`` variant (fewer when a SMILES has fewer mutable atoms;
            ``detail`` records the number made).
        truncate_fraction: the part of the sequence a ``truncated`` variant keeps.
        seed: a row depends only on ``seed``, its reference (sequence and modality) and its kind.

    Returns:
        Dicts with ``modality``, ``kind``, ``detail``, ``sequence`` (what sits inside the tags),
        ``completion`` (the text a policy would have written), ``length`` and ``source`` (reference index).
    """
    unknown = set(kinds) - set(VARIANT_KINDS)
    if unknown:
        raise ValueError(f"unknown variant kinds {sorted(unknown)}; choose from {VARIANT_KINDS}")
    rows = []
    for index, (sequence, modality) in enumerate(zip(sequences, modalities, strict=True)):
        if modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
        for kind in kinds:
            rng = _rng(seed, modality, sequence, kind)
            if kind == "reference":
                rows.append(_row(modality, kind, sequence, source=index))
            elif kind == "shuffled":
                rows.append(_row(modality, kind, shuffle_sequence(sequence, rng), source=index))
            elif kind == "mutated":
                k = min(n_mutations, len(mutable_positions(sequence, modality)))
                mutant = point_mutations(sequence, modality, k, rng)
                rows.append(_row(modality, kind, mutant, f"{k} mutations", source=index))
            elif kind == "wrong_alphabet":
                rows.append(_row(modality, kind, wrong_alphabet(sequence, modality, rng), source=index))
            elif kind == "truncated":
                short = truncate(sequence, truncate_fraction)
                rows.append(_row(modality, kind, short, f"kept {len(short)}/{len(sequence)}", source=index))
            else:  # untagged
                rows.append(_row(modality, kind, sequence, "no tags", source=index, tagged=False))
    return rows


def _probe_length(modality: str, rng: random.Random, length: int | None) -> int:
    return length if length is not None else rng.randint(*MODALITY_TABLE[modality].length_range)


def tandem_repeat(modality: str, length: int, rng: random.Random) -> tuple[str, str]:
    """A short unit repeated to about ``length`` residues; returns ``(sequence, unit)``.

    Protein/DNA units are 2–4 residues with at least two distinct ones, cut to exactly ``length``;
    SMILES units come from :data:`SMILES_REPEAT_UNITS` and are repeated whole (at least three times).
    """
    if modality == "SMILES":
        unit = rng.choice(SMILES_REPEAT_UNITS)
        return unit * max(3, length // len(unit)), unit
    alphabet = MODALITY_TABLE[modality].mutation_alphabet
    unit = ""
    while len(set(unit)) < 2:
        unit = "".join(rng.choices(alphabet, k=rng.randint(2, 4)))
    return (unit * (length // len(unit) + 1))[:length], unit


def low_entropy(
    modality: str, length: int, rng: random.Random, dominant_fraction: float = 0.9
) -> tuple[str, str]:
    """Mostly one residue: each position is the dominant residue with ``dominant_fraction``, else another
    (at least one other residue when ``length > 1``).

    SMILES: a chain of ``C`` with occasional ``N``/``O`` (always parses). Returns ``(sequence, dominant)``.
    """
    alphabet = MODALITY_TABLE[modality].mutation_alphabet
    dominant = "C" if modality == "SMILES" else rng.choice(alphabet)
    others = [c for c in alphabet if c != dominant]
    chars = [dominant if rng.random() < dominant_fraction else rng.choice(others) for _ in range(length)]
    if length > 1 and set(chars) == {dominant}:  # never a homopolymer
        chars[rng.randrange(length)] = rng.choice(others)
    return "".join(chars), dominant


def make_probes(
    modalities: Sequence[str] = MODALITIES,
    n_per_kind: int = 3,
    length: int | None = None,
    kinds: Sequence[str] = PROBE_KINDS,
    seed: int = 0,
) -> list[dict]:
    """Reward-hacking probes: low-complexity sequences that are valid for their modality.

    Args:
        modalities: modalities to build probes for.
        n_per_kind: probes per (modality, kind). Homopolymers use distinct residues while the alphabet
            lasts (SMILES: ``C``, ``N``, ``O`` chains).
        length: probe length; ``None`` draws each one from the dataset's modality table's ``length_range``.
        kinds: which probes to make, from :data:`PROBE_KINDS`.
        seed: the same seed gives the same probes.

    Returns:
        Dicts with the same keys as :func:`make_variants` (``source`` is ``None``).
    """
    unknown = set(kinds) - set(PROBE_KINDS)
    if unknown:
        raise ValueError(f"unknown probe kinds {sorted(unknown)}; choose from {PROBE_KINDS}")
    rows = []
    for modality in modalities:
        if modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
        alphabet = MODALITY_TABLE[modality].mutation_alphabet
        # SMILES: C first, since the alkane chain is the classic SMILES hack; others in a seeded order.
        residues = alphabet if modality == "SMILES" else _rng(seed, modality).sample(alphabet, len(alphabet))
        for kind in kinds:
            for i in range(n_per_kind):
                rng = _rng(seed, modality, kind, i)
                n = _probe_length(modality, rng, length)
                if kind == "homopolymer":
                    residue = residues[i % len(residues)]
                    rows.append(_row(modality, kind, residue * n, f"{residue}×{n}"))
                elif kind == "tandem_repeat":
                    seq, unit = tandem_repeat(modality, n, rng)
                    rows.append(_row(modality, kind, seq, f"({unit})×{len(seq) // len(unit)}"))
                else:
                    seq, dominant = low_entropy(modality, n, rng)
                    rows.append(_row(modality, kind, seq, f"~90% {dominant}"))
    return rows


def score_rows(rows: Sequence[dict], reward, complexity=None):
    """Score variant/probe rows with a ``MaskedLMReward``; returns a ``pandas.DataFrame``.

    The rows plus ``reason``, ``score``, ``reward`` (``reward.details``, each row's modality as the expected
    one, so a wrong tag is invalid) and ``complexity`` (``complexity``, default ``ComplexityReward()``;
    NaN when invalid).
    """
    import pandas as pd

    from ume_rl.rewards.complexity import ComplexityReward

    frame = pd.DataFrame(list(rows))
    if frame.empty:
        raise ValueError("no rows to score")
    completions, modalities = list(frame["completion"]), list(frame["modality"])
    details = pd.DataFrame(reward.details(completions, modality=modalities), index=frame.index)
    frame[["reason", "score", "reward"]] = details[["reason", "score", "reward"]]
    frame["complexity"] = (complexity or ComplexityReward())(completions, modality=modalities)
    return frame
