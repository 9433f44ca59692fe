"""Plots of the live realism metrics and audit scores a GRPO run logs (:mod:`ume_rl.training.monitor`).

>>> fig = plot_realism_curves(trainer.state.log_history, reference)  # doctest: +SKIP

Panel one: the training reward with each audit score on a second axis (reward up while an audit falls is the
hacking pattern). One panel per modality: each realism metric's distance to the corpus, ``|value − corpus|``,
divided by its distance at the first logged step, so every metric shares one axis: below 1 the metric moved
toward the corpus, above 1.1 it got more than 10 % worse (the verdict's tolerance).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ume_rl.rewards.modalities import MODALITY_TABLE

TOLERANCE_LINE = 1.1


def monitor_frame(log_history: list[dict]) -> pd.DataFrame:
    """The training rows of ``log_history`` (those with a ``reward``) indexed by ``step``, None read as NaN."""
    rows = [row for row in log_history if "reward" in row and "step" in row]
    if not rows:
        raise ValueError("log_history has no training rows with a 'reward': train >= logging_steps steps")
    return pd.DataFrame(rows).set_index("step").sort_index().apply(pd.to_numeric, errors="coerce")


def relative_distances(frame: pd.DataFrame, reference: Mapping[str, float], label: str) -> pd.DataFrame:
    """Per realism metric of ``label`` (a modality's label) with a reference: ``|value − reference|`` over the
    steps, divided by its first finite non-zero value (metrics whose distance never leaves 0 are dropped)."""
    out = {}
    prefix = f"realism/{label}/"
    for key in frame.columns:
        if key.startswith(prefix) and key in reference and np.isfinite(reference[key]):
            distance = (frame[key] - reference[key]).abs()
            first = distance[np.isfinite(distance) & (distance > 0)]
            if len(first):
                out[key.removeprefix(prefix)] = distance / first.iloc[0]
    return pd.DataFrame(out, index=frame.index)


def plot_realism_curves(log_history: list[dict], reference: Mapping[str, float]) -> Figure:
    """Reward and audit scores, then each modality's realism distances, over training steps.

    Args:
        log_history: ``trainer.state.log_history`` of a run with a ``RealismMonitor``.
        reference: realism key → corpus value (``RealismMonitor.reference``, ``TrainReport.reference``).
    """
    frame = monitor_frame(log_history)
    steps = frame.index.to_numpy()
    labels = [
        s.label for s in MODALITY_TABLE.values() if any(k.startswith(f"realism/{s.label}/") for k in frame)
    ]
    fig = Figure(figsize=(5.5 * (1 + len(labels)), 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, 1 + len(labels)))
    fig.suptitle("Reward, audit and realism over GRPO steps")

    ax_reward = axes[0]
    ax_reward.plot(steps, frame["reward"], color="black", marker=".", label="training reward")
    ax_reward.set(title="Training reward vs audit", xlabel="step", ylabel="reward")
    audit_keys = [k for k in frame.columns if k.startswith("audit/")]
    if audit_keys:
        ax_audit = ax_reward.twinx()
        colors = {s.label: s.color for s in MODALITY_TABLE.values()}
        for key in audit_keys:
            color = colors.get(key.rsplit("/", 1)[-1], "grey")
            style = ":" if key.count("/") == 1 else "--"  # audit/<scorer>: every modality together
            ax_audit.plot(steps, frame[key], style, color=color, marker=".", label=key.removeprefix("audit/"))
        ax_audit.set_ylabel("audit score (log-prob per residue, higher is better)")
        ax_audit.legend(loc="lower right", fontsize="x-small")
    ax_reward.legend(loc="upper left", fontsize="small")

    for ax, label in zip(axes[1:], labels, strict=True):
        distances = relative_distances(frame, reference, label)
        for metric in distances:
            ax.plot(steps, distances[metric], marker=".", label=metric)
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.axhline(TOLERANCE_LINE, color="red", linestyle=":", linewidth=0.8, label="+10 % (worse)")
        ax.set(title=f"{label}: distance to the corpus", xlabel="step", ylabel="distance / first step's")
        ax.legend(loc="best", fontsize="x-small")
    return fig
