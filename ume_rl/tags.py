"""Sequence tags: which tag names which modality, and how a reference answer is written.

The tag a prompt asks for is the tag the reward reads (upstream asked for ``<amino_acid>`` and
rewarded only ``<protein>``). Canonical tags:

>>> wrap("CCO", "SMILES")
'<smiles>CCO</smiles>'
>>> TAG_TO_MODALITY["dna"], TAG_TO_MODALITY["nucleotide"]
('nucleotide', 'nucleotide')
"""

from __future__ import annotations

# lobster's Modality values, in the order ume_rl reports them.
MODALITIES: tuple[str, ...] = ("SMILES", "amino_acid", "nucleotide")

# The tag a prompt asks for, per modality.
MODALITY_TO_TAG: dict[str, str] = {"SMILES": "smiles", "amino_acid": "protein", "nucleotide": "dna"}

# Every tag the reward accepts (case-insensitive), including upstream's aliases.
TAG_TO_MODALITY: dict[str, str] = {
    "smiles": "SMILES",
    "protein": "amino_acid",
    "amino_acid": "amino_acid",
    "dna": "nucleotide",
    "nucleotide": "nucleotide",
}


def wrap(sequence: str, modality: str) -> str:
    """Write ``sequence`` inside the canonical tag of ``modality``."""
    tag = MODALITY_TO_TAG[modality]
    return f"<{tag}>{sequence}</{tag}>"
