"""Reward names → reward callables, so a recipe turns rewards on by name.

A recipe lists ``reward_funcs: [ume, complexity, length, novelty]`` (and TRL's ``reward_weights``); the run workflow
(:mod:`ume_rl.training.run`, from a recipe of :mod:`ume_rl.training.recipes`) builds them here with each reward's settings:

>>> [type(f).__name__ for f in build_reward_funcs(["complexity"])]
['ComplexityReward']
>>> build_reward_funcs(["ume"])
Traceback (most recent call last):
...
ValueError: reward 'ume' needs a reward model: pass ume_model
>>> sorted(REWARDS)
['complexity', 'length', 'novelty', 'ume']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ume_rl.rewards.complexity import ComplexityReward
from ume_rl.rewards.length import LengthReward
from ume_rl.rewards.masked_lm import MaskedLMReward
from ume_rl.rewards.novelty import NoveltyMemory


@dataclass(frozen=True)
class RewardEntry:
    """How to build one named reward: ``build(ume_model, **settings)`` (``ume_model`` unused when not needed)."""

    build: Callable
    needs_model: bool
    help: str


def _ume(ume_model, **settings) -> MaskedLMReward:
    return MaskedLMReward(ume_model, **settings)


def _complexity(ume_model, **settings) -> ComplexityReward:
    return ComplexityReward(**settings)


def _length(ume_model, **settings) -> LengthReward:
    return LengthReward(**settings)


def _novelty(ume_model, **settings) -> NoveltyMemory:
    return NoveltyMemory(**settings)


REWARDS: dict[str, RewardEntry] = {
    "ume": RewardEntry(
        _ume,
        True,
        "Pseudo-log-likelihood of the tagged sequence under the UME or each modality's model (MaskedLMReward).",
    ),
    "complexity": RewardEntry(
        _complexity, False, "Sequence complexity in [0, 1], against repeats (ComplexityReward)."
    ),
    "length": RewardEntry(
        _length, False, "Length within the modality's range, in [0, 1], against short answers (LengthReward)."
    ),
    "novelty": RewardEntry(
        _novelty,
        False,
        "Memory across steps, in (0, 1]: repeats and full scaffold / k-mer buckets decay (NoveltyMemory).",
    ),
}


# Rewards that read completions through the run's MaskedLMReward when it has one, so they agree on what is invalid.
_READ_THROUGH_UME = ("complexity", "length", "novelty")


def build_reward_funcs(
    names: Sequence[str], ume_model=None, settings: Mapping[str, Mapping] | None = None
) -> list:
    """The reward callables named by ``names``, in order.

    Args:
        names: keys of :data:`REWARDS` (``"ume"``, ``"complexity"``, ``"length"``, ``"novelty"``).
        ume_model: the reward model of the rewards that need one (``ume``): a UME, or a mapping modality →
            model (:class:`~ume_rl.rewards.masked_lm.MaskedLMReward` takes either).
        settings: keyword arguments per reward name, e.g. ``{"ume": {"temperature": 0.1}}``.

    With ``ume`` among the names, ``complexity`` and ``length`` read completions through it
    (``reader=``): every reward of the run leaves out what ``ume`` penalises (``too_long``, ``unknown_token``).

    Raises:
        ValueError: an unknown or repeated name, or a reward that needs a model without one.
    """
    if isinstance(names, str):
        raise TypeError(f"names must be a list of reward names, got the string {names!r}")
    settings = settings or {}
    unknown = [name for name in names if name not in REWARDS]
    if unknown:
        raise ValueError(f"unknown reward {unknown[0]!r}; choose from {sorted(REWARDS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"reward names repeat: {list(names)}")
    for name in names:
        if REWARDS[name].needs_model and ume_model is None:
            raise ValueError(f"reward {name!r} needs a reward model: pass ume_model")
    built = {
        name: REWARDS[name].build(ume_model, **dict(settings.get(name, {})))
        for name in names
        if name == "ume"
    }
    for name in names:
        if name not in built:
            extra = {"reader": built["ume"]} if "ume" in built and name in _READ_THROUGH_UME else {}
            built[name] = REWARDS[name].build(ume_model, **{**extra, **dict(settings.get(name, {}))})
    return [built[name] for name in names]
