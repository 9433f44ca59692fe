"""A run's fingerprint: the resolved settings that define its experiment, recorded in the run directory and
compared when the run is resumed.

The fingerprint names the policy and each reward model by a checksum or id (:func:`model_identity`), the
dataset by a content hash of each split (:func:`~ume_rl.data.store.dataset_fingerprint`), and holds the reward
functions, weights and settings, the warm-start settings and the GRPO hyper-parameters. A resume whose
fingerprint differs in any of these is refused (:func:`check_resume`); ``max_steps``, ``num_train_epochs``,
logging, save cadence and evaluation size (:data:`HARMLESS`) may change, and so may any key named in
``accept_changes``; what changed is recorded in the run's marker.

>>> fingerprint_changes({"learning_rate": 1e-5, "max_steps": 4}, {"learning_rate": 0.5, "max_steps": 8})
(['learning_rate'], {'max_steps': [4, 8]})
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ume_rl.models.integrity import MANIFEST_NAME, WEIGHT_FILES, sha256_file
from ume_rl.training.rundir import RunDirectoryError

logger = logging.getLogger(__name__)

# GRPOConfig fields that change what a run learns (TRL fields this TRL lacks are left out).
GRPO_FIELDS: tuple[str, ...] = (
    "learning_rate",
    "lr_scheduler_type",
    "warmup_ratio",
    "warmup_steps",
    "weight_decay",
    "adam_beta1",
    "adam_beta2",
    "adam_epsilon",
    "optim",
    "max_grad_norm",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "num_generations",
    "steps_per_generation",
    "max_completion_length",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repetition_penalty",
    "beta",
    "epsilon",
    "epsilon_high",
    "loss_type",
    "scale_rewards",
    "num_iterations",
    "mask_truncated_completions",
    "reward_weights",
    "seed",
    "bf16",
    "fp16",
)
# TrainScriptArguments fields that change what a run learns.
SCRIPT_FIELDS: tuple[str, ...] = (
    "reward_funcs",
    "reward_temperature",
    "reward_penalty",
    "reward_mode",
    "complexity_measure",
    "novelty_decay",
    "novelty_bucket_size",
    "warm_start_epochs",
    "warm_start_learning_rate",
    "warm_start_batch_size",
    "warm_start_references",
    "warm_start_corpus_steps",
    "warm_start_corpus_learning_rate",
    "warm_start_corpus_sizes",
)
# Recorded, and allowed to change on a resume: how long the run goes, what it logs and when it saves.
HARMLESS = frozenset(
    {
        "max_steps",
        "num_train_epochs",
        "logging_steps",
        "save_steps",
        "save_total_limit",
        "eval_generations",
        "torch_num_threads",
    }
)

# Every key of a fingerprint: what accept_changes may name.
FINGERPRINT_KEYS = frozenset({"policy", "reward_models", "dataset", *GRPO_FIELDS, *SCRIPT_FIELDS, *HARMLESS})


def model_identity(name) -> str:
    """How a fingerprint names a model: a file by its sha256, a directory with a manifest by the manifest's
    sha256, another directory (a hub snapshot, whose path holds its commit) by its path and weight-file sizes,
    anything else (a registry name, a hub id, ``tiny``) by its name; a model object by its class only."""
    if not isinstance(name, str | Path):
        return f"a loaded {type(name).__name__}"
    path = Path(name).expanduser()
    if path.is_file():
        return f"{path.name} sha256:{sha256_file(path)[:16]}"
    if path.is_dir():
        if (path / MANIFEST_NAME).is_file():
            return f"{path.name} manifest sha256:{sha256_file(path / MANIFEST_NAME)[:16]}"
        sizes = [f"{w} {(path / w).stat().st_size} bytes" for w in WEIGHT_FILES if (path / w).is_file()]
        return f"{path.resolve()} ({', '.join(sizes) or 'no weights'})"
    return str(name)


def run_fingerprint(grpo, *, policy, reward_models, dataset: dict, **settings) -> dict:
    """The fingerprint of a run (JSON-ready): ``policy`` and ``reward_models`` (modality → model, or one
    model) by :func:`model_identity`, ``dataset`` (split → content hash), the GRPO fields of
    :data:`GRPO_FIELDS` and :data:`HARMLESS` read from ``grpo``, and ``settings`` (reward functions, reward and
    warm-start settings) as given."""
    models = reward_models if isinstance(reward_models, dict) else {"all": reward_models}
    found = {
        "policy": model_identity(policy),
        "reward_models": {modality: model_identity(name) for modality, name in models.items()},
        "dataset": dataset,
        **{name: getattr(grpo, name) for name in (*GRPO_FIELDS, *HARMLESS) if hasattr(grpo, name)},
        **settings,
    }
    return json.loads(json.dumps(found, default=str))


def fingerprint_changes(recorded: dict, current: dict, accept=()) -> tuple[list[str], dict]:
    """``(refused, allowed)``: the keys that differ and change the experiment, and ``{key: [old, new]}`` of the
    ones that may change (:data:`HARMLESS`, or named in ``accept``)."""
    refused, allowed = [], {}
    for key in sorted(set(recorded) | set(current)):
        old, new = recorded.get(key), current.get(key)
        if old == new:
            continue
        if key in HARMLESS or key in accept:
            allowed[key] = [old, new]
        else:
            refused.append(key)
    return refused, allowed


def _short(value) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def check_resume(output_dir, marker: dict | None, current: dict, accept=()) -> dict:
    """Compare the fingerprint recorded in a run's ``marker`` with ``current``; returns the allowed changes.

    Raises:
        RunDirectoryError: a difference that changes the experiment, as one line listing what differs (old →
            new) and the fix.
    """
    recorded = (marker or {}).get("fingerprint")
    if recorded is None:
        logger.warning("the run in %s recorded no fingerprint: its settings cannot be compared", output_dir)
        return {}
    refused, allowed = fingerprint_changes(recorded, current, accept)
    if refused:
        listed = "; ".join(f"{k} {_short(recorded.get(k))} -> {_short(current.get(k))}" for k in refused)
        problem = (
            f"holds a run with other settings, which resuming would mix into it: {listed}. Fix: resume with "
            "the run's settings, start over with --overwrite_output_dir, pick a new --output_dir, or accept "
            f"the change with --accept_changes {' '.join(refused)}"
        )
        raise RunDirectoryError(f"output_dir {output_dir} {problem}", "output_dir", problem)
    if allowed:
        logger.info(
            "resuming %s with changed %s",
            output_dir,
            ", ".join(f"{k} {a} -> {b}" for k, (a, b) in allowed.items()),
        )
    return allowed
