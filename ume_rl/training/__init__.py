"""GRPO training: :mod:`~ume_rl.training.config` (``UmeGRPOConfig``), :mod:`~ume_rl.training.sft` (warm start),
:mod:`~ume_rl.training.trainer` (``build_trainer``), :mod:`~ume_rl.training.recipes` (recipes, checked) and :mod:`~ume_rl.training.run` (the run workflow)
and :mod:`~ume_rl.training.evaluation` (held-out generations). Uses :mod:`ume_rl.rewards`."""
