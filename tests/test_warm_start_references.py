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


def test_corpus_texts_are_tagged_sized_shuffled_and_never_excluded(real_corpus, monkeypatch):
    from ume_rl.data.generate import corpus_texts
    from ume_rl.rewards.modalities import normalize_modality
    from ume_rl.rewards.tags import iter_tagged, wrap

    pool = tuple(real_corpus.sequences("SMILES", "train"))
    monkeypatch.setattr(moses, "moses_smiles", lambda split="train": pool)
    held_out = extra_references("nucleotide", 3, seed=0, corpus=real_corpus)
    sizes = {"SMILES": 6, "amino_acid": 2, "nucleotide": 4}
    texts = corpus_texts(sizes, seed=0, exclude=held_out, corpus=real_corpus)
    assert texts == corpus_texts(sizes, seed=0, exclude=held_out, corpus=real_corpus)  # seeded
    pairs = [(normalize_modality(name), body) for name, body in (next(iter_tagged(t)) for t in texts)]
    assert {m: sum(mod == m for mod, _ in pairs) for m in sizes} == sizes
    assert texts == [wrap(body, mod) for mod, body in pairs]  # one whole tagged sequence per text
    assert not {body for _, body in pairs} & set(held_out)
    assert [mod for mod, _ in pairs] != sorted(mod for mod, _ in pairs)  # mixed, not in blocks
    assert corpus_texts({"SMILES": 0, "amino_acid": 1}, seed=0, corpus=real_corpus)[0].startswith("<protein>")


def test_warm_start_corpus_fields_are_checked_recipe_lines(tmp_path):
    out = str(tmp_path / "run")
    script, _ = load_recipe(
        "tiny", warm_start_corpus_steps=10, warm_start_corpus_sizes='{"smiles": 5, "dna": 0}', output_dir=out
    )
    assert script.corpus_sizes() == {"SMILES": 5, "amino_acid": 1500, "nucleotide": 0}
    assert script.warm_start_kwargs(_)["corpus_steps"] == 10
    for bad, match in [
        ({"warm_start_corpus_steps": -1}, "warm_start_corpus_steps"),
        ({"warm_start_corpus_learning_rate": 0.0}, "warm_start_corpus_learning_rate"),
        ({"warm_start_corpus_sizes": '{"rna": 5}'}, "warm_start_corpus_sizes.*Unknown modality"),
        ({"warm_start_corpus_sizes": '{"SMILES": -5}'}, "warm_start_corpus_sizes.*not a count"),
        ({"warm_start_corpus_sizes": "[5]"}, "warm_start_corpus_sizes must be a mapping"),
        (
            {
                "warm_start_corpus_steps": 5,
                "warm_start_corpus_sizes": '{"smiles": 0, "protein": 0, "dna": 0}',
            },
            "leaves the corpus stage no sequences",
        ),
    ]:
        with pytest.raises((ConfigError, ValueError), match=match):
            load_recipe("tiny", output_dir=out, **bad)


def test_a_runs_warm_start_draws_corpus_texts_and_references_without_held_out_answers(
    real_corpus, monkeypatch, tmp_path
):
    import ume_rl.training.sft as sft
    from ume_rl.data.generate import generate_synthetic_dataset
    from ume_rl.training.run import warm_start_policy

    monkeypatch.setattr(
        moses, "moses_smiles", lambda split="train": tuple(real_corpus.sequences("SMILES", "train"))
    )
    dataset = generate_synthetic_dataset(n_per_modality=20, seed=0, progress=False, references="real")
    held_out = {*dataset["validation"]["sequence"], *dataset["test"]["sequence"]}
    script, grpo = load_recipe(
        "tiny",
        output_dir=str(tmp_path / "run"),
        warm_start_corpus_steps=7,
        warm_start_corpus_sizes='{"SMILES": 30, "protein": 20, "dna": 20}',
        warm_start_references=5,
    )
    seen = {}
    monkeypatch.setattr(
        sft, "warm_start", lambda policy, rows, out, **kw: seen.update(rows=rows, **kw) or out
    )
    assert warm_start_policy(script, grpo, dataset, "base", tmp_path / "w") == tmp_path / "w"
    assert seen["corpus_steps"] == 7 and len(seen["corpus"]) == 70
    bodies = {text.split(">", 1)[1].rsplit("<", 1)[0] for text in seen["corpus"]}
    assert not bodies & held_out and not set(seen["rows"]["sequence"]) & held_out
    assert len(seen["rows"]) == len(dataset["train"]) + 3 * 5
