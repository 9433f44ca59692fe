"""GRPO training against the UME reward: the trainer builder and the training entry point.

The two entry points keep ``lobster.rl_training``'s signatures, so lobster code switches one import:

>>> from ume_rl import train_ume_grpo
>>> trainer = train_ume_grpo(  # doctest: +SKIP
...     model_path="Qwen/Qwen2-0.5B-Instruct", ume_model_path="ume-mini-base-12M",
...     train_dataset=ds["train"], eval_dataset=ds["validation"], output_dir="runs/grpo",
...     reward_temperature=0.1, reward_batch_size=8, max_steps=1000,
... )

What they fix relative to upstream:

- The config is :class:`~ume_rl.config.UmeGRPOConfig`, TRL's ``GRPOConfig`` with working defaults (bf16
  only where supported, ``report_to="none"``, ``num_generations`` dividing the generation batch). Every
  ``GRPOConfig`` field passes through ``**grpo_kwargs``; ``batch_size`` is accepted as the per-device train
  batch size (the seed guide's name).
- The UME goes to the process's own device (accelerate's, from ``LOCAL_RANK``), never a hard-coded
  ``cuda``, and is loaded outside DeepSpeed ZeRO-3 partitioning. Each rank scores only its own
  completions (TRL gathers the rewards).
- String prompts become chat messages, so an Instruct model's chat template applies.
- Tracking (wandb, trackio, tensorboard) goes through TRL's own ``report_to``; the reward logs its valid
  fraction and per-modality means through TRL's ``log_metric`` into ``trainer.state.log_history``.

The config (:mod:`ume_rl.config`) and the SFT warm start (:mod:`ume_rl.sft`) live in their own modules;
their public names are re-exported here so ``from ume_rl.trainer import ...`` keeps working.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from ume_rl.config import (
    DEFAULT_OUTPUT_DIR,
    MAX_DEFAULT_GENERATIONS,
    UmeGRPOConfig,
    bf16_supported,
    build_grpo_config,
    cpu_processes,
    default_num_generations,
)
from ume_rl.sft import warm_start

__all__ = [
    "DEFAULT_OUTPUT_DIR",
    "DEFAULT_WANDB_PROJECT",
    "MAX_DEFAULT_GENERATIONS",
    "UmeGRPOConfig",
    "bf16_supported",
    "build_grpo_config",
    "build_ume_reward",
    "cpu_processes",
    "create_ume_grpo_trainer",
    "default_num_generations",
    "outside_zero3",
    "to_conversational",
    "train_ume_grpo",
    "warm_start",
]

logger = logging.getLogger(__name__)

DEFAULT_WANDB_PROJECT = "ume-rl-grpo"


@contextlib.contextmanager
def outside_zero3():
    """Build models inside this block outside DeepSpeed ZeRO-3 partitioning.

    Under ZeRO-3, transformers partitions every model created after the training arguments exist; the frozen
    reward model must stay whole on each rank. Without ZeRO-3 this does nothing.
    """
    from transformers.integrations import deepspeed as hf_ds

    ref = hf_ds._hf_deepspeed_config_weak_ref
    if not hf_ds.is_deepspeed_zero3_enabled():
        yield
        return
    hf_ds.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_ds._hf_deepspeed_config_weak_ref = ref


def to_conversational(dataset: Dataset | None) -> Dataset | None:
    """Turn plain-string prompts into one user message, so the policy's chat template applies.

    Datasets whose ``prompt`` column already holds chat messages are returned unchanged.
    """
    if dataset is None or "prompt" not in dataset.column_names or not isinstance(dataset[0]["prompt"], str):
        return dataset
    logger.info("converting %d string prompts to chat messages", len(dataset))
    return dataset.map(lambda row: {"prompt": [{"role": "user", "content": row["prompt"]}]})


def _resolve_args(args, output_dir, run_name, grpo_kwargs) -> GRPOConfig:
    if args is None:
        return build_grpo_config(output_dir, **{"run_name": run_name, **grpo_kwargs})
    if grpo_kwargs:
        raise TypeError(f"pass GRPO settings in args or as keywords, not both (got {sorted(grpo_kwargs)})")
    return args


def _enable_wandb(args: GRPOConfig, project: str, entity: str | None) -> None:
    # transformers' WandbCallback reads WANDB_PROJECT and WANDB_ENTITY, and names the run args.run_name.
    os.environ.setdefault("WANDB_PROJECT", project)
    if entity:
        os.environ.setdefault("WANDB_ENTITY", entity)
    if "wandb" not in args.report_to:
        args.report_to = [*args.report_to, "wandb"]


def build_ume_reward(
    ume_model,
    reward_temperature: float = 0.1,
    reward_batch_size: int = 8,
    penalty_for_invalid: float | None = None,
    reward_mode: str | None = None,
):
    """The :class:`~ume_rl.reward.UmeReward` that :func:`create_ume_grpo_trainer` trains with.

    Takes the trainer's reward keywords, so an evaluation built from the same settings scores exactly as
    training does (``TrainScriptArguments.build_reward`` calls it with a recipe's settings).
    ``reward_batch_size`` is accepted for lobster compatibility and unused (the scorer packs by token budget).
    """
    from ume_rl.reward import UmeReward

    reward_kwargs = {"temperature": reward_temperature, "penalty": penalty_for_invalid}
    if reward_mode is not None:
        reward_kwargs["mode"] = reward_mode
    return UmeReward(ume_model, **reward_kwargs)


def create_ume_grpo_trainer(
    model_path,
    ume_model,
    train_dataset: Dataset,
    eval_dataset: Dataset | None = None,
    output_dir: str | Path = DEFAULT_OUTPUT_DIR,
    reward_temperature: float = 0.1,
    reward_batch_size: int = 8,
    penalty_for_invalid: float | None = None,
    enable_wandb_logging: bool = False,
    wandb_project: str = DEFAULT_WANDB_PROJECT,
    wandb_entity: str | None = None,
    wandb_run_name: str | None = None,
    callbacks: list | None = None,
    reward_mode: str | None = None,
    extra_reward_funcs: list | None = None,
    args: GRPOConfig | None = None,
    **grpo_kwargs: Any,
) -> GRPOTrainer:
    """A ``trl.GRPOTrainer`` that trains ``model_path`` against a :class:`~ume_rl.reward.UmeReward`.

    Args:
        model_path: the policy: hub id, local directory, or a loaded ``PreTrainedModel``.
        ume_model: a loaded UME (see :func:`ume_rl.models.load_ume`); moved to this process's device.
        train_dataset: rows with a ``prompt`` column (chat messages, or strings that become one user message);
            other columns (``modality``...) reach the reward as keyword arguments.
        eval_dataset: optional; used when ``eval_strategy`` is set.
        output_dir: checkpoints, completions and the final model.
        reward_temperature: reward = score / temperature for valid completions.
        reward_batch_size: kept for lobster compatibility; the scorer packs sequences under a token budget.
        penalty_for_invalid: reward of an invalid completion; None: the reward's default, below every valid one.
        enable_wandb_logging: add ``"wandb"`` to ``report_to`` (project ``wandb_project``, run ``wandb_run_name``).
        callbacks: extra ``transformers.TrainerCallback`` objects.
        reward_mode: ``"masked"`` or ``"unmasked"`` scoring; None: the reward's default.
        extra_reward_funcs: more TRL reward callables next to the UME reward (weights via ``reward_weights``).
        args: a ready ``GRPOConfig`` (from a recipe); when given, ``output_dir`` and ``**grpo_kwargs`` are unused.
        **grpo_kwargs: any ``GRPOConfig`` field, plus ``batch_size`` (= ``per_device_train_batch_size``).

    Returns:
        The trainer; its UME reward is ``trainer.reward_funcs[0]``.
    """
    from transformers import AutoTokenizer

    args = _resolve_args(args, output_dir, wandb_run_name, grpo_kwargs)
    if enable_wandb_logging:
        _enable_wandb(args, wandb_project, wandb_entity)

    ume_model.to(args.device)
    reward = build_ume_reward(
        ume_model,
        reward_temperature=reward_temperature,
        reward_batch_size=reward_batch_size,
        penalty_for_invalid=penalty_for_invalid,
        reward_mode=reward_mode,
    )

    if isinstance(model_path, str | Path):
        model_path = str(model_path)
        tokenizer = AutoTokenizer.from_pretrained(model_path)
    else:
        tokenizer = AutoTokenizer.from_pretrained(model_path.config._name_or_path)
    if tokenizer.chat_template is not None:
        train_dataset, eval_dataset = to_conversational(train_dataset), to_conversational(eval_dataset)

    trainer = GRPOTrainer(
        model=model_path,
        reward_funcs=[reward, *(extra_reward_funcs or [])],
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    logger.info(
        "GRPO trainer: policy=%s, UME on %s, temperature=%s, penalty=%s, %d x %d completions per step, report_to=%s",
        model_path if isinstance(model_path, str) else type(model_path).__name__,
        args.device,
        reward_temperature,
        reward.penalty,
        args.generation_batch_size // args.num_generations,
        args.num_generations,
        args.report_to,
    )
    return trainer


def _resume_value(value):
    if isinstance(value, str) and value.lower() in ("true", "last"):
        return True
    return value


def train_ume_grpo(
    model_path,
    ume_model_path,
    train_dataset: Dataset,
    eval_dataset: Dataset | None = None,
    output_dir: str | Path = DEFAULT_OUTPUT_DIR,
    reward_temperature: float = 0.1,
    reward_batch_size: int = 8,
    penalty_for_invalid: float | None = None,
    device=None,
    enable_wandb_logging: bool = False,
    wandb_project: str = DEFAULT_WANDB_PROJECT,
    wandb_entity: str | None = None,
    wandb_run_name: str | None = None,
    callbacks: list | None = None,
    reward_mode: str | None = None,
    extra_reward_funcs: list | None = None,
    args: GRPOConfig | None = None,
    **grpo_kwargs: Any,
) -> GRPOTrainer:
    """Load the UME, build the trainer (:func:`create_ume_grpo_trainer`), train, save the final model.

    Args:
        ume_model_path: anything :func:`ume_rl.models.load_ume` accepts (``"tiny"``, a registry name, a
            ``.ckpt`` path), or a loaded UME.
        device: where the UME goes; default this process's device (accelerate's, from ``LOCAL_RANK``).
        **grpo_kwargs: any ``GRPOConfig`` field; ``resume_from_checkpoint`` (a checkpoint path, or
            ``True``/``"last"`` for the newest one in ``output_dir``) resumes training.

    Other arguments are those of :func:`create_ume_grpo_trainer`. The final model and tokenizer are saved to
    ``args.output_dir``. Returns the trained trainer.
    """
    from ume_rl.models import load_ume

    args = _resolve_args(args, output_dir, wandb_run_name, grpo_kwargs)
    if isinstance(ume_model_path, str | Path):
        logger.info("loading UME %s on %s", ume_model_path, device or args.device)
        with outside_zero3():
            ume_model = load_ume(ume_model_path, device=device or args.device)
    else:
        ume_model = ume_model_path
    trainer = create_ume_grpo_trainer(
        model_path,
        ume_model,
        train_dataset,
        eval_dataset,
        reward_temperature=reward_temperature,
        reward_batch_size=reward_batch_size,
        penalty_for_invalid=penalty_for_invalid,
        enable_wandb_logging=enable_wandb_logging,
        wandb_project=wandb_project,
        wandb_entity=wandb_entity,
        callbacks=callbacks,
        reward_mode=reward_mode,
        extra_reward_funcs=extra_reward_funcs,
        args=args,
    )
    if device is not None:
        ume_model.to(device)
    trainer.train(resume_from_checkpoint=_resume_value(args.resume_from_checkpoint))
    trainer.save_model(args.output_dir)
    logger.info("saved the trained policy and its tokenizer to %s", args.output_dir)
    return trainer
