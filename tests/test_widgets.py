"""The live scoring panel of notebook 03."""

import math

import pytest

from ume_rl.inspection.widgets import scoring_panel


def test_scoring_panel_scores_on_construction_and_on_change(tiny_ume):
    from ume_rl.rewards.ume import UmeReward

    panel = scoring_panel(tiny_ume, sequence="MKTAYIAKQR", modality="amino_acid")
    expected = UmeReward(tiny_ume, mode="unmasked").details(["<protein>MKTAYIAKQR</protein>"])[0]
    controls = {w.description: w for w in panel.children if hasattr(w, "description")}
    assert {"sequence", "modality", "mode", "temperature"} <= set(controls)
    assert panel.result["reason"] is None and math.isfinite(panel.result["reward"])
    controls["mode"].value = "unmasked"
    assert panel.result["score"] == pytest.approx(expected["score"], abs=1e-6)
    controls["temperature"].value = 1.0
    assert panel.result["reward"] == pytest.approx(expected["score"], abs=1e-6)
    controls["modality"].value = "nucleotide"  # MKTAY... is not DNA
    assert panel.result["reason"] == "bad_alphabet"
    assert panel.result["reward"] == panel.result["penalty"]
