"""Recipes: one YAML file per experiment, checked in full before anything runs.

A recipe is the whole run configuration: :class:`TrainScriptArguments` fields (policy ``model_path``, reward
models ``ume_model_path`` and ``reward_models``, ``references``, rewards, warm start) and any ``GRPOConfig`` field
(:class:`~ume_rl.training.config.UmeGRPOConfig`); an ``env:`` mapping sets environment variables (TRL's
``TrlParser``). Rewards are named (``reward_funcs: [ume, complexity]``, see :mod:`ume_rl.rewards.registry`) and
weighted by TRL's ``reward_weights``; ``reward_models`` picks a masked LM per modality, the UME scores the rest.
Recipes ship in the package (``ume_rl/recipes/<name>.yaml``, :data:`ume_rl.profiles.PROFILES`); :func:`load_recipe`
takes a recipe name or a YAML path, and :func:`parse_config` adds ``ume-rl train``'s flags. The run goes to
``output_dir``, by default :func:`ume_rl.profiles.default_output_dir` (``runs/grpo-<recipe>``).

>>> script, grpo = load_recipe("tiny", max_steps=3, output_dir="/tmp/ume_rl_doctest")
>>> grpo.max_steps, script.warm_start_epochs, script.reward_funcs, script.model_path
(3, 8, ['ume'], 'tiny')

The whole configuration is checked when it is parsed (:mod:`ume_rl.training.validation`): a bad value is a
one-line :class:`~ume_rl.training.validation.ConfigError` naming the field, its value, its source and the fix,
before anything is loaded or written.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from ume_rl.profiles import PROFILES, default_output_dir, recipe_path, resolve_profile_name
from ume_rl.rewards.engine.scoring import DEFAULT_MODE
from ume_rl.rewards.modalities import MODALITIES, MODALITY_TABLE, normalize_modality
from ume_rl.training.config import UmeGRPOConfig
from ume_rl.training.validation import ConfigError, Sources, check_raw_types, validate_config

logger = logging.getLogger(__name__)

TRANSFORMERS_DEFAULT_OUTPUT_DIR = "trainer_output"
USAGE = "ume-rl train [--config RECIPE] [--FIELD VALUE ...]"
DESCRIPTION = f"""GRPO training of a policy against the UME reward.

--config RECIPE
    {", ".join(PROFILES)} (the recipes shipped with ume_rl) or the path of your own YAML. Default: the
    active profile's recipe ($UME_RL_PROFILE, else full on CUDA, else demo). Every field below overrides the
    recipe's value.
--resume_from_checkpoint last
    continue the run in --output_dir from its newest complete checkpoint (its warm start is reused).
--overwrite_output_dir
    delete the run in --output_dir and start over. Without one of these two, a directory that holds a
    run is refused.

