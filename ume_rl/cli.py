"""Command line: ``ume-rl train --config recipes/tiny.yaml`` (flags override the YAML).

A recipe is one YAML file holding :class:`TrainScriptArguments` fields (profile, models, reward, warm start)
and any ``GRPOConfig`` field (:class:`~ume_rl.trainer.UmeGRPOConfig`); an ``env:`` mapping sets environment
variables (TRL's ``TrlParser``). The same command runs unchanged on several GPUs or nodes::

    ume-rl train --config recipes/tiny.yaml --max_steps 5
    accelerate launch --num_processes 8 -m ume_rl.cli train --config recipes/full.yaml
    accelerate launch --config_file deepspeed_zero3.yaml -m ume_rl.cli train --config recipes/full.yaml
    ume-rl train --config recipes/full.yaml --use_vllm true --vllm_mode colocate   # TRL's own vLLM generation

``train`` does: profile → dataset (generated if missing) → optional SFT warm start → GRPO
(:func:`~ume_rl.trainer.train_ume_grpo`) → final model in ``output_dir`` → evaluation table on the held-out
prompts (``output_dir/evaluation.csv``). Each rank writes the statistics of the completions it scored to
``output_dir/reward_stats/rank<N>.json``.

Notebooks read the same recipes with :func:`load_recipe`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ume_rl.scoring import DEFAULT_MODE
from ume_rl.trainer import UmeGRPOConfig

logger = logging.getLogger(__name__)

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"
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
    """``recipes/<name>.yaml`` for a profile name (``tiny``, ``full``), else the path itself."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = RECIPES_DIR / f"{name_or_path}.yaml"
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
    """Parse ``ume-rl train`` arguments: ``--config recipe.yaml`` then flags that override it."""
    script, grpo = _parser().parse_args_and_config(args=argv)
    _apply_runtime(script)
    return script, grpo


def run_train(script: TrainScriptArguments, grpo: UmeGRPOConfig):
    """Run ``ume-rl train`` with parsed arguments; returns the trained ``GRPOTrainer``."""
    from accelerate import PartialState
    from datasets import concatenate_datasets

    from ume_rl.data import load_or_generate_dataset
    from ume_rl.evaluation import evaluate_policy
    from ume_rl.profiles import get_profile
    from ume_rl.trainer import train_ume_grpo, warm_start

    state = PartialState()
    profile = get_profile(script.profile)
    if grpo.output_dir in (None, TRANSFORMERS_DEFAULT_OUTPUT_DIR):
        grpo.output_dir = str(profile.runs / f"grpo-{profile.name}")
    output_dir = Path(grpo.output_dir)
    # Rank 0 builds the tiny policy and the dataset once; the other ranks then load them.
    with state.main_process_first():
        dataset = load_or_generate_dataset(script.dataset_dir or profile.dataset_dir, progress=False)
        policy = script.model_path or profile.policy_path()
    policy = warm_start(policy, dataset["train"], output_dir / "warm_start", **script.warm_start_kwargs(grpo))
    ume_model = script.ume_model_path or profile.ume
    trainer = train_ume_grpo(
        policy, ume_model, dataset["train"], dataset["validation"], args=grpo, **script.reward_kwargs()
    )
    reward = trainer.reward_funcs[0]
    stats_dir = output_dir / "reward_stats"
    stats_dir.mkdir(parents=True, exist_ok=True)
    stats = {"rank": state.process_index, "world_size": state.num_processes, **reward.get_statistics()}
    (stats_dir / f"rank{state.process_index}.json").write_text(json.dumps(stats, indent=1, default=str))
    if script.eval_generations > 0 and state.is_main_process:
        held_out = concatenate_datasets([dataset["validation"], dataset["test"]])
        table = evaluate_policy(grpo.output_dir, held_out, reward, **script.evaluation_kwargs(grpo))
        table.to_csv(output_dir / "evaluation.csv")
        logger.info("held-out evaluation of the trained policy:\n%s", table.to_string(float_format="%.3f"))
    state.wait_for_everyone()
    return trainer


USAGE = """usage: ume-rl train --config RECIPE.yaml [--FIELD VALUE ...]

GRPO training of a policy against the UME reward. RECIPE: recipes/tiny.yaml or recipes/full.yaml;
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
