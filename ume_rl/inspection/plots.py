"""Figures for ume_rl: each function takes data and returns a matplotlib ``Figure``.

Figures are built with ``matplotlib.figure.Figure`` directly, never through ``pyplot``: no global
state, no backend switch, headless anywhere. A notebook shows a returned ``Figure`` once the inline
backend is on (``%matplotlib inline``, which the notebooks run first).
Write them with :func:`save_figure`. Sections: reward inspection (notebook 03) and training curves (notebook 04).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ume_rl.rewards.modalities import MODALITIES, MODALITY_TABLE


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` as a PNG at ``path`` (parents created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


# ------------------------------------------------------------------------------ reward inspection (03)
# Inputs are long-format DataFrames, one row per scored sequence: ``modality`` plus the columns named by
# each function (``kind``, ``reward``, ``score``, ``length``, ``reason`` as ume_rl.inspection.probes rows joined
# with ``MaskedLMReward.details`` give them). A ``reason`` column marks invalid rows (reason not null).

VALUE_LABELS: dict[str, str] = {
    "reward": "reward (score / temperature)",
    "score": "score (mean log-prob per residue)",
    "masked": "masked score (pseudo-log-likelihood)",
    "unmasked": "unmasked score (single pass)",
    "complexity": "complexity (0-1)",
    "length": "sequence length (characters)",
}
KIND_COLORS = tuple(
    f"tab:{c}" for c in ("green", "blue", "orange", "red", "purple", "brown", "pink", "olive")
)


def _modality_label(modality: str) -> str:
    return MODALITY_TABLE[modality].label if modality in MODALITY_TABLE else modality


def _label(column: str) -> str:
    return VALUE_LABELS.get(column, column)


def _modality_panels(frame, suptitle: str) -> tuple[Figure, list]:
    """One axes per modality present in ``frame`` (lobster order first); returns ``(fig, [(modality, ax, rows)])``."""
    order = MODALITIES
    present = list(dict.fromkeys(frame["modality"]))
    modalities = [m for m in order if m in present] + [m for m in present if m not in order]
    if not modalities:
        raise ValueError("nothing to plot: the frame has no rows")
    fig = Figure(figsize=(4.4 * len(modalities), 3.8), layout="constrained")
    axes = fig.subplots(1, len(modalities), squeeze=False)[0]
    fig.suptitle(suptitle)
    return fig, [(m, ax, frame[frame["modality"] == m]) for m, ax in zip(modalities, axes, strict=True)]


def _valid_mask(rows):
    return rows["reason"].isna().to_numpy() if "reason" in rows else np.ones(len(rows), dtype=bool)


def spearman_rho(x, y) -> float:
    """Spearman rank correlation of two equal-length sequences (NaN when fewer than 3 points or constant)."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length: {len(x)} vs {len(y)}")
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def spearman_by_modality(frame, x: str = "masked", y: str = "unmasked") -> dict[str, float]:
    """Spearman ρ between columns ``x`` and ``y`` for each modality of ``frame``."""
    return {m: spearman_rho(rows[x], rows[y]) for m, rows in frame.groupby("modality", sort=False)}


def plot_reward_distribution(
    frame, penalty: float | None = None, value: str = "reward", bins: int = 20
) -> Figure:
    """Histogram of the valid rows' ``value`` per modality, with the invalid penalty as a vertical line."""
    fig, panels = _modality_panels(frame, f"Distribution of {value} per modality")
    for modality, ax, rows in panels:
        valid = _valid_mask(rows)
        ax.hist(
            rows[value].to_numpy()[valid],
            bins=bins,
            color="tab:blue",
            alpha=0.8,
            label=f"valid (n={valid.sum()})",
        )
        if penalty is not None:
            ax.axvline(
                penalty, color="tab:red", ls="--", label=f"invalid penalty {penalty:.3g} (n={(~valid).sum()})"
            )
        ax.set(title=_modality_label(modality), xlabel=_label(value), ylabel="count")
        ax.legend(fontsize="small")
    return fig


