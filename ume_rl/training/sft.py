"""Warm start: supervised fine-tuning (TRL ``SFTTrainer``) on the dataset's tagged reference completions.

>>> from ume_rl import warm_start
>>> policy = warm_start("Qwen/Qwen2-0.5B-Instruct", ds["train"], "runs/warm")  # doctest: +SKIP
>>> trainer = create_ume_grpo_trainer(policy, ume, ds["train"])  # doctest: +SKIP

A model that has never seen the tag format emits no tags, so every completion of a group gets the invalid
penalty: the group has zero advantage and GRPO alone cannot leave that state. :func:`warm_start` teaches
the format first; its output directory is the policy GRPO starts from.

A warm start can begin with a **corpus stage**: ``corpus_steps`` of causal language modelling on tagged real
sequences (``corpus``, e.g. ``<smiles>CCO</smiles>``, packed into ``corpus_max_length``-token blocks by TRL's
``SFTTrainer``). The SFT stage teaches the format, answering prompts; the corpus stage teaches the languages
themselves, which a few hundred references cannot (the demo policy writes valid SMILES only after it).

A finished warm start writes ``ume_rl_warm_start.json`` (its settings) after the model and tokenizer, and a
manifest of every file's size and sha256 last (:mod:`ume_rl.models.integrity`); a directory whose files match
its manifest is complete (:func:`completed_warm_start`) and is reused instead of trained again (a resumed run,
a run killed before its first checkpoint, a notebook cell run twice). Anything else found there (an
interrupted warm start, a truncated or changed file) is deleted and trained again, never loaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datasets import Dataset

from ume_rl.models.integrity import WEIGHT_FILES, manifest_problem, write_manifest
from ume_rl.training.config import bf16_supported, cpu_processes, pin_memory_supported

logger = logging.getLogger(__name__)

WARM_START_MARKER = "ume_rl_warm_start.json"
REUSE = ("same", "any", "never")


def completed_warm_start(output_dir: str | Path) -> dict | None:
    """The settings of the complete warm start in ``output_dir``, or ``None`` when there is none.

    Complete means: the model config, weights and tokenizer, the settings record, and the manifest written last,
    which every file matches (size and sha256).
    """
    out = Path(output_dir)
    if not out.is_dir():
        return None
    problem = manifest_problem(out)
    if problem is not None:
        if (out / WARM_START_MARKER).is_file():
            logger.warning("the warm start in %s is damaged (%s): it is not reused", out, problem)
        return None
    try:
        record = json.loads((out / WARM_START_MARKER).read_text())
    except (OSError, ValueError):
        return None
    files = (out / "config.json").is_file() and (out / "tokenizer_config.json").is_file()
    if not (isinstance(record, dict) and files and any((out / name).is_file() for name in WEIGHT_FILES)):
        return None
    return record.get("settings", {})


def warm_start(
    model_path,
    dataset: Dataset,
    output_dir: str | Path,
    num_train_epochs: float = 1.0,
    learning_rate: float = 2e-5,
    per_device_train_batch_size: int = 16,
    reuse: str = "same",
    corpus: Sequence[str] = (),
    corpus_steps: int = 0,
    corpus_learning_rate: float = 3e-3,
    corpus_max_length: int = 128,
    **sft_kwargs: Any,
):
    """Supervised fine-tuning on the dataset's reference completions; returns ``output_dir`` (a ``Path``).

    Each row's ``prompt`` (chat messages or a string) and ``completion`` (the tagged reference, e.g.
    ``<dna>ACGT</dna>``) become a conversational prompt/completion pair; the loss covers the completion only.
    The fine-tuned model and tokenizer are saved to ``output_dir``, ready for :func:`create_ume_grpo_trainer`.

    Args:
        model_path: the policy (hub id or local directory).
        dataset: rows with ``prompt`` and ``completion`` columns (``ume_rl.data.generate`` builds them).
        num_train_epochs, learning_rate, per_device_train_batch_size: SFT settings; recipes set them per model.
        reuse: a complete warm start already in ``output_dir`` (:func:`completed_warm_start`) is returned as it
            is when its settings are the same (``"same"``), whatever its settings (``"any"``, with a warning
            when they differ: a resumed run, whose policy weights come from its checkpoint), or never.
        corpus, corpus_steps, corpus_learning_rate, corpus_max_length: the corpus stage, before SFT: ``corpus_steps``
            optimizer steps of causal language modelling on the texts ``corpus`` (tagged sequences), packed into
            blocks of ``corpus_max_length`` tokens (``0`` steps: no corpus stage).
        **sft_kwargs: any ``trl.SFTConfig`` field.

    ``num_train_epochs=0`` and ``corpus_steps=0`` skip the warm start and return ``model_path`` as given.

    Raises:
        ValueError: ``corpus_steps`` > 0 with an empty ``corpus``, or an unknown ``reuse``.
    """
    from accelerate import PartialState
    from trl import SFTConfig, SFTTrainer

    if not num_train_epochs and not corpus_steps:
        logger.info("warm start skipped (num_train_epochs=0, corpus_steps=0)")
        return model_path
    if reuse not in REUSE:
        raise ValueError(f"reuse must be one of {REUSE}, got {reuse!r}")
    if corpus_steps and not corpus:
        raise ValueError(
            f"corpus_steps={corpus_steps} needs corpus texts; pass corpus=[...] or corpus_steps=0"
        )
    out = Path(output_dir)
    settings = {
        "model_path": str(model_path),
        "rows": len(dataset),
        "num_train_epochs": num_train_epochs,
        "learning_rate": learning_rate,
        "per_device_train_batch_size": per_device_train_batch_size,
        **sft_kwargs,
    }
    if corpus_steps:
        settings["corpus"] = {
            "texts": len(corpus),
            "sha256": hashlib.sha256("\n".join(corpus).encode()).hexdigest(),
            "steps": corpus_steps,
            "learning_rate": corpus_learning_rate,
            "max_length": corpus_max_length,
        }
    settings = json.loads(json.dumps(settings, default=str))
    done = completed_warm_start(out) if reuse != "never" else None
    if done is not None and (done == settings or reuse == "any"):
        if done != settings:
            changed = sorted(k for k in {**done, **settings} if done.get(k) != settings.get(k))
            logger.warning("reusing the warm start in %s although its settings differ in %s", out, changed)
        logger.info("warm start: reusing the complete warm start in %s", out)
        return out
    state = PartialState()
    found = out.is_dir() and any(out.iterdir())
    state.wait_for_everyone()  # every rank has looked before the main process clears it
    if found and state.is_main_process:
        why = "trained with other settings" if done is not None else "incomplete (no record written last)"
        logger.warning("the warm start in %s is %s: training it again", out, why)
        shutil.rmtree(out)
    state.wait_for_everyone()

    def conversation(row):
        prompt = row["prompt"]
        if isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        return {"prompt": prompt, "completion": [{"role": "assistant", "content": row["completion"]}]}

    sft_kwargs.setdefault("use_cpu", cpu_processes())
    sft_kwargs.setdefault("bf16", not sft_kwargs.get("fp16", False) and bf16_supported(sft_kwargs["use_cpu"]))
    sft_kwargs.setdefault("dataloader_pin_memory", pin_memory_supported(sft_kwargs["use_cpu"]))
    sft_kwargs.setdefault("report_to", "none")
    sft_kwargs.setdefault("save_strategy", "no")
    sft_kwargs.setdefault("logging_steps", 10)
    trainer = None
    model = str(model_path)
    if corpus_steps:  # stage 1: the languages, as plain text packed into blocks
        config = SFTConfig(
            **{
                "warmup_steps": min(50, corpus_steps // 10),
                **sft_kwargs,
                "output_dir": str(output_dir),
                "max_steps": corpus_steps,
                "learning_rate": corpus_learning_rate,
                "per_device_train_batch_size": per_device_train_batch_size,
                "packing": True,
                "packing_strategy": "wrapped",  # "bfd" needs flash-attention's padding-free batches
                "max_length": corpus_max_length,
            }
        )
        texts = Dataset.from_dict({"text": list(corpus)})
        trainer = SFTTrainer(model=model, args=config, train_dataset=texts)
        trainer.train()
        model = trainer.model
        logger.info(
            "warm start: %d steps of language modelling on %d corpus texts", corpus_steps, len(corpus)
        )
    if num_train_epochs:  # stage 2: the format, answering prompts
        pairs = dataset.map(conversation, remove_columns=dataset.column_names)
        config = SFTConfig(
            output_dir=str(output_dir),
            num_train_epochs=num_train_epochs,
            learning_rate=learning_rate,
            per_device_train_batch_size=per_device_train_batch_size,
            **sft_kwargs,
        )
        trainer = SFTTrainer(
            model=model,
            args=config,
            train_dataset=pairs,
            processing_class=trainer.processing_class if trainer is not None else None,
        )
        trainer.train()
    trainer.save_model(str(output_dir))
    if state.is_main_process:  # the record, then the manifest last: the warm start is complete
        (out / WARM_START_MARKER).write_text(json.dumps({"settings": settings}, indent=1))
        write_manifest(out)
    state.wait_for_everyone()  # other ranks load the saved model next
    logger.info(
        "warm start: %s epochs of SFT on %d references, saved to %s",
        num_train_epochs,
        len(dataset),
        output_dir,
    )
    return Path(output_dir)