Every value is checked before anything is loaded or written. Examples:
    ume-rl train --config tiny --max_steps 5 --output_dir runs/try
    ume-rl train --config tiny --max_steps 10 --output_dir runs/try --resume_from_checkpoint last"""


@dataclass
class TrainScriptArguments:
    """Settings of a training run that are not ``GRPOConfig`` fields."""

    recipe: str | None = field(
        default=None, init=False, metadata={"help": "The recipe file read (set by parse_config; not a flag)."}
    )
    model_path: str | None = field(
        default=None, metadata={"help": "Policy: 'tiny' (built here), a hub id or a directory. Required."}
    )
    ume_model_path: str | None = field(
        default=None,
        metadata={
            "help": "UME scoring every modality reward_models leaves out: 'tiny', 'demo' (trained here), a registry "
            "name or a .ckpt path. Required."
        },
    )
    references: str = field(
        default="random",
        metadata={
            "help": "Dataset references when dataset_dir is unset: 'random' (generated) or 'real' (corpus)."
        },
    )
    reward_models: dict | str | None = field(
        default=None,
        metadata={
            "help": "Reward model per modality, e.g. {amino_acid: facebook/esm2_t33_650M_UR50D}: a hub id or local "
            "directory of a masked LM, or 'ume'; modalities not named use the UME. A JSON object on the command line."
        },
    )
    audit_models: dict | str | None = field(
        default=None,
        metadata={
            "help": "Masked LMs per modality that audit the policy without training it, e.g. {amino_acid: "
            "facebook/esm2_t6_8M_UR50D}: logged as audit/masked_lm_audit/<modality> beside the reward."
        },
    )
    monitor: bool = field(
        default=True,
        metadata={"help": "Log realism metrics and audit scores of each logging step's completions."},
    )
    dataset_dir: str | None = field(
        default=None,
        metadata={
            "help": "Saved DatasetDict; default runs/data/<references' dataset> (generated if missing)."
        },
    )
    reward_funcs: list[str] = field(
        default_factory=lambda: ["ume"],
        metadata={"help": "Rewards by name (ume, complexity, length, novelty), weighted by reward_weights."},
    )
    reward_temperature: float = field(default=0.1, metadata={"help": "UME reward = score / temperature."})
    reward_penalty: float | None = field(
        default=None,
        metadata={"help": "UME reward of an invalid completion; default: below every valid one."},
    )
    reward_mode: str = field(
        default=DEFAULT_MODE,
        metadata={"help": "'masked' (exact pseudo-log-likelihood) or 'unmasked' (one pass)."},
    )
    complexity_measure: str = field(
        default="both", metadata={"help": "Complexity reward: 'entropy', 'kmer' or 'both'."}
    )
    novelty_decay: float = field(
        default=0.5,
        metadata={
            "help": "Novelty reward: factor per earlier copy and per completion over a full bucket, in (0, 1)."
        },
    )
    novelty_bucket_size: int = field(
        default=25,
        metadata={
            "help": "Novelty reward: completions a scaffold / k-mer bucket holds before its reward decays."
        },
    )
    warm_start_epochs: float = field(
        default=0.0, metadata={"help": "Epochs of SFT on the reference completions before GRPO (0: none)."}
    )
    warm_start_learning_rate: float = field(
        default=2e-5, metadata={"help": "Learning rate of the warm start."}
    )
    warm_start_batch_size: int = field(
        default=16, metadata={"help": "Per-device batch size of the warm start."}
    )
    warm_start_references: int = field(
        default=0,
        metadata={
            "help": "Extra real references per modality for the warm start, beside the dataset's train rows: MOSES "
            "train SMILES and the corpus's train proteins and DNA, no held-out answer among them (0: none)."
        },
    )
    warm_start_corpus_steps: int = field(
        default=0,
        metadata={
            "help": "Steps of language modelling on tagged real sequences (MOSES train SMILES, the corpus's train "
            "proteins and DNA; no held-out answer) before the warm start's SFT: the policy learns the languages "
            "(0: none)."
        },
    )
    warm_start_corpus_learning_rate: float = field(
        default=3e-3, metadata={"help": "Learning rate of the warm start's corpus stage."}
    )
    warm_start_corpus_sizes: dict | str | None = field(
        default=None,
        metadata={
            "help": "Sequences per modality in the corpus stage, e.g. {SMILES: 40000, amino_acid: 1500, "
            "nucleotide: 1500} (the default). A JSON object on the command line."
        },
    )
    eval_generations: int = field(
        default=8, metadata={"help": "Completions per held-out prompt in the final evaluation (0: skip it)."}
    )
    torch_num_threads: int | None = field(
        default=None,
        metadata={"help": "CPU threads for torch (tiny models run fastest on 1); default torch's."},
    )
    accept_changes: list[str] = field(
        default_factory=list,
        metadata={
            "help": "On --resume_from_checkpoint: settings that may differ from the run's recorded ones (e.g. "
            "learning_rate); any other difference that changes the experiment is refused."
        },
    )

    def __post_init__(self):
        model_example = '\'{"amino_acid": "facebook/esm2_t6_8M_UR50D"}\''
        self.reward_models = _modality_mapping(
            "reward_models", self.reward_models, "model", model_example, str
        )
        self.audit_models = _modality_mapping("audit_models", self.audit_models, "model", model_example, str)
        self.warm_start_corpus_sizes = _modality_mapping(
            "warm_start_corpus_sizes", self.warm_start_corpus_sizes, "count", "'{\"SMILES\": 40000}'", _count
        )

    def corpus_sizes(self) -> dict[str, int]:
        """Sequences per modality in the warm start's corpus stage: ``warm_start_corpus_sizes`` over the modality
        table's ``corpus_size``."""
        defaults = {name: spec.corpus_size for name, spec in MODALITY_TABLE.items()}
        return {**defaults, **(self.warm_start_corpus_sizes or {})}

    def reward_model_names(self) -> dict[str, str]:
        """Per modality, the reward model's name (see :mod:`ume_rl.models.names`): ``reward_models``' entry, else
        (or ``ume``) ``ume_model_path``."""
        chosen = self.reward_models or {}
        return {m: self.ume_model_path if chosen.get(m, "ume") == "ume" else chosen[m] for m in MODALITIES}

    def reward_settings(self) -> dict[str, dict]:
        """Keyword arguments per reward name, for :func:`~ume_rl.rewards.registry.build_reward_funcs`."""
        return {
            "ume": {
                "temperature": self.reward_temperature,
                "penalty": self.reward_penalty,
                "mode": self.reward_mode,
            },
            "complexity": {"measure": self.complexity_measure},
            "novelty": {"decay": self.novelty_decay, "bucket_size": self.novelty_bucket_size},
        }

    def warm_start_kwargs(self, grpo: UmeGRPOConfig) -> dict:
        """Warm-start settings as :func:`~ume_rl.training.sft.warm_start` keywords (seed and checkpointing from GRPO;
        the corpus texts are the run's to draw)."""
        return {
            "num_train_epochs": self.warm_start_epochs,
            "learning_rate": self.warm_start_learning_rate,
            "per_device_train_batch_size": self.warm_start_batch_size,
            "corpus_steps": self.warm_start_corpus_steps,
            "corpus_learning_rate": self.warm_start_corpus_learning_rate,
            "seed": grpo.seed,
            "gradient_checkpointing": grpo.gradient_checkpointing,
        }

    def evaluation_kwargs(self, grpo: UmeGRPOConfig) -> dict:
        """:func:`~ume_rl.training.evaluation.evaluate_policy` keywords matching the GRPO rollouts."""
        return {
            "num_generations": self.eval_generations,
            "max_new_tokens": grpo.max_completion_length,
            "temperature": grpo.temperature,
            "top_p": grpo.top_p,
            "top_k": grpo.top_k or 0,
        }


