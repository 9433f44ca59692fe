"""The TRL reward: pseudo-log-likelihood of the first tagged sequence of each completion, under a UME or under
a masked LM per modality.

>>> from ume_rl.models.ume import load_ume
>>> reward = MaskedLMReward(load_ume("tiny"))  # doctest: +SKIP
>>> reward(["<smiles>CCO</smiles>", "no tag here"])  # doctest: +SKIP
[-64.6..., -91.5...]

Data flows one way: completion (string, or chat messages) → tagged sequence (:mod:`ume_rl.rewards.tags`) →
token ids of its modality's model → score (the engine of :mod:`ume_rl.rewards.engine.scoring`, mean per-residue
log-prob) → reward.

Reward models: one UME scores every modality; or a mapping modality → model gives each modality its own
(:class:`~ume_rl.rewards.engine.hf_scoring.MaskedLM` from :func:`ume_rl.models.masked_lms.load_reward_model`: ESM-2 for
proteins, ChemBERTa for SMILES, the Nucleotide Transformer for DNA; a UME; or a ready scorer):

>>> reward = MaskedLMReward({"amino_acid": esm2, "SMILES": chemberta, "nucleotide": ume})  # doctest: +SKIP

- valid: ``reward = max(score, score_floor) / temperature``;
- invalid (no tag, wrong modality, empty, bad alphabet, unparsable SMILES, too long, or a token UME's
  tokenizer maps to ``<unk>``, e.g. RDKit-valid ``[Og]``: unk is not a residue to score): ``penalty``.

Why invalid never outscores valid, for any model: each modality's ``score_floor`` defaults to
``-ln(vocab_size) - margin`` (the mean log-prob of a uniform model over that modality's model's vocabulary,
minus ``margin`` nats) and the default penalty is ``(lowest score_floor - margin) / temperature``. A valid reward is at least ``score_floor / temperature``,
which is strictly above the penalty by ``margin / temperature``. The floor only binds for a UME worse than
uniform on that sequence (an untrained UME scores about ``-ln(vocab_size)``, a trained one -1 to -4), so
for real models the reward is exactly ``score / temperature``; floored completions are counted in
:meth:`MaskedLMReward.get_statistics`. An explicit ``penalty`` at or above ``score_floor / temperature`` (e.g.
upstream's -5.0) brings the bug back, so it is logged as a warning. With the defaults (vocabulary 1280, temperature 0.1, margin 1):
floor reward -81.5, penalty -91.5. Upstream's -5.0 sat above the valid rewards of a real UME (-10 to -40).

Errors are never rewarded: an exception inside the scorer propagates to the caller.

Untagged completions are ``no_tag`` by default (the prompts ask for tags); ``untagged="detect"`` reads a
completion without a tag pair as one bare sequence (:func:`~ume_rl.rewards.tags.read_bare_sequence`).

lobster's names for this reward (``UMERewardFunction``, ``create_ume_reward_wrapper``) are in
:mod:`ume_rl.lobster_compat`.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from ume_rl.rewards.checks import check_real
from ume_rl.rewards.engine.hf_scoring import HFMaskedLMScorer, MaskedLM
from ume_rl.rewards.engine.scoring import DEFAULT_MASKS_PER_ROW, DEFAULT_MODE, PseudoLikelihoodScorer
from ume_rl.rewards.engine.ume_scoring import UmeScorer
from ume_rl.rewards.modalities import MODALITIES, normalize_modality
from ume_rl.rewards.tags import INVALID_REASONS, UNTAGGED, TaggedSequence, read_completions

logger = logging.getLogger(__name__)

DEFAULT_MARGIN = 1.0
_MAX_REMEMBERED = 65536  # model verdicts kept between calls of MaskedLMReward.read
# get_statistics key -> PseudoLikelihoodScorer.stats key
_SCORER_STATS = {
    "duplicates": "duplicates",
    "cache_hits": "cache_hits",
    "scored_rows": "rows",
    "forwards": "forwards",
}


# ------------------------------------------------------------------------------------------ parameter checks


def _check_reward_params(temperature, penalty, score_floor, margin) -> None:
    """Type, finiteness and range of :class:`MaskedLMReward`'s parameters, checked at construction so a bad value
    fails before anything is scored (a NaN penalty would give NaN rewards, an infinite temperature all zeros).

    >>> _check_reward_params(temperature=0.1, penalty=None, score_floor=None, margin=1.0)
    >>> _check_reward_params(temperature=float("inf"), penalty=None, score_floor=None, margin=1.0)
    Traceback (most recent call last):
    ...
    ValueError: temperature must be finite and > 0 (rewards are score / temperature), got inf
    """
    check_real("temperature", temperature)
    check_real("penalty", penalty, optional=True)
    check_real("score_floor", score_floor, optional=True)
    check_real("margin", margin)
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(
            f"temperature must be finite and > 0 (rewards are score / temperature), got {temperature}"
        )
    if not (math.isfinite(margin) and margin > 0):
        raise ValueError(f"margin must be finite and > 0 (nats between floor and penalty), got {margin}")
    if penalty is not None and not math.isfinite(penalty):
        raise ValueError(
            f"penalty must be finite (it is the reward of an invalid completion), got {penalty}: "
            "pass None for the safe default below every valid reward"
        )
    if score_floor is not None and not score_floor <= 0:  # NaN and +inf fail too
        raise ValueError(
            f"score_floor must be <= 0 (scores are mean log-probabilities) or -inf (no flooring), got {score_floor}"
        )


# ------------------------------------------------------------------------------------------ reward models


def make_scorer(model, modality, mode: str = DEFAULT_MODE, **scorer_kwargs) -> PseudoLikelihoodScorer:
    """The scorer of ``model`` for ``modality``: a lobster UME (:class:`UmeScorer`), a :class:`MaskedLM`
    (:class:`HFMaskedLMScorer`; its ``modality`` must be ``modality``) or a ready scorer (its ``mode`` must be
    ``mode``)."""
    modality = normalize_modality(modality)
    if isinstance(model, PseudoLikelihoodScorer):
        if model.mode != mode:
            raise ValueError(f"the {modality} scorer runs mode={model.mode!r}, the reward mode={mode!r}")
        return model
    if isinstance(model, MaskedLM):
        if model.modality != modality:
            raise ValueError(f"{model.name or 'a masked LM'} scores {model.modality}, given for {modality}")
        return HFMaskedLMScorer(model, mode=mode, **scorer_kwargs)
    if hasattr(model, "get_tokenizer") and hasattr(model, "model"):  # a lobster UME
        return UmeScorer(model, mode=mode, **scorer_kwargs)
    raise TypeError(
        f"reward model for {modality}: expected a lobster UME, a MaskedLM (ume_rl.models.masked_lms.load_reward_model) "
        f"or a PseudoLikelihoodScorer, got {type(model).__name__}"
    )


def build_scorers(models, mode: str = DEFAULT_MODE, **scorer_kwargs) -> dict[str, PseudoLikelihoodScorer]:
    """One scorer per modality from a UME (all modalities) or a mapping modality → model.

    A mapping's values are what :func:`make_scorer` takes; a model given for several modalities (a UME) gets
    one scorer, shared. Keys are any modality spelling (``"protein"``, ``Modality.SMILES``); every modality
    needs a model.
    """
    if not isinstance(models, Mapping):
        models = dict.fromkeys(MODALITIES, models)
    by_modality = {normalize_modality(key): value for key, value in models.items()}
    missing = [m for m in MODALITIES if m not in by_modality]
    if missing:
        raise ValueError(
            f"no reward model for {missing}: give every modality one (the same UME may serve several)"
        )
    built: dict[int, PseudoLikelihoodScorer] = {}
    scorers = {}
    for modality, model in by_modality.items():
        if id(model) not in built:
            built[id(model)] = make_scorer(model, modality, mode=mode, **scorer_kwargs)
        scorers[modality] = built[id(model)]
    return scorers


class MaskedLMReward:
    """TRL reward function: pseudo-log-likelihood of the tagged sequence, over ``temperature``.

    Args:
        ume_model: a lobster ``UME`` (frozen; put wherever it should run), or a mapping modality → reward model
            (see :func:`build_scorers`: UME, :class:`MaskedLM` or scorer per modality).
        temperature: rewards are ``score / temperature``; must be positive.
        penalty: reward of an invalid completion; default ``(score_floor - margin) / temperature``.
        mode: ``"masked"`` (exact pseudo-log-likelihood), ``"unmasked"`` (single pass) or ``"spaced"``
            (``masks_per_row`` spaced residues masked per row: about ``1 / masks_per_row`` of ``masked``'s
            forward rows, approximation); see :mod:`ume_rl.rewards.engine.scoring` for cost and agreement.
        score_floor: lowest score a valid completion is rewarded with, for every modality; default, per
            modality, ``-ln(vocab_size) - margin`` of its model. ``-math.inf`` disables flooring (then pass an
            explicit ``penalty``).
        margin: nats between the uniform-model score and the floor, and between the floor and the penalty.
        token_budget, dtype, pad_shapes, sdpa, dedup, cache_size, masks_per_row: passed to the scorers the reward builds
            (:class:`~ume_rl.rewards.engine.scoring.PseudoLikelihoodScorer`; identical sequences of a call are scored
            once; with ``cache_size > 0`` scores are remembered across calls, exact for a frozen model; each
            scorer has its own cache). Ready scorers in a mapping keep their own settings.
        untagged: ``"invalid"`` (default: no tag pair is ``no_tag``) or ``"detect"`` (a bare sequence is read,
            its modality detected by lobster's rules when the row gives none).

    Called as ``reward(completions, prompts=None, completion_ids=None, modality=None, log_metric=None,
    **kwargs) -> list[float]``, the contract of TRL's ``GRPOTrainer``: ``modality`` is the dataset column
    (a wrong tag is then invalid), ``log_metric`` is TRL's metric logger. Picklable (no closures).

    >>> reward = MaskedLMReward(load_ume("tiny"), temperature=0.1)  # doctest: +SKIP
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
        untagged: str = "invalid",
        pad_shapes: bool | None = None,
        sdpa="auto",
        dedup: bool = True,
        cache_size: int = 0,
        masks_per_row: int = DEFAULT_MASKS_PER_ROW,
    ):
        _check_reward_params(temperature=temperature, penalty=penalty, score_floor=score_floor, margin=margin)
        if untagged not in UNTAGGED:
            raise ValueError(f"untagged must be one of {UNTAGGED}, got {untagged!r}")
        self._scorers = build_scorers(
            ume_model,
            mode=mode,
            token_budget=token_budget,
            dtype=dtype,
            pad_shapes=pad_shapes,
            sdpa=sdpa,
            dedup=dedup,
            cache_size=cache_size,
            masks_per_row=masks_per_row,
        )
        self._mode = mode
        self.untagged = untagged
        self.temperature = float(temperature)
        self.margin = float(margin)
        self.score_floors = {
            m: float(score_floor) if score_floor is not None else s.min_log_prob_uniform - margin
            for m, s in self._scorers.items()
        }
        self.score_floor = min(self.score_floors.values())
        if penalty is None:
            if not math.isfinite(self.score_floor):
                raise ValueError("score_floor=-inf disables flooring: pass an explicit penalty")
            penalty = (self.score_floor - margin) / self.temperature
        self.penalty = float(penalty)
        lowest_valid = self.score_floor / self.temperature
        if self.penalty >= lowest_valid:
            logger.warning(
                "penalty %.4g >= the lowest valid reward %.4g (score_floor / temperature): an invalid"
                " completion can outscore a valid one. Use penalty=None for the safe default %.4g.",
                self.penalty,
                lowest_valid,
                (self.score_floor - margin) / self.temperature,
            )
        # Longest content worth parsing: max_length tokens of the longest residue token ('[195Pt+2]').
        self._max_chars = max(s.max_length * s.longest_residue_token for s in self._distinct_scorers())
        self._model_reasons: dict = {}
        self.reset_statistics()

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def scorers(self) -> Mapping[str, PseudoLikelihoodScorer]:
        """Modality → its scorer (read-only; one scorer may serve several modalities)."""
        return MappingProxyType(self._scorers)

    @property
    def scorer(self) -> PseudoLikelihoodScorer:
        """The scorer of every modality; a ``ValueError`` when modalities have different models (use :attr:`scorers`)."""
        distinct = self._distinct_scorers()
        if len(distinct) != 1:
            raise ValueError("this reward has a model per modality: use reward.scorers[modality]")
        return distinct[0]

    def _distinct_scorers(self) -> list[PseudoLikelihoodScorer]:
        return list({id(s): s for s in self._scorers.values()}.values())

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
        parsed = read_completions(completions, modality, max_chars=self._max_chars, untagged=self.untagged)
        self._model_reasons = {}  # (sequence, modality) -> the model's verdict, for read() on the same batch
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
        for scorer in self._distinct_scorers():
            group = [
                i
                for i, r in enumerate(rows)
                if r["reason"] is None and self._scorers[r["modality"]] is scorer
            ]
            if group:
                self._score_group(scorer, [rows[i] for i in group])
        self._update(rows)
        return rows

    def read(self, completions: Sequence, modality=None) -> list[TaggedSequence]:
        """Read completions with every validity rule of this reward: the text rules of
        :func:`~ume_rl.rewards.tags.read_completions` (with this reward's ``untagged`` and character bound),
        then the reward model's (``too_long``, ``unknown_token``), without scoring.

        The one validity decision shared by the rewards of a run: ``ComplexityReward(reader=ume_reward)`` and
        ``LengthReward(reader=ume_reward)`` read through it, so they leave out exactly what this reward
        penalises. The model's verdict on a sequence is remembered from the last scored batch.
        """
        parsed = read_completions(completions, modality, max_chars=self._max_chars, untagged=self.untagged)
        out = []
        for p in parsed:
            if p.reason is None:
                key = (p.sequence, p.modality)
                if key not in self._model_reasons:
                    if len(self._model_reasons) >= _MAX_REMEMBERED:
                        self._model_reasons.clear()
                    scorer = self._scorers[p.modality]
                    self._model_reasons[key] = scorer.invalid_reason(
                        scorer.encode([p.sequence], [p.modality])[0]
                    )
                reason = self._model_reasons[key]
                if reason is not None:
                    p = TaggedSequence(p.modality, None, reason)
            out.append(p)
        return out

    def _score_group(self, scorer: PseudoLikelihoodScorer, rows: list[dict]) -> None:
        """Score valid rows that share ``scorer``, in place (``too_long`` / ``unknown_token`` become invalid)."""
        pairs = [(r["sequence"], r["modality"]) for r in rows]
        distinct = list(dict.fromkeys(pairs))  # a repeated sequence is tokenized once
        encoded = dict(zip(distinct, scorer.encode(*zip(*distinct, strict=True)), strict=True))
        ids = [encoded[pair] for pair in pairs]
        fits = []
        for pair, row, tokens in zip(pairs, rows, ids, strict=True):
            reason = self._model_reasons[pair] = scorer.invalid_reason(tokens)
            if reason is None:
                fits.append((row, tokens))
            else:
                row.update(reason=reason, sequence=None)
        scores = scorer.score_ids([tokens for _, tokens in fits]) if fits else []
        for (row, _), score in zip(fits, scores, strict=True):
            if not math.isfinite(score):
                raise RuntimeError(f"{scorer.label} score {score} for {row['sequence'][:50]!r}")
            floor = self.score_floors[row["modality"]]
            row.update(score=score, reward=max(score, floor) / self.temperature, floored=score < floor)

    # ------------------------------------------------------------------------------------------ statistics

    def reset_statistics(self) -> None:
        self._scorer_base = {id(s): dict(s.stats) for s in self._distinct_scorers()}
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
        ``penalty``, ``temperature``, ``score_floor`` (the lowest), ``score_floors`` (per modality), ``mode``,
        ``models`` (per modality, the scorer's label); summed over the reward's scorers: ``duplicates``
        (valid sequences that repeated one of the same call: scored once), ``cache_hits`` (answered from
        earlier calls), ``scored_rows`` and ``forwards`` (encoder work actually done).
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
            "score_floors": dict(self.score_floors),
            "mode": self.mode,
            "models": {m: s.label for m, s in self._scorers.items()},
            "mean_reward": s["reward_total"] / total if total else 0.0,
            "min_reward": s["reward_min"] if total else 0.0,
            "max_reward": s["reward_max"] if total else 0.0,
            **{
                key: sum(
                    s.stats[stat] - self._scorer_base[id(s)].get(stat, 0) for s in self._distinct_scorers()
                )
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
