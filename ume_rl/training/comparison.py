"""Train a recipe, and variants of it, from one warm start; evaluate every policy; compare them (notebook 04).

>>> report = train_and_compare("demo", "runs/notebook04-demo", variants=mitigation_variants())  # doctest: +SKIP
>>> report.summaries  # per policy and modality: tag_rate, valid_rate, mean_reward, ...  # doctest: +SKIP
>>> report.realism  # (modality, metric) x policies, with the corpus's own value  # doctest: +SKIP
>>> print(report.verdicts["GRPO"])  # the hacking verdict of the run's log history  # doctest: +SKIP

The main run is the recipe as written (``ume-rl train``'s steps: :class:`~ume_rl.training.run.TrainRun`);
each variant is the same recipe with a few fields overridden (``reward_funcs``, ``reward_weights``...),
trained from the same warm start into ``<output_dir>-<suffix>``. Every policy's held-out completions are
scored by the main run's first reward (the UME reward), so their numbers compare; the realism suite and the
audits are the main run's monitor (:mod:`ume_rl.training.monitor`), shared.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ume_rl.training.evaluation import summarize_completions, write_generations
from ume_rl.training.monitor import Verdict, hacking_verdict
from ume_rl.training.realism import moved_toward_corpus
from ume_rl.training.recipes import load_recipe
from ume_rl.training.run import TrainRun

logger = logging.getLogger(__name__)

BEFORE = "warm start"
MAIN = "GRPO"


def mitigation_variants(complexity_weight: float = 0.5, length_weight: float = 0.5) -> dict[str, dict]:
    """The mitigations notebook 03 recommends, as recipe overrides: the complexity reward beside the UME
    reward, then the length reward too; each reward standardised within its group, then weighted
    (``normalize_then_sum``). A zero weight leaves its variant out."""
    variants = {}
    if complexity_weight:
        variants["GRPO + complexity"] = (["ume", "complexity"], [1.0, complexity_weight])
        if length_weight:
            variants["GRPO + complexity + length"] = (
                ["ume", "complexity", "length"],
                [1.0, complexity_weight, length_weight],
            )
    return {
        name: {
            "reward_funcs": funcs,
            "reward_weights": weights,
            "multi_objective_aggregation": "normalize_then_sum",
        }
        for name, (funcs, weights) in variants.items()
    }


@dataclass
class TrainReport:
    """What :func:`train_and_compare` measured; policies are ``base``, ``warm start``, ``GRPO`` and the variants.

    Attributes:
        profile: the run's profile name.
        samples: policy → its held-out completions (:func:`~ume_rl.training.evaluation.generate_completions`).
        summaries: per policy and modality, :func:`~ume_rl.training.evaluation.summarize_completions`.
        realism: (modality, metric) x policies and ``corpus``.
        histories: trained policy → its ``trainer.state.log_history``.
        verdicts: trained policy → :func:`~ume_rl.training.monitor.hacking_verdict` of its history.
        reference: realism log key → corpus value (for plots of the live metrics).
        penalty: the UME reward of an invalid completion.
        output_dir: the main run's directory.
    """

    profile: str
    samples: dict[str, pd.DataFrame]
    summaries: pd.DataFrame
    realism: pd.DataFrame
    histories: dict[str, list[dict]]
    verdicts: dict[str, Verdict]
    reference: dict[str, float]
    penalty: float
    output_dir: Path

    @property
    def moves(self) -> pd.DataFrame:
        """Per trained policy, which realism metrics moved toward the corpus since the warm start."""
        trained = [name for name in self.histories]
        return pd.concat(
            {name: moved_toward_corpus(self.realism, BEFORE, name) for name in trained}, names=["policy"]
        )

    def moves_text(self) -> str:
        """One line per trained policy: the metrics that moved toward the corpus, and those that did not."""
        lines = []
        for name in self.histories:
            move = moved_toward_corpus(self.realism, BEFORE, name)["toward_corpus"]
            toward = [f"{m}/{k}" for (m, k), t in move.items() if t is True]
            away = [f"{m}/{k}" for (m, k), t in move.items() if t is False]
            lines.append(
                f"{name}: toward the corpus: {', '.join(toward) or 'none'}; "
                f"away or unchanged: {', '.join(away) or 'none'}"
            )
        return "\n".join(lines)

    @property
    def improved(self) -> bool:
        """Whether GRPO raised both the valid rate and the mean reward (all modalities) over the warm start."""
        before, after = self.summaries.loc[(BEFORE, "all")], self.summaries.loc[(MAIN, "all")]
        return bool(after.valid_rate > before.valid_rate and after.mean_reward > before.mean_reward)

    def require_improvement(self) -> None:
        """Raise ``AssertionError`` (with the table) unless :attr:`improved`: the CPU profiles' CI gate."""
        if not self.improved:
            raise AssertionError(
                f"GRPO did not raise both valid_rate and mean_reward ({self.profile}):\n{self.summaries.round(3)}"
            )


