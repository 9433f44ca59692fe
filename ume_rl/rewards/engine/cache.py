"""Score each distinct input once: within a call (deduplication) and, optionally, across calls (bounded LRU).

Model-agnostic: a :class:`ScoreMemo` maps hashable keys (for a scorer: its mode and a sequence's token ids) to
float scores and calls a scoring function only for the keys it has not seen. GRPO samples several
completions per prompt, and a policy that converges repeats itself: identical sequences in one batch are
scored once, and with ``cache_size > 0`` a sequence scored in an earlier call is not scored again.

Exact for a frozen model: a score depends on the sequence alone (the scorer is batch-invariant), so a
remembered score is the score. The memo is keyed on a weights ``version`` too (:func:`weights_version`:
each parameter's storage address and in-place version counter): moving the model (``.to()``, ``.half()``)
or loading new weights (``load_state_dict``, in-place updates under ``torch.no_grad``) empties it. Writes
through ``param.data`` bypass the version counter; call :meth:`ScoreMemo.clear` after those.

>>> memo = ScoreMemo(cache_size=4)
>>> calls = []
>>> def score(keys):
...     calls.append(list(keys))
...     return [float(len(k)) for k in keys]
>>> memo(["ab", "abc", "ab"], score)
[2.0, 3.0, 2.0]
>>> memo(["abc", "abcd"], score)
[3.0, 4.0]
>>> calls, memo.stats["duplicates"], memo.stats["cache_hits"]
([['ab', 'abc'], ['abcd']], 1, 1)
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence

import torch


def weights_version(module: torch.nn.Module) -> int:
    """A fingerprint of ``module``'s weights that changes when they are moved, replaced or updated in place.

    Built from each parameter's ``data_ptr()``, ``_version`` (bumped by in-place operations such as
    ``load_state_dict``) and dtype; cheap (no read of the weights themselves).
    """
    return hash(tuple((p.data_ptr(), p._version, p.dtype) for p in module.parameters()))


class ScoreMemo:
    """Deduplicate keys within a call and remember up to ``cache_size`` scores across calls (LRU).

    Args:
        dedup: score identical keys of one call once (exact; default on).
        cache_size: most scores remembered across calls; 0 (default) remembers nothing.

    Call it as ``memo(keys, score_fn, version=None)``: ``score_fn`` receives the distinct keys that still need
    a score and returns one float per key, in order. Non-finite scores are returned but never remembered.
    ``stats`` counts ``keys``, ``scored`` (keys passed to ``score_fn``), ``duplicates`` (repeats within a call)
    and ``cache_hits`` (keys answered from earlier calls).
    """

    def __init__(self, dedup: bool = True, cache_size: int = 0):
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        self.dedup = bool(dedup)
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[Hashable, float] = OrderedDict()
        self._version: Hashable = None
        self.stats = {"keys": 0, "scored": 0, "duplicates": 0, "cache_hits": 0}

    def __len__(self) -> int:
        return len(self._cache)

    def clear(self) -> None:
        """Forget every remembered score."""
        self._cache.clear()

    def __call__(
        self,
        keys: Sequence[Hashable],
        score_fn: Callable[[list[Hashable]], Sequence[float]],
        version: Hashable = None,
    ) -> list[float]:
        if version != self._version:
            self.clear()
            self._version = version
        first: dict[Hashable, int] = {}
        owner = []  # index into `distinct` of each key
        distinct: list[Hashable] = []
        for key in keys:
            if self.dedup:
                j = first.setdefault(key, len(distinct))
                if j == len(distinct):
                    distinct.append(key)
            else:
                j = len(distinct)
                distinct.append(key)
            owner.append(j)
        values: list[float | None] = [None] * len(distinct)
        todo = []
        for j, key in enumerate(distinct):
            cached = self._cache.get(key) if self.cache_size else None
            if cached is None:
                todo.append(j)
            else:
                self._cache.move_to_end(key)
                values[j] = cached
        if todo:
            scores = list(score_fn([distinct[j] for j in todo]))
            if len(scores) != len(todo):
                raise RuntimeError(f"score_fn returned {len(scores)} scores for {len(todo)} keys")
            for j, score in zip(todo, scores, strict=True):
                values[j] = float(score)
                if self.cache_size and math.isfinite(score):
                    self._cache[distinct[j]] = float(score)
                    self._cache.move_to_end(distinct[j])
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        self.stats["keys"] += len(keys)
        self.stats["scored"] += len(todo)
        self.stats["duplicates"] += len(keys) - len(distinct)
        self.stats["cache_hits"] += len(distinct) - len(todo)
        return [values[j] for j in owner]  # type: ignore[misc]
