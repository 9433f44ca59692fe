"""Warm start: supervised fine-tuning (TRL ``SFTTrainer``) on the dataset's tagged reference completions.

>>> from ume_rl import warm_start
>>> policy = warm_start("Qwen/Qwen2-0.5B-Instruct", ds["train"], "runs/warm")  # doctest: +SKIP
>>> trainer = create_ume_grpo_trainer(policy, ume, ds["train"])  # doctest: +SKIP

A model that has never seen the tag format emits no tags, so every completion of a group gets the invalid
penalty: the group has zero advantage and GRPO alone cannot leave that state. :func:`warm_start` teaches
the format first; its output directory is the policy GRPO starts from.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from datasets import Dataset

from ume_rl.training.config import bf16_supported, cpu_processes

logger = logging.getLogger(__name__)


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
