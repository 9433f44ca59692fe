"""Training-curve figures from a GRPO log history (the keys TRL 1.16 and MaskedLMReward write)."""

from __future__ import annotations

import math

import pytest
from matplotlib.figure import Figure

from ume_rl.inspection.plots import plot_training_curves, save_figure, training_log_frame


def log_history(steps: int = 4, kl: bool = False) -> list[dict]:
    rows = []
    for step in range(1, steps + 1):
        row = {
            "loss": 0.1,
            "reward": -90.0 + 3 * step,
            "reward_std": 5.0,
            "rewards/ume_reward/mean": -90.0 + 3 * step,
            "frac_reward_zero_std": 0.25,
            "ume_reward/valid_fraction": 0.2 * step,
            "ume_reward/amino_acid/mean_reward": -72.0,
            "completions/mean_length": 40.0 - step,
            "completions/min_length": 5.0,
            "completions/max_length": 100.0,
            "entropy": 3.5 - 0.1 * step,
            "step": step,
        }
        if step % 2:
            row["ume_reward/SMILES/mean_reward"] = -65.0  # a modality with no valid completion is not logged
        if kl:
            row["kl"] = 0.01 * step
        rows.append(row)
    # eval rows and the final summary are not training rows
    rows.append({"eval_reward": -80.0, "step": steps})
    rows.append({"train_runtime": 1.0, "train_loss": 0.1, "step": steps})
    return rows


def test_training_rows_only():
    frame = training_log_frame(log_history(steps=3))
    assert list(frame.index) == [1, 2, 3]
    assert math.isnan(frame.loc[2, "ume_reward/SMILES/mean_reward"])
    with pytest.raises(ValueError, match="no training rows"):
        training_log_frame([{"train_runtime": 1.0, "step": 0}])


def test_four_labelled_panels(tmp_path):
    fig = plot_training_curves(log_history(), penalty=-91.5)
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    for ax in fig.axes:
        assert ax.get_title() and ax.get_xlabel() == "step" and ax.get_ylabel()
        assert ax.get_legend() is not None
    reward_ax, invalid_ax = fig.axes[0], fig.axes[1]
    labels = [line.get_label() for line in reward_ax.get_lines()]
    assert any("protein" in label for label in labels) and any("SMILES" in label for label in labels)
    assert any("penalty" in label for label in labels)
    invalid = [line for line in invalid_ax.get_lines() if line.get_label() == "invalid completions"][0]
    assert list(invalid.get_ydata()) == pytest.approx([0.8, 0.6, 0.4, 0.2])  # 1 - valid fraction
    assert save_figure(fig, tmp_path / "curves.png").stat().st_size > 0


def test_kl_gets_its_own_axis_when_logged():
    fig = plot_training_curves(log_history(kl=True))
    assert len(fig.axes) == 5
    assert fig.axes[-1].get_ylabel().startswith("KL")


def test_ume_loss_curve_has_one_line_per_modality(tmp_path):
    from ume_rl.inspection.plots import plot_ume_loss_curve

    nan = float("nan")
    curve = {
        "loss": [7.0, 5.0, 4.0, 3.0],
        "loss/SMILES": [7.1, nan, 3.9, 2.5],
        "loss/amino_acid": [7.0, 5.1, nan, 3.0],
        "loss/nucleotide": [6.9, 5.0, 4.1, nan],
    }
    fig = plot_ume_loss_curve(curve, window=2, baselines={"nucleotide": 1.38})
    (ax,) = fig.axes
    labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert labels == ["all tokens", "SMILES", "protein", "DNA"]
    assert any(line.get_linestyle() == ":" for line in ax.get_lines())  # the baseline
    assert save_figure(fig, tmp_path / "loss.png").stat().st_size > 0
    with pytest.raises(ValueError, match="read_loss_curve"):
        plot_ume_loss_curve({"loss": []})


def test_realism_curves_plot_reward_audit_and_relative_distances():
    from ume_rl.inspection.realism_plots import monitor_frame, plot_realism_curves, relative_distances

    history = log_history(4)
    for step, row in enumerate(history, start=1):
        row.update(
            {
                "audit/context_audit/protein": -3.0 - 0.1 * step,
                "audit/context_audit": -3.0 - 0.1 * step,
                "realism/protein/aa_kl": 0.1 * step,  # corpus 0: distance grows 1x, 2x, 3x, 4x
                "realism/protein/valid": None,  # nothing valid at that step: a gap, not a crash
                "realism/DNA/gc": 0.5,  # at the corpus value all along: no curve
            }
        )
    reference = {"realism/protein/aa_kl": 0.0, "realism/protein/valid": 1.0, "realism/DNA/gc": 0.5}
    frame = monitor_frame(history)
    distances = relative_distances(frame, reference, "protein")
    assert distances["aa_kl"].tolist() == pytest.approx([1.0, 2.0, 3.0, 4.0])
    assert "valid" not in distances  # all NaN: no first distance to divide by
    assert relative_distances(frame, reference, "DNA").empty
    fig = plot_realism_curves(history, reference)
    assert len(fig.axes) == 1 + 1 + 2  # reward (+ its audit twin), protein, DNA
    with pytest.raises(ValueError, match="no training rows"):
        plot_realism_curves([{"loss": 1.0, "step": 1}], reference)
