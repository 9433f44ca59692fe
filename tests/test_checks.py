"""One home for parameter checks: the rewards and the run's configuration check say the same thing."""

from __future__ import annotations

import math

import pytest

from ume_rl.rewards.checks import check_penalty_and_max_chars, check_real, number_problem
from ume_rl.rewards.complexity import ComplexityReward
from ume_rl.rewards.length import LengthReward
from ume_rl.training.recipes import load_recipe
from ume_rl.training.validation import ConfigError


@pytest.mark.parametrize(
    "value,rules,problem",
    [
        (0.1, {"above": 0}, None),
        (0.0, {"above": 0}, "must be a finite number > 0"),
        (math.nan, {}, "must be a finite number"),
        (math.inf, {"minimum": 0}, "must be a finite number"),
        (True, {}, "must be a finite number"),
        ("3", {}, "must be a finite number"),
        (3.0, {"integer": True}, "must be an integer"),
        (0, {"integer": True, "minimum": 1}, "must be an integer >= 1"),
        (None, {"optional": True}, None),
        (None, {}, "must be a finite number"),
        (-1, {"integer": True, "minimum": 1, "allowed": (-1,)}, None),
    ],
)
def test_number_problem(value, rules, problem):
    assert number_problem(value, **rules) == problem


def test_check_real_and_the_auxiliary_rewards_parameters():
    check_real("margin", 1)
    check_real("penalty", None, optional=True)
    with pytest.raises(TypeError, match="margin must be a real number, got str '1'"):
        check_real("margin", "1")
    with pytest.raises(TypeError, match="penalty must be a real number or None, got bool"):
        check_penalty_and_max_chars(True, None)
    with pytest.raises(ValueError, match="penalty must be finite, got -inf"):
        check_penalty_and_max_chars(-math.inf, None)
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="max_chars must be a positive integer or None"):
            check_penalty_and_max_chars(-1.0, bad)
    check_penalty_and_max_chars(None, None)


@pytest.mark.parametrize("reward", [ComplexityReward, LengthReward])
def test_rewards_use_the_shared_checks(reward):
    with pytest.raises(ValueError, match="penalty must be finite, got nan"):
        reward(penalty=math.nan)
    with pytest.raises(ValueError, match="max_chars must be a positive integer"):
        reward(max_chars=0)


def test_validation_wraps_the_same_problem_with_its_source(tmp_path):
    problem = number_problem(0, integer=True, minimum=1)
    with pytest.raises(ConfigError) as err:
        load_recipe("tiny", warm_start_batch_size=0, output_dir=tmp_path / "out")
    assert str(err.value).startswith(f"warm_start_batch_size=0 (argument warm_start_batch_size=): {problem}")
