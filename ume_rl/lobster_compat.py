"""lobster-compatible names: code written for ``lobster.rl_training`` switches one import.

>>> from ume_rl.lobster_compat import extract_tagged_content
>>> from ume_rl.rewards.tags import detect_modality
>>> extract_tagged_content("text <dna>acgt</dna>")
('dna', 'acgt')
>>> detect_modality("CC(C)CC1=CC=C(C=C1)C(C)C(=O)O")  # the upstream guide's example; == Modality.SMILES
'SMILES'

The core of ume_rl speaks one vocabulary (:class:`~ume_rl.rewards.masked_lm.MaskedLMReward`,
:func:`~ume_rl.training.trainer.build_trainer`); this module translates lobster's:

- :class:`UMERewardFunction` (also spelled :data:`UmeRewardFunction`, as the upstream guide does) /
  :func:`create_ume_reward_wrapper`: the reward under lobster's parameter names (``penalty_for_invalid``;
  ``batch_size`` and ``enable_wandb_logging`` accepted for compatibility), with upstream's statistics keys
  (``min``, ``max``, ``sum``, ``count``, ``mean``, ``modality_counts``, ``no_tag_count``,
  ``empty_content_count``), and reading a bare (untagged) sequence as the guide's example does:
  ``UmeRewardFunction(ume, temperature=0.1)(["CC(C)CC1=CC=C(C=C1)C(C)C(=O)O"])`` scores the SMILES;
- :func:`compute_pseudo_likelihood` (``ume_model, sequences, modality`` -> scores); lobster's
  ``_detect_modality`` is :func:`ume_rl.rewards.tags.detect_modality` (``ume_rl.detect_modality``),
  the guide's "key components";
- :func:`create_ume_grpo_trainer` / :func:`train_ume_grpo`: the upstream guide's trainer signatures
  (``reward_temperature``, ``reward_batch_size``, ``penalty_for_invalid``, ``enable_wandb_logging``,
  ``wandb_*``, ``batch_size``);
- :func:`extract_tagged_content`: ``(tag_type, content)`` of the first tag pair.

All of them are also exported from ``ume_rl``: ``from ume_rl import train_ume_grpo``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ume_rl.rewards.engine.hf_scoring import MaskedLM
from ume_rl.rewards.engine.scoring import DEFAULT_MODE
from ume_rl.rewards.masked_lm import MaskedLMReward, make_scorer
from ume_rl.rewards.modalities import MODALITIES, MODALITY_TABLE, TAG_TO_MODALITY
from ume_rl.rewards.tags import iter_tagged
from ume_rl.training.config import DEFAULT_OUTPUT_DIR

logger = logging.getLogger(__name__)

DEFAULT_WANDB_PROJECT = "ume-rl-grpo"


def extract_tagged_content(text: str) -> tuple[str | None, str | None]:
    """``(tag_type, content)`` of the first tag pair with non-empty content; ``(None, None)`` when there is none.

    ``tag_type`` is the canonical tag (``"smiles"``, ``"protein"``, ``"dna"``; the aliases ``amino_acid`` and
    ``nucleotide`` map to ``protein`` and ``dna``), ``content`` is stripped but otherwise unvalidated. Same
    contract as ``lobster.rl_training.extract_tagged_content``, with case-insensitive tags and aliases.

    >>> extract_tagged_content("<smiles></smiles><Protein>MKV</Protein>")
    ('protein', 'MKV')
    """
    for name, raw in iter_tagged(text):
        content = raw.strip()
        if content:
            return MODALITY_TABLE[TAG_TO_MODALITY[name]].tag, content
    return None, None


def compute_pseudo_likelihood(ume_model, sequences, modality, mode: str = DEFAULT_MODE) -> list[float]:
    """The upstream guide's ``compute_pseudo_likelihood``: each sequence's mean per-residue log-probability.

    lobster's ``UME.compute_pseudo_likelihood(sequences, modality)`` as a function, in lobster's parameter
    order, computed by ume_rl's exact batched scorer.

    Args:
        ume_model: a lobster ``UME``, or any reward model :class:`~ume_rl.rewards.masked_lm.MaskedLMReward` takes for
            ``modality`` (a :class:`~ume_rl.rewards.engine.hf_scoring.MaskedLM`, a scorer).
        sequences: bare sequences (no tags), all of ``modality``.
        modality: a lobster ``Modality`` or its value (``"SMILES"``, ``"amino_acid"``, ``"nucleotide"``), or a tag name.
        mode: ``"masked"`` (default: the exact pseudo-log-likelihood) or ``"unmasked"`` (one pass).

    Returns:
        One float per sequence: NaN for a sequence longer than the model takes or with a token the tokenizer
        maps to ``<unk>`` (logged). An empty sequence is a ``ValueError``.

    Where it differs from lobster's method: lobster scores one unmasked pass over inputs padded to
    ``max_length`` and averages over special tokens too, and returns 0.0 (a perfect score) when anything fails;
    here the default is the masked pseudo-log-likelihood over residue tokens, and failures are NaN or raised.

    >>> compute_pseudo_likelihood(load_ume("tiny"), ["CCO", "c1ccccc1"], Modality.SMILES)  # doctest: +SKIP
    [-6.46..., -7.11...]
    """
    sequences = list(sequences)
    scorer = make_scorer(ume_model, modality, mode=mode)
    return scorer.score(sequences, [modality] * len(sequences))


class UMERewardFunction(MaskedLMReward):
    """Drop-in for ``lobster.rl_training.UMERewardFunction`` with fixed behaviour.

    A completion without any tag pair is read as a bare sequence (``untagged="detect"``: its modality
    detected by lobster's rules, see :func:`detect_modality`), as the upstream guide's example expects; pass
    ``untagged="invalid"`` to require tags as :class:`~ume_rl.rewards.masked_lm.MaskedLMReward` does by default.

    Same parameters: ``batch_size`` is accepted for compatibility (batching is by token budget),
    ``enable_wandb_logging`` is accepted and ignored with a warning (metrics go through TRL's ``log_metric``,
    no wandb call from the reward; use TRL's ``report_to="wandb"``), ``penalty_for_invalid=None`` means the
    scale-aware default of :class:`~ume_rl.rewards.masked_lm.MaskedLMReward` (a value at or above the lowest valid
    reward, like upstream's -5.0, is logged as a warning). :meth:`get_statistics` adds upstream's keys.
    """

    __name__ = "ume_reward"

    def __init__(
        self,
        ume_model,
        temperature: float = 0.1,
        batch_size: int = 8,
        enable_wandb_logging: bool = False,
        penalty_for_invalid: float | None = None,
        mode: str = DEFAULT_MODE,
        untagged: str = "detect",
        **kwargs,
    ):
        if enable_wandb_logging:
            logger.warning(
                "enable_wandb_logging=True is ignored: the reward makes no wandb call. Use TRL's"
                ' report_to="wandb", which logs the values the reward passes to log_metric.'
            )
        super().__init__(
            ume_model,
            temperature=temperature,
            penalty=penalty_for_invalid,
            mode=mode,
            untagged=untagged,
            **kwargs,
        )
        self.batch_size = batch_size
        self.enable_wandb_logging = enable_wandb_logging

    @property
    def penalty_for_invalid(self) -> float:
        return self.penalty

    def get_statistics(self) -> dict:
        """:meth:`MaskedLMReward.get_statistics` plus upstream's keys ``min``, ``max``, ``sum``, ``count``,
        ``mean``, ``modality_counts``, ``no_tag_count``, ``empty_content_count``."""
        stats = super().get_statistics()
        counts = {m: stats["per_modality"][m]["count"] for m in MODALITIES}
        return {
            **stats,
            "min": stats["min_reward"],
            "max": stats["max_reward"],
            "sum": stats["mean_reward"] * stats["completions"],
            "count": stats["completions"],
            "mean": stats["mean_reward"],
            "modality_counts": {m: n for m, n in counts.items() if n},
            "no_tag_count": stats["invalid_reasons"]["no_tag"],
            "empty_content_count": stats["invalid_reasons"]["empty"],
        }


UmeRewardFunction = UMERewardFunction
"""The upstream guide's spelling (``from lobster.rl_training import UmeRewardFunction``): the same class."""

UmeReward = MaskedLMReward
"""The name the reward had when UME was its only model: the same class."""


def create_ume_reward_wrapper(ume_model, temperature: float = 0.1, **kwargs) -> UMERewardFunction:
    """lobster-compatible factory: :class:`UMERewardFunction` with the same parameters (picklable, not a
    closure)."""
    return UMERewardFunction(ume_model, temperature=temperature, **kwargs)


def _grpo_args(args, output_dir, run_name, grpo_kwargs, wandb: bool, project: str, entity: str | None):
    """The ``GRPOConfig``: ``args``, or one built from ``grpo_kwargs``; with ``wandb``, ``report_to`` gains
    ``"wandb"`` (transformers' WandbCallback reads ``WANDB_PROJECT``/``WANDB_ENTITY``)."""
    from ume_rl.training.config import build_grpo_config

    if args is None:
        args = build_grpo_config(output_dir, **{"run_name": run_name, **grpo_kwargs})
    elif grpo_kwargs:
        raise TypeError(f"pass GRPO settings in args or as keywords, not both (got {sorted(grpo_kwargs)})")
    if wandb:
        os.environ.setdefault("WANDB_PROJECT", project)
        if entity:
            os.environ.setdefault("WANDB_ENTITY", entity)
        if "wandb" not in args.report_to:
            args.report_to = [*args.report_to, "wandb"]
    return args


def _to_device(models, device) -> None:
    """Move a UME, a :class:`MaskedLM`'s model, or every model of a mapping modality -> model, to ``device``."""
    for model in models.values() if isinstance(models, Mapping) else [models]:
        (model.model if isinstance(model, MaskedLM) else model).to(device)


def _guide_reward(ume_model, reward_temperature, reward_batch_size, penalty_for_invalid, reward_mode):
    """The upstream guide trainer's reward: tags required, as upstream's trainer reward did and the prompts ask (the
    class alone reads bare text)."""
    kwargs = {} if reward_mode is None else {"mode": reward_mode}
    return UMERewardFunction(
        ume_model,
        temperature=reward_temperature,
        batch_size=reward_batch_size,
        penalty_for_invalid=penalty_for_invalid,
        untagged="invalid",
        **kwargs,
    )


def create_ume_grpo_trainer(
    model_path,
    ume_model,
    train_dataset,
    eval_dataset=None,
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
    args=None,
    **grpo_kwargs: Any,
):
    """The upstream guide's ``create_ume_grpo_trainer``: :func:`~ume_rl.training.trainer.build_trainer` against a
    :class:`UMERewardFunction` (``trainer.reward_funcs[0]``, tags required), then ``extra_reward_funcs``.

    Args:
        model_path: the policy: hub id, local directory, or a loaded ``PreTrainedModel``.
        ume_model: a loaded UME, or a mapping modality -> UME or ``MaskedLM``; moved to this process's device.
        reward_temperature, penalty_for_invalid, reward_mode: the reward's ``temperature``, ``penalty`` and
            ``mode`` (``None``: its defaults). ``reward_batch_size`` is accepted and unused (token budget).
        enable_wandb_logging: add ``"wandb"`` to ``report_to`` (project ``wandb_project``, run ``wandb_run_name``).
        args: a ready ``GRPOConfig``; when given, ``output_dir`` and ``**grpo_kwargs`` are unused.
        **grpo_kwargs: any ``GRPOConfig`` field, plus ``batch_size`` (= ``per_device_train_batch_size``).
    """
    from ume_rl.training.trainer import build_trainer

    args = _grpo_args(
        args, output_dir, wandb_run_name, grpo_kwargs, enable_wandb_logging, wandb_project, wandb_entity
    )
    _to_device(ume_model, args.device)
    reward = _guide_reward(ume_model, reward_temperature, reward_batch_size, penalty_for_invalid, reward_mode)
    rewards = [reward, *(extra_reward_funcs or [])]
    return build_trainer(model_path, rewards, train_dataset, eval_dataset, args=args, callbacks=callbacks)


def train_ume_grpo(
    model_path,
    ume_model_path,
    train_dataset,
    eval_dataset=None,
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
    args=None,
    **grpo_kwargs: Any,
):
    """The upstream guide's ``train_ume_grpo``, run by ``ume-rl train``'s own workflow
    (:class:`~ume_rl.training.run.TrainRun`): the same output-directory rules, checks before anything is
    written, fingerprint on resume, checkpoints, final model, reward statistics and run marker.

    Args:
        ume_model_path: anything :func:`ume_rl.models.ume.load_ume` accepts (``"tiny"``, a registry name, a
            ``.ckpt`` path), a loaded UME, or a mapping modality -> UME or ``MaskedLM``.
        device: where the UME goes; default this process's device.
        **grpo_kwargs: any ``GRPOConfig`` field; ``resume_from_checkpoint`` (a checkpoint path, or
            ``True``/``"last"``) resumes, ``overwrite_output_dir=True`` starts over.

    Other arguments are those of :func:`create_ume_grpo_trainer`. Returns the trained trainer.

    Raises:
        RunDirectoryError: the output directory holds a run (and neither resume nor overwrite is asked), another
            run uses it, or a resume changes the experiment; nothing is loaded or written.
    """
    from datasets import DatasetDict

    from ume_rl.models.ume import load_ume
    from ume_rl.training.recipes import TrainScriptArguments
    from ume_rl.training.run import TrainRun, needed
    from ume_rl.training.trainer import outside_zero3

    args = _grpo_args(
        args, output_dir, wandb_run_name, grpo_kwargs, enable_wandb_logging, wandb_project, wandb_entity
    )
    named = isinstance(ume_model_path, str | Path)

    def load_reward_models():
        if not named:
            model = ume_model_path
        else:
            with outside_zero3():
                model = needed(
                    f"the UME {ume_model_path}",
                    lambda: load_ume(ume_model_path, device=device or args.device),
                )
        _to_device(model, device or args.device)
        return model

    settings = TrainScriptArguments(
        reward_funcs=["ume", *(getattr(f, "__name__", type(f).__name__) for f in extra_reward_funcs or [])],
        reward_temperature=reward_temperature,
        reward_penalty=penalty_for_invalid,
        **({} if reward_mode is None else {"reward_mode": reward_mode}),
    )
    splits = {"train": train_dataset, **({} if eval_dataset is None else {"validation": eval_dataset})}
    names = {"all": str(ume_model_path) if named else ume_model_path}
    run = TrainRun.adopt(settings, args, DatasetDict(splits), model_path, load_reward_models, names)
    try:
        reward = _guide_reward(
            run.reward_models, reward_temperature, reward_batch_size, penalty_for_invalid, reward_mode
        )
        return run.train(model_path, [reward, *(extra_reward_funcs or [])], callbacks=callbacks)
    finally:
        run.close()
