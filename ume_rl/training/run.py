"""The training run: recipe → dataset → warm start → GRPO → evaluation, one step per call.

``ume-rl train`` (:mod:`ume_rl.cli`) and notebook 04 both run these steps, so the notebook runs the command's
own code with evaluations in between:

>>> run = TrainRun.prepare(*load_recipe("tiny", max_steps=3))  # doctest: +SKIP
>>> ume = run.load_ume(); rewards = run.build_rewards(ume)  # doctest: +SKIP
>>> trainer = run.train(run.warm_start(), rewards)  # doctest: +SKIP
>>> run.save_evaluation(run.evaluate(run.output_dir, rewards[0]))  # doctest: +SKIP

A recipe is one YAML file holding :class:`TrainScriptArguments` fields (profile, models, rewards, warm start)
and any ``GRPOConfig`` field (:class:`~ume_rl.training.config.UmeGRPOConfig`); an ``env:`` mapping sets
environment variables (TRL's ``TrlParser``). Rewards are named (``reward_funcs: [ume, complexity]``, see
:mod:`ume_rl.rewards.registry`) and weighted by TRL's ``reward_weights``. Recipes ship in the package
(``ume_rl/recipes/<profile>.yaml``); :func:`load_recipe` takes a profile name or a YAML path.

Each rank writes the statistics of the completions it scored to ``output_dir/reward_stats/rank<N>.json``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ume_rl.rewards.registry import build_reward_funcs
from ume_rl.rewards.scoring import DEFAULT_MODE
from ume_rl.training.config import UmeGRPOConfig

logger = logging.getLogger(__name__)

RECIPES_DIR = (
    Path(__file__).resolve().parent.parent / "recipes"
)  # package data: ume_rl/recipes/<profile>.yaml
TRANSFORMERS_DEFAULT_OUTPUT_DIR = "trainer_output"


@dataclass
class TrainScriptArguments:
    """Settings of a training run that are not ``GRPOConfig`` fields."""

    profile: str | None = field(
        default=None,
        metadata={"help": "'tiny' or 'full'; default $UME_RL_PROFILE, else full on CUDA, else tiny."},
    )
    model_path: str | None = field(
        default=None, metadata={"help": "Policy (hub id or directory); default the profile's policy."}
    )
    ume_model_path: str | None = field(
        default=None,
        metadata={"help": "UME: 'tiny', a registry name or a .ckpt path; default the profile's UME."},
    )
    dataset_dir: str | None = field(
        default=None,
        metadata={"help": "Saved DatasetDict; default the profile's dataset (generated if missing)."},
    )
    reward_funcs: list[str] = field(
        default_factory=lambda: ["ume"],
        metadata={"help": "Rewards by name (ume, complexity), weighted by reward_weights."},
    )
    reward_temperature: float = field(default=0.1, metadata={"help": "UME reward = score / temperature."})
    reward_penalty: float | None = field(
        default=None,
        metadata={"help": "UME reward of an invalid completion; default: below every valid one."},
    )
    reward_mode: str = field(
        default=DEFAULT_MODE,
        metadata={"help": "'masked' (exact pseudo-log-likelihood) or 'unmasked' (one pass)."},
    )
    complexity_measure: str = field(
        default="both", metadata={"help": "Complexity reward: 'entropy', 'kmer' or 'both'."}
    )
    warm_start_epochs: float = field(
        default=0.0, metadata={"help": "Epochs of SFT on the reference completions before GRPO (0: none)."}
    )
    warm_start_learning_rate: float = field(
        default=2e-5, metadata={"help": "Learning rate of the warm start."}
    )
    warm_start_batch_size: int = field(
        default=16, metadata={"help": "Per-device batch size of the warm start."}
    )
    eval_generations: int = field(
        default=8, metadata={"help": "Completions per held-out prompt in the final evaluation (0: skip it)."}
    )
    torch_num_threads: int | None = field(
        default=None,
        metadata={"help": "CPU threads for torch (tiny models run fastest on 1); default torch's."},
    )

    def reward_settings(self) -> dict[str, dict]:
        """Keyword arguments per reward name, for :func:`~ume_rl.rewards.registry.build_reward_funcs`."""
        return {
            "ume": {
                "temperature": self.reward_temperature,
                "penalty": self.reward_penalty,
                "mode": self.reward_mode,
            },
            "complexity": {"measure": self.complexity_measure},
        }

    def warm_start_kwargs(self, grpo: UmeGRPOConfig) -> dict:
        """Warm-start settings as :func:`~ume_rl.training.sft.warm_start` keywords (seed and checkpointing from GRPO)."""
        return {
            "num_train_epochs": self.warm_start_epochs,
            "learning_rate": self.warm_start_learning_rate,
            "per_device_train_batch_size": self.warm_start_batch_size,
            "seed": grpo.seed,
            "gradient_checkpointing": grpo.gradient_checkpointing,
        }

    def evaluation_kwargs(self, grpo: UmeGRPOConfig) -> dict:
        """:func:`~ume_rl.training.evaluation.evaluate_policy` keywords matching the GRPO rollouts."""
        return {"num_generations": self.eval_generations, "max_new_tokens": grpo.max_completion_length}


def recipe_parser():
    """TRL's ``TrlParser`` over :class:`TrainScriptArguments` and :class:`UmeGRPOConfig`."""
    from trl import TrlParser

    return TrlParser((TrainScriptArguments, UmeGRPOConfig), prog="ume-rl train")