def plot_reward_vs_length(frame, value: str = "reward", length: str = "length", hue: str = "kind") -> Figure:
    """Scatter of ``value`` against ``length`` per modality, one colour per ``hue`` group (valid rows only)."""
    fig, panels = _modality_panels(frame, f"{value.capitalize()} vs. sequence length")
    groups = list(dict.fromkeys(frame[hue])) if hue in frame else [None]
    for modality, ax, rows in panels:
        rows = rows[_valid_mask(rows)]
        for i, group in enumerate(groups):
            part = rows if group is None else rows[rows[hue] == group]
            if len(part):
                ax.scatter(
                    part[length],
                    part[value],
                    s=14,
                    alpha=0.75,
                    color=KIND_COLORS[i % len(KIND_COLORS)],
                    label=f"{group or 'all'} (n={len(part)})",
                )
        rho = spearman_rho(rows[length], rows[value])
        ax.set(
            title=f"{_modality_label(modality)}: Spearman ρ(length, {value}) = {rho:.2f}",
            xlabel=_label(length),
            ylabel=_label(value),
        )
        ax.legend(fontsize="small")
    return fig


def plot_temperature_effect(frame, temperatures, penalties: dict, score: str = "score") -> Figure:
    """Reward scale (``score / temperature``) per modality against temperature, with penalty curves.

    Args:
        frame: valid rows with ``modality`` and ``score``.
        temperatures: temperatures to plot (log x-axis).
        penalties: label -> penalty, either one value or one per temperature (e.g. ``MaskedLMReward(...).penalty``
            for each temperature, or upstream's fixed -5.0).
    """
    temperatures = np.asarray(temperatures, dtype=float)
    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = fig.subplots()
    for modality, rows in frame.groupby("modality", sort=False):
        rewards = rows[score].to_numpy(dtype=float)[None, :] / temperatures[:, None]
        color = MODALITY_TABLE[modality].color if modality in MODALITY_TABLE else "tab:gray"
        lo, mid, hi = np.percentile(rewards, [5, 50, 95], axis=1)
        ax.plot(
            temperatures,
            mid,
            color=color,
            marker="o",
            label=f"{_modality_label(modality)} median",
        )
        ax.fill_between(temperatures, lo, hi, color=color, alpha=0.2)
    for j, (label, pen) in enumerate(penalties.items()):
        pen = np.broadcast_to(np.asarray(pen, dtype=float), temperatures.shape)
        ax.plot(temperatures, pen, color="black", ls=("--", ":", "-.")[j % 3], label=label)
    ax.set_xscale("log")
    ax.set(
        title="Reward scale vs. temperature (median, 5-95% band) and invalid penalties",
        xlabel="temperature",
        ylabel="reward (score / temperature)",
    )
    ax.legend(fontsize="small")
    return fig


def _plot_by_kind(frame, kinds, value: str, penalty: float | None, suptitle: str) -> Figure:
    frame = frame[frame["kind"].isin(kinds)]
    fig, panels = _modality_panels(frame, suptitle)
    jitter = np.random.default_rng(0)
    for modality, ax, rows in panels:
        present = [k for k in kinds if (rows["kind"] == k).any()]
        for x, kind in enumerate(present):
            part = rows[rows["kind"] == kind]
            valid = _valid_mask(part)
            y = part[value].to_numpy(dtype=float)
            xs = x + jitter.uniform(-0.18, 0.18, len(y))
            if valid.any():
                ax.scatter(xs[valid], y[valid], s=16, color="tab:blue", alpha=0.7, label="valid")
            if (~valid).any():
                ax.scatter(xs[~valid], y[~valid], s=22, marker="x", color="tab:red", label="invalid")
            if valid.any():
                ax.hlines(np.median(y[valid]), x - 0.3, x + 0.3, color="black", lw=2, label="median of valid")
        if penalty is not None:
            ax.axhline(penalty, color="tab:red", ls="--", lw=1, label=f"invalid penalty {penalty:.3g}")
        ax.set_xticks(range(len(present)), present, rotation=30, ha="right")
        ax.set(title=_modality_label(modality), xlabel="kind", ylabel=_label(value))
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))
        ax.legend(unique.values(), unique.keys(), fontsize="small")
    return fig


