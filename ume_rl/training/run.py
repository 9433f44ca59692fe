"""The training run: recipe → dataset → warm start → GRPO → evaluation, one step per call.

``ume-rl train`` (:mod:`ume_rl.cli`) and notebook 04 both run these steps, so the notebook runs the command's
own code with evaluations in between:

>>> run = TrainRun.prepare(*load_recipe("tiny", max_steps=3))  # doctest: +SKIP
>>> rewards = run.build_rewards(run.load_reward_models())  # doctest: +SKIP
>>> trainer = run.train(run.warm_start(), rewards)  # doctest: +SKIP
>>> run.save_evaluation(run.evaluate(run.output_dir, rewards[0]))  # doctest: +SKIP

A recipe is one YAML file holding :class:`TrainScriptArguments` fields (profile, models, rewards, warm start)
and any ``GRPOConfig`` field (:class:`~ume_rl.training.config.UmeGRPOConfig`); an ``env:`` mapping sets
environment variables (TRL's ``TrlParser``). Rewards are named (``reward_funcs: [ume, complexity]``, see
:mod:`ume_rl.rewards.registry`) and weighted by TRL's ``reward_weights``. Recipes ship in the package
(``ume_rl/recipes/<profile>.yaml``); :func:`load_recipe` takes a profile name or a YAML path.

Reward models: the profile's UME scores every modality unless ``reward_models`` names another model for a
modality (a hub id or local directory of a Hugging Face masked LM; ``ume`` for the UME), as the
``full-public`` recipe does for all three; :func:`download_models` fetches what a recipe needs (notebook 01).

The whole configuration is checked when it is parsed (:mod:`ume_rl.training.validation`): a bad value is a
one-line :class:`~ume_rl.training.validation.ConfigError` before anything is loaded or written. A run never
clobbers another (:mod:`ume_rl.training.rundir`): a directory that holds a run needs
``resume_from_checkpoint="last"`` or ``overwrite_output_dir=True``, and one run at a time holds its lock.

Each rank writes the statistics of the completions it scored to ``output_dir/reward_stats/rank<N>.json``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ume_rl.rewards.modalities import MODALITIES, normalize_modality
from ume_rl.rewards.registry import build_reward_funcs
from ume_rl.rewards.scoring import DEFAULT_MODE
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
        metadata={"help": "Rewards by name (ume, complexity), weighted by reward_weights."},
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

    >>> script, grpo = load_recipe("tiny", max_steps=3, output_dir="/tmp/ume_rl_doctest")
    >>> grpo.max_steps, script.warm_start_epochs, script.reward_funcs
    (3, 8, ['ume'])
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
        ``(TrainScriptArguments, UmeGRPOConfig)`` with ``output_dir`` resolved (default ``runs/grpo-<profile>``);
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
            grpo.output_dir = str(default_output_dir(get_profile(script.profile)))
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


def default_output_dir(profile) -> Path:
    """Where a run of ``profile`` goes unless ``output_dir`` is set: ``runs/grpo-<profile>``."""
    return profile.runs / f"grpo-{profile.name}"


@dataclass
class TrainRun:
    """The steps of a training run, one call each, for :func:`run_train` and notebook 04.

    :meth:`prepare` claims the output directory (its lock is held until :meth:`close`, or the process ends).
    """

    script: TrainScriptArguments
    grpo: UmeGRPOConfig
    profile: Any  # ume_rl.profiles.Profile
    dataset: Any  # datasets.DatasetDict with train / validation / test
    base_policy: str | Path
    lock: Any = None  # ume_rl.training.rundir.RunLock, held by the main process

    @classmethod
    def prepare(cls, script: TrainScriptArguments, grpo: UmeGRPOConfig) -> TrainRun:
        """Claim the output directory (lock it; clear it for ``overwrite_output_dir``; refuse one that holds a
        run otherwise), then load the dataset and the base policy.

        ``dataset_dir`` is loaded as it is (never generated, an error when incomplete); without it the
        profile's dataset is loaded, or generated when missing.
        """
        from accelerate import PartialState
        from accelerate.utils import broadcast_object_list

        from ume_rl.data import load_dataset_dir, load_or_generate_dataset
        from ume_rl.profiles import get_profile
        from ume_rl.training.rundir import RunDirectoryError, claim_output_dir

        profile = get_profile(script.profile)
        if grpo.output_dir in (None, TRANSFORMERS_DEFAULT_OUTPUT_DIR):
            grpo.output_dir = str(default_output_dir(profile))
        state = PartialState()
        state.wait_for_everyone()  # every rank has checked the directory before the main process changes it
        lock, error = None, None
        if state.is_main_process:
            try:
                lock = claim_output_dir(
                    grpo.output_dir, grpo.resume_from_checkpoint, grpo.overwrite_output_dir
                )
            except Exception as err:  # every rank raises it, none waits for the main process
                error = str(err) if isinstance(err, RunDirectoryError) else f"{type(err).__name__}: {err}"
        if state.num_processes > 1:
            error = broadcast_object_list([error])[0]
        if error is not None:
            raise RunDirectoryError(error)
        try:
            # Rank 0 builds the tiny policy and the dataset once; the other ranks then load them.
            with state.main_process_first():
                if script.dataset_dir is not None:
                    dataset = load_dataset_dir(script.dataset_dir)
                else:
                    dataset = load_or_generate_dataset(profile.dataset_dir, rebuild=True, progress=False)
                policy = script.model_path or profile.policy_path()
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        return cls(script, grpo, profile, dataset, policy, lock)

    @property
    def output_dir(self) -> Path:
        return Path(self.grpo.output_dir)

    @property
    def resuming(self) -> bool:
        return self.grpo.resume_from_checkpoint not in (None, False)

    @property
    def held_out(self):
        """The prompts no step trains on: validation + test."""
        from datasets import concatenate_datasets

        return concatenate_datasets([self.dataset["validation"], self.dataset["test"]])

    def load_ume(self):
        """The UME (``ume_model_path``, else the profile's) on this process's device, outside ZeRO-3."""
        from ume_rl.models import load_ume
        from ume_rl.training.trainer import outside_zero3

        name = self.script.ume_model_path or self.profile.ume
        logger.info("loading UME %s on %s", name, self.grpo.device)
        with outside_zero3():
            return load_ume(name, device=self.grpo.device, seed=self.profile.seed)

    def load_reward_models(self):
        """The reward model of each modality on this process's device, outside ZeRO-3: the UME when it scores
        every modality, else a mapping modality → model (:func:`~ume_rl.models.load_reward_model`), which
        :class:`~ume_rl.rewards.ume.UmeReward` takes as it is."""
        from ume_rl.models import is_ume_name, load_reward_model

        names = self.script.reward_model_names(self.profile)
        ume = self.script.ume_model_path or self.profile.ume
        if set(names.values()) == {ume}:
            return self.load_ume()
        from ume_rl.training.trainer import outside_zero3

        loaded: dict = {}
        models = {}
        for modality, name in names.items():
            is_ume = name == ume or is_ume_name(name)
            key = name if is_ume else (name, modality)
            if key not in loaded:
                logger.info("loading reward model %s for %s on %s", name, modality, self.grpo.device)
                with outside_zero3():
                    loaded[key] = (
                        self.load_ume()
                        if name == ume
                        else load_reward_model(name, modality, device=self.grpo.device)
                    )
            models[modality] = loaded[key]
        return models

    def build_rewards(self, reward_model) -> list:
        """The recipe's ``reward_funcs``, built with its reward settings; the UME reward scores with
        ``reward_model`` (a UME, or :meth:`load_reward_models`' mapping modality → model)."""
        return build_reward_funcs(self.script.reward_funcs, reward_model, self.script.reward_settings())

    def warm_start(self):
        """SFT of the base policy on the training references (``output_dir/warm_start``); returns the policy.

        A complete warm start already there is reused: with the same settings, or with any when resuming (the
        resumed policy's weights come from the checkpoint).
        """
        from ume_rl.training.sft import warm_start

        kwargs = self.script.warm_start_kwargs(self.grpo)
        return warm_start(
            self.base_policy,
            self.dataset["train"],
            self.output_dir / "warm_start",
            reuse="any" if self.resuming else "same",
            **kwargs,
        )

    def train(self, policy, rewards: list):
        """GRPO from ``policy`` against ``rewards`` (:meth:`build_rewards`); saves the final model in
        ``output_dir`` and this rank's reward statistics in ``output_dir/reward_stats/rank<N>.json``.
        Returns the trainer."""
        import time

        from accelerate import PartialState

        from ume_rl.training.rundir import mark_run, resolve_resume
        from ume_rl.training.trainer import build_trainer

        trainer = build_trainer(
            policy, rewards, self.dataset["train"], self.dataset["validation"], args=self.grpo
        )
        trainer.train(
            resume_from_checkpoint=resolve_resume(self.output_dir, self.grpo.resume_from_checkpoint)
        )
        trainer.save_model(self.grpo.output_dir)
        logger.info("saved the trained policy and its tokenizer to %s", self.grpo.output_dir)
        state = PartialState()
        stats_dir = self.output_dir / "reward_stats"
        stats_dir.mkdir(parents=True, exist_ok=True)
        stats = {
            "rank": state.process_index,
            "world_size": state.num_processes,
            **{f.__name__: f.get_statistics() for f in rewards if hasattr(f, "get_statistics")},
        }
        (stats_dir / f"rank{state.process_index}.json").write_text(json.dumps(stats, indent=1, default=str))
        if state.is_main_process:
            mark_run(
                self.output_dir,
                status="trained",
                trained=time.strftime("%Y-%m-%d %H:%M:%S %z"),
                global_step=trainer.state.global_step,
            )
        return trainer

    def generate(self, policy, reward):
        """Completions of ``policy`` on the held-out prompts, scored by ``reward``, one row each
        (:func:`~ume_rl.training.evaluation.generate_completions`), sampled as GRPO's rollouts are
        (``eval_generations`` completions per prompt, ``max_completion_length``)."""
        from ume_rl.training.evaluation import generate_completions

        return generate_completions(policy, self.held_out, reward, **self.script.evaluation_kwargs(self.grpo))

    def evaluate(self, policy, reward):
        """The per-modality summary (:func:`~ume_rl.training.evaluation.summarize_completions`) of
        :meth:`generate`."""
        from ume_rl.training.evaluation import summarize_completions

        return summarize_completions(self.generate(policy, reward))

    def save_evaluation(self, table) -> Path:
        """Write an evaluation table to ``output_dir/evaluation.csv``; returns the path."""
        path = self.output_dir / "evaluation.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(path)
        return path

    def close(self) -> None:
        """Release the output directory's lock (:func:`run_train` does it when the run ends)."""
        if self.lock is not None:
            self.lock.release()


def run_train(script: TrainScriptArguments, grpo: UmeGRPOConfig):
    """The whole run (``ume-rl train``); returns the trained ``GRPOTrainer``."""
    from accelerate import PartialState

    from ume_rl.rewards.ume import UmeReward

    state = PartialState()
    run = TrainRun.prepare(script, grpo)
    try:
        rewards = run.build_rewards(run.load_reward_models())
        trainer = run.train(run.warm_start(), rewards)
        ume_reward = next((f for f in rewards if isinstance(f, UmeReward)), None)
        if script.eval_generations > 0 and ume_reward is not None and state.is_main_process:
            table = run.evaluate(run.output_dir, ume_reward)
            run.save_evaluation(table)
            logger.info(
                "held-out evaluation of the trained policy:\n%s", table.to_string(float_format="%.3f")
            )
        state.wait_for_everyone()
    finally:
        run.close()
    return trainer


def download_models(name_or_path: str | Path, **overrides) -> dict[str, Any]:
    """Fetch what a recipe needs, once (notebook 01): its policy and each hub reward model.

    Returns where each model is: ``"policy"`` (full profile: a snapshot in the Hugging Face cache; tiny: built
    under ``runs/models``) and one entry per modality: the snapshot or directory of its masked LM, or the name
    of its UME (a UME is loaded when a run starts: ``tiny`` is built, a ``.ckpt`` read, a registry name fetched
    with Prescient credentials). Offline without a cached model, ``RuntimeError`` names the fix.

    >>> download_models("tiny")["SMILES"]  # doctest: +SKIP
    'tiny'
    """
    import tempfile

    from ume_rl.models import download_reward_model, is_ume_name
    from ume_rl.profiles import get_profile

    with tempfile.TemporaryDirectory() as unused:  # the recipe is checked, but no run directory is involved
        script, _ = load_recipe(name_or_path, **{"output_dir": f"{unused}/run", **overrides})
    profile = get_profile(script.profile)
    ume = script.ume_model_path or profile.ume
    found: dict[str, Any] = {"policy": profile.policy_path(download=True)}
    for modality, name in script.reward_model_names(profile).items():
        if name == ume or is_ume_name(name) or Path(name).expanduser().exists():
            found[modality] = name
        else:
            found[modality] = download_reward_model(name)
    return found
