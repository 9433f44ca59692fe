"""evaluate_policy: the held-out table, and what the warm start does to the untrained tiny policy."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from datasets import concatenate_datasets

from ume_rl.data.generate import generate_synthetic_dataset
from ume_rl.rewards.masked_lm import MaskedLMReward
from ume_rl.rewards.modalities import MODALITIES
from ume_rl.training.evaluation import (
    GENERATION_FIELDS,
    SUMMARY_COLUMNS,
    evaluate_policy,
    generate_completions,
    read_generations,
    summarize_completions,
    write_generations,
)

pytestmark = pytest.mark.usefixtures("single_thread")

GENERATIONS = 4


@pytest.fixture(scope="module")
def held_out():
    dataset = generate_synthetic_dataset(progress=False)
    return concatenate_datasets([dataset["validation"], dataset["test"]])  # 30 prompts, 10 per modality


@pytest.fixture(scope="module")
def reward(tiny_ume):
    return MaskedLMReward(tiny_ume)


def test_summary_of_known_completions():
    rows = pd.DataFrame(
        {
            "modality": ["nucleotide"] * 4 + ["SMILES"] * 2,
            "completion": [
                "<dna>ACGT</dna>",
                "<dna>ACGT</dna>",
                "<dna>ACGU</dna>",
                "none",
                "<smiles>CCO</smiles>",
                "x",
            ],
            "reason": [None, None, "bad_alphabet", "no_tag", None, "wrong_modality"],
            "sequence": ["ACGT", "ACGT", None, None, "CCO", None],
            "reward": [-70.0, -70.0, -90.0, -90.0, -60.0, -90.0],
        }
    )
    rows["valid"] = rows["reason"].isna()
    table = summarize_completions(rows)
    assert list(table.index) == ["SMILES", "nucleotide", "all"]
    assert list(table.columns) == list(SUMMARY_COLUMNS)
    dna = table.loc["nucleotide"]
    assert (dna.n, dna.tag_rate, dna.valid_rate, dna.mean_reward) == (4, 0.75, 0.5, -80.0)
    assert (dna.mean_length, dna.unique_fraction) == (4.0, 0.75)
    assert table.loc["SMILES", "tag_rate"] == 0.5  # a tag of the wrong modality does not count
    assert table.loc["all", "n"] == 6 and table.loc["all", "valid_rate"] == pytest.approx(0.5)


def test_untrained_policy_never_emits_a_valid_tag(tiny_qwen_path, held_out, reward):
    table = evaluate_policy(tiny_qwen_path, held_out, reward, num_generations=GENERATIONS, max_new_tokens=32)
    assert list(table.index) == [*MODALITIES, "all"]
    assert table.loc["all", "n"] == len(held_out) * GENERATIONS
    assert table.loc["all", "valid_rate"] == 0.0
    assert table.loc["all", "mean_reward"] == pytest.approx(reward.penalty)
    assert math.isnan(table.loc["all", "mean_length"])


def test_warm_start_makes_the_tiny_policy_emit_tags(warm_policy_path, tiny_qwen_path, held_out, reward):
    completions = generate_completions(
        warm_policy_path, held_out, reward, num_generations=GENERATIONS, max_new_tokens=100
    )
    table = summarize_completions(completions)
    assert table.loc["all", "tag_rate"] > 0.7  # a closed tag of the requested modality on most completions
    # content too (SMILES syntax is the hard part for 100k parameters)
    assert table.loc["all", "valid_rate"] > 0.25
    valid_per_prompt = completions.groupby("prompt_index")["valid"].any()
    assert valid_per_prompt.mean() > 0.5, "most held-out prompts should get at least one valid completion"
    valid = completions[completions["valid"]]
    assert (valid["reward"] > reward.penalty).all()
    assert table.loc["all", "mean_reward"] > reward.penalty


def test_evaluation_is_seeded(warm_policy_path, held_out, reward):
    subset = held_out.select(range(6))
    settings = dict(num_generations=2, max_new_tokens=40)
    first = generate_completions(warm_policy_path, subset, reward, seed=3, **settings)
    again = generate_completions(warm_policy_path, subset, reward, seed=3, **settings)
    other = generate_completions(warm_policy_path, subset, reward, seed=4, **settings)
    assert first["completion"].tolist() == again["completion"].tolist()
    assert first["completion"].tolist() != other["completion"].tolist()


def test_generations_jsonl_keeps_every_completion_with_null_for_invalid(
    tmp_path, warm_policy_path, held_out, reward
):
    samples = {
        stage: generate_completions(warm_policy_path, held_out, reward, num_generations=1, seed=seed)
        for seed, stage in enumerate(("base", "warm_start", "trained"))
    }
    path = write_generations(tmp_path / "run" / "generations.jsonl", samples)
    lines = path.read_text().splitlines()
    assert len(lines) == 3 * len(held_out) and not (tmp_path / "run" / "generations.jsonl.partial").exists()
    rows = read_generations(path)
    assert list(rows.columns) == list(GENERATION_FIELDS)
    assert rows["stage"].value_counts().to_dict() == {s: len(held_out) for s in samples}
    assert rows.groupby("stage")["modality"].value_counts().min() == 10  # every modality in every stage
    assert rows.loc[~rows["valid"], "sequence"].isna().all()
    assert rows.loc[rows["valid"], "sequence"].notna().all()
    trained = samples["trained"]
    assert rows[rows["stage"] == "trained"]["completion"].tolist() == trained["completion"].tolist()


def test_read_generations_names_a_bad_line(tmp_path):
    path = tmp_path / "generations.jsonl"
    path.write_text('{"stage": "base"}\n')
    with pytest.raises(ValueError, match="generations.jsonl:1 lacks"):
        read_generations(path)
    path.write_text("not json\n")
    with pytest.raises(ValueError, match="generations.jsonl:1 is not JSON"):
        read_generations(path)


def test_evaluation_samples_as_the_grpo_rollouts_do(warm_policy_path, held_out, reward):
    """A recipe's temperature / top_p / top_k reach the evaluation; near-greedy sampling repeats itself."""
    from ume_rl.training.recipes import load_recipe

    script, grpo = load_recipe("tiny", temperature=0.05, top_k=1, top_p=0.9)
    kwargs = script.evaluation_kwargs(grpo)
    assert (kwargs["temperature"], kwargs["top_p"], kwargs["top_k"]) == (0.05, 0.9, 1)
    rows = held_out.select(range(3))
    greedy = generate_completions(warm_policy_path, rows, reward, **{**kwargs, "num_generations": 4})
    assert greedy.groupby("prompt_index")["completion"].nunique().max() == 1  # top_k=1: one answer per prompt
    sampled = generate_completions(warm_policy_path, rows, reward, num_generations=4, max_new_tokens=32)
    assert sampled.groupby("prompt_index")["completion"].nunique().max() > 1
