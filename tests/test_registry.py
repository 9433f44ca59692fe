"""Rewards by name: the registry, and a recipe that turns on the complexity reward with one line."""

from __future__ import annotations

import pytest

from ume_rl.rewards.complexity import ComplexityReward
from ume_rl.rewards.length import LengthReward
from ume_rl.rewards.masked_lm import MaskedLMReward
from ume_rl.rewards.registry import REWARDS, build_reward_funcs


def test_builds_named_rewards_in_order_with_their_settings(tiny_ume):
    ume, complexity = build_reward_funcs(
        ["ume", "complexity"],
        tiny_ume,
        {"ume": {"temperature": 0.5, "mode": "unmasked"}, "complexity": {"measure": "kmer"}},
    )
    assert isinstance(ume, MaskedLMReward) and (ume.temperature, ume.mode) == (0.5, "unmasked")
    assert isinstance(complexity, ComplexityReward) and complexity.measure == "kmer"
    assert [f.__name__ for f in build_reward_funcs(["complexity", "ume"], tiny_ume)] == [
        "complexity_reward",
        "ume_reward",
    ]


def test_rewards_of_a_run_agree_with_ume_on_what_is_invalid(tiny_ume):
    # Text-valid completions the tiny UME cannot score: RDKit parses [Og] but UME maps it to <unk>; 511 DNA
    # residues plus CLS and EOS exceed its max_length (512 tokens) yet fit the text rules' character bound.
    completions = ["<smiles>[Og]</smiles>", "<dna>" + "A" * 511 + "</dna>", "<dna>" + "ACGT" * 20 + "</dna>"]
    ume, complexity, length = build_reward_funcs(["ume", "complexity", "length"], tiny_ume)
    reasons = [row["reason"] for row in ume.details(completions)]
    assert reasons == ["unknown_token", "too_long", None]
    assert [t.reason for t in ume.read(completions)] == reasons
    for reward in (complexity, length):
        scores = reward(completions)
        assert scores[:2] == [None, None] and scores[2] is not None
        # read on its own (not after MaskedLMReward scored the batch) decides the same
        assert type(reward)(reader=MaskedLMReward(tiny_ume))(completions)[:2] == [None, None]
        assert type(reward)(penalty=-1.0, reader=ume)(completions)[:2] == [-1.0, -1.0]
    # Alone, without a UME, the text rules cannot see either problem: this is what the reader adds.
    assert ComplexityReward()(completions)[:2] != [None, None]
    assert LengthReward()(completions)[:2] != [None, None]


def test_reader_must_read():
    with pytest.raises(TypeError, match="reader must be None or a reward with a read"):
        ComplexityReward(reader=object())
    with pytest.raises(TypeError, match="reader must be None or a reward with a read"):
        LengthReward(reader="ume")


@pytest.mark.parametrize(
    "names,match",
    [(["umee"], "unknown reward 'umee'"), (["ume", "ume"], "repeat"), (["ume"], "needs a reward model")],
)
def test_bad_names_fail_clearly(names, match):
    with pytest.raises(ValueError, match=match):
        build_reward_funcs(names)


def test_a_string_is_not_a_list_of_names():
    with pytest.raises(TypeError, match="list of reward names"):
        build_reward_funcs("ume")


def test_every_entry_has_help():
    assert all(entry.help for entry in REWARDS.values())


def test_recipe_with_complexity_reward_trains_in_the_tiny_profile(tmp_path, single_thread):
    from ume_rl.training.recipes import load_recipe
    from ume_rl.training.run import TrainRun

    script, grpo = load_recipe(
        "tiny",
        output_dir=tmp_path / "run",
        reward_funcs=["ume", "complexity"],
        reward_weights=[1.0, 0.5],
        warm_start_epochs=0,
        max_steps=1,
        max_completion_length=16,
        per_device_train_batch_size=8,
        logging_steps=1,
        save_strategy="no",
    )
    run = TrainRun.prepare(script, grpo)
    rewards = run.build_rewards(run.load_ume())
    assert [type(f) for f in rewards] == [MaskedLMReward, ComplexityReward]
    trainer = run.train(run.warm_start(), rewards)
    assert trainer.args.reward_weights == [1.0, 0.5]
    logged = {key for row in trainer.state.log_history for key in row}
    assert {"rewards/ume_reward/mean", "rewards/complexity_reward/mean"} <= logged
    assert rewards[0].get_statistics()["completions"] == 8
