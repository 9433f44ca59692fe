"""The training run: dataset → warm start → GRPO → evaluation, one step per call.

``ume-rl train`` (:mod:`ume_rl.cli`) and notebook 04 both run these steps, so the notebook runs the command's
own code with evaluations in between:

>>> from ume_rl.training.recipes import load_recipe
>>> run = TrainRun.prepare(*load_recipe("tiny", max_steps=3))  # doctest: +SKIP
>>> rewards = run.build_rewards(run.load_reward_models())  # doctest: +SKIP
>>> trainer = run.train(run.warm_start(), rewards)  # doctest: +SKIP
>>> run.save_evaluation(run.evaluate(run.output_dir, rewards[0]))  # doctest: +SKIP

The configuration comes from a recipe (:mod:`ume_rl.training.recipes`). Reward models: the profile's UME scores
every modality unless ``reward_models`` names another model for a modality (a hub id or local directory of a
Hugging Face masked LM; ``ume`` for the UME), as the ``full-public`` recipe does for all three;
:func:`download_models` fetches what a recipe needs (notebook 01).

A run never clobbers another (:mod:`ume_rl.training.rundir`): a directory that holds a run needs
``resume_from_checkpoint="last"`` or ``overwrite_output_dir=True``, and one run at a time holds its lock.
Each rank writes the statistics of the completions it scored to ``output_dir/reward_stats/rank<N>.json``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ume_rl.rewards.registry import build_reward_funcs
from ume_rl.training.config import UmeGRPOConfig
from ume_rl.training.recipes import (
    TRANSFORMERS_DEFAULT_OUTPUT_DIR,
    TrainScriptArguments,
    default_output_dir,
    load_recipe,
)

logger = logging.getLogger(__name__)


@dataclass
class TrainRun:
    """The steps of a training run, one call each, for :func:`run_train` and notebook 04.

    :meth:`prepare` claims the output directory (its lock is held until :meth:`close`, or the process ends).
    """

    script: TrainScriptArguments
    grpo: UmeGRPOConfig
    profile: Any  # ume_rl.profiles.Profile
    dataset: Any  # datasets.DatasetDict with train / validation / test
    base_policy: str | Path
    lock: Any = None  # ume_rl.training.rundir.RunLock, held by the main process

    @classmethod
    def prepare(cls, script: TrainScriptArguments, grpo: UmeGRPOConfig) -> TrainRun:
        """Claim the output directory (lock it; clear it for ``overwrite_output_dir``; refuse one that holds a
        run otherwise), then load the dataset and the base policy.

        ``dataset_dir`` is loaded as it is (never generated, an error when incomplete); without it the
        profile's dataset is loaded, or generated when missing.
        """
        from accelerate import PartialState

        from ume_rl.data.store import load_dataset_dir, load_or_generate_dataset
        from ume_rl.profiles import get_profile
        from ume_rl.training.rundir import claim_on_main_process

        profile = get_profile(script.profile)
        if grpo.output_dir in (None, TRANSFORMERS_DEFAULT_OUTPUT_DIR):
            grpo.output_dir = str(default_output_dir(profile))
        lock = claim_on_main_process(grpo.output_dir, grpo.resume_from_checkpoint, grpo.overwrite_output_dir)
        state = PartialState()
        try:
            # Rank 0 builds the tiny policy and the dataset once; the other ranks then load them.
            with state.main_process_first():
                if script.dataset_dir is not None:
                    dataset = load_dataset_dir(script.dataset_dir)
                else:
                    dataset = load_or_generate_dataset(
                        profile.dataset_dir, rebuild=True, progress=False, references=profile.references
                    )
                policy = script.model_path or profile.policy_path()
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        return cls(script, grpo, profile, dataset, policy, lock)

    @property
    def output_dir(self) -> Path:
        return Path(self.grpo.output_dir)

    @property
    def resuming(self) -> bool:
        return self.grpo.resume_from_checkpoint not in (None, False)

    @property
    def held_out(self):
        """The prompts no step trains on: validation + test."""
        from datasets import concatenate_datasets

        return concatenate_datasets([self.dataset["validation"], self.dataset["test"]])

    def load_ume(self):
        """The UME (``ume_model_path``, else the profile's) on this process's device, outside ZeRO-3."""
        from ume_rl.models.ume import load_ume
        from ume_rl.training.trainer import outside_zero3

        name = self.script.ume_model_path or self.profile.ume_path()
        logger.info("loading UME %s on %s", name, self.grpo.device)
        with outside_zero3():
            return load_ume(name, device=self.grpo.device, seed=self.profile.seed)

    def load_reward_models(self):
        """The reward model of each modality on this process's device, outside ZeRO-3: the UME when it scores
        every modality, else a mapping modality → model (:func:`~ume_rl.models.masked_lms.load_reward_model`), which
        :class:`~ume_rl.rewards.ume.UmeReward` takes as it is."""
        from ume_rl.models.masked_lms import is_ume_name, load_reward_model

        names = self.script.reward_model_names(self.profile)
        ume = self.script.ume_model_path or self.profile.ume
        if set(names.values()) == {ume}:
            return self.load_ume()
        from ume_rl.training.trainer import outside_zero3

        loaded: dict = {}
        models = {}
        for modality, name in names.items():
            is_ume = name == ume or is_ume_name(name)
            key = name if is_ume else (name, modality)
            if key not in loaded:
                logger.info("loading reward model %s for %s on %s", name, modality, self.grpo.device)
                with outside_zero3():
                    loaded[key] = (
                        self.load_ume()
                        if name == ume
                        else load_reward_model(name, modality, device=self.grpo.device)
                    )
            models[modality] = loaded[key]
        return models

    def build_rewards(self, reward_model) -> list:
        """The recipe's ``reward_funcs``, built with its reward settings; the UME reward scores with
        ``reward_model`` (a UME, or :meth:`load_reward_models`' mapping modality → model)."""
        return build_reward_funcs(self.script.reward_funcs, reward_model, self.script.reward_settings())

    def warm_start(self):
        """SFT of the base policy on the training references (``output_dir/warm_start``), plus
        ``warm_start_references`` extra real references per modality (never a held-out answer); returns the policy.

        A complete warm start already there is reused: with the same settings, or with any when resuming (the
        resumed policy's weights come from the checkpoint).
        """
        from ume_rl.training.sft import warm_start

        kwargs = self.script.warm_start_kwargs(self.grpo)
        rows = self.dataset["train"]
        if self.script.warm_start_references:
            from datasets import concatenate_datasets

            from ume_rl.data.generate import reference_rows

            extra = reference_rows(
                self.script.warm_start_references, self.grpo.seed, exclude=self.held_out["sequence"]
            )
            rows = concatenate_datasets([rows, extra.cast(rows.features)])
        return warm_start(
            self.base_policy,
            rows,
            self.output_dir / "warm_start",
            reuse="any" if self.resuming else "same",
            **kwargs,
        )

    def train(self, policy, rewards: list):
        """GRPO from ``policy`` against ``rewards`` (:meth:`build_rewards`); saves the final model in
        ``output_dir`` and this rank's reward statistics in ``output_dir/reward_stats/rank<N>.json``.
        Returns the trainer."""
        import time

        from accelerate import PartialState

        from ume_rl.training.rundir import mark_run, resolve_resume
        from ume_rl.training.trainer import build_trainer

        trainer = build_trainer(
            policy, rewards, self.dataset["train"], self.dataset["validation"], args=self.grpo
        )
        trainer.train(
            resume_from_checkpoint=resolve_resume(self.output_dir, self.grpo.resume_from_checkpoint)
        )
        trainer.save_model(self.grpo.output_dir)
        logger.info("saved the trained policy and its tokenizer to %s", self.grpo.output_dir)
        state = PartialState()
        stats_dir = self.output_dir / "reward_stats"
        stats_dir.mkdir(parents=True, exist_ok=True)
        stats = {
            "rank": state.process_index,
            "world_size": state.num_processes,
            **{f.__name__: f.get_statistics() for f in rewards if hasattr(f, "get_statistics")},
        }
        (stats_dir / f"rank{state.process_index}.json").write_text(json.dumps(stats, indent=1, default=str))
        if state.is_main_process:
            mark_run(
                self.output_dir,
                status="trained",
                trained=time.strftime("%Y-%m-%d %H:%M:%S %z"),
                global_step=trainer.state.global_step,
            )
        return trainer

    def generate(self, policy, reward):
        """Completions of ``policy`` on the held-out prompts, scored by ``reward``, one row each
        (:func:`~ume_rl.training.evaluation.generate_completions`), sampled as GRPO's rollouts are
        (``eval_generations`` completions per prompt, ``max_completion_length``)."""
        from ume_rl.training.evaluation import generate_completions

        return generate_completions(policy, self.held_out, reward, **self.script.evaluation_kwargs(self.grpo))

    def evaluate(self, policy, reward):
        """The per-modality summary (:func:`~ume_rl.training.evaluation.summarize_completions`) of
        :meth:`generate`."""
        from ume_rl.training.evaluation import summarize_completions

        return summarize_completions(self.generate(policy, reward))

    def save_evaluation(self, table) -> Path:
        """Write an evaluation table to ``output_dir/evaluation.csv``; returns the path."""
        path = self.output_dir / "evaluation.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(path)
        return path

    def close(self) -> None:
        """Release the output directory's lock (:func:`run_train` does it when the run ends)."""
        if self.lock is not None:
            self.lock.release()


def run_train(script: TrainScriptArguments, grpo: UmeGRPOConfig):
    """The whole run (``ume-rl train``); returns the trained ``GRPOTrainer``."""
    from accelerate import PartialState

    from ume_rl.rewards.ume import UmeReward

    state = PartialState()
    run = TrainRun.prepare(script, grpo)
    try:
        rewards = run.build_rewards(run.load_reward_models())
        trainer = run.train(run.warm_start(), rewards)
        ume_reward = next((f for f in rewards if isinstance(f, UmeReward)), None)
        if script.eval_generations > 0 and ume_reward is not None and state.is_main_process:
            table = run.evaluate(run.output_dir, ume_reward)
            run.save_evaluation(table)
            logger.info(
                "held-out evaluation of the trained policy:\n%s", table.to_string(float_format="%.3f")
            )
        state.wait_for_everyone()
    finally:
        run.close()
    return trainer


def download_models(name_or_path: str | Path, **overrides) -> dict[str, Any]:
    """Fetch what a recipe needs, once (notebook 01): its policy and each hub reward model.

    Returns where each model is: ``"policy"`` (full profile: a snapshot in the Hugging Face cache; tiny: built
    under ``runs/models``) and one entry per modality: the snapshot or directory of its masked LM, or the name
    of its UME (a UME is loaded when a run starts: ``tiny`` is built, a ``.ckpt`` read, a registry name fetched
    with Prescient credentials). Offline without a cached model, ``RuntimeError`` names the fix.

    >>> download_models("tiny")["SMILES"]  # doctest: +SKIP
    'tiny'
    """
    import tempfile

    from ume_rl.models.masked_lms import download_reward_model, is_ume_name
    from ume_rl.profiles import get_profile

    with tempfile.TemporaryDirectory() as unused:  # the recipe is checked, but no run directory is involved
        script, _ = load_recipe(name_or_path, **{"output_dir": f"{unused}/run", **overrides})
    profile = get_profile(script.profile)
    ume = script.ume_model_path or profile.ume
    found: dict[str, Any] = {"policy": profile.policy_path(download=True)}
    for modality, name in script.reward_model_names(profile).items():
        if name == ume or is_ume_name(name) or Path(name).expanduser().exists():
            found[modality] = name
        else:
            found[modality] = download_reward_model(name)
    return found
