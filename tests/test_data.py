"""Synthetic dataset: sizes, splits, lengths, tags, validity, determinism, persistence."""

import json
from collections import Counter

import pytest
from rdkit import Chem

from ume_rl.data import (
    generate_synthetic_dataset,
    load_or_generate_dataset,
    save_dataset,
)
from ume_rl.rewards.modalities import MODALITY_TABLE


@pytest.fixture(scope="module")
def dataset():
    return generate_synthetic_dataset(n_per_modality=100, seed=42, progress=False)


def test_split_sizes(dataset):
    assert {k: len(v) for k, v in dataset.items()} == {
        "train": 270,
        "validation": 15,
        "test": 15,
        "full": 300,
    }
    for split, per_modality in (("train", 90), ("validation", 5), ("test", 5), ("full", 100)):
        assert Counter(dataset[split]["modality"]) == {m: per_modality for m in MODALITY_TABLE}


def test_splits_are_disjoint_and_cover_full(dataset):
    key = lambda row: (row["modality"], row["sequence"])  # noqa: E731
    parts = [{key(r) for r in dataset[s]} for s in ("train", "validation", "test")]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert parts[0] | parts[1] | parts[2] == {key(r) for r in dataset["full"]}


def test_lengths_and_alphabets(dataset):
    for row in dataset["full"]:
        lo, hi = MODALITY_TABLE[row["modality"]].length_range
        assert lo <= len(row["sequence"]) == row["length"] <= hi
        if row["modality"] == "amino_acid":
            assert set(row["sequence"]) <= set(MODALITY_TABLE["amino_acid"].alphabet)
        elif row["modality"] == "nucleotide":
            assert set(row["sequence"]) <= set(MODALITY_TABLE["nucleotide"].alphabet)


def test_smiles_are_valid_molecules(dataset):
    smiles = [r["sequence"] for r in dataset["full"] if r["modality"] == "SMILES"]
    assert all(Chem.MolFromSmiles(s) is not None for s in smiles)
    assert len(set(smiles)) == len(smiles)


def test_prompt_asks_for_the_tag_of_its_reference(dataset):
    for row in dataset["full"]:
        tag = MODALITY_TABLE[row["modality"]].tag
        assert row["tag"] == tag
        assert f"<{tag}>" in row["prompt_text"]
        assert row["completion"] == f"<{tag}>{row['sequence']}</{tag}>"
        assert row["prompt"] == [{"role": "user", "content": row["prompt_text"]}]
        other_tags = {s.tag for s in MODALITY_TABLE.values()} - {tag}
        assert not any(f"<{t}>" in row["prompt_text"] for t in other_tags)
        assert "<amino_acid>" not in row["prompt_text"]


def test_same_seed_same_dataset_other_seed_differs(dataset):
    again = generate_synthetic_dataset(n_per_modality=100, seed=42, progress=False)
    assert all(again[s].to_list() == dataset[s].to_list() for s in dataset)
    other = generate_synthetic_dataset(n_per_modality=100, seed=7, progress=False)
    assert other["full"]["sequence"] != dataset["full"]["sequence"]


def test_small_and_invalid_sizes():
    small = generate_synthetic_dataset(n_per_modality=3, seed=0, progress=False)
    assert {k: len(v) for k, v in small.items()} == {"train": 3, "validation": 3, "test": 3, "full": 9}
    with pytest.raises(ValueError, match=">= 3"):
        generate_synthetic_dataset(n_per_modality=2)


def test_save_load_round_trip(tmp_path):
    ds = generate_synthetic_dataset(n_per_modality=4, seed=1, progress=False)
    out = save_dataset(ds, tmp_path / "ds")
    as_json = json.loads((tmp_path / "ds.json").read_text())
    assert as_json["full"] == ds["full"].to_list()
    loaded = load_or_generate_dataset(out)
    assert loaded["train"].to_list() == ds["train"].to_list()


def test_load_or_generate_creates_missing(tmp_path):
    ds = load_or_generate_dataset(tmp_path / "new", n_per_modality=3, seed=3, progress=False)
    assert (tmp_path / "new" / "dataset_dict.json").is_file()
    assert len(ds["full"]) == 9


@pytest.fixture(scope="module")
def real_dataset(real_corpus):
    return generate_synthetic_dataset(n_per_modality=60, seed=7, progress=False, references="real")


def test_real_references_come_from_the_train_split(real_dataset, real_corpus):
    assert {k: len(v) for k, v in real_dataset.items()} == {
        "train": 162,
        "validation": 9,
        "test": 9,
        "full": 180,
    }
    for row in real_dataset["full"]:
        modality, sequence = row["modality"], row["sequence"]
        lo, hi = MODALITY_TABLE[modality].length_range
        assert lo <= len(sequence) == row["length"] <= hi
        assert row["tag"] == MODALITY_TABLE[modality].tag
        assert row["completion"] == f"<{row['tag']}>{sequence}</{row['tag']}>"
        if modality == "SMILES":
            assert sequence in real_corpus.train["SMILES"] and sequence not in real_corpus.heldout["SMILES"]
        else:  # a fragment / sub-window of a train sequence, of none held out
            assert any(sequence in s for s in real_corpus.train[modality])
            assert not any(sequence in s for s in real_corpus.heldout[modality])


def test_real_references_are_seeded_and_distinct(real_dataset, real_corpus):
    again = generate_synthetic_dataset(n_per_modality=60, seed=7, progress=False, references="real")
    assert again["full"]["sequence"] == real_dataset["full"]["sequence"]
    other = generate_synthetic_dataset(n_per_modality=60, seed=8, progress=False, references="real")
    assert other["full"]["sequence"] != real_dataset["full"]["sequence"]
    sequences = real_dataset["full"]["sequence"]
    assert len(set(sequences)) == len(sequences)


def test_unknown_references_kind_is_an_error():
    with pytest.raises(ValueError, match="references"):
        generate_synthetic_dataset(n_per_modality=3, progress=False, references="made-up")