def _count(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{value!r} is not a count (an integer >= 0)")
    return value


def _modality_mapping(name: str, value, what: str, example: str, cast) -> dict | None:
    """``value`` (a mapping, its JSON text or ``None``) as modality → ``cast(entry)``; errors name the field."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{name} must be a mapping modality -> {what}, e.g. {example}, got {value!r}"
            ) from err
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a mapping modality -> {what}, e.g. {example}, got {value!r}")
    try:
        return {normalize_modality(k): cast(v) for k, v in value.items()}
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from err


def recipe_parser():
    """TRL's ``TrlParser`` over :class:`TrainScriptArguments` and :class:`UmeGRPOConfig`.

    Its errors raise :class:`~ume_rl.training.validation.ConfigError` (one line) instead of printing the
    whole usage and exiting; abbreviated flags are not accepted (a typo is an error, not another field).
    """
    from trl import TrlParser

    class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
        pass

    class RecipeParser(TrlParser):
        def error(self, message):
            raise ConfigError(message)

    return RecipeParser(
        (TrainScriptArguments, UmeGRPOConfig),
        prog="ume-rl train",
        usage=USAGE,
        description=DESCRIPTION,
        formatter_class=Formatter,
        allow_abbrev=False,
    )


def apply_runtime(script: TrainScriptArguments) -> None:
    """Apply the run's process settings (``torch_num_threads``)."""
    if script.torch_num_threads:
        torch.set_num_threads(script.torch_num_threads)


def load_recipe(name_or_path: str | Path, **overrides) -> tuple[TrainScriptArguments, UmeGRPOConfig]:
    """Read a recipe (a recipe name or a YAML path); keyword overrides win, ``None`` values are ignored.

    Applies the recipe's ``env`` variables and ``torch_num_threads``, as ``ume-rl train`` does, and checks the
    whole configuration (:func:`parse_config`).

    """
    return parse_config(name_or_path, overrides=overrides)


def _flag_names(args: list[str]) -> frozenset[str]:
    return frozenset(arg[2:].split("=", 1)[0] for arg in args if arg.startswith("--"))


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (plain YAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(
                    f"{key!r} is given twice (line {key_node.start_mark.line + 1}): keep one of the two"
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_recipe_file(path: Path) -> dict:
    """The fields of the recipe file ``path``, a YAML mapping.

    Raises:
        ConfigError: one line naming ``path``: not valid YAML, a key given twice, empty (or only comments: a
            run on every default is never what an empty file meant), or not a mapping of field: value.
    """
    try:
        config = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except ConfigError as err:
        raise ConfigError(f"recipe {path}: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"recipe {path} is not valid YAML: {_one_line(err)}") from None
    if config is None or config == {}:
        raise ConfigError(
            f"recipe {path} is empty: write its fields (field: value, one a line), or start from a shipped "
            "recipe (ume_rl/recipes/*.yaml)"
        )
    if not isinstance(config, dict):
        raise ConfigError(
            f"recipe {path} must be a YAML mapping of field: value, got {type(config).__name__}"
        )
    return config


def parse_config(
    recipe: str | Path | None = None, args: list[str] | tuple[str, ...] = (), overrides: dict | None = None
) -> tuple[TrainScriptArguments, UmeGRPOConfig]:
    """The checked configuration of a run: ``recipe``, then keyword ``overrides``, then command-line ``args``.

    Args:
        recipe: a recipe name or a YAML path; ``None``: the active profile's recipe
            (:func:`~ume_rl.profiles.resolve_profile_name`: ``$UME_RL_PROFILE``...), logged.
        args: flags (``["--max_steps", "5"]``), as ``ume-rl train`` takes them.
        overrides: field values (``None`` values are ignored), as :func:`load_recipe` takes them.

    Returns:
        ``(TrainScriptArguments, UmeGRPOConfig)`` with ``output_dir`` resolved (default ``runs/grpo-<recipe>``);
        the recipe's ``env`` and ``torch_num_threads`` are applied.

    Raises:
        ConfigError: one line naming the field, its value, its source and the fix
            (:func:`~ume_rl.training.validation.validate_config`); nothing has been loaded or written.
    """
    args = list(args)
    overrides = {
        key: str(value) if isinstance(value, Path) else value
        for key, value in (overrides or {}).items()
        if value is not None
    }
    if recipe is None:
        try:
            name = resolve_profile_name()
        except ValueError as err:
            raise ConfigError(_one_line(err)) from None
        path = recipe_path(name)
        logger.info("no --config given: using the %s profile's recipe %s", name, path)
    else:
        path = recipe_path(recipe)
    config = read_recipe_file(path)
    env = config.pop("env", None) or {}
    if not isinstance(env, dict):
        raise ConfigError(f"env in recipe {path} must be a mapping of variable: value")
    for key, value in env.items():
        os.environ[key] = str(value)
    sources = Sources(str(path), frozenset(config), _flag_names(args), frozenset(overrides))
    values = {**config, **overrides}
    parser = recipe_parser()
    known = {action.dest for action in parser._actions}
    unknown = [key for key in values if key not in known]
    if unknown:
        close = {key: difflib.get_close_matches(key, known, n=1) for key in unknown}
        hints = "; ".join(f"did you mean {close[k][0]}?" for k in unknown if close[k])
        where = ", ".join(sorted({sources.of(key) for key in unknown}))
        raise ConfigError(
            f"unknown field(s) {', '.join(unknown)} ({where}): ume-rl train --help lists every field. {hints}".strip()
        )
    check_raw_types(values, (TrainScriptArguments, UmeGRPOConfig), sources)
    parser.set_defaults_with_config(**values)
    try:
        script, grpo = parser.parse_args_into_dataclasses(args=args)
    except ConfigError as err:
        raise _parser_error(err, sources) from None
    except ValueError as err:  # the dataclasses' own checks (TRL's batch / generation rules ...)
        raise _settings_error(err, sources) from None
    script.recipe = str(path)
    if grpo.output_dir in (None, TRANSFORMERS_DEFAULT_OUTPUT_DIR):
        grpo.output_dir = str(default_output_dir(path))
    validate_config(script, grpo, sources)
    apply_runtime(script)
    return script, grpo


def _parser_error(err: ConfigError, sources: Sources) -> ConfigError:
    """A parser error (``argument --max_steps: invalid int value: 'x'``) with the value's source."""
    message = str(err)
    match = re.match(r"argument --(\w+)(?:/--[\w-]+)*: (.*)", message)
    if match:
        name, problem = match.groups()
        return ConfigError(f"{name} ({sources.of(name)}): {problem}. Fix: ume-rl train --help gives its type")
    if message.startswith("unrecognized arguments"):
        return ConfigError(f"{message}: ume-rl train --help lists every field")
    return ConfigError(message)


BATCH_FIELDS = (
    "per_device_train_batch_size",
    "num_generations",
    "steps_per_generation",
    "generation_batch_size",
    "gradient_accumulation_steps",
    "num_generations_eval",
    "per_device_eval_batch_size",
)


def _settings_error(err: ValueError, sources: Sources) -> ConfigError:
    """A dataclass's own ``ValueError`` (TRL's settings rules) as one line naming the fields that were set."""
    message = _one_line(err)
    if message.startswith("Some specified arguments are not used"):
        known = sorted({action.dest for action in recipe_parser()._actions})
        flags = [word.strip("[]',") for word in message.split(":", 1)[1].split()]
        flags = [flag for flag in flags if flag.startswith("-")]
        hints = [
            f"--{close[0]} instead of {flag}"
            for flag in flags
            if (close := difflib.get_close_matches(flag.lstrip("-").split("=")[0], known, n=1))
        ]
        return ConfigError(
            f"unknown flag(s) {' '.join(flags)}"
            + (f": did you mean {', '.join(hints)}?" if hints else "")
            + " ume-rl train --help lists every field"
        )
    involved = (
        [name for name in BATCH_FIELDS if sources.given(name)]
        if "batch" in message or "generation" in message
        else []
    )
    given = ", ".join(f"{name} ({sources.of(name)})" for name in involved)
    return ConfigError(f"invalid GRPO settings: {message}" + (f" [set here: {given}]" if given else ""))
