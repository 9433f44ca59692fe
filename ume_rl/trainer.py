"""GRPO training against the UME reward: config defaults, the trainer builder, and the SFT warm start.

The two entry points keep ``lobster.rl_training``'s signatures, so lobster code switches one import:

>>> from ume_rl import train_ume_grpo
>>> trainer = train_ume_grpo(  # doctest: +SKIP
...     model_path="Qwen/Qwen2-0.5B-Instruct", ume_model_path="ume-mini-base-12M",
...     train_dataset=ds["train"], eval_dataset=ds["validation"], output_dir="runs/grpo",
...     reward_temperature=0.1, reward_batch_size=8, max_steps=1000,
... )

What they fix relative to upstream:

- :class:`UmeGRPOConfig` is TRL's ``GRPOConfig`` with working defaults: bf16 only where the hardware
  supports it (TRL defaults to bf16 and refuses to start on CPU), ``report_to="none"`` (transformers
  otherwise reports to every installed tracker, wandb included), ``log_completions`` on, and
  ``num_generations`` chosen to divide the generation batch. Every ``GRPOConfig`` field passes through
  ``**grpo_kwargs``; ``batch_size`` is accepted as the per-device train batch size (the seed guide's name).
- The UME goes to the process's own device (accelerate's, from ``LOCAL_RANK``), never a hard-coded
  ``cuda``, and is loaded outside DeepSpeed ZeRO-3 partitioning. Each rank scores only its own
  completions (TRL gathers the rewards).
- String prompts become chat messages, so an Instruct model's chat template applies.
- Tracking (wandb, trackio, tensorboard) goes through TRL's own ``report_to``; the reward logs its valid
  fraction and per-modality means through TRL's ``log_metric`` into ``trainer.state.log_history``.

:func:`warm_start` fine-tunes a policy on the dataset's reference completions (TRL ``SFTTrainer``) so a
model that has never seen the tag format emits tags before GRPO: a group whose completions all get the
invalid penalty has zero advantage, so GRPO alone cannot leave that state.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

logger = logging.getLogger(__name__)

DEFAULT_OUTPUT_DIR = "./ume_grpo_runs"
DEFAULT_WANDB_PROJECT = "ume-rl-grpo"
MAX_DEFAULT_GENERATIONS = 8  # TRL's default num_generations


def bf16_supported(use_cpu: bool = False) -> bool:
    """True when bf16 mixed precision can run here: an accelerator with bf16 (CUDA Ampere+, XPU, NPU...)."""
    from transformers.utils import is_torch_bf16_gpu_available

    return not use_cpu and is_torch_bf16_gpu_available()


def _has_accelerator() -> bool:
    return torch.accelerator.is_available()


def _world_size() -> int:
    # Set by torchrun and accelerate launch; read before the distributed state exists.
    return int(os.environ.get("WORLD_SIZE", "1"))


def cpu_processes() -> bool:
    """True for several processes (torchrun, accelerate launch) on a machine without an accelerator.

    Every trainer config of such a run needs ``use_cpu=True``: without it each process silently trains alone
    (and a config built later resets accelerate's distributed state); with it accelerate joins them over gloo.
    """
    return _world_size() > 1 and not _has_accelerator()


def default_num_generations(generation_batch_size: int, largest: int = MAX_DEFAULT_GENERATIONS) -> int:
    """The largest group size ``<= largest`` (and ``>= 2``) that divides ``generation_batch_size``.

    >>> default_num_generations(4), default_num_generations(12), default_num_generations(7)
    (4, 6, 7)
    """
    for g in range(min(largest, generation_batch_size), 1, -1):
        if generation_batch_size % g == 0:
            return g
    raise ValueError(
        f"GRPO needs at least 2 completions per prompt, but the generation batch holds {generation_batch_size}. "
        "Raise per_device_train_batch_size (or steps_per_generation / generation_batch_size)."
    )


@dataclass
class UmeGRPOConfig(GRPOConfig):
    """TRL's ``GRPOConfig`` with defaults that work out of the box (see the module docstring).

    Only these defaults differ from ``GRPOConfig``; every other field is TRL's.
    """

    bf16: bool | None = field(
        default=None,
        metadata={
            "help": "bf16 mixed precision. None (default): on where the hardware supports it (CUDA Ampere or newer, "
            "XPU, NPU), off elsewhere (CPU), unless fp16 is set."
        },
    )
    report_to: None | str | list[str] = field(
        default="none",
        metadata={"help": "Trackers to report to ('wandb', 'trackio', 'tensorboard', ...). Default 'none'."},
    )
    num_generations: int | None = field(
        default=None,
        metadata={
            "help": "Completions sampled per prompt. None (default): the largest value <= 8 that divides the "
            "generation batch (per_device_train_batch_size x processes x steps_per_generation)."
        },
    )
    log_completions: bool = field(
        default=True,
        metadata={"help": "Log a sample of prompts, completions and rewards at every logging step."},
    )
    num_completions_to_print: int | None = field(
        default=4,
        metadata={"help": "Completions printed per logging step when log_completions is on (None: all)."},
    )

    def __post_init__(self):
        world = _world_size()
        if not self.use_cpu and cpu_processes():
            logger.info("no accelerator: %d CPU processes train together (use_cpu=True, gloo)", world)
            self.use_cpu = True
        if self.bf16 is None:
            self.bf16 = not self.fp16 and bf16_supported(self.use_cpu)
        if self.num_generations is None:
            gen_batch = self.generation_batch_size or (
                self.per_device_train_batch_size
                * world
                * (self.steps_per_generation or self.gradient_accumulation_steps)
            )
            self.num_generations = default_num_generations(gen_batch)
        eval_generations = self.num_generations_eval or self.num_generations
        if (
            self.eval_strategy not in ("no", None)
            and (self.per_device_eval_batch_size * world) % eval_generations
        ):
            # TRL requires whole groups in the eval batch too; the default eval batch (8) may not hold them.
            self.per_device_eval_batch_size = eval_generations
        super().__post_init__()


def build_grpo_config(output_dir: str | Path = DEFAULT_OUTPUT_DIR, **grpo_kwargs: Any) -> UmeGRPOConfig:
    """An :class:`UmeGRPOConfig`; ``batch_size`` is accepted as ``per_device_train_batch_size``.

    >>> cfg = build_grpo_config("/tmp/ume_rl_doctest", batch_size=4, max_steps=2)
    >>> cfg.per_device_train_batch_size, cfg.num_generations, cfg.report_to
    (4, 4, [])
    """
    if "batch_size" in grpo_kwargs:
        batch_size = grpo_kwargs.pop("batch_size")
        per_device = grpo_kwargs.setdefault("per_device_train_batch_size", batch_size)
        if per_device != batch_size:
            raise ValueError(
                f"batch_size={batch_size} and per_device_train_batch_size={per_device} disagree: pass only one."
            )
    return UmeGRPOConfig(output_dir=str(output_dir), **grpo_kwargs)


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


def warm_start(
    model_path,
    dataset: Dataset,
    output_dir: str | Path,
    num_train_epochs: float = 1.0,
    learning_rate: float = 2e-5,
    per_device_train_batch_size: int = 16,
    **sft_kwargs: Any,
):
    """Supervised fine-tuning on the dataset's reference completions; returns ``output_dir`` (a ``Path``).

    Each row's ``prompt`` (chat messages or a string) and ``completion`` (the tagged reference, e.g.
    ``<dna>ACGT</dna>``) become a conversational prompt/completion pair; the loss covers the completion only.
    The fine-tuned model and tokenizer are saved to ``output_dir``, ready for :func:`create_ume_grpo_trainer`.

    Args:
        model_path: the policy (hub id or local directory).
        dataset: rows with ``prompt`` and ``completion`` columns (``ume_rl.data`` builds them).
        num_train_epochs, learning_rate, per_device_train_batch_size: SFT settings; recipes set them per model.
        **sft_kwargs: any ``trl.SFTConfig`` field.

    ``num_train_epochs=0`` skips the warm start and returns ``model_path`` as given.
    """
    from accelerate import PartialState
    from trl import SFTConfig, SFTTrainer

    if not num_train_epochs:
        logger.info("warm start skipped (num_train_epochs=0)")
        return model_path

    def conversation(row):
        prompt = row["prompt"]
        if isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        return {"prompt": prompt, "completion": [{"role": "assistant", "content": row["completion"]}]}

    pairs = dataset.map(conversation, remove_columns=dataset.column_names)
    sft_kwargs.setdefault("use_cpu", cpu_processes())
    sft_kwargs.setdefault("bf16", not sft_kwargs.get("fp16", False) and bf16_supported(sft_kwargs["use_cpu"]))
    sft_kwargs.setdefault("report_to", "none")
    sft_kwargs.setdefault("save_strategy", "no")
    sft_kwargs.setdefault("logging_steps", 10)
    config = SFTConfig(
        output_dir=str(output_dir),
        num_train_epochs=num_train_epochs,
        learning_rate=learning_rate,
        per_device_train_batch_size=per_device_train_batch_size,
        **sft_kwargs,
    )
    trainer = SFTTrainer(model=str(model_path), args=config, train_dataset=pairs)
    trainer.train()
    trainer.save_model(str(output_dir))
    PartialState().wait_for_everyone()  # other ranks load the saved model next
    logger.info(
        "warm start: %s epochs of SFT on %d references, saved to %s", num_train_epochs, len(pairs), output_dir
    )
    return Path(output_dir)
