"""TrainReport: the CI gate (GRPO above the warm start) and the plain summary of realism moves."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ume_rl.training.comparison import TrainReport, mitigation_variants


def _report(valid_after: float, reward_after: float) -> TrainReport:
    summaries = pd.DataFrame(
        {"valid_rate": [0.0, 0.4, valid_after], "mean_reward": [-90.0, -66.0, reward_after]},
        index=pd.MultiIndex.from_tuples([("base", "all"), ("warm start", "all"), ("GRPO", "all")]),
    )
    realism = pd.DataFrame(
        {"warm start": [0.014, 0.46], "GRPO": [0.032, 0.462], "corpus": [0.0, 0.464]},
        index=pd.MultiIndex.from_tuples([("amino_acid", "aa_kl"), ("nucleotide", "gc")]),
    )
    return TrainReport("demo", {}, summaries, realism, {"GRPO": []}, {}, {}, -91.5, Path("."))


def test_improvement_gate_needs_both_valid_rate_and_reward():
    _report(0.5, -56.0).require_improvement()
    assert _report(0.5, -56.0).improved
    for valid, reward in ((0.3, -56.0), (0.5, -70.0)):
        report = _report(valid, reward)
        assert not report.improved
        with pytest.raises(AssertionError, match="did not raise both"):
            report.require_improvement()


def test_moves_name_what_went_toward_and_away_from_the_corpus():
    report = _report(0.5, -56.0)
    assert report.moves_text() == (
        "GRPO: toward the corpus: nucleotide/gc; away or unchanged: amino_acid/aa_kl"
    )
    assert report.moves.loc[("GRPO", "amino_acid", "aa_kl"), "distance_after"] == pytest.approx(0.032)


def test_mitigation_variants_are_recipe_overrides():
    variants = mitigation_variants(0.5, 0.25)
    assert variants["GRPO + complexity + length"]["reward_weights"] == [1.0, 0.5, 0.25]
    assert all(v["multi_objective_aggregation"] == "normalize_then_sum" for v in variants.values())
    assert list(mitigation_variants(0.5, 0)) == ["GRPO + complexity"] and mitigation_variants(0, 0.5) == {}
