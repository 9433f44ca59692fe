"""Reward-inspection figures (notebook 03): axes, labels, legends, penalty lines; the live scoring panel."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from ume_rl.inspection import plots
from ume_rl.inspection.probes import PROBE_KINDS, VARIANT_KINDS
from ume_rl.rewards.modalities import MODALITIES

PENALTY = -91.5


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """Rows shaped like ume_rl.inspection.probes rows joined with MaskedLMReward.details (invalid rows at the penalty)."""
    rng = np.random.default_rng(0)
    rows = []
    for modality in MODALITIES:
        for kind in (*VARIANT_KINDS, *PROBE_KINDS):
            for _ in range(5):
                invalid = kind in ("wrong_alphabet", "untagged")
                score = None if invalid else float(rng.normal(-7.3, 0.3))
                rows.append(
                    {
                        "modality": modality,
                        "kind": kind,
                        "length": int(rng.integers(10, 200)),
                        "reason": "bad_alphabet" if invalid else None,
                        "score": score,
                        "reward": PENALTY if invalid else score / 0.1,
                        "complexity": float(rng.uniform()),
                    }
                )
    return pd.DataFrame(rows)


def _check_axes(fig: Figure, n_axes: int) -> None:
    assert isinstance(fig, Figure)
    assert len(fig.axes) == n_axes
    for ax in fig.axes:
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
        legend = ax.get_legend()
        assert legend is not None and [t.get_text() for t in legend.get_texts()]


def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_reward_distribution_has_one_panel_per_modality_and_the_penalty_line(frame):
    fig = plots.plot_reward_distribution(frame, penalty=PENALTY)
    _check_axes(fig, 3)
    assert [ax.get_title() for ax in fig.axes] == ["SMILES", "protein", "DNA"]
    for ax in fig.axes:
        assert any(np.allclose(line.get_xdata(), PENALTY) for line in ax.lines)
        assert f"invalid penalty {PENALTY:.3g} (n=10)" in _legend(ax)
        assert sum(p.get_height() for p in ax.patches) == 35  # valid rows only


def test_panels_follow_the_modalities_present(frame):
    fig = plots.plot_reward_distribution(frame[frame["modality"] == "nucleotide"])
    _check_axes(fig, 1)
    with pytest.raises(ValueError, match="no rows"):
        plots.plot_reward_distribution(frame.iloc[:0])


def test_reward_vs_length_plots_valid_rows_per_kind(frame):
    fig = plots.plot_reward_vs_length(frame)
    _check_axes(fig, 3)
    for ax in fig.axes:
        assert "Spearman" in ax.get_title()
        assert ax.get_xlabel() == "sequence length (characters)"
        labels = _legend(ax)
        assert "reference (n=5)" in labels and not any(label.startswith("untagged") for label in labels)


def test_temperature_effect_scales_rewards_and_draws_penalties(frame):
    valid = frame[frame["reason"].isna()]
    temps = [0.05, 0.1, 1.0]
    fig = plots.plot_temperature_effect(valid, temps, {"default": [-180.0, -91.5, -9.15], "upstream": -5.0})
    _check_axes(fig, 1)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    medians = {line.get_label(): line.get_ydata() for line in ax.lines}
    smiles = valid.loc[valid["modality"] == "SMILES", "score"].median()
    assert np.allclose(medians["SMILES median"], [smiles / t for t in temps])
    assert np.allclose(medians["upstream"], -5.0)
    assert {"default", "upstream", "protein median", "DNA median"} <= set(_legend(ax))


def test_variants_figure_orders_kinds_and_marks_invalid(frame):
    fig = plots.plot_variants(frame, penalty=PENALTY)
    _check_axes(fig, 3)
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_xticklabels()] == list(VARIANT_KINDS)
        assert {"valid", "invalid", "median of valid", f"invalid penalty {PENALTY:.3g}"} == set(_legend(ax))


def test_hacking_probes_figure_compares_probes_with_references(frame):
    fig = plots.plot_hacking_probes(frame, value="complexity")
    _check_axes(fig, 3)
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_xticklabels()] == ["reference", *PROBE_KINDS]
        assert ax.get_ylabel() == "complexity (0-1)"
        assert "invalid" not in _legend(ax)  # no invalid rows among references and probes


def test_mode_agreement_reports_spearman_per_modality():
    rng = np.random.default_rng(1)
    masked = rng.normal(size=30)
    frame = pd.DataFrame(
        {
            "modality": ["SMILES"] * 10 + ["amino_acid"] * 10 + ["nucleotide"] * 10,
            "masked": masked,
            "unmasked": np.r_[masked[:10] * 2 + 1, -masked[10:20], rng.normal(size=10)],
        }
    )
    fig = plots.plot_mode_agreement(frame)
    _check_axes(fig, 3)
    assert fig.axes[0].get_title() == "SMILES: Spearman ρ = 1.00"
    assert fig.axes[1].get_title() == "protein: Spearman ρ = -1.00"
    rho = plots.spearman_by_modality(frame)
    assert rho["SMILES"] == pytest.approx(1.0) and rho["amino_acid"] == pytest.approx(-1.0)


def test_spearman_rho_matches_the_rank_formula():
    x, y = [1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 1.0, 4.0, 3.0, 5.0]
    d2 = sum((a - b) ** 2 for a, b in zip([1, 2, 3, 4, 5], [2, 1, 4, 3, 5], strict=True))
    assert plots.spearman_rho(x, y) == pytest.approx(1 - 6 * d2 / (5 * (25 - 1)))
    assert math.isnan(plots.spearman_rho([1, 2], [1, 2]))
    assert math.isnan(plots.spearman_rho([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="differ in length"):
        plots.spearman_rho([1, 2, 3], [1, 2])


def test_save_figure_writes_a_png(frame, tmp_path):
    path = plots.save_figure(plots.plot_variants(frame), tmp_path / "figures" / "variants.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
