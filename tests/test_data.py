"""Synthetic dataset: sizes, splits, lengths, tags, validity, determinism, persistence."""

import json
import logging
import shutil
import subprocess
from collections import Counter

import pytest
from rdkit import Chem

from ume_rl.data.generate import generate_synthetic_dataset
from ume_rl.data.store import GENERATED_MARKER, load_dataset_dir, load_or_generate_dataset, save_dataset
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


# ------------------------------------------------------- saved datasets are never regenerated over (issue 12)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small dataset saved by load_or_generate_dataset (so it carries the generation marker)."""
    out = tmp_path_factory.mktemp("saved") / "ds"
    load_or_generate_dataset(out, n_per_modality=3, seed=0, progress=False)
    return out


def test_a_missing_explicit_directory_names_the_generating_command(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"does not exist.*load_or_generate_dataset\('.*typo'\)"):
        load_dataset_dir(tmp_path / "typo")
    assert not (tmp_path / "typo").exists()


def test_a_single_saved_dataset_is_refused_and_left_untouched(tree_digests, tmp_path):
    single = tmp_path / "single"
    generate_synthetic_dataset(n_per_modality=3, seed=0, progress=False)["train"].save_to_disk(str(single))
    before = tree_digests(single)
    with pytest.raises(ValueError, match=f"dataset {single} is not usable: it holds a single saved Dataset"):
        load_or_generate_dataset(single)
    assert tree_digests(single) == before  # no synthetic splits written into the user's directory


def test_a_deleted_dataset_dict_json_is_an_error_not_a_regeneration(tree_digests, saved, tmp_path):
    user = tmp_path / "mine"
    shutil.copytree(saved, user)
    (user / GENERATED_MARKER).unlink()  # the user's own data
    (user / "dataset_dict.json").unlink()
    before = tree_digests(user)
    with pytest.raises(ValueError, match="no dataset_dict.json, so it is not a saved DatasetDict"):
        load_or_generate_dataset(user, rebuild=True)
    assert tree_digests(user) == before


def test_missing_splits_and_partial_saves_are_named(saved, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(saved, partial)
    (partial / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "full"]}))
    (partial / "train" / "data-00000-of-00001.arrow").unlink()
    with pytest.raises(ValueError) as err:
        load_dataset_dir(partial)
    message = str(err.value)
    assert "split(s) validation, test missing" in message
    assert "split train: data file(s) data-00000-of-00001.arrow missing or empty" in message


