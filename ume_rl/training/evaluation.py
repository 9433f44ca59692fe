"""Evaluate a policy on held-out prompts: sample completions, score them with the reward, summarise.

>>> from ume_rl import MaskedLMReward, evaluate_policy, load_ume
>>> reward = MaskedLMReward(load_ume("tiny"))  # doctest: +SKIP
>>> evaluate_policy("runs/grpo-tiny", held_out, reward, num_generations=8)  # doctest: +SKIP
              n  tag_rate  valid_rate  mean_reward  mean_length  unique_fraction
modality
SMILES       80     0.875       0.738      -72.332        1.763            0.400
amino_acid   80     0.962       0.950      -73.230       14.342            0.975
nucleotide   80     0.912       0.862      -76.076       32.536            0.950
all         240     0.917       0.850      -73.879       16.858            0.775

(the tiny profile after notebook 04: an untrained UME, so the numbers show the plumbing, not biology)

:func:`write_generations` keeps every evaluation completion of a run as ``generations.jsonl`` (one JSON object
per completion: ``stage``, ``modality``, ``prompt_index``, ``completion``, ``sequence`` (null when invalid),
``valid``, ``reason``, ``reward``), so anyone can compute their own metrics on a run;
:func:`read_generations` reads it back.

:func:`generate_completions` returns one row per completion (prompt, completion, validity, reason, reward);
:func:`summarize_completions` turns those rows into the table above, per modality and ``all``. Sampling
uses the same settings as GRPO's rollouts (temperature 1, no top-k/top-p), seeded, so two evaluations of
the same model on the same machine agree.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from ume_rl.rewards.modalities import MODALITIES

logger = logging.getLogger(__name__)

SUMMARY_COLUMNS = ("n", "tag_rate", "valid_rate", "mean_reward", "mean_length", "unique_fraction")
# Reasons that mean the completion did not hold a non-empty tag of the requested modality.
TAG_FAILURES = frozenset({"no_tag", "wrong_modality", "empty"})
STAGES = ("base", "warm_start", "trained")
"""The policies a run evaluates: the base policy, after the warm start, after GRPO."""
GENERATION_FIELDS = (
    "stage",
    "modality",
    "prompt_index",
    "completion",
    "sequence",
    "valid",
    "reason",
    "reward",
)


def _load_policy(model_or_path, tokenizer=None, device=None):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if isinstance(model_or_path, str | Path):
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = AutoModelForCausalLM.from_pretrained(str(model_or_path)).to(device)
        tokenizer = tokenizer or AutoTokenizer.from_pretrained(str(model_or_path))
    else:
        model = model_or_path
        tokenizer = tokenizer or AutoTokenizer.from_pretrained(model.config._name_or_path)
    return model, tokenizer


def _prompt_text(prompt, tokenizer) -> str:
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    if tokenizer.chat_template is None:
        return "\n".join(message["content"] for message in prompt)
    return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)


@torch.no_grad()
def generate_completions(
    model_or_path,
    dataset,
    reward,
    num_generations: int = 4,
    max_new_tokens: int = 128,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    batch_size: int = 16,
    seed: int = 0,
    tokenizer=None,
    device=None,
    progress: bool = False,
) -> pd.DataFrame:
    """Sample ``num_generations`` completions per prompt of ``dataset`` and score each with ``reward``.

    Args:
        model_or_path: a causal LM or its directory/hub id.
        dataset: rows with ``prompt`` (chat messages or a string) and ``modality``.
        reward: a :class:`~ume_rl.rewards.masked_lm.MaskedLMReward` (its ``details`` gives validity, reason and reward).
        num_generations: completions per prompt.
        max_new_tokens: completion length limit (match GRPO's ``max_completion_length``).
        temperature, top_p, top_k: sampling settings (match GRPO's: a recipe's ``temperature``, ``top_p`` and
            ``top_k``; TRL's defaults 1.0, 1.0 and 0 sample from the policy as it is).
        batch_size: prompts per ``generate`` call.
        seed: seeds the sampling; the global RNG state is restored afterwards.
        tokenizer: defaults to the model's own.
        device: where a model loaded from a path goes (default CUDA when available); a model object stays put.
        progress: show a progress bar over the prompt batches.

    Returns:
        One row per completion: ``prompt_index, modality, completion, valid, reason, sequence, reward``.
    """
    model, tokenizer = _load_policy(model_or_path, tokenizer, device)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    padding_side, tokenizer.padding_side = tokenizer.padding_side, "left"  # restored below
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    rows = dataset.to_list() if hasattr(dataset, "to_list") else list(dataset)
    completions: list[str] = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for start in tqdm(range(0, len(rows), batch_size), desc="generate", disable=not progress):
            batch = rows[start : start + batch_size]
            texts = [_prompt_text(row["prompt"], tokenizer) for row in batch]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            out = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=True,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                num_return_sequences=num_generations,
                pad_token_id=tokenizer.pad_token_id,
            )
            completions += tokenizer.batch_decode(
                out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True
            )
    model.train(was_training)
    tokenizer.padding_side = padding_side
    modalities = [row["modality"] for row in rows for _ in range(num_generations)]
    details = reward.details(completions, modality=modalities)
    return pd.DataFrame(
        {
            "prompt_index": [i for i in range(len(rows)) for _ in range(num_generations)],
            "modality": modalities,
            "completion": completions,
            "valid": [d["reason"] is None for d in details],
            "reason": [d["reason"] for d in details],
            "sequence": [d["sequence"] for d in details],
            "reward": [float(d["reward"]) for d in details],
        }
    )


def summarize_completions(completions: pd.DataFrame) -> pd.DataFrame:
    """Per-modality table (plus ``all``): ``n``, ``tag_rate``, ``valid_rate``, ``mean_reward``, ``mean_length``,
    ``unique_fraction``.

    ``tag_rate`` is the fraction of completions holding a non-empty tag of the requested modality;
    ``valid_rate`` the fraction the reward accepts (tag and content: alphabet, SMILES parse, length);
    ``mean_reward`` averages every completion (invalid ones at the penalty), as GRPO sees it; ``mean_length``
    is the mean length in characters of the valid sequences (NaN when none is valid); ``unique_fraction`` is
    distinct completions / completions (1.0: no two alike; low: mode collapse).
    """

    def summary(frame: pd.DataFrame) -> dict:
        valid = frame[frame["valid"]]
        return {
            "n": len(frame),
            "tag_rate": (~frame["reason"].isin(TAG_FAILURES)).mean() if len(frame) else float("nan"),
            "valid_rate": frame["valid"].mean() if len(frame) else float("nan"),
            "mean_reward": frame["reward"].mean(),
            "mean_length": valid["sequence"].str.len().mean() if len(valid) else float("nan"),
            "unique_fraction": frame["completion"].nunique() / len(frame) if len(frame) else float("nan"),
        }

    order = [m for m in MODALITIES if m in set(completions["modality"])]
    table = {m: summary(completions[completions["modality"] == m]) for m in order}
    table["all"] = summary(completions)
    frame = pd.DataFrame.from_dict(table, orient="index", columns=list(SUMMARY_COLUMNS))
    frame.index.name = "modality"
    return frame


def evaluate_policy(model_or_path, dataset, reward, **options) -> pd.DataFrame:
    """Generate on ``dataset``'s prompts and return :func:`summarize_completions` of the scored completions.

    ``options`` are :func:`generate_completions`' keywords (``num_generations``, ``max_new_tokens``, sampling,
    ``seed`` ...). Rows: one per modality present, then ``all``.
    """
    completions = generate_completions(model_or_path, dataset, reward, **options)
    return summarize_completions(completions)


def _text(value) -> str | None:
    """A string as it is; anything else (pandas' NaN for a missing value, None) as None."""
    return value if isinstance(value, str) else None


def write_generations(path: str | Path, samples: Mapping[str, pd.DataFrame]) -> Path:
    """Write ``samples`` (stage → :func:`generate_completions` rows) to ``path`` as JSON lines, one per completion,
    replacing the file (written to a temporary name first, so a crash never leaves half a file).

    ``sequence`` is null for an invalid completion and ``reward`` null when it is not a finite number.

    >>> import tempfile
    >>> rows = pd.DataFrame({"prompt_index": [0], "modality": ["nucleotide"], "completion": ["<dna>AC</dna>"],
    ...                      "valid": [True], "reason": [None], "sequence": ["AC"], "reward": [-1.5]})
    >>> path = write_generations(f"{tempfile.mkdtemp()}/generations.jsonl", {"trained": rows})
    >>> read_generations(path)[["stage", "sequence", "reward"]].values.tolist()
    [['trained', 'AC', -1.5]]
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w") as out:
        for stage, frame in samples.items():
            for row in frame.to_dict("records"):
                valid = bool(row["valid"])
                reward = float(row["reward"])
                record = {
                    "stage": stage,
                    "modality": row["modality"],
                    "prompt_index": int(row["prompt_index"]),
                    "completion": row["completion"],
                    "sequence": _text(row["sequence"]) if valid else None,
                    "valid": valid,
                    "reason": _text(row["reason"]),
                    "reward": reward if math.isfinite(reward) else None,
                }
                out.write(json.dumps(record, allow_nan=False) + "\n")
    partial.replace(path)
    logger.info("wrote %d generations (%s) to %s", sum(map(len, samples.values())), ", ".join(samples), path)
    return path


def read_generations(path: str | Path) -> pd.DataFrame:
    """The rows of a ``generations.jsonl`` (:func:`write_generations`), with a ``stage`` column.

    Raises:
        ValueError: a line that is not a JSON object with the expected fields (names the line).
    """
    rows = []
    with Path(path).open() as lines:
        for number, line in enumerate(lines, start=1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"{path}:{number} is not JSON ({err.msg}): write it with write_generations"
                ) from None
            missing = [f for f in GENERATION_FIELDS if not isinstance(row, dict) or f not in row]
            if missing:
                raise ValueError(f"{path}:{number} lacks {missing}: write it with write_generations")
            rows.append(row)
    return pd.DataFrame(rows, columns=list(GENERATION_FIELDS))
