import pytest

from ume_rl.rewards.length import LengthReward, length_score
from ume_rl.rewards.modalities import MODALITY_TABLE
from ume_rl.rewards.registry import build_reward_funcs


def test_length_score_is_one_inside_and_falls_off_outside():
    assert length_score(50, 50, 200) == length_score(200, 50, 200) == 1.0
    assert length_score(25, 50, 200) == 0.5
    assert length_score(400, 50, 200) == 0.5
    assert length_score(0, 50, 200) == 0.0


def test_reward_reads_tags_and_uses_each_modality_range():
    reward = LengthReward()
    low, high = MODALITY_TABLE["amino_acid"].length_range
    out = reward(
        [
            f"<protein>{'M' * low}</protein>",
            f"<protein>{'M' * (low // 2)}</protein>",
            f"<dna>{'A' * (MODALITY_TABLE['nucleotide'].length_range[0] // 2)}</dna>",
            "<protein>MK1</protein>",  # bad alphabet: invalid, left to MaskedLMReward
            "no tag at all",
        ]
    )
    assert out[0] == 1.0
    assert out[1] == pytest.approx((low // 2) / low)
    assert out[2] == pytest.approx(0.5, abs=0.02)
    assert out[3] is None and out[4] is None
    assert LengthReward(penalty=-1.0)(["no tag"]) == [-1.0]


def test_a_modality_column_makes_other_tags_invalid():
    reward = LengthReward()
    assert reward(["<dna>" + "ACGT" * 20 + "</dna>"], modality=["amino_acid"]) == [None]


def test_ranges_are_checked_and_override_the_table():
    assert LengthReward(ranges={"protein": (5, 10)})(["<protein>MKVLA</protein>"]) == [1.0]
    with pytest.raises(ValueError, match="low <= high"):
        LengthReward(ranges={"amino_acid": (10, 5)})
    with pytest.raises(TypeError, match="two integers"):
        LengthReward(ranges={"amino_acid": (1.5, 5)})
    with pytest.raises(ValueError, match="unknown|modality"):
        LengthReward(ranges={"rna": (1, 5)})


def test_penalty_and_max_chars_are_checked_like_the_complexity_rewards():
    with pytest.raises(ValueError, match="penalty must be finite"):
        LengthReward(penalty=float("nan"))
    with pytest.raises(TypeError, match="penalty must be a real number"):
        LengthReward(penalty="low")
    with pytest.raises(ValueError, match="max_chars must be a positive integer"):
        LengthReward(max_chars=0)


def test_registry_builds_it_by_name():
    (reward,) = build_reward_funcs(["length"])
    assert isinstance(reward, LengthReward) and reward.__name__ == "length_reward"