def plot_variants(frame, value: str = "reward", penalty: float | None = None, kinds=None) -> Figure:
    """References vs. corrupted variants (``kind`` column, ume_rl.inspection.probes.VARIANT_KINDS order) per modality."""
    if kinds is None:
        from ume_rl.inspection.probes import VARIANT_KINDS

        kinds = VARIANT_KINDS
    return _plot_by_kind(frame, kinds, value, penalty, f"References vs. corrupted variants: {value}")


def plot_hacking_probes(frame, value: str = "reward", penalty: float | None = None, kinds=None) -> Figure:
    """References vs. low-complexity probes (homopolymers, tandem repeats, low entropy) per modality."""
    if kinds is None:
        from ume_rl.inspection.probes import PROBE_KINDS

        kinds = ("reference", *PROBE_KINDS)
    return _plot_by_kind(frame, kinds, value, penalty, f"Hacking probes vs. references: {value}")


def plot_mode_agreement(frame, x: str = "masked", y: str = "unmasked") -> Figure:
    """Scatter of masked vs. unmasked scores per modality, Spearman ρ in each title and legend."""
    fig, panels = _modality_panels(frame, "Masked vs. unmasked UME scores")
    for modality, ax, rows in panels:
        rho = spearman_rho(rows[x], rows[y])
        ax.scatter(rows[x], rows[y], s=14, alpha=0.75, color="tab:blue", label=f"n={len(rows)}, ρ={rho:.2f}")
        ax.set(
            title=f"{_modality_label(modality)}: Spearman ρ = {rho:.2f}",
            xlabel=_label(x),
            ylabel=_label(y),
        )
        ax.legend(fontsize="small")
    return fig


# ------------------------------------------------------------------------------- training curves (04)
# Input: ``trainer.state.log_history`` (a list of dicts, one per logging step) as TRL's GRPOTrainer writes
# it: ``reward``/``reward_std``, ``completions/*_length``, ``entropy``, ``kl`` (when beta > 0), and the UME
# reward's own ``ume_reward/valid_fraction`` and ``ume_reward/<modality>/mean_reward`` (via log_metric).


def training_log_frame(log_history: list[dict]):
    """The training rows of ``log_history`` as a DataFrame indexed by ``step`` (eval and summary rows dropped)."""
    import pandas as pd

    rows = [row for row in log_history if "reward" in row and "step" in row]
    if not rows:
        raise ValueError("log_history has no training rows with a 'reward': train >= logging_steps steps")
    return pd.DataFrame(rows).set_index("step").sort_index()


def _reward_name(frame) -> str:
    names = [c[: -len("/valid_fraction")] for c in frame.columns if c.endswith("/valid_fraction")]
    return names[0] if names else "ume_reward"


