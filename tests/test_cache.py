"""ScoreMemo: each distinct key scored once per call, a bounded LRU across calls, emptied when weights change."""

from __future__ import annotations

import math

import pytest
import torch

from ume_rl.rewards.engine.cache import ScoreMemo, weights_version


class Recorder:
    """A scoring function that records what it was asked to score (score = length of the key)."""

    def __init__(self):
        self.calls: list[list[str]] = []

    def __call__(self, keys):
        self.calls.append(list(keys))
        return [float(len(k)) for k in keys]


def test_duplicates_within_a_call_are_scored_once():
    memo, score = ScoreMemo(), Recorder()
    assert memo(["ab", "c", "ab", "ab", "c"], score) == [2.0, 1.0, 2.0, 2.0, 1.0]
    assert score.calls == [["ab", "c"]]
    assert memo.stats == {"keys": 5, "scored": 2, "duplicates": 3, "cache_hits": 0}
    assert len(memo) == 0  # no cache by default: the next call scores again
    memo(["ab"], score)
    assert score.calls[-1] == ["ab"]


def test_dedup_off_scores_every_key():
    memo, score = ScoreMemo(dedup=False), Recorder()
    assert memo(["ab", "ab"], score) == [2.0, 2.0]
    assert score.calls == [["ab", "ab"]] and memo.stats["duplicates"] == 0


def test_lru_is_bounded_and_keeps_the_recently_used():
    memo, score = ScoreMemo(cache_size=2), Recorder()
    memo(["a", "bb"], score)
    memo(["a"], score)  # a hit: "a" becomes the most recently used
    assert score.calls == [["a", "bb"]] and memo.stats["cache_hits"] == 1
    memo(["ccc"], score)  # evicts "bb", the least recently used
    assert len(memo) == 2
    memo(["a", "bb"], score)
    assert score.calls[-1] == ["bb"]
    assert memo.stats["cache_hits"] == 2


def test_version_change_empties_the_cache_and_nan_is_not_remembered():
    memo = ScoreMemo(cache_size=8)
    assert memo(["x", "y"], lambda keys: [1.0, math.nan], version=1)[0] == 1.0
    assert len(memo) == 1  # the NaN is returned, never remembered
    assert memo(["x"], lambda keys: [2.0], version=1) == [1.0]
    assert memo(["x"], lambda keys: [2.0], version=2) == [2.0]  # new weights: scored again


def test_bad_arguments_are_errors():
    with pytest.raises(ValueError, match="cache_size"):
        ScoreMemo(cache_size=-1)
    with pytest.raises(RuntimeError, match="1 scores for 2 keys"):
        ScoreMemo()(["a", "b"], lambda keys: [0.0])


def test_weights_version_follows_moves_and_in_place_updates():
    layer = torch.nn.Linear(3, 3)
    v0 = weights_version(layer)
    assert weights_version(layer) == v0
    with torch.no_grad():
        layer.weight.mul_(2.0)
    v1 = weights_version(layer)
    layer.load_state_dict({"weight": torch.zeros(3, 3), "bias": torch.zeros(3)})
    v2 = weights_version(layer)
    layer.double()
    assert len({v0, v1, v2, weights_version(layer)}) == 4
