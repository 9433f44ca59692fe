"""The modality table: every fact about SMILES, protein and DNA that more than one module needs, in one place.

Each modality is a frozen :class:`ModalitySpec`, keyed by its lobster ``Modality`` value (the one spelling
used in code, dataset columns and reward statistics). Tags, validation, the synthetic generator, probes,
the complexity reward and the plots all read this table, so adding a modality (RNA, say) means adding one
entry here.

>>> MODALITY_TABLE["amino_acid"].tag, MODALITY_TABLE["amino_acid"].label
('protein', 'protein')
>>> spec("DNA").name  # a tag name, alias or lobster Modality also works
'nucleotide'
>>> [m.label for m in MODALITY_TABLE.values()]
['SMILES', 'protein', 'DNA']
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModalitySpec:
    """What ume_rl knows about one modality.

    Attributes:
        name: lobster's ``Modality`` value (``"SMILES"``, ``"amino_acid"``, ``"nucleotide"``).
        tag: the tag a prompt asks for and a reference is written in (``<tag>…</tag>``).
        aliases: other tag names the reward accepts for this modality (case-insensitive).
        alphabet: allowed residues (upper case), or ``None`` when a parser validates (SMILES: RDKit).
        label: how figures and tables name it.
        color: its matplotlib colour.
        length_range: (min, max) characters of the synthetic dataset's references.
        kmer_size: k of the complexity reward's distinct-k-mer fraction.
        entropy_alphabet_size: alphabet size behind the complexity reward's entropy maximum.
        mutation_alphabet: residues a point mutation draws from (probes).
        foreign_alphabet: characters outside the alphabet (the ``wrong_alphabet`` probe).
        prompts: request templates of the synthetic dataset, each naming ``tag``.
        public_masked_lm: the public Hugging Face masked-LM family that scores it (``full-public``), whose shape
            the offline stand-in copies (:func:`ume_rl.models.masked_lms.build_tiny_masked_lm`): ``chemberta``,
            ``esm2`` or ``nucleotide_transformer``.
        realism: the realism metrics computed for it (:mod:`ume_rl.training.realism` defines each name).
        corpus_size: sequences of it in a warm start's corpus stage by default (``warm_start_corpus_sizes``).
    """

    name: str
    tag: str
    aliases: tuple[str, ...]
    alphabet: str | None
    label: str
    color: str
    length_range: tuple[int, int]
    kmer_size: int
    entropy_alphabet_size: int
    mutation_alphabet: str
    foreign_alphabet: str
    prompts: tuple[str, ...]
    public_masked_lm: str
    realism: tuple[str, ...] = ()
    corpus_size: int = 0

    @property
    def tag_names(self) -> tuple[str, ...]:
        """Every tag name read as this modality, lower case: the canonical tag first, then the aliases."""
        return (self.tag, *self.aliases)


AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
NUCLEOTIDES = "ACGT"

MODALITY_TABLE: dict[str, ModalitySpec] = {
    spec.name: spec
    for spec in (
        ModalitySpec(
            name="SMILES",
            tag="smiles",
            aliases=(),
            alphabet=None,
            label="SMILES",
            color="tab:blue",
            length_range=(10, 50),
            # SMILES need many examples to learn ring and branch syntax (MOSES has 1.6 M)
            corpus_size=40000,
            kmer_size=3,
            # The dozen characters that make up almost all of a drug-like SMILES (C c N n O o S F ( ) = and a
            # ring digit); with the full character set (~38) every real molecule would look low-complexity.
            entropy_alphabet_size=12,
            # Aliphatic C/N/O swaps keep the string SMILES-shaped; valence may still break (the reward's job).
            mutation_alphabet="CNO",
            foreign_alphabet="JQX",  # letters that are no element symbol
            prompts=(
                "Generate a valid SMILES string for a small drug-like molecule. Put it inside <smiles></smiles> tags.",
                "Write the SMILES of an organic molecule between <smiles> and </smiles>.",
                "Propose a small molecule and give its SMILES inside <smiles>...</smiles> tags.",
            ),
            public_masked_lm="chemberta",
            realism=(
                "valid",
                "unique",
                "novel",
                "scaffold_novel",
                "int_div",
                "qed",
                "qed_w1",
                "sa",
                "sa_w1",
                "fcd_corpus",
                "fcd_moses",
            ),  # fmt: skip
        ),
        ModalitySpec(
            name="amino_acid",
            tag="protein",
            aliases=("amino_acid",),
            alphabet=AMINO_ACIDS,
            label="protein",
            color="tab:orange",
            length_range=(20, 100),
            corpus_size=1500,  # longer windows; their alphabet is learned from fewer
            kmer_size=3,
            entropy_alphabet_size=20,
            mutation_alphabet=AMINO_ACIDS,
            foreign_alphabet="BJOUXZ",  # non-standard amino-acid codes
            prompts=(
                "Generate a protein sequence using the 20 standard amino acids. Put it inside <protein></protein> tags.",
                "Write an amino acid sequence for a short protein between <protein> and </protein>.",
                "Design a protein and give its sequence inside <protein>...</protein> tags.",
            ),
            public_masked_lm="esm2",
            realism=("valid", "unique", "novel", "int_div", "aa_kl", "length_w1", "low_complexity"),
        ),
        ModalitySpec(
            name="nucleotide",
            tag="dna",
            aliases=("nucleotide",),
            alphabet=NUCLEOTIDES,
            label="DNA",
            color="tab:green",
            length_range=(50, 200),
            corpus_size=1500,
            kmer_size=6,
            entropy_alphabet_size=4,
            mutation_alphabet=NUCLEOTIDES,
            foreign_alphabet="EFILPQ",  # protein letters
            prompts=(
                "Generate a DNA sequence using only A, C, G and T. Put it inside <dna></dna> tags.",
                "Write a DNA sequence between <dna> and </dna>.",
                "Design a short gene fragment and give its DNA sequence inside <dna>...</dna> tags.",
            ),
            public_masked_lm="nucleotide_transformer",
            realism=("valid", "unique", "novel", "int_div", "gc", "kmer3_kl", "homopolymer", "length_w1"),
        ),
    )
}

MODALITIES: tuple[str, ...] = tuple(MODALITY_TABLE)
"""lobster ``Modality`` values, in the order ume_rl reports them."""

TAG_TOKENS: tuple[str, ...] = tuple(
    f"<{slash}{s.tag}>" for s in MODALITY_TABLE.values() for slash in ("", "/")
)
"""The canonical tags as the policy's whole tokens: ``<smiles>``, ``</smiles>``, ``<protein>`` ..."""

TAG_TO_MODALITY: dict[str, str] = {name: s.name for s in MODALITY_TABLE.values() for name in s.tag_names}
"""Every tag name the reward reads (lower case), canonical tags and aliases, to its modality."""


def normalize_modality(modality) -> str:
    """``"SMILES"``/``"amino_acid"``/``"nucleotide"`` from a modality name, a lobster ``Modality``, a tag name
    or alias, case-insensitive (display labels are tag names).

    >>> normalize_modality("Protein"), normalize_modality("dna"), normalize_modality("SMILES")
    ('amino_acid', 'nucleotide', 'SMILES')
    """
    value = getattr(modality, "value", modality)
    if value in MODALITY_TABLE:
        return value
    if isinstance(value, str) and value.lower() in TAG_TO_MODALITY:
        return TAG_TO_MODALITY[value.lower()]
    raise ValueError(f"Unknown modality {modality!r}; expected one of {MODALITIES} or a tag name.")


def spec(modality) -> ModalitySpec:
    """The :class:`ModalitySpec` of ``modality`` (anything :func:`normalize_modality` accepts)."""
    return MODALITY_TABLE[normalize_modality(modality)]