def plot_training_curves(log_history: list[dict], penalty: float | None = None) -> Figure:
    """Four panels over training steps: reward mean ± std (and per modality), invalid rate, completion
    length, entropy (and KL when logged).

    Args:
        log_history: ``trainer.state.log_history``.
        penalty: the reward of an invalid completion, drawn as a reference line.
    """
    frame = training_log_frame(log_history)
    steps = frame.index.to_numpy()
    name = _reward_name(frame)
    fig = Figure(figsize=(11, 7.5), layout="constrained")
    (ax_reward, ax_invalid), (ax_length, ax_entropy) = fig.subplots(2, 2)
    fig.suptitle("GRPO training curves")

    mean, std = frame["reward"].to_numpy(), frame["reward_std"].to_numpy()
    ax_reward.plot(steps, mean, color="black", label="mean reward (all completions)")
    ax_reward.fill_between(steps, mean - std, mean + std, color="grey", alpha=0.3, label="± std")
    for modality, spec in MODALITY_TABLE.items():
        column = f"{name}/{modality}/mean_reward"
        if column in frame:
            ax_reward.plot(steps, frame[column], "--", color=spec.color, label=f"{spec.label} (valid only)")
    if penalty is not None:
        ax_reward.axhline(penalty, color="red", linestyle=":", label=f"invalid penalty ({penalty:.1f})")
    ax_reward.set(title="Reward", xlabel="step", ylabel="reward")

    if f"{name}/valid_fraction" in frame:
        invalid = 1 - frame[f"{name}/valid_fraction"]
        ax_invalid.plot(steps, invalid, color="tab:red", label="invalid completions")
    if "frac_reward_zero_std" in frame:
        no_signal = frame["frac_reward_zero_std"]
        ax_invalid.plot(steps, no_signal, color="tab:purple", label="groups with zero reward std (no signal)")
    ax_invalid.set(title="Invalid rate", xlabel="step", ylabel="fraction", ylim=(-0.02, 1.02))

    length = frame["completions/mean_length"]
    ax_length.plot(steps, length, color="tab:blue", label="mean")
    if {"completions/min_length", "completions/max_length"} <= set(frame.columns):
        low, high = frame["completions/min_length"], frame["completions/max_length"]
        ax_length.fill_between(steps, low, high, alpha=0.2, label="min-max")
    ax_length.set(title="Completion length", xlabel="step", ylabel="tokens")

    ax_entropy.plot(steps, frame["entropy"], color="tab:green", label="entropy")
    kl_title = "Entropy and KL" if "kl" in frame else "Entropy (KL not logged: beta = 0)"
    ax_entropy.set(title=kl_title, xlabel="step", ylabel="entropy (nats/token)")
    if "kl" in frame:
        ax_kl = ax_entropy.twinx()
        ax_kl.plot(steps, frame["kl"], color="tab:orange", label="KL to reference")
        ax_kl.set_ylabel("KL (nats/token)")
        ax_kl.legend(loc="upper right", fontsize="small")
    for ax in (ax_reward, ax_invalid, ax_length, ax_entropy):
        ax.legend(loc="best", fontsize="small")
    return fig


# ------------------------------------------------------------------------------ small UME training (02/03)


def plot_ume_loss_curve(
    curve: dict[str, list[float]], window: int = 20, baselines: dict | None = None
) -> Figure:
    """The masked-LM training loss of a small UME per step: all tokens, and per modality (running means).

    Args:
        curve: ``ume_rl.models.small_ume.read_loss_curve(ckpt)``: ``loss`` and ``loss/<modality>`` per step (NaN
            where a step had no sequence of that modality).
        window: running-mean window in steps (the raw total loss is drawn faintly).
        baselines: optional ``{modality: loss}`` reference lines, e.g. the unigram's held-out cross-entropy
            (``-reward_quality(...).pll["unigram"]``).
    """
    import pandas as pd

    if not curve.get("loss"):
        raise ValueError("empty loss curve: read it with ume_rl.models.small_ume.read_loss_curve(ckpt)")
    frame = pd.DataFrame(curve)
    steps = np.arange(1, len(frame) + 1)
    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.subplots()
    ax.plot(steps, frame["loss"], color="black", alpha=0.15, linewidth=0.8)
    smooth = lambda column: frame[column].rolling(window, min_periods=1).mean()  # noqa: E731
    ax.plot(steps, smooth("loss"), color="black", label="all tokens")
    for modality, spec in MODALITY_TABLE.items():
        column = f"loss/{modality}"
        if column in frame:
            ax.plot(
                steps,
                frame[column].interpolate(limit_area="inside").rolling(window, min_periods=1).mean(),
                color=spec.color,
                label=spec.label,
            )
            if baselines and modality in baselines:
                ax.axhline(baselines[modality], color=spec.color, linestyle=":", linewidth=1)
    ax.set(
        title="Small UME: masked-LM loss on the train split",
        xlabel="optimizer step",
        ylabel="cross-entropy at masked tokens (nats)",
    )
    ax.legend(loc="upper right", fontsize="small")
    return fig
