"""Watch a GRPO run for reward hacking: realism metrics and audit scores of each logging step's completions,
logged beside the reward, and a verdict over the run.

>>> monitor = RealismMonitor(RealismSuite.from_corpus(corpus), [ContextAudit(train_split)])  # doctest: +SKIP
>>> trainer = build_trainer(policy, rewards, train, args=args, callbacks=[monitor])  # doctest: +SKIP
>>> trainer.train()  # doctest: +SKIP
>>> print(hacking_verdict(trainer.state.log_history, monitor.reference))  # doctest: +SKIP

:class:`RealismMonitor` is a ``transformers.TrainerCallback``. At every training log (the entries holding
TRL's ``reward``), it reads the completions of the latest generation batch, which ``GRPOTrainer`` keeps for its
completion tables whether or not they are printed, extracts each one's sequence with the reward's own reader
(:func:`~ume_rl.rewards.tags.read_completions`), and adds to that log entry, before any reporter (wandb,
TensorBoard, trackio) sees it:

- ``realism/<modality>/<metric>``: :meth:`RealismSuite.log_values` (FCD only at evaluation);
- ``audit/<scorer>/<modality>`` and ``audit/<scorer>``: the mean score of the valid sequences under each audit
  scorer: an object with ``__name__`` and ``scores(sequences, modality) -> list[float]``, which the policy is not
  trained on (:class:`~ume_rl.rewards.baselines.ContextAudit`, or :class:`MaskedLMAudit` for other masked
  LMs). Higher is better for both.

:func:`hacking_verdict` compares the first and last third of the logged steps: the training reward up while an
audit score falls or a realism distance ``|value − reference|`` grows is the hacking pattern, said plainly.
When training ends the monitor logs the verdict and writes it to ``output_dir/verdict.json``.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from transformers import TrainerCallback

from ume_rl.rewards.masked_lm import make_scorer
from ume_rl.rewards.modalities import MODALITY_TABLE, normalize_modality
from ume_rl.rewards.tags import completion_text, read_completions

logger = logging.getLogger(__name__)

REWARD_KEY = "reward"
AUDIT_PREFIX = "audit"
AUDIT_FIT_MAX = 50_000
"""Train-split sequences per modality the context audit is fitted on (a seeded sample above this)."""


class MaskedLMAudit:
    """Audit with masked LMs the reward does not use: per modality, the mean masked pseudo-log-likelihood per
    token (:func:`~ume_rl.rewards.masked_lm.make_scorer`, ``mode="masked"``).

    Args:
        models: modality → a loaded model (:func:`~ume_rl.models.masked_lms.load_reward_model`).
        name: the ``audit/<name>`` key.
    """

    def __init__(self, models: Mapping, name: str = "masked_lm_audit"):
        self.scorers = {
            normalize_modality(m): make_scorer(model, m, mode="masked") for m, model in models.items()
        }
        self.__name__ = name

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.scorers)

    def scores(self, sequences: Sequence[str], modality) -> list[float]:
        modality = normalize_modality(modality)
        return self.scorers[modality].score(list(sequences), [modality] * len(sequences)) if sequences else []


def audit_values(audits: Sequence, modalities: Sequence[str | None], sequences: Sequence[str | None]) -> dict:
    """``{"audit/<name>/<label>": mean, "audit/<name>": mean over all}`` of the valid sequences (NaN scores
    dropped) under each audit scorer, for the modalities it covers."""
    out: dict[str, float] = {}
    for audit in audits:
        name, every = audit.__name__, []
        for modality in audit.modalities:
            group = [s for m, s in zip(modalities, sequences, strict=True) if m == modality and s]
            scores = [x for x in audit.scores(group, modality) if not math.isnan(x)]
            if scores:
                out[f"{AUDIT_PREFIX}/{name}/{MODALITY_TABLE[modality].label}"] = float(np.mean(scores))
                every += scores
        if every:
            out[f"{AUDIT_PREFIX}/{name}"] = float(np.mean(every))
    return out


class RealismMonitor(TrainerCallback):
    """Realism metrics and audit scores of every logging step's completions, in ``state.log_history``.

    Args:
        suite: a :class:`~ume_rl.training.realism.RealismSuite` (``None``: audit only).
        audits: audit scorers (see the module docstring).
        prompt_modality: prompt text → the modality it asks for; prompts not in it are read by their tag.

    Pass it in ``callbacks`` of :func:`~ume_rl.training.trainer.build_trainer`, which attaches it (the monitor
    needs the trainer's completions and must run before the reporting callbacks).
    """

    def __init__(self, suite=None, audits: Sequence = (), prompt_modality: Mapping[str, str] | None = None):
        self.suite = suite
        self.audits = list(audits)
        self.prompt_modality = dict(prompt_modality or {})
        self.trainer = None

    @property
    def reference(self) -> dict[str, float]:
        """Each realism key's corpus value (what :func:`hacking_verdict` measures distances to)."""
        return self.suite.reference_log_values() if self.suite is not None else {}

    def attach(self, trainer) -> None:
        """Read ``trainer``'s completions, and run first among its callbacks."""
        self.trainer = trainer
        callbacks = trainer.callback_handler.callbacks
        if self in callbacks:
            callbacks.remove(self)
        callbacks.insert(0, self)

    def step_values(self, prompts: Sequence, completions: Sequence) -> dict[str, float]:
        """Realism and audit values of one batch of (prompt, completion) pairs."""
        modalities = [self.prompt_modality.get(_prompt_text(p)) for p in prompts]
        read = read_completions(list(completions), modalities)
        wanted = [m if m is not None else r.modality for m, r in zip(modalities, read, strict=True)]
        sequences = [r.sequence if r.reason is None else None for r in read]
        values = self.suite.log_values(wanted, sequences, live=True) if self.suite is not None else {}
        values.update(audit_values(self.audits, wanted, sequences))
        return values

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.trainer is None or logs is None or REWARD_KEY not in logs or not state.is_world_process_zero:
            return
        kept = self.trainer._logs  # GRPOTrainer keeps the latest generation batch for its completion tables
        if not kept["completion"]:
            return
        values = self.step_values(list(kept["prompt"]), list(kept["completion"]))
        values = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in values.items()}
        logs.update(values)
        last = state.log_history[-1] if state.log_history else {}
        if last.get("step") == state.global_step and REWARD_KEY in last:  # the entry Trainer.log just added
            last.update(values)

    def on_train_end(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        verdict = hacking_verdict(state.log_history, self.reference)
        (logger.warning if verdict.hacking else logger.info)("%s", verdict.message)
        path = Path(args.output_dir) / "verdict.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(verdict.to_dict(), indent=1, default=str))


def _prompt_text(prompt) -> str | None:
    return prompt if isinstance(prompt, str) else completion_text(prompt)


@dataclass(frozen=True)
class Verdict:
    """What :func:`hacking_verdict` found: ``hacking`` (reward up while an audit or realism got worse),
    ``reward_change`` (last third − first third), ``table`` (one row per audit/realism key: ``first``,
    ``last``, the distance to the corpus before and after, ``worse``) and a plain ``message``."""

    hacking: bool
    reward_change: float
    table: pd.DataFrame
    message: str

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict:
        return {
            "hacking": self.hacking,
            "reward_change": self.reward_change,
            "message": self.message,
            "worse": self.table.index[self.table["worse"]].tolist() if len(self.table) else [],
        }


def _mean(rows: list[dict], key: str) -> float:
    values = [r[key] for r in rows if isinstance(r.get(key), int | float) and not math.isnan(r[key])]
    return float(np.mean(values)) if values else math.nan


def hacking_verdict(
    log_history: Sequence[Mapping],
    reference: Mapping[str, float] | None = None,
    tolerance: float = 0.1,
    audit_tolerance: float = 0.02,
) -> Verdict:
    """Did the training reward rise while the audit or realism got worse?

    Args:
        log_history: ``trainer.state.log_history`` (entries with ``reward`` are the training logs).
        reference: realism key → corpus value (:attr:`RealismMonitor.reference`); realism keys without one
            are not judged.
        tolerance: a realism distance is worse when it grows by more than this fraction (and by 0.01).
        audit_tolerance: an audit score is worse when it falls by more than this fraction of its magnitude.

    Returns:
        A :class:`Verdict`, comparing the mean of the first and last third of the training logs.
    """
    rows = [r for r in log_history if isinstance(r.get(REWARD_KEY), int | float)]
    if len(rows) < 2:
        return Verdict(False, math.nan, pd.DataFrame(), "Too few logging steps to judge (need two or more).")
    third = max(1, len(rows) // 3)
    first, last = rows[:third], rows[-third:]
    reference = dict(reference or {})
    reward_change = _mean(last, REWARD_KEY) - _mean(first, REWARD_KEY)
    keys = sorted({k for r in rows for k in r if k.startswith(f"{AUDIT_PREFIX}/") or k in reference})
    table = []
    for key in keys:
        before, after = _mean(first, key), _mean(last, key)
        if math.isnan(before) or math.isnan(after):
            continue
        if key.startswith(f"{AUDIT_PREFIX}/"):
            d_before, d_after = -before, -after  # higher audit is better: its negative is the distance
            worse = after < before - audit_tolerance * abs(before)
        else:
            d_before, d_after = abs(before - reference[key]), abs(after - reference[key])
            worse = d_after > d_before * (1 + tolerance) + 0.01
        table.append((key, before, after, d_before, d_after, worse))
    frame = pd.DataFrame(table, columns=["key", "first", "last", "distance_first", "distance_last", "worse"])
    frame = frame.set_index("key")
    worse = frame.index[frame["worse"]].tolist() if len(frame) else []
    rose = reward_change > 0
    hacking = bool(rose and worse)
    reward_text = f"training reward {_mean(first, REWARD_KEY):.3f} -> {_mean(last, REWARD_KEY):.3f}"
    if hacking:
        detail = ", ".join(f"{k} ({frame.loc[k, 'first']:.3f} -> {frame.loc[k, 'last']:.3f})" for k in worse)
        message = f"REWARD HACKING: {reward_text} while these got worse: {detail}."
    elif rose:
        message = f"No sign of reward hacking: {reward_text}; no audit or realism metric got worse."
    else:
        message = f"The reward did not rise ({reward_text}); nothing to judge as hacking."
    return Verdict(hacking, reward_change, frame, message)


def build_monitor(
    train_dataset,
    corpus=None,
    audit_models: Mapping[str, str] | None = None,
    device=None,
    seed: int = 0,
    runs_dir=None,
) -> RealismMonitor:
    """The run's monitor: realism against ``corpus`` (default :func:`~ume_rl.data.corpus.load_real_corpus`),
    the character context audit fitted on its train split (at most :data:`AUDIT_FIT_MAX` per modality), and a :class:`MaskedLMAudit` of ``audit_models``
    (modality → hub id, directory or UME name; a recipe's ``audit_models``) loaded on ``device`` (``demo`` and
    ``demo-esm`` trained or found under ``runs_dir``).

    ``train_dataset``'s ``prompt``/``modality`` columns tell which modality each prompt asks for.
    """
    from ume_rl.data.corpus import load_real_corpus
    from ume_rl.models.masked_lms import load_reward_model
    from ume_rl.rewards.baselines import ContextAudit
    from ume_rl.training.realism import RealismSuite

    corpus = corpus if corpus is not None else load_real_corpus(progress=False)
    suite = RealismSuite.from_corpus(corpus, seed=seed)
    train = {m: corpus.sequences(m, "train") for m in MODALITY_TABLE}
    rng = random.Random(seed)
    train = {
        m: rng.sample(seqs, AUDIT_FIT_MAX) if len(seqs) > AUDIT_FIT_MAX else seqs for m, seqs in train.items()
    }
    audits: list = [ContextAudit(train)]
    if audit_models:
        loaded = {
            m: load_reward_model(name, m, device=device, runs_dir=runs_dir)
            for m, name in audit_models.items()
        }
        audits.append(MaskedLMAudit(loaded))
    prompt_modality = {
        _prompt_text(p): normalize_modality(m)
        for p, m in zip(train_dataset["prompt"], train_dataset["modality"], strict=True)
    }
    return RealismMonitor(suite, audits, prompt_modality)
