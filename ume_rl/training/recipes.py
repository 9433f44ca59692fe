"""Recipes: one YAML file per experiment, checked in full before anything runs.

A recipe holds :class:`TrainScriptArguments` fields (profile, models, rewards, warm start) and any ``GRPOConfig``
field (:class:`~ume_rl.training.config.UmeGRPOConfig`); an ``env:`` mapping sets environment variables (TRL's
``TrlParser``). Rewards are named (``reward_funcs: [ume, complexity]``, see :mod:`ume_rl.rewards.registry`) and
weighted by TRL's ``reward_weights``; ``reward_models`` picks a masked LM per modality. Recipes ship in the
package (``ume_rl/recipes/<name>.yaml``); :func:`load_recipe` takes a recipe name or a YAML path, and
:func:`parse_config` adds ``ume-rl train``'s flags.

>>> script, grpo = load_recipe("tiny", max_steps=3, output_dir="/tmp/ume_rl_doctest")
>>> grpo.max_steps, script.warm_start_epochs, script.reward_funcs
(3, 8, ['ume'])

The whole configuration is checked when it is parsed (:mod:`ume_rl.training.validation`): a bad value is a
one-line :class:`~ume_rl.training.validation.ConfigError` naming the field, its value, its source and the fix,
before anything is loaded or written.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ume_rl.rewards.engine.scoring import DEFAULT_MODE
from ume_rl.rewards.modalities import MODALITIES, normalize_modality
from ume_rl.training.config import UmeGRPOConfig
from ume_rl.training.validation import ConfigError, Sources, check_raw_types, config_error, validate_config

logger = logging.getLogger(__name__)

RECIPES_DIR = (
    Path(__file__).resolve().parent.parent / "recipes"
)  # package data: ume_rl/recipes/<profile>.yaml
TRANSFORMERS_DEFAULT_OUTPUT_DIR = "trainer_output"
USAGE = "ume-rl train [--config RECIPE] [--FIELD VALUE ...]"
DESCRIPTION = """GRPO training of a policy against the UME reward.

--config RECIPE
    tiny, full or full-public (the recipes shipped with ume_rl) or the path of your own YAML. Default: the active
    profile's recipe ($UME_RL_PROFILE, else full on CUDA, else tiny). Every field below overrides the
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

    profile: str | None = field(
        default=None,
        metadata={"help": "'tiny' or 'full'; default $UME_RL_PROFILE, else full on CUDA, else tiny."},
    )
    model_path: str | None = field(
        default=None, metadata={"help": "Policy (hub id or directory); default the profile's policy."}
    )
    ume_model_path: str | None = field(
        default=None,
        metadata={"help": "UME: 'tiny', a registry name or a .ckpt path; default the profile's UME."},
    )
    reward_models: dict | str | None = field(
        default=None,
        metadata={
            "help": "Reward model per modality, e.g. {amino_acid: facebook/esm2_t33_650M_UR50D}: a hub id or local "
            "directory of a masked LM, or 'ume'; modalities not named use the UME. A JSON object on the command line."
        },
    )
    dataset_dir: str | None = field(
        default=None,
        metadata={"help": "Saved DatasetDict; default the profile's dataset (generated if missing)."},
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
    eval_generations: int = field(
        default=8, metadata={"help": "Completions per held-out prompt in the final evaluation (0: skip it)."}
    )
    torch_num_threads: int | None = field(
        default=None,
        metadata={"help": "CPU threads for torch (tiny models run fastest on 1); default torch's."},
    )

    def __post_init__(self):
        if isinstance(self.reward_models, str):
            try:
                self.reward_models = json.loads(self.reward_models)
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"reward_models must be a mapping modality -> model, e.g. "
                    f'\'{{"amino_acid": "facebook/esm2_t6_8M_UR50D"}}\', got {self.reward_models!r}'
                ) from err
        if self.reward_models is not None:
            if not isinstance(self.reward_models, dict):
                raise ValueError(
                    f"reward_models must be a mapping modality -> model, got {self.reward_models!r}"
                )
            self.reward_models = {normalize_modality(k): str(v) for k, v in self.reward_models.items()}

    def reward_model_names(self, profile) -> dict[str, str]:
        """Per modality, the reward model's name: ``reward_models``' entry, else (or ``ume``) the UME
        (``ume_model_path``, else the profile's)."""
        ume = self.ume_model_path or profile.ume
        chosen = self.reward_models or {}
        return {m: ume if chosen.get(m, "ume") == "ume" else chosen[m] for m in MODALITIES}

    def reward_settings(self) -> dict[str, dict]:
        """Keyword arguments per reward name, for :func:`~ume_rl.rewards.registry.build_reward_funcs`."""
        return {
            "ume": {
                "temperature": self.reward_temperature,
                "penalty": self.reward_penalty,
                "mode": self.reward_mode,
            },
            "complexity": {"measure": self.complexity_measure},
        }

    def warm_start_kwargs(self, grpo: UmeGRPOConfig) -> dict:
        """Warm-start settings as :func:`~ume_rl.training.sft.warm_start` keywords (seed and checkpointing from GRPO)."""
        return {
            "num_train_epochs": self.warm_start_epochs,
            "learning_rate": self.warm_start_learning_rate,
            "per_device_train_batch_size": self.warm_start_batch_size,
            "seed": grpo.seed,
            "gradient_checkpointing": grpo.gradient_checkpointing,
        }

    def evaluation_kwargs(self, grpo: UmeGRPOConfig) -> dict:
        """:func:`~ume_rl.training.evaluation.evaluate_policy` keywords matching the GRPO rollouts."""
        return {"num_generations": self.eval_generations, "max_new_tokens": grpo.max_completion_length}


