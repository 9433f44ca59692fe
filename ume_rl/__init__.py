"""ume_rl: GRPO training of small LLMs against masked-LM pseudo-likelihood rewards (UME first of all).

The layers, each a folder, from the bottom: :mod:`ume_rl.rewards` (tags, the modality table, the rewards, and
:mod:`ume_rl.rewards.engine`, which scores token ids with a masked LM), :mod:`ume_rl.data` (the real corpus, the
generator, dataset directories), :mod:`ume_rl.models` (the policy, the UME, public masked LMs, the small UME),
:mod:`ume_rl.training` (GRPO config, warm start, trainer builder, the run workflow, evaluation) and
:mod:`ume_rl.inspection` (probes, plots, widgets); at the root the profiles, the command line and the
lobster-compatible names. What a user calls is exported here; submodules load lazily, so
``import ume_rl`` is cheap and lobster (slow to import) loads only when a UME is needed.

>>> import ume_rl
>>> profile = ume_rl.get_profile("tiny")
>>> ds = ume_rl.generate_synthetic_dataset(n_per_modality=3, progress=False)
>>> ume_rl.ComplexityReward()(["<dna>ACGTTGCA</dna>"])
[1.0]
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # profiles, models, data
    "Profile": "profiles",
    "get_profile": "profiles",
    "download_qwen": "models.policy",
    "build_tiny_qwen": "models.policy",
    "load_ume": "models.ume",
    "load_reward_model": "models.masked_lms",
    "generate_synthetic_dataset": "data.generate",
    "save_dataset": "data.store",
    "load_or_generate_dataset": "data.store",
    "load_real_corpus": "data.corpus",
    "train_small_ume": "models.small_ume",
    "demo_ume_checkpoint": "models.small_ume",
    "train_small_esm": "models.small_esm",
    "demo_esm_models": "models.small_esm",
    # rewards
    "MODALITY_TABLE": "rewards.modalities",
    "wrap": "rewards.tags",
    "read_completions": "rewards.tags",
    "UmeScorer": "rewards.engine.ume_scoring",
    "HFMaskedLMScorer": "rewards.engine.hf_scoring",
    "MaskedLM": "rewards.engine.hf_scoring",
    "MaskedLMReward": "rewards.masked_lm",
    "UmeReward": "lobster_compat",
    "ComplexityReward": "rewards.complexity",
    "LengthReward": "rewards.length",
    "build_reward_funcs": "rewards.registry",
    # training
    "build_grpo_config": "training.config",
    "build_trainer": "training.trainer",
    "warm_start": "training.sft",
    "load_recipe": "training.recipes",
    "evaluate_policy": "training.evaluation",
    "generate_completions": "training.evaluation",
    # inspection
    "make_variants": "inspection.probes",
    "make_probes": "inspection.probes",
    "score_rows": "inspection.probes",
    "scoring_panel": "inspection.widgets",
    "reward_quality": "inspection.quality",
    # lobster-compatible names
    "UMERewardFunction": "lobster_compat",
    "UmeRewardFunction": "lobster_compat",
    "compute_pseudo_likelihood": "lobster_compat",
    "detect_modality": "rewards.tags",
    "create_ume_reward_wrapper": "lobster_compat",
    "create_ume_grpo_trainer": "lobster_compat",
    "train_ume_grpo": "lobster_compat",
    "extract_tagged_content": "lobster_compat",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f"ume_rl.{_EXPORTS[name]}")
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ume_rl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