def recipe_path(name_or_path: str | Path) -> Path:
    """The recipe file for a profile name (``tiny``, ``full``: shipped in the package) or a YAML path.

    ``recipes/<name>.yaml`` (the repository's old layout) still finds the packaged recipe when no such file exists.
    """
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = RECIPES_DIR / f"{name_or_path}.yaml"
    elif not path.is_file() and path.parent.name == "recipes" and (RECIPES_DIR / path.name).is_file():
        path = RECIPES_DIR / path.name
    if not path.is_file():
        shipped = ", ".join(sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")))
        raise FileNotFoundError(f"recipe {path} not found: pass a YAML path or one of {shipped}")
    return path


def apply_runtime(script: TrainScriptArguments) -> None:
    """Apply the run's process settings (``torch_num_threads``)."""
    if script.torch_num_threads:
        import torch

        torch.set_num_threads(script.torch_num_threads)


def load_recipe(name_or_path: str | Path, **overrides) -> tuple[TrainScriptArguments, UmeGRPOConfig]:
    """Read a recipe (a profile name or a YAML path); keyword overrides win, ``None`` values are ignored.

    Applies the recipe's ``env`` variables and ``torch_num_threads``, as ``ume-rl train`` does.

    >>> script, grpo = load_recipe("tiny", max_steps=3, output_dir="/tmp/ume_rl_doctest")
    >>> grpo.max_steps, script.warm_start_epochs, script.reward_funcs
    (3, 8, ['ume'])
    """
    config = yaml.safe_load(recipe_path(name_or_path).read_text()) or {}
    for key, value in (config.pop("env", None) or {}).items():
        os.environ[key] = str(value)
    overrides = {key: str(value) if isinstance(value, Path) else value for key, value in overrides.items()}
    config.update({key: value for key, value in overrides.items() if value is not None})
    script, grpo = recipe_parser().parse_dict(config)
    apply_runtime(script)
    return script, grpo


def default_output_dir(profile) -> Path:
    """Where a run of ``profile`` goes unless ``output_dir`` is set: ``runs/grpo-<profile>``."""
    return profile.runs / f"grpo-{profile.name}"


@dataclass
class TrainRun:
    """The steps of a training run, one call each, for :func:`run_train` and notebook 04."""

    script: TrainScriptArguments
    grpo: UmeGRPOConfig
    profile: Any  # ume_rl.profiles.Profile
    dataset: Any  # datasets.DatasetDict with train / validation / test
    base_policy: str | Path

    @classmethod
    def prepare(cls, script: TrainScriptArguments, grpo: UmeGRPOConfig) -> TrainRun:
        """Resolve the profile and the output directory; load (or generate) the dataset and the base policy."""
        from accelerate import PartialState

        from ume_rl.data import load_or_generate_dataset
        from ume_rl.profiles import get_profile

        profile = get_profile(script.profile)
        if grpo.output_dir in (None, TRANSFORMERS_DEFAULT_OUTPUT_DIR):
            grpo.output_dir = str(default_output_dir(profile))
        # Rank 0 builds the tiny policy and the dataset once; the other ranks then load them.
        with PartialState().main_process_first():
            dataset = load_or_generate_dataset(
                script.dataset_dir or profile.dataset_dir, progress=False, references=profile.references
            )
            policy = script.model_path or profile.policy_path()
        return cls(script, grpo, profile, dataset, policy)

    @property
    def output_dir(self) -> Path:
        return Path(self.grpo.output_dir)

    @property
    def held_out(self):
        """The prompts no step trains on: validation + test."""
        from datasets import concatenate_datasets

        return concatenate_datasets([self.dataset["validation"], self.dataset["test"]])

    def load_ume(self):
        """The reward model (``ume_model_path``, else the profile's) on this process's device, outside ZeRO-3."""
        from ume_rl.models import load_ume
        from ume_rl.training.trainer import outside_zero3

        name = self.script.ume_model_path or self.profile.ume_path()
        logger.info("loading UME %s on %s", name, self.grpo.device)
        with outside_zero3():
            return load_ume(name, device=self.grpo.device, seed=self.profile.seed)

    def build_rewards(self, ume_model) -> list:
        """The recipe's ``reward_funcs``, built with its reward settings (the UME reward scores on ``ume_model``)."""
        return build_reward_funcs(self.script.reward_funcs, ume_model, self.script.reward_settings())

    def warm_start(self):
        """SFT of the base policy on the training references (``output_dir/warm_start``); returns the policy."""
        from ume_rl.training.sft import warm_start

        kwargs = self.script.warm_start_kwargs(self.grpo)
        return warm_start(self.base_policy, self.dataset["train"], self.output_dir / "warm_start", **kwargs)

    def train(self, policy, rewards: list):
        """GRPO from ``policy`` against ``rewards`` (:meth:`build_rewards`); saves the final model in
        ``output_dir`` and this rank's reward statistics in ``output_dir/reward_stats/rank<N>.json``.
        Returns the trainer."""
        from accelerate import PartialState

        from ume_rl.training.trainer import build_trainer, resume_value

        trainer = build_trainer(
            policy, rewards, self.dataset["train"], self.dataset["validation"], args=self.grpo
        )
        trainer.train(resume_from_checkpoint=resume_value(self.grpo.resume_from_checkpoint))
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
        return trainer

    def evaluate(self, policy, reward):
        """:func:`~ume_rl.training.evaluation.evaluate_policy` of ``policy`` on the held-out prompts, sampled as
        GRPO's rollouts are (``eval_generations`` completions per prompt, ``max_completion_length``)."""
        from ume_rl.training.evaluation import evaluate_policy

        return evaluate_policy(policy, self.held_out, reward, **self.script.evaluation_kwargs(self.grpo))

    def save_evaluation(self, table) -> Path:
        """Write an evaluation table to ``output_dir/evaluation.csv``; returns the path."""
        path = self.output_dir / "evaluation.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(path)
        return path


def run_train(script: TrainScriptArguments, grpo: UmeGRPOConfig):
    """The whole run (``ume-rl train``); returns the trained ``GRPOTrainer``."""
    from accelerate import PartialState

    from ume_rl.rewards.ume import UmeReward

    state = PartialState()
    run = TrainRun.prepare(script, grpo)
    rewards = run.build_rewards(run.load_ume())
    trainer = run.train(run.warm_start(), rewards)
    ume_reward = next((f for f in rewards if isinstance(f, UmeReward)), None)
    if script.eval_generations > 0 and ume_reward is not None and state.is_main_process:
        table = run.evaluate(run.output_dir, ume_reward)
        run.save_evaluation(table)
        logger.info("held-out evaluation of the trained policy:\n%s", table.to_string(float_format="%.3f"))
    state.wait_for_everyone()
    return trainer
