"""ume_rl: GRPO training of small LLMs against UME pseudo-likelihood rewards.

Everything a notebook or script needs is importable from the top level; submodules load lazily, so
``import ume_rl`` is cheap and lobster (slow to import) loads only when a UME is needed.

>>> import ume_rl
>>> profile = ume_rl.get_profile("tiny")
>>> ds = ume_rl.generate_synthetic_dataset(n_per_modality=3, progress=False)  # doctest: +SKIP
>>> reward = ume_rl.UmeReward(profile.load_ume())  # doctest: +SKIP
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # profiles
    "Profile": "profiles",
    "get_profile": "profiles",
    "resolve_profile_name": "profiles",
    "runs_dir": "profiles",
    # models
    "download_qwen": "models",
    "find_qwen_in_cache": "models",
    "build_tiny_qwen": "models",
    "build_tiny_ume": "models",
    "load_ume": "models",
    # data
    "generate_synthetic_dataset": "data",
    "save_dataset": "data",
    "load_or_generate_dataset": "data",
    # tags
    "wrap": "tags",
    "extract_tagged_content": "tags",
    "extract_tagged_sequence": "tags",
    "INVALID_REASONS": "tags",
    "read_completions": "tags",
    # scoring and rewards
    "UmeScorer": "scoring",
    "UmeReward": "reward",
    "UMERewardFunction": "reward",
    "create_ume_reward_wrapper": "reward",
    "ComplexityReward": "complexity",
    # probes and widgets (notebook 03)
    "make_variants": "probes",
    "make_probes": "probes",
    "score_rows": "probes",
    "scoring_panel": "widgets",
    # training and evaluation
    "UmeGRPOConfig": "config",
    "build_grpo_config": "config",
    "create_ume_grpo_trainer": "trainer",
    "train_ume_grpo": "trainer",
    "warm_start": "sft",
    "outside_zero3": "trainer",
    "evaluate_policy": "evaluation",
    "generate_completions": "evaluation",
    "summarize_completions": "evaluation",
    "build_ume_reward": "trainer",
    "load_recipe": "cli",
    "TrainRun": "cli",
}

__all__ = [*_EXPORTS, "plots"]


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f"ume_rl.{_EXPORTS[name]}")
        value = getattr(module, name)
        globals()[name] = value
        return value
    if name == "plots":
        return importlib.import_module("ume_rl.plots")
    raise AttributeError(f"module 'ume_rl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