def test_a_truncated_arrow_file_names_the_path_and_the_regenerate_command(saved, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(saved, broken)
    arrow = broken / "train" / "data-00000-of-00001.arrow"
    arrow.write_bytes(arrow.read_bytes()[: arrow.stat().st_size // 2])
    with pytest.raises(
        ValueError, match=rf"dataset {broken} has a corrupt data file.*load_or_generate_dataset"
    ):
        load_or_generate_dataset(broken)
    assert arrow.stat().st_size > 0  # left as it was


def test_a_broken_cache_this_package_generated_is_rebuilt_only_when_asked(saved, tmp_path, caplog):
    cache = tmp_path / "cache"
    shutil.copytree(saved, cache)
    arrow = cache / "train" / "data-00000-of-00001.arrow"
    arrow.write_bytes(b"")
    with pytest.raises(ValueError, match="missing or empty"):
        load_or_generate_dataset(cache)
    with caplog.at_level(logging.WARNING, logger="ume_rl.data.store"):
        rebuilt = load_or_generate_dataset(cache, rebuild=True, n_per_modality=3, seed=0, progress=False)
    assert "is broken" in caplog.text and len(rebuilt["full"]) == 9


def test_loader_arguments_that_disagree_with_the_saved_dataset_raise(saved, tmp_path, caplog):
    assert len(load_or_generate_dataset(saved, n_per_modality=3, seed=0)["full"]) == 9  # agrees
    with pytest.raises(ValueError, match=r"has n_per_modality=3, not n_per_modality=5"):
        load_or_generate_dataset(saved, n_per_modality=5)
    with pytest.raises(ValueError, match=r"has seed=0, not seed=1"):
        load_or_generate_dataset(saved, seed=1)
    unmarked = tmp_path / "unmarked"  # saved by someone else: the row counts still tell n_per_modality
    shutil.copytree(saved, unmarked)
    (unmarked / GENERATED_MARKER).unlink()
    with pytest.raises(ValueError, match=r"has n_per_modality=3, not n_per_modality=100"):
        load_or_generate_dataset(unmarked, n_per_modality=100)
    with caplog.at_level(logging.WARNING, logger="ume_rl.data.store"):
        load_or_generate_dataset(unmarked, seed=7)
    assert "['seed'] cannot be checked" in caplog.text


def test_bad_generation_arguments_fail_before_anything_is_written(tmp_path):
    with pytest.raises(TypeError, match="n_per_modality must be an integer"):
        load_or_generate_dataset(tmp_path / "ds", n_per_modality=3.5)
    with pytest.raises(TypeError, match="unknown dataset argument"):
        load_or_generate_dataset(tmp_path / "ds", n_per_modaliti=3)
    assert not (tmp_path / "ds").exists()


def test_save_is_atomic_and_never_overwrites_other_files(tmp_path):
    ds = generate_synthetic_dataset(n_per_modality=3, seed=1, progress=False)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "a.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a saved dataset"):
        save_dataset(ds, other)
    assert [p.name for p in other.iterdir()] == ["a.txt"]
    out = save_dataset(ds, tmp_path / "ds")
    replaced = save_dataset(generate_synthetic_dataset(n_per_modality=4, seed=1, progress=False), out)
    assert len(load_dataset_dir(replaced)["full"]) == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "ds.json", "notes"]  # no staging left behind


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


def test_a_fractional_row_count_is_a_type_error():
    with pytest.raises(TypeError, match="n_per_modality must be an integer"):
        generate_synthetic_dataset(n_per_modality=3.5, progress=False)


# ------------------------------------------------------------------ dataset fingerprints (issue 20, item 2)


def test_a_saved_dataset_records_its_fingerprint_even_when_saved_as_notebook_02_does(tmp_path, caplog):
    from ume_rl.data.store import dataset_fingerprint, recorded_fingerprint

    first = generate_synthetic_dataset(n_per_modality=3, seed=0, progress=False)
    again = generate_synthetic_dataset(n_per_modality=3, seed=0, progress=False)
    other = generate_synthetic_dataset(n_per_modality=3, seed=1, progress=False)
    assert dataset_fingerprint(first) == dataset_fingerprint(again) != dataset_fingerprint(other)
    out = tmp_path / "ds"
    save_dataset(first, out)  # no generation arguments, as notebook 02 calls it
    assert (
        recorded_fingerprint(out) == dataset_fingerprint(first) == dataset_fingerprint(load_dataset_dir(out))
    )
    with caplog.at_level(logging.WARNING, logger="ume_rl.data.store"):
        save_dataset(other, out)  # re-running notebook 02 with seed = 1
    assert f"with different rows ({dataset_fingerprint(other)})" in caplog.text
    assert "runs trained on the old rows refuse to resume on these" in caplog.text
    assert recorded_fingerprint(out) == dataset_fingerprint(other)  # the marker is kept, with the new rows'


def test_a_prepared_dataset_is_used_without_writing_into_it(tree_digests, saved, tmp_path):
    prepared = shutil.copytree(saved, tmp_path / "prepared")
    before = tree_digests(prepared)
    for path in [prepared, *prepared.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        dataset = load_dataset_dir(prepared)
        mapped = dataset["train"].map(lambda row: {"n": len(row["completion"])})
        assert len(mapped) == len(dataset["train"])
    finally:
        for path in [prepared, *prepared.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert tree_digests(prepared) == before  # no cache-*.arrow written into it


def test_a_half_written_datasets_suggested_fix_works(saved, tmp_path):
    half = shutil.copytree(saved, tmp_path / "half")
    (half / "test" / "data-00000-of-00001.arrow").unlink()  # killed while writing
    with pytest.raises(ValueError) as err:
        load_dataset_dir(half)
    fix = str(err.value).split("Fix: delete it and generate it again: ")[1]
    result = subprocess.run(fix, shell=True, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(load_dataset_dir(half)["test"]) > 0