def train_and_compare(
    recipe: str | Path,
    output_dir: str | Path,
    max_steps: int | None = None,
    variants: Mapping[str, Mapping] | None = None,
) -> TrainReport:
    """Warm-start and train ``recipe`` into ``output_dir`` (replacing what is there), train each variant
    from the same warm start, and evaluate every policy on the held-out prompts.

    Args:
        recipe: a recipe name or YAML path (:func:`~ume_rl.training.recipes.load_recipe`).
        output_dir: the main run's directory; variants go next to it, ``<output_dir>-<reward names>``.
        max_steps: GRPO steps (``None``: the recipe's).
        variants: name → recipe overrides (e.g. :func:`mitigation_variants`).

    Returns:
        A :class:`TrainReport`. The main run's directory also gets ``generations.jsonl`` (every policy, stage
        ``base``, ``warm_start``, ``trained`` and the variants' names) and ``evaluation.csv``.
    """
    output_dir = Path(output_dir)
    run = TrainRun.prepare(
        *load_recipe(recipe, max_steps=max_steps, output_dir=output_dir, overwrite_output_dir=True)
    )
    try:
        reward_model = run.load_reward_models()
        rewards = run.build_rewards(reward_model)
        reward = rewards[0]
        monitor = run.build_monitor()
        policy = run.warm_start()
        samples = {"base": run.generate(run.base_policy, reward), BEFORE: run.generate(policy, reward)}
        histories = {MAIN: run.train(policy, rewards).state.log_history}
        samples[MAIN] = run.generate(run.output_dir, reward)
        for name, overrides in (variants or {}).items():
            suffix = "-".join(overrides.get("reward_funcs", ["variant"])[1:]) or "variant"
            side = TrainRun.prepare(
                *load_recipe(
                    recipe,
                    max_steps=max_steps,
                    output_dir=output_dir.with_name(f"{output_dir.name}-{suffix}"),
                    overwrite_output_dir=True,
                    **overrides,
                )
            )
            try:
                side.monitor = monitor
                histories[name] = side.train(policy, side.build_rewards(reward_model)).state.log_history
                samples[name] = side.generate(side.output_dir, reward)
            finally:
                side.close()
        summaries = pd.concat({n: summarize_completions(f) for n, f in samples.items()}, names=["policy"])
        run.save_evaluation(summaries)
        stages = {"base": "base", BEFORE: "warm_start", MAIN: "trained"}
        write_generations(
            run.output_dir / "generations.jsonl", {stages.get(n, n): f for n, f in samples.items()}
        )
        return TrainReport(
            profile=Path(str(recipe)).stem,
            samples=samples,
            summaries=summaries,
            realism=monitor.suite.compare(samples),
            histories=histories,
            verdicts={n: hacking_verdict(h, monitor.reference) for n, h in histories.items()},
            reference=monitor.reference,
            penalty=reward.penalty,
            output_dir=run.output_dir,
        )
    finally:
        run.close()
