import pytest

import ume_rl.data.moses as moses
from ume_rl.data.generate import extra_references, reference_rows
from ume_rl.models.policy import build_tiny_qwen
from ume_rl.rewards.modalities import MODALITY_TABLE
from ume_rl.training.recipes import load_recipe
from ume_rl.training.validation import ConfigError


def test_extra_references_are_distinct_in_range_and_never_excluded(real_corpus):
    first = extra_references("amino_acid", 20, seed=0, corpus=real_corpus)
    lo, hi = MODALITY_TABLE["amino_acid"].length_range
    assert len(set(first)) == 20 and all(lo <= len(s) <= hi for s in first)
    again = extra_references("amino_acid", 20, seed=0, corpus=real_corpus, exclude=first[:5])
    assert not set(first[:5]) & set(again) and len(set(again)) == 20
    smiles = extra_references("SMILES", 10, seed=0, corpus=real_corpus, smiles_source="corpus")
    assert set(smiles) <= set(real_corpus.sequences("SMILES", "train"))


def test_moses_smiles_are_filtered_by_length_and_exclusion(monkeypatch):
    pool = ("CCO", "c1ccccc1CCO", "CC(=O)Nc1ccc(O)cc1", "CCN(CC)CCOC(=O)c1ccccc1", "C" * 60)
    monkeypatch.setattr(moses, "moses_smiles", lambda split="train": pool)
    got = extra_references("SMILES", 2, seed=0, exclude=["c1ccccc1CCO"])
    assert sorted(got) == sorted(
        ["CC(=O)Nc1ccc(O)cc1", "CCN(CC)CCOC(=O)c1ccccc1"]
    )  # 3 and 60 chars are out of range
    with pytest.raises(ValueError, match="MOSES train has only 2 SMILES"):
        extra_references("SMILES", 3, seed=0, exclude=["c1ccccc1CCO"])
    with pytest.raises(ValueError, match="smiles_source must be one of"):
        extra_references("SMILES", 1, seed=0, smiles_source="chembl")


def test_reference_rows_cover_every_modality(real_corpus, monkeypatch):
    monkeypatch.setattr(
        moses, "moses_smiles", lambda split="train": tuple(real_corpus.sequences("SMILES", "train"))
    )
    rows = reference_rows(4, seed=0, corpus=real_corpus)
    assert sorted(rows["modality"]) == sorted([m for m in MODALITY_TABLE for _ in range(4)])
    assert all(
        c.endswith(f"</{MODALITY_TABLE[m].tag}>")
        for c, m in zip(rows["completion"], rows["modality"], strict=True)
    )


def test_warm_start_references_is_a_checked_recipe_field(tmp_path):
    script, _ = load_recipe("tiny", warm_start_references=50, output_dir=str(tmp_path / "run"))
    assert script.warm_start_references == 50
    with pytest.raises(ConfigError, match="warm_start_references"):
        load_recipe("tiny", warm_start_references=-1, output_dir=str(tmp_path / "run"))


def test_tiny_qwen_size_is_configurable(tmp_path):
    from transformers import AutoConfig

    path = build_tiny_qwen(
        tmp_path / "q", seed=0, corpus=["ACGT CCO MKV"] * 10, hidden_size=32, num_hidden_layers=3
    )
    config = AutoConfig.from_pretrained(path)
    assert (config.hidden_size, config.num_hidden_layers, config.intermediate_size) == (32, 3, 64)
    with pytest.raises(ValueError, match="hidden_size must be a positive multiple of 16"):
        build_tiny_qwen(tmp_path / "bad", seed=0, corpus=["ACGT"], hidden_size=40)
