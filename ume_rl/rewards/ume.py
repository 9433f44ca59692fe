"""The TRL reward: UME pseudo-log-likelihood of the first tagged sequence of each completion.

>>> from ume_rl.models import load_ume
>>> reward = UmeReward(load_ume("tiny"))  # doctest: +SKIP
>>> reward(["<smiles>CCO</smiles>", "no tag here"])  # doctest: +SKIP
[-64.6..., -91.5...]

Data flows one way: completion (string, or chat messages) → tagged sequence (:mod:`ume_rl.rewards.tags`) →
UME token ids → score (:class:`ume_rl.rewards.scoring.UmeScorer`, mean per-residue log-prob) → reward.

- valid: ``reward = max(score, score_floor) / temperature``;
- invalid (no tag, wrong modality, empty, bad alphabet, unparsable SMILES, too long, or a token UME's
  tokenizer maps to ``<unk>``, e.g. RDKit-valid ``[Og]``: unk is not a residue to score): ``penalty``.

Why invalid never outscores valid, for any UME: ``score_floor`` defaults to ``-ln(vocab_size) - margin``
(the mean log-prob of a uniform model over UME's vocabulary, minus ``margin`` nats) and the default penalty
is ``(score_floor - margin) / temperature``. A valid reward is at least ``score_floor / temperature``,
which is strictly above the penalty by ``margin / temperature``. The floor only binds for a UME worse than
uniform on that sequence (an untrained UME scores about ``-ln(vocab_size)``, a trained one -1 to -4), so
for real models the reward is exactly ``score / temperature``; floored completions are counted in
:meth:`UmeReward.get_statistics`. An explicit ``penalty`` at or above ``score_floor / temperature`` (e.g.
upstream's -5.0) brings the bug back, so it is logged as a warning. With the defaults (vocabulary 1280, temperature 0.1, margin 1):
floor reward -81.5, penalty -91.5. Upstream's -5.0 sat above the valid rewards of a real UME (-10 to -40).

Errors are never rewarded: an exception inside the scorer propagates to the caller.

lobster's names for this reward (``UMERewardFunction``, ``create_ume_reward_wrapper``) are in
:mod:`ume_rl.lobster_compat`.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Sequence

from ume_rl.rewards.modalities import MODALITIES
from ume_rl.rewards.scoring import DEFAULT_MODE, UmeScorer
from ume_rl.rewards.tags import INVALID_REASONS, read_completions

logger = logging.getLogger(__name__)

DEFAULT_MARGIN = 1.0
# get_statistics key -> UmeScorer.stats key
_SCORER_STATS = {
    "duplicates": "duplicates",
    "cache_hits": "cache_hits",
    "scored_rows": "rows",
    "forwards": "forwards",
}


class UmeReward:
    """TRL reward function: UME pseudo-log-likelihood of the tagged sequence, over ``temperature``.

    Args:
        ume_model: a lobster ``UME`` (frozen; put wherever it should run).
        temperature: rewards are ``score / temperature``; must be positive.
        penalty: reward of an invalid completion; default ``(score_floor - margin) / temperature``.
        mode: ``"masked"`` (exact pseudo-log-likelihood) or ``"unmasked"`` (single pass); see
            :mod:`ume_rl.rewards.scoring` for cost and agreement.
        score_floor: lowest score a valid completion is rewarded with; default ``-ln(vocab_size) - margin``.
            ``-math.inf`` disables flooring (then pass an explicit ``penalty``).
        margin: nats between the uniform-model score and the floor, and between the floor and the penalty.
        token_budget, dtype, pad_shapes, sdpa, dedup, cache_size: passed to
            :class:`~ume_rl.rewards.scoring.UmeScorer` (identical sequences of a call are scored once; with
            ``cache_size > 0`` scores are remembered across calls, exact for the frozen UME).

    Called as ``reward(completions, prompts=None, completion_ids=None, modality=None, log_metric=None,
    **kwargs) -> list[float]``, the contract of TRL's ``GRPOTrainer``: ``modality`` is the dataset column
    (a wrong tag is then invalid), ``log_metric`` is TRL's metric logger. Picklable (no closures).

    >>> reward = UmeReward(load_ume("tiny"), temperature=0.1)  # doctest: +SKIP
    >>> reward.details(["<dna>ACGT</dna>", "<dna>ACGU</dna>"])[1]["reason"]  # doctest: +SKIP
    'bad_alphabet'
    """

    __name__ = "ume_reward"

    def __init__(
        self,
        ume_model,
        temperature: float = 0.1,
        penalty: float | None = None,
        mode: str = DEFAULT_MODE,
        score_floor: float | None = None,
        margin: float = DEFAULT_MARGIN,
        token_budget: int | None = None,
        dtype=None,
        pad_shapes: bool | None = None,
        sdpa="auto",
        dedup: bool = True,
        cache_size: int = 0,
    ):
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if not margin > 0:
            raise ValueError(f"margin must be positive, got {margin}")
        self.scorer = UmeScorer(
            ume_model,
            mode=mode,
            token_budget=token_budget,
            dtype=dtype,
            pad_shapes=pad_shapes,
            sdpa=sdpa,
            dedup=dedup,
            cache_size=cache_size,
        )
        self.temperature = float(temperature)
        self.margin = float(margin)
        self.score_floor = (
            float(score_floor) if score_floor is not None else self.scorer.min_log_prob_uniform - margin
        )
        if penalty is None:
            if not math.isfinite(self.score_floor):
                raise ValueError("score_floor=-inf disables flooring: pass an explicit penalty")
            penalty = (self.score_floor - margin) / self.temperature
        self.penalty = float(penalty)
        lowest_valid = self.score_floor / self.temperature
        if self.penalty >= lowest_valid:
            logger.warning(
                "penalty %.4g >= the lowest valid reward %.4g (score_floor / temperature): an invalid"
                " completion can outscore a valid one (the upstream bug). Use penalty=None for the safe default %.4g.",
                self.penalty,
                lowest_valid,
                (self.score_floor - margin) / self.temperature,
            )
        # Longest content worth parsing: max_length tokens of the longest residue token ('[195Pt+2]').
        self._max_chars = self.scorer.max_length * self.scorer.longest_residue_token
        self.reset_statistics()

    @property
    def mode(self) -> str:
        return self.scorer.mode

    # ------------------------------------------------------------------------------------------ TRL API

    def __call__(self, completions, prompts=None, completion_ids=None, **kwargs) -> list[float]:
        rows = self.details(completions, modality=kwargs.get("modality"))
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            self._log(rows, log_metric)
        return [row["reward"] for row in rows]

    def details(self, completions: Sequence, modality=None) -> list[dict]:
        """Per completion: ``modality``, ``sequence`` (normalised), ``reason`` (``None`` when valid),
        ``score`` (``None`` when invalid), ``reward`` and ``floored`` (the score was below ``score_floor``).
        ``sequence`` is ``None`` when invalid. Updates the statistics.

        ``modality`` is ``None``, one modality for all completions, or one per completion.
        """
        parsed = read_completions(completions, modality, max_chars=self._max_chars)
        rows = [
            {
                "modality": p.modality,
                "sequence": p.sequence,
                "reason": p.reason,
                "score": None,
                "reward": self.penalty,
                "floored": False,
            }
            for p in parsed
        ]
        valid = [i for i, row in enumerate(rows) if row["reason"] is None]
        if valid:
            pairs = [(rows[i]["sequence"], rows[i]["modality"]) for i in valid]
            distinct = list(dict.fromkeys(pairs))  # a repeated sequence is tokenized once
            encoded = dict(zip(distinct, self.scorer.encode(*zip(*distinct, strict=True)), strict=True))
            ids = [encoded[pair] for pair in pairs]
            fits = []
            for k, tokens in enumerate(ids):
                if len(tokens) > self.scorer.max_length:
                    rows[valid[k]].update(reason="too_long", sequence=None)
                elif self.scorer.unk_token_id in tokens:
                    rows[valid[k]].update(reason="unknown_token", sequence=None)
                else:
                    fits.append(k)
            scores = self.scorer.score_ids([ids[k] for k in fits]) if fits else []
            for k, score in zip(fits, scores, strict=True):
                if not math.isfinite(score):
                    raise RuntimeError(f"UME score {score} for {rows[valid[k]]['sequence'][:50]!r}")
                row = rows[valid[k]]
                row["score"] = score
                row["reward"] = max(score, self.score_floor) / self.temperature
                row["floored"] = score < self.score_floor
        self._update(rows)
        return rows

    # ------------------------------------------------------------------------------------------ statistics

    def reset_statistics(self) -> None:
        self._scorer_base = dict(self.scorer.stats)
        self._stats = {
            "completions": 0,
            "valid": 0,
            "floored": 0,
            "reasons": Counter(),
            "score_sum": defaultdict(float),
            "reward_sum": defaultdict(float),
            "count": Counter(),
            "reward_min": math.inf,
            "reward_max": -math.inf,
            "reward_total": 0.0,
        }

    def _update(self, rows: list[dict]) -> None:
        s = self._stats
        s["completions"] += len(rows)
        for row in rows:
            s["reward_min"] = min(s["reward_min"], row["reward"])
            s["reward_max"] = max(s["reward_max"], row["reward"])
            s["reward_total"] += row["reward"]
            if row["reason"] is not None:
                s["reasons"][row["reason"]] += 1
                continue
            s["valid"] += 1
            s["floored"] += bool(row.get("floored"))
            s["count"][row["modality"]] += 1
            s["score_sum"][row["modality"]] += row["score"]
            s["reward_sum"][row["modality"]] += row["reward"]

    def get_statistics(self) -> dict:
        """Totals since creation (or :meth:`reset_statistics`).

        Keys: ``completions``, ``valid``, ``invalid``, ``valid_fraction``, ``floored``, ``invalid_reasons``
        (every reason, with 0s), ``per_modality`` (count, mean_score, mean_reward), ``mean_reward``,
        ``min_reward``, ``max_reward`` (over all completions, invalid ones included; 0.0 before any call),
        ``penalty``, ``temperature``, ``score_floor``, ``mode``; from the scorer: ``duplicates`` (valid
        sequences that repeated one of the same call: scored once), ``cache_hits`` (answered from earlier
        calls), ``scored_rows`` and ``forwards`` (encoder work actually done).
        """
        s = self._stats
        total = s["completions"]
        per_modality = {
            m: {
                "count": s["count"][m],
                "mean_score": s["score_sum"][m] / s["count"][m] if s["count"][m] else None,
                "mean_reward": s["reward_sum"][m] / s["count"][m] if s["count"][m] else None,
            }
            for m in MODALITIES
        }
        return {
            "completions": total,
            "valid": s["valid"],
            "invalid": total - s["valid"],
            "valid_fraction": s["valid"] / total if total else 0.0,
            "floored": s["floored"],
            "invalid_reasons": {r: s["reasons"][r] for r in INVALID_REASONS},
            "per_modality": per_modality,
            "penalty": self.penalty,
            "temperature": self.temperature,
            "score_floor": self.score_floor,
            "mode": self.mode,
            "mean_reward": s["reward_total"] / total if total else 0.0,
            "min_reward": s["reward_min"] if total else 0.0,
            "max_reward": s["reward_max"] if total else 0.0,
            **{
                key: self.scorer.stats[stat] - self._scorer_base.get(stat, 0)
                for key, stat in _SCORER_STATS.items()
            },
        }

    def _log(self, rows: list[dict], log_metric) -> None:
        """Per-call metrics through TRL's ``log_metric`` (averaged by TRL over each logging step)."""
        name = self.__name__
        log_metric(f"{name}/valid_fraction", sum(r["reason"] is None for r in rows) / max(len(rows), 1))
        for modality in MODALITIES:
            valid = [r for r in rows if r["reason"] is None and r["modality"] == modality]
            if valid:
                log_metric(f"{name}/{modality}/mean_score", sum(r["score"] for r in valid) / len(valid))
                log_metric(f"{name}/{modality}/mean_reward", sum(r["reward"] for r in valid) / len(valid))
