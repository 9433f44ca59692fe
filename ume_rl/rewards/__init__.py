"""The reward layer: completion text → tagged sequence → token ids → log-probs → score → reward.

:mod:`~ume_rl.rewards.modalities` (the modality table), :mod:`~ume_rl.rewards.tags` (reading completions),
:mod:`~ume_rl.rewards.engine.batching` and :mod:`~ume_rl.rewards.engine.flexbert` (the scoring engine's parts),
:mod:`~ume_rl.rewards.engine.scoring` (the engine), :mod:`~ume_rl.rewards.engine.ume_scoring` (``UmeScorer``: the engine on a
UME), :mod:`~ume_rl.rewards.engine.hf_scoring` (``HFMaskedLMScorer``: any Hugging Face masked LM), :mod:`~ume_rl.rewards.masked_lm` (``MaskedLMReward``),
:mod:`~ume_rl.rewards.complexity` (``ComplexityReward``), :mod:`~ume_rl.rewards.length` (``LengthReward``),
:mod:`~ume_rl.rewards.registry` (names for recipes).
Nothing here imports from :mod:`ume_rl.training`, :mod:`ume_rl.inspection` or the root modules.
"""
