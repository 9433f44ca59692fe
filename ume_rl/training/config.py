"""TRL's ``GRPOConfig`` with defaults that work out of the box, and the hardware checks behind them.

>>> from ume_rl.training.config import build_grpo_config
>>> cfg = build_grpo_config("runs/grpo", batch_size=4, max_steps=100)  # doctest: +SKIP

What :class:`UmeGRPOConfig` fixes relative to TRL's defaults:

- bf16 only where the hardware supports it (TRL defaults to bf16 and refuses to start on CPU);
- ``report_to="none"`` (transformers otherwise reports to every installed tracker, wandb included);
- ``log_completions`` off (one summary table at the end of a run instead of a table per logging step);
- ``dataloader_pin_memory`` only with an accelerator;
- ``num_generations`` chosen to divide the generation batch;
- several CPU processes (torchrun, accelerate launch without an accelerator) train together over gloo.

Every ``GRPOConfig`` field passes through :func:`build_grpo_config`'s ``**grpo_kwargs``; ``batch_size`` is
accepted as the per-device train batch size (the upstream guide's name). :func:`bf16_supported` and
:func:`cpu_processes` are shared with the SFT warm start (:mod:`ume_rl.training.sft`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from trl import GRPOConfig

logger = logging.getLogger(__name__)

DEFAULT_OUTPUT_DIR = "./ume_grpo_runs"
MAX_DEFAULT_GENERATIONS = 8  # TRL's default num_generations


def bf16_supported(use_cpu: bool = False) -> bool:
    """True when bf16 mixed precision can run here: an accelerator with bf16 (CUDA Ampere+, XPU, NPU...)."""
    from transformers.utils import is_torch_bf16_gpu_available

    return not use_cpu and is_torch_bf16_gpu_available()


def _has_accelerator() -> bool:
    return torch.accelerator.is_available()


def pin_memory_supported(use_cpu: bool = False) -> bool:
    """True when data loaders should pin memory: an accelerator is used (torch only warns without one)."""
    return not use_cpu and _has_accelerator()


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

    max_steps: int = field(
        default=-1,
        metadata={
            "help": "GRPO steps (the recipes set it). -1: run num_train_epochs passes over the training prompts "
            "instead (logged when the run starts); 0 and other negative values are errors."
        },
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Start over in an output_dir that holds a run: everything in it is deleted first. Without this "
            "(or --resume_from_checkpoint last), ume-rl train refuses a directory that holds a run."
        },
    )
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata={
            "help": "Continue the run in output_dir: 'last' (or 'true') takes its newest complete checkpoint-N, "
            "or pass a checkpoint directory. A complete warm start in output_dir/warm_start is reused."
        },
    )
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
        default=False,
        metadata={
            "help": "Print a table of prompts, completions and rewards at every logging step. Off by default: "
            "a run ends with one held-out summary table (evaluation.csv, the model card)."
        },
    )
    dataloader_pin_memory: bool | None = field(
        default=None,
        metadata={
            "help": "Pin data-loader memory for faster host-to-device copies. None (default): on where an "
            "accelerator is present (pinning without one only warns)."
        },
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
        if self.dataloader_pin_memory is None:
            self.dataloader_pin_memory = pin_memory_supported(self.use_cpu)
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