def recipe_parser():
    """TRL's ``TrlParser`` over :class:`TrainScriptArguments` and :class:`UmeGRPOConfig`.

    Its errors raise :class:`~ume_rl.training.validation.ConfigError` (one line) instead of printing the
    whole usage and exiting; abbreviated flags are not accepted (a typo is an error, not another field).
    """
    import argparse

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


def recipe_path(name_or_path: str | Path) -> Path:
    """The recipe file for a recipe name (``tiny``, ``full``, ``full-public``: shipped in the package) or a YAML path.

    ``recipes/<name>.yaml`` (the repository's old layout) still finds the packaged recipe when no such file exists.
    """
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = RECIPES_DIR / f"{name_or_path}.yaml"
    elif not path.is_file() and path.parent.name == "recipes" and (RECIPES_DIR / path.name).is_file():
        path = RECIPES_DIR / path.name
    if not path.is_file():
        shipped = ", ".join(sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")))
        raise FileNotFoundError(f"recipe {path} not found: pass a YAML path or one of {shipped}")
    return path


def apply_runtime(script: TrainScriptArguments) -> None:
    """Apply the run's process settings (``torch_num_threads``)."""
    if script.torch_num_threads:
        import torch

        torch.set_num_threads(script.torch_num_threads)


def load_recipe(name_or_path: str | Path, **overrides) -> tuple[TrainScriptArguments, UmeGRPOConfig]:
    """Read a recipe (a profile name or a YAML path); keyword overrides win, ``None`` values are ignored.

    Applies the recipe's ``env`` variables and ``torch_num_threads``, as ``ume-rl train`` does, and checks the
    whole configuration (:func:`parse_config`).

    """
    return parse_config(name_or_path, overrides=overrides)


def _flag_names(args: list[str]) -> frozenset[str]:
    return frozenset(arg[2:].split("=", 1)[0] for arg in args if arg.startswith("--"))


def _flag_value(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == f"--{name}" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def parse_config(
    recipe: str | Path | None = None, args: list[str] | tuple[str, ...] = (), overrides: dict | None = None
) -> tuple[TrainScriptArguments, UmeGRPOConfig]:
    """The checked configuration of a run: ``recipe``, then keyword ``overrides``, then command-line ``args``.

    Args:
        recipe: a profile name or a YAML path; ``None``: the active profile's recipe (``--profile`` in
            ``args``, else ``$UME_RL_PROFILE``...), logged.
        args: flags (``["--max_steps", "5"]``), as ``ume-rl train`` takes them.
        overrides: field values (``None`` values are ignored), as :func:`load_recipe` takes them.

    Returns:
        ``(TrainScriptArguments, UmeGRPOConfig)`` with ``output_dir`` resolved (default ``runs/grpo-<recipe>``);
        the recipe's ``env`` and ``torch_num_threads`` are applied.

    Raises:
        ConfigError: one line naming the field, its value, its source and the fix
            (:func:`~ume_rl.training.validation.validate_config`); nothing has been loaded or written.
    """
    from ume_rl.profiles import get_profile, resolve_profile_name

    args = list(args)
    overrides = {
        key: str(value) if isinstance(value, Path) else value
        for key, value in (overrides or {}).items()
        if value is not None
    }
    if recipe is None:
        profile = _flag_value(args, "profile") or overrides.get("profile")
        try:
            name = resolve_profile_name(profile)
        except ValueError as err:
            raise ConfigError(_one_line(err)) from None
        path = recipe_path(name)
        logger.info("no --config given: using the %s profile's recipe %s", name, path)
    else:
        path = recipe_path(recipe)
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"recipe {path} is not valid YAML: {_one_line(err)}") from None
    if not isinstance(config, dict):
        raise ConfigError(
            f"recipe {path} must be a YAML mapping of field: value, got {type(config).__name__}"
        )
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
        import difflib

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
    if grpo.output_dir in (None, TRANSFORMERS_DEFAULT_OUTPUT_DIR):
        try:
            grpo.output_dir = str(default_output_dir(get_profile(script.profile), path))
        except ValueError as err:
            raise config_error("profile", script.profile, sources, _one_line(err)) from None
    validate_config(script, grpo, sources)
    apply_runtime(script)
    return script, grpo


def _parser_error(err: ConfigError, sources: Sources) -> ConfigError:
    """A parser error (``argument --max_steps: invalid int value: 'x'``) with the value's source."""
    import re

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
        import difflib

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


def default_output_dir(profile, recipe: str | Path | None = None) -> Path:
    """Where a run goes unless ``output_dir`` is set: ``runs/grpo-<recipe>`` (the recipe file's name, e.g.
    ``grpo-full-public``), ``runs/grpo-<profile>`` without one; two recipes never share a run directory."""
    return profile.runs / f"grpo-{Path(recipe).stem if recipe is not None else profile.name}"
