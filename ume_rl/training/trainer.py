"""The GRPO trainer builder: a policy, reward callables and a prompt dataset → a ``trl.GRPOTrainer``.

>>> from ume_rl.training.config import build_grpo_config
>>> trainer = build_trainer(  # doctest: +SKIP
...     "Qwen/Qwen2-0.5B-Instruct", [MaskedLMReward(ume)], ds["train"], args=build_grpo_config("runs/grpo")
... )
>>> trainer.train()  # doctest: +SKIP

What it does beyond calling ``GRPOTrainer``:

- String prompts become chat messages, so an Instruct model's chat template applies.
- The config is :class:`~ume_rl.training.config.UmeGRPOConfig` by default (working defaults: bf16 only
  where supported, ``report_to="none"``, ``num_generations`` dividing the generation batch).
- Tracking (wandb, trackio, tensorboard) goes through TRL's own ``report_to``; rewards log their metrics
  through TRL's ``log_metric`` into ``trainer.state.log_history``.

Reward models are loaded by the caller on the process's own device (``args.device``: accelerate's, from
``LOCAL_RANK``), outside DeepSpeed ZeRO-3 partitioning (:func:`outside_zero3`); each rank scores only its
own completions (TRL gathers the rewards). The run workflow around it (recipe, dataset, warm start,
evaluation) is :mod:`ume_rl.training.run`; lobster's ``create_ume_grpo_trainer`` / ``train_ume_grpo``
signatures are in :mod:`ume_rl.lobster_compat`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path

from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from ume_rl.models.ume import DropLogNotes
from ume_rl.training.config import build_grpo_config

logger = logging.getLogger(__name__)
# transformers' note that a GRPO batch (prompts, not input_ids) gives no FLOP estimate: says nothing to a user
logging.getLogger("transformers.modeling_utils").addFilter(
    DropLogNotes(("Could not estimate the number of tokens of the input",))
)


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


def build_trainer(
    policy,
    reward_funcs: Sequence,
    train_dataset: Dataset,
    eval_dataset: Dataset | None = None,
    args: GRPOConfig | None = None,
    callbacks: list | None = None,
) -> GRPOTrainer:
    """A ``trl.GRPOTrainer`` training ``policy`` against ``reward_funcs``.

    Args:
        policy: hub id, local directory, or a loaded ``PreTrainedModel``.
        reward_funcs: TRL reward callables (e.g. :class:`~ume_rl.rewards.masked_lm.MaskedLMReward`, or
            :func:`~ume_rl.rewards.registry.build_reward_funcs` of a recipe's names); their weights are
            ``args.reward_weights``.
        train_dataset: rows with a ``prompt`` column (chat messages, or strings that become one user message);
            other columns (``modality``...) reach the rewards as keyword arguments.
        eval_dataset: optional; used when ``eval_strategy`` is set.
        args: a ``GRPOConfig``; default :func:`~ume_rl.training.config.build_grpo_config` ().
        callbacks: extra ``transformers.TrainerCallback`` objects; one with an ``attach(trainer)`` method (a
            :class:`~ume_rl.training.monitor.RealismMonitor`) is attached to the trainer built here.

    Returns:
        The trainer; ``trainer.reward_funcs`` are ``reward_funcs`` in order.
    """
    from transformers import AutoTokenizer

    args = args if args is not None else build_grpo_config()
    if not reward_funcs:
        raise ValueError("reward_funcs is empty: pass at least one reward callable")
    if isinstance(policy, str | Path):
        policy = str(policy)
        tokenizer = AutoTokenizer.from_pretrained(policy)
    else:
        tokenizer = AutoTokenizer.from_pretrained(policy.config._name_or_path)
    if tokenizer.chat_template is not None:
        train_dataset, eval_dataset = to_conversational(train_dataset), to_conversational(eval_dataset)
    trainer = GRPOTrainer(
        model=policy,
        reward_funcs=list(reward_funcs),
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    for callback in callbacks or ():
        if hasattr(callback, "attach"):  # e.g. RealismMonitor: reads the trainer's completions, logs first
            callback.attach(trainer)
    logger.info(
        "GRPO trainer: policy=%s, rewards=%s (weights %s), %d x %d completions per step, report_to=%s",
        policy if isinstance(policy, str) else type(policy).__name__,
        [getattr(f, "__name__", type(f).__name__) for f in reward_funcs],
        args.reward_weights,
        args.generation_batch_size // args.num_generations,
        args.num_generations,
        args.report_to,
    )
    return trainer
