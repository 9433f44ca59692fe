"""The live scoring panel of notebook 03: its controls rescore, and its own result area shows the result.

These drive the widgets' event path without a browser (setting a control's ``value`` is what the browser's
comm message does); tests/browser/ checks the same panel rendered in JupyterLab.
"""

import math
import re

import ipywidgets as widgets
import pytest

from ume_rl.inspection.widgets import render_result, scoring_panel
from ume_rl.rewards.masked_lm import MaskedLMReward


def shown(panel) -> dict[str, str]:
    """The panel's result area as {row name: text}, read back from its HTML."""
    return rows(panel.output.value)


def rows(table: str) -> dict[str, str]:
    rows = re.findall(r"<tr><th[^>]*>(.*?)</th><td>(.*?)</td></tr>", table)
    return {name: re.sub(r"<[^>]+>", "", value) for name, value in rows}


def assert_shows_result(panel):
    """What the result area shows is ``panel.result``, to the 4 decimals it prints."""
    on_screen, result = shown(panel), panel.result
    for key in ("score", "reward", "complexity", "penalty"):
        value = result[key]
        assert on_screen[key].split(" ")[0] == ("—" if value is None else f"{value:.4f}"), key
    assert on_screen["reason"] == (result["reason"] or "valid")


@pytest.fixture
def panel(tiny_ume, single_thread):
    return scoring_panel(tiny_ume, sequence="MKTAYIAKQR", modality="amino_acid")


def test_result_area_is_part_of_the_panel(panel):
    assert panel.output in panel.children  # display(panel) shows it: nothing to display separately
    assert isinstance(panel.output, widgets.HTML)
    assert set(panel.controls) == {"sequence", "modality", "mode", "temperature"}
    assert all(control in panel.children for control in panel.controls.values())
    assert panel.result["reason"] is None and math.isfinite(panel.result["score"])
    assert_shows_result(panel)


def test_every_control_change_rescores_and_redraws(panel, tiny_ume):
    controls = panel.controls
    steps = [
        ("sequence", "MKTAYIAKQRQISFVKSHFSRQ"),
        ("mode", "unmasked"),
        ("temperature", 1.0),
        ("modality", "nucleotide"),  # MKTAY... is not DNA
        ("sequence", "ACGTTGCAACGG"),
    ]
    for name, value in steps:
        before = panel.output.value
        controls[name].value = value
        assert panel.output.value != before, name
        assert_shows_result(panel)
    # The last result is MaskedLMReward's own answer for the controls' state, not a stale one.
    expected = MaskedLMReward(tiny_ume, temperature=1.0, mode="unmasked").details(
        ["<dna>ACGTTGCAACGG</dna>"]
    )[0]
    assert panel.result["score"] == pytest.approx(expected["score"], abs=1e-6)
    assert panel.result["reward"] == pytest.approx(expected["reward"], abs=1e-6)
    assert shown(panel)["modality"] == "DNA" and shown(panel)["length"] == "12"


def test_mode_and_temperature_change_the_numbers(panel):
    masked = panel.result["score"]
    panel.controls["mode"].value = "unmasked"
    assert panel.result["score"] != masked
    unmasked = panel.result["reward"]
    panel.controls["temperature"].value = 1.0
    assert panel.result["reward"] == pytest.approx(unmasked / 10, rel=1e-6)  # reward = score / temperature


@pytest.mark.parametrize(
    ("modality", "sequence", "reason"),
    [
        ("nucleotide", "ACGU", "bad_alphabet"),
        ("SMILES", "C1CC", "unparsable_smiles"),
        ("amino_acid", "  ", "empty"),
    ],
)
def test_invalid_input_shows_its_reason(panel, modality, sequence, reason):
    panel.controls["modality"].value = modality
    panel.controls["sequence"].value = sequence  # no exception: invalid input is a result
    assert panel.result["reason"] == reason
    assert panel.result["score"] is None and panel.result["reward"] == panel.result["penalty"]
    assert shown(panel)["reason"] == reason and shown(panel)["score"] == "—"
    assert_shows_result(panel)


def test_render_result_escapes_and_shows_errors():
    error = {"modality": "SMILES", "sequence": None, "reason": None, "score": None, "reward": None,
             "error": "RuntimeError: UME score nan for '<b>'"}  # fmt: skip
    rendered = render_result(error)
    assert "RuntimeError" in rendered and "<b>" not in rendered and "&lt;b&gt;" in rendered
    assert set(rows(rendered)) == {"modality", "error"}  # no score row at all, not a made-up one
