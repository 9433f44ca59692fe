"""Command line: ``ume-rl train --config tiny`` (flags override the YAML).

A recipe is one YAML file holding :class:`TrainScriptArguments` fields (profile, models, reward, warm start)
and any ``GRPOConfig`` field (:class:`~ume_rl.trainer.UmeGRPOConfig`); an ``env:`` mapping sets environment
variables (TRL's ``TrlParser``). ``--config`` takes a profile name (``tiny``, ``full``: the recipes shipped in
the package, ``ume_rl/recipes/<name>.yaml``) or a path to your own YAML. The same command runs unchanged on
several GPUs or nodes::

    ume-rl train --config tiny --max_steps 5
    accelerate launch --num_processes 8 -m ume_rl.cli train --config full
    accelerate launch --config_file deepspeed_zero3.yaml -m ume_rl.cli train --config full
    ume-rl train --config full --use_vllm true --vllm_mode colocate   # TRL's own vLLM generation

``train`` does: profile → dataset (generated if missing) → optional SFT warm start → GRPO
(:func:`~ume_rl.trainer.train_ume_grpo`) → final model in ``output_dir`` → evaluation table on the held-out
prompts (``output_dir/evaluation.csv``). Each rank writes the statistics of the completions it scored to
``output_dir/reward_stats/rank<N>.json``. :class:`TrainRun` holds those steps one by one, so notebook 04 runs
the same code as ``ume-rl train``, with evaluations in between.

Notebooks read the same recipes with :func:`load_recipe`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ume_rl.scoring import DEFAULT_MODE
from ume_rl.trainer import UmeGRPOConfig

logger = logging.getLogger(__name__)

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"  # package data: ume_rl/recipes/<profile>.yaml
TRANSFORMERS_DEFAULT_OUTPUT_DIR = "trainer_output"


@dataclass
class TrainScriptArguments:
    """Settings of ``ume-rl train`` that are not ``GRPOConfig`` fields."""

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
    reward_temperature: float = field(default=0.1, metadata={"help": "Reward = score / temperature."})
    reward_batch_size: int = field(
        default=8, metadata={"help": "Kept for lobster compatibility; scoring batches by token budget."}
    )
    penalty_for_invalid: float | None = field(
        default=None, metadata={"help": "Reward of an invalid completion; default: below every valid reward."}
    )
    reward_mode: str = field(
        default=DEFAULT_MODE,
        metadata={"help": "'masked' (exact pseudo-log-likelihood) or 'unmasked' (one pass)."},
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

    def reward_kwargs(self) -> dict:
        """Reward settings as :func:`~ume_rl.trainer.train_ume_grpo` keywords."""
        return {
            "reward_temperature": self.reward_temperature,
            "reward_batch_size": self.reward_batch_size,
            "penalty_for_invalid": self.penalty_for_invalid,
            "reward_mode": self.reward_mode,
        }

    def build_reward(self, ume_model):
        """The :class:`~ume_rl.reward.UmeReward` GRPO trains with under these settings (for evaluations)."""
        from ume_rl.trainer import build_ume_reward

        return build_ume_reward(ume_model, **self.reward_kwargs())

    def warm_start_kwargs(self, grpo: UmeGRPOConfig) -> dict:
        """Warm-start settings as :func:`~ume_rl.trainer.warm_start` keywords (seed and checkpointing from GRPO)."""
        return {
            "num_train_epochs": self.warm_start_epochs,
            "learning_rate": self.warm_start_learning_rate,
            "per_device_train_batch_size": self.warm_start_batch_size,
            "seed": grpo.seed,
            "gradient_checkpointing": grpo.gradient_checkpointing,
        }

    def evaluation_kwargs(self, grpo: UmeGRPOConfig) -> dict:
        """:func:`~ume_rl.evaluation.evaluate_policy` keywords matching the GRPO rollouts."""
        return {"num_generations": self.eval_generations, "max_new_tokens": grpo.max_completion_length}


def _parser():
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
        raise FileNotFoundError(f"recipe {path} not found: pass a YAML path or one of tiny, full")
    return path


def _apply_runtime(script: TrainScriptArguments) -> None:
    if script.torch_num_threads:
        import torch

        torch.set_num_threads(script.torch_num_threads)


def load_recipe(name_or_path: str | Path, **overrides) -> tuple[TrainScriptArguments, UmeGRPOConfig]:
    """Read a recipe (a profile name or a YAML path); keyword overrides win, ``None`` values are ignored.

    Applies the recipe's ``env`` variables and ``torch_num_threads``, as ``ume-rl train`` does.

    >>> script, grpo = load_recipe("tiny", max_steps=3, output_dir="/tmp/ume_rl_doctest")  # doctest: +SKIP
    >>> grpo.max_steps, script.warm_start_epochs  # doctest: +SKIP
    (3, 8.0)
    """
    config = yaml.safe_load(recipe_path(name_or_path).read_text()) or {}
    for key, value in (config.pop("env", None) or {}).items():
        os.environ[key] = str(value)
    overrides = {key: str(value) if isinstance(value, Path) else value for key, value in overrides.items()}
    config.update({key: value for key, value in overrides.items() if value is not None})
    script, grpo = _parser().parse_dict(config)
    _apply_runtime(script)
    return script, grpo


def parse_train_args(argv: list[str] | None = None) -> tuple[TrainScriptArguments, UmeGRPOConfig]:
    """Parse ``ume-rl train`` arguments: ``--config RECIPE`` (a profile name or a YAML path), then flags that
    override it."""
    args: list[str] = []
    for arg in sys.argv[1:] if argv is None else argv:
        if arg.startswith("--config="):  # TrlParser reads only the two-word form
            args += ["--config", str(recipe_path(arg.split("=", 1)[1]))]
        elif args and args[-1] == "--config":
            args.append(str(recipe_path(arg)))
        else:
            args.append(arg)
    argv = args
    script, grpo = _parser().parse_args_and_config(args=argv)
    _apply_runtime(script)
    return script, grpo


def default_output_dir(profile) -> Path:
    """Where a run of ``profile`` goes unless ``output_dir`` is set: ``runs/grpo-<profile>``."""
    return profile.runs / f"grpo-{profile.name}"


@dataclass
class TrainRun:
    """The steps of ``ume-rl train``, one call each, for :func:`run_train` and notebook 04.

    >>> run = TrainRun.prepare(*load_recipe("tiny"))  # doctest: +SKIP
    >>> ume = run.load_ume(); reward = run.script.build_reward(ume)  # doctest: +SKIP
    >>> policy = run.warm_start(); trainer = run.train(policy, ume)  # doctest: +SKIP
    >>> run.save_evaluation(run.evaluate(run.output_dir, reward))  # doctest: +SKIP
    """

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
            dataset = load_or_generate_dataset(script.dataset_dir or profile.dataset_dir, progress=False)
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
        from ume_rl.trainer import outside_zero3

        name = self.script.ume_model_path or self.profile.ume
        logger.info("loading UME %s on %s", name, self.grpo.device)
        with outside_zero3():
            return load_ume(name, device=self.grpo.device, seed=self.profile.seed)

    def warm_start(self):
        """SFT of the base policy on the training references (``output_dir/warm_start``); returns the policy."""
        from ume_rl.trainer import warm_start

        kwargs = self.script.warm_start_kwargs(self.grpo)
        return warm_start(self.base_policy, self.dataset["train"], self.output_dir / "warm_start", **kwargs)

    def train(self, policy, ume_model):
        """GRPO from ``policy``; saves the final model in ``output_dir`` and this rank's reward statistics in
        ``output_dir/reward_stats/rank<N>.json``. Returns the trainer (its reward: ``trainer.reward_funcs[0]``)."""
        from accelerate import PartialState

        from ume_rl.trainer import train_ume_grpo

        train, validation = self.dataset["train"], self.dataset["validation"]
        trainer = train_ume_grpo(
            policy, ume_model, train, validation, args=self.grpo, **self.script.reward_kwargs()
        )
        state = PartialState()
        stats_dir = self.output_dir / "reward_stats"
        stats_dir.mkdir(parents=True, exist_ok=True)
        stats = {
            "rank": state.process_index,
            "world_size": state.num_processes,
            **trainer.reward_funcs[0].get_statistics(),
        }
        (stats_dir / f"rank{state.process_index}.json").write_text(json.dumps(stats, indent=1, default=str))
        return trainer

    def evaluate(self, policy, reward):
        """:func:`~ume_rl.evaluation.evaluate_policy` of ``policy`` on the held-out prompts, sampled as GRPO's
        rollouts are (``eval_generations`` completions per prompt, ``max_completion_length``)."""
        from ume_rl.evaluation import evaluate_policy

        return evaluate_policy(policy, self.held_out, reward, **self.script.evaluation_kwargs(self.grpo))

    def save_evaluation(self, table) -> Path:
        """Write an evaluation table to ``output_dir/evaluation.csv``; returns the path."""
        path = self.output_dir / "evaluation.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(path)
        return path


def run_train(script: TrainScriptArguments, grpo: UmeGRPOConfig):
    """Run ``ume-rl train`` with parsed arguments; returns the trained ``GRPOTrainer``."""
    from accelerate import PartialState

    state = PartialState()
    run = TrainRun.prepare(script, grpo)
    ume_model = run.load_ume()
    trainer = run.train(run.warm_start(), ume_model)
    if script.eval_generations > 0 and state.is_main_process:
        table = run.evaluate(run.output_dir, trainer.reward_funcs[0])
        run.save_evaluation(table)
        logger.info("held-out evaluation of the trained policy:\n%s", table.to_string(float_format="%.3f"))
    state.wait_for_everyone()
    return trainer


USAGE = """usage: ume-rl train --config RECIPE [--FIELD VALUE ...]

GRPO training of a policy against the UME reward. RECIPE: tiny or full (the recipes shipped with
ume_rl), or the path of your own YAML;
any field of the recipe (script settings or GRPOConfig) can be overridden by a flag.
Run `ume-rl train --help` for every field."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ume-rl`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command != "train":
        print(f"unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_train(*parse_train_args(rest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
