"""Check a run's whole configuration (recipe + flags) when it is parsed, before anything is loaded or written.

Every error is one line naming the field, its value, where the value came from (the recipe file, a flag, a
``load_recipe`` argument or the default) and the fix:

>>> from ume_rl.training.recipes import load_recipe
>>> load_recipe("tiny", reward_temperature=0.0)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ume_rl.training.validation.ConfigError: reward_temperature=0.0 (argument reward_temperature=): must be a finite number > 0. Fix: ...

:func:`check_raw_types` checks the values a recipe or a keyword argument gives directly (a flag is converted by
the parser, which reports its own type errors), :func:`validate_config` every resolved field the run uses.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import logging
import numbers
import types
import typing
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from ume_rl.models.names import NAMES_HELP, resolve
from ume_rl.rewards.checks import number_problem

logger = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A bad configuration value, found before the run starts; the message is one line with the fix."""


@dataclass(frozen=True)
class Sources:
    """Where each field's value came from: a flag beats a ``load_recipe`` argument beats the recipe file."""

    recipe: str | None = None
    recipe_keys: frozenset[str] = field(default_factory=frozenset)
    flags: frozenset[str] = field(default_factory=frozenset)
    arguments: frozenset[str] = field(default_factory=frozenset)

    def of(self, name: str) -> str:
        if name in self.flags:
            return f"flag --{name}"
        if name in self.arguments:
            return f"argument {name}="
        if name in self.recipe_keys:
            return f"recipe {self.recipe}"
        return "default" + (f", recipe {self.recipe} does not set it" if self.recipe else "")

    def given(self, name: str) -> bool:
        return name in self.flags or name in self.arguments or name in self.recipe_keys


VLLM_FIX = (
    "pip install 'trl[vllm]' (a vLLM build matching this torch and CUDA; Linux with a GPU), "
    "or drop use_vllm to generate with transformers"
)


def vllm_problem() -> str | None:
    """Why TRL's vLLM generation (``use_vllm``) cannot run here, or ``None`` when ``vllm`` imports."""
    if importlib.util.find_spec("vllm") is None:
        return "vLLM is not installed (ume-rl does not install it)"
    try:
        importlib.import_module("vllm")
    except Exception as error:  # a broken install fails in many ways: report the first line
        return f"vllm does not import: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    return None


def config_error(name: str, value, sources: Sources, problem: str, fix: str | None = None) -> ConfigError:
    """``ConfigError`` with the one-line message ``name=value (source): problem. Fix: fix``."""
    shown = repr(value) if not isinstance(value, str) or len(value) < 80 else repr(value[:77] + "...")
    return ConfigError(f"{name}={shown} ({sources.of(name)}): {problem}" + (f". Fix: {fix}" if fix else ""))


# --------------------------------------------------------------------------------------------- raw types


def _matches(value, annotation) -> bool:
    """Whether ``value`` can be a value of the type ``annotation`` (unknown kinds of type: yes)."""
    if annotation is typing.Any:
        return True
    if isinstance(annotation, str):
        return True  # an unresolved forward reference: nothing to judge by
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(annotation))
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (list, tuple) or annotation in (list, tuple):
        args = typing.get_args(annotation)
        return isinstance(value, list | tuple) and (not args or all(_matches(v, args[0]) for v in value))
    if origin is dict or annotation is dict:
        return isinstance(value, dict)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return isinstance(value, annotation) or value in {member.value for member in annotation}
    return True


def _type_name(annotation) -> str:
    return str(annotation).replace("typing.", "").replace("<class '", "").replace("'>", "")


def check_raw_types(values: dict, dataclass_types, sources: Sources) -> None:
    """Check values given directly (not through the parser, which converts flag strings itself) against the
    field types of ``dataclass_types``. Strings are left to the parser, which converts and reports them.

    Raises:
        ConfigError: a value of the wrong type, e.g. ``max_steps: 3.5`` in a recipe.
    """
    hints = {}
    for cls in dataclass_types:
        hints.update(typing.get_type_hints(cls))
    for name, value in values.items():
        if isinstance(value, str) or name not in hints:
            continue  # strings are the parser's; unknown names are reported by the parser
        if not _matches(value, hints[name]):
            raise config_error(
                name,
                value,
                sources,
                f"must be of type {_type_name(hints[name])}",
                "give a value of that type",
            )


# ------------------------------------------------------------------------------------------ value checks


def _check_number(name, value, sources, *, fix=None, **rules):
    """:func:`~ume_rl.rewards.checks.number_problem` as a :class:`ConfigError` naming the value's source."""
    problem = number_problem(value, **rules)
    if problem:
        raise config_error(name, value, sources, problem, fix)


def _check_choice(name, value, choices, sources):
    if value not in choices:
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise config_error(name, value, sources, f"must be one of {list(choices)}", f"{hint}pick one of them")


def _check_existing_path(name, value, sources, what: str, fix: str):
    if value is not None and not Path(value).expanduser().exists():
        raise config_error(name, value, sources, f"{what} does not exist", fix)


def validate_config(script, grpo, sources: Sources | None = None) -> None:
    """Check every field of a run's configuration that the run uses, before any work.

    Args:
        script: :class:`~ume_rl.training.recipes.TrainScriptArguments`.
        grpo: :class:`~ume_rl.training.config.UmeGRPOConfig` (``output_dir`` already resolved).
        sources: where each value came from, for the messages.

    Raises:
        ConfigError: the first bad value: types, ranges, finiteness, choices, batch/generation consistency,
            reward names and weights, paths (``output_dir`` not a file, ``dataset_dir`` an existing saved
            dataset, local model paths existing), the output directory's state (a run there without
            ``--resume_from_checkpoint`` or ``--overwrite_output_dir``, another run holding it, nothing to
            resume).
    """
    from ume_rl.profiles import REFERENCES
    from ume_rl.rewards.complexity import MEASURES
    from ume_rl.rewards.engine.scoring import MODES
    from ume_rl.rewards.registry import REWARDS

    sources = sources or Sources()
    s, g = script, grpo
    # --- script settings
    _check_choice("references", s.references, REFERENCES, sources)
    if not isinstance(s.reward_funcs, list | tuple) or not s.reward_funcs:
        raise config_error(
            "reward_funcs",
            s.reward_funcs,
            sources,
            "must be a non-empty list of reward names",
            "e.g. [ume, complexity]",
        )
    for name in s.reward_funcs:
        if name not in REWARDS:
            _check_choice("reward_funcs", name, sorted(REWARDS), sources)
    if len(set(s.reward_funcs)) != len(s.reward_funcs):
        raise config_error("reward_funcs", s.reward_funcs, sources, "names a reward twice", "list each once")
    temperature_fix = "a positive value such as 0.1 (the UME reward is score / temperature)"
    _check_number("reward_temperature", s.reward_temperature, sources, above=0, fix=temperature_fix)
    _check_number(
        "reward_penalty",
        s.reward_penalty,
        sources,
        optional=True,
        fix="a finite number, or leave it unset for the safe default below every valid reward",
    )
    _check_choice("reward_mode", s.reward_mode, MODES, sources)
    _check_choice("complexity_measure", s.complexity_measure, MEASURES, sources)
    decay_fix = "a factor in (0, 1) such as 0.5"
    _check_number("novelty_decay", s.novelty_decay, sources, above=0, fix=decay_fix)
    if s.novelty_decay >= 1:
        raise config_error("novelty_decay", s.novelty_decay, sources, "must be below 1", decay_fix)
    _check_number("novelty_bucket_size", s.novelty_bucket_size, sources, integer=True, minimum=1)
    _check_number(
        "warm_start_epochs", s.warm_start_epochs, sources, minimum=0, fix="0 (no warm start) or more"
    )
    _check_number("warm_start_learning_rate", s.warm_start_learning_rate, sources, above=0)
    _check_number("warm_start_batch_size", s.warm_start_batch_size, sources, integer=True, minimum=1)
    _check_number(
        "warm_start_references", s.warm_start_references, sources, integer=True, minimum=0, fix="0: none"
    )
    _check_number(
        "warm_start_corpus_steps", s.warm_start_corpus_steps, sources, integer=True, minimum=0, fix="0: none"
    )
    _check_number("warm_start_corpus_learning_rate", s.warm_start_corpus_learning_rate, sources, above=0)
    if s.warm_start_corpus_steps and not any(s.corpus_sizes().values()):
        raise config_error(
            "warm_start_corpus_sizes",
            s.warm_start_corpus_sizes,
            sources,
            "leaves the corpus stage no sequences",
            "a count > 0 for at least one modality, or warm_start_corpus_steps: 0",
        )
    _check_number("eval_generations", s.eval_generations, sources, integer=True, minimum=0, fix="0 skips it")
    _check_number("torch_num_threads", s.torch_num_threads, sources, integer=True, minimum=1, optional=True)
    from ume_rl.training.fingerprint import FINGERPRINT_KEYS

    for name in s.accept_changes or ():
        _check_choice("accept_changes", name, sorted(FINGERPRINT_KEYS), sources)
    _check_paths(s, sources)
    # --- GRPO settings
    _check_number(
        "max_steps",
        g.max_steps,
        sources,
        integer=True,
        minimum=1,
        allowed=(-1,),
        fix="a number of GRPO steps >= 1, or -1 to run num_train_epochs passes over the training prompts",
    )
    if g.max_steps == -1:
        _check_number("num_train_epochs", g.num_train_epochs, sources, above=0)
        logger.info(
            "max_steps=-1 (%s): GRPO runs num_train_epochs=%s passes over the training prompts",
            sources.of("max_steps"),
            g.num_train_epochs,
        )
    if getattr(g, "use_vllm", False) and (problem := vllm_problem()):
        raise config_error("use_vllm", g.use_vllm, sources, problem, VLLM_FIX)
    _check_number("learning_rate", g.learning_rate, sources, above=0)
    _check_number(
        "per_device_train_batch_size", g.per_device_train_batch_size, sources, integer=True, minimum=1
    )
    _check_number(
        "gradient_accumulation_steps", g.gradient_accumulation_steps, sources, integer=True, minimum=1
    )
    _check_number(
        "num_generations",
        g.num_generations,
        sources,
        integer=True,
        minimum=2,
        fix="at least 2 completions per prompt (GRPO compares them)",
    )
    _check_number("max_completion_length", g.max_completion_length, sources, integer=True, minimum=1)
    _check_number("temperature", g.temperature, sources, above=0, fix="a sampling temperature such as 1.0")
    _check_number("beta", g.beta, sources, minimum=0)
    _check_number("logging_steps", g.logging_steps, sources, above=0)
    if str(getattr(g.save_strategy, "value", g.save_strategy)) == "steps":
        _check_number("save_steps", g.save_steps, sources, above=0)
    _check_number("save_total_limit", g.save_total_limit, sources, integer=True, minimum=1, optional=True)
    if g.reward_weights is not None:
        if not isinstance(g.reward_weights, list | tuple) or len(g.reward_weights) != len(s.reward_funcs):
            raise config_error(
                "reward_weights",
                g.reward_weights,
                sources,
                f"must hold one weight per reward_funcs entry ({len(s.reward_funcs)}: {list(s.reward_funcs)})",
                "one weight per reward, or leave it unset (all 1.0)",
            )
        for weight in g.reward_weights:
            _check_number("reward_weights", weight, sources)
    _check_output_dir(g, sources)


def _check_paths(script, sources: Sources) -> None:
    from ume_rl.data.store import dataset_problems, generate_command, regenerate_fix

    if script.dataset_dir is not None:
        unset = "or leave dataset_dir unset to use the recipe's references (generated when missing)"
        generate = f"generate one there with {generate_command(script.dataset_dir)}, {unset}"
        _check_existing_path("dataset_dir", script.dataset_dir, sources, "this directory", generate)
        problems = dataset_problems(script.dataset_dir)
        if problems:
            raise config_error(
                "dataset_dir",
                script.dataset_dir,
                sources,
                f"not a usable saved dataset: {'; '.join(problems)}",
                f"{regenerate_fix(script.dataset_dir)}, {unset}",
            )
    for name, what in (("model_path", "policy"), ("ume_model_path", "UME")):
        if getattr(script, name) is None:
            raise config_error(
                name, None, sources, f"the recipe must name its {what}", f"set {name}: {NAMES_HELP}"
            )
    _check_model("ume_model_path", script.ume_model_path, script.ume_model_path, sources, ume=True)
    _check_model("model_path", script.model_path, script.model_path, sources, policy=True)
    for modality, name in (script.reward_models or {}).items():
        if name != "ume":
            _check_model("reward_models", f"{modality}: {name}", name, sources)


def _check_model(field_name, shown, name, sources: Sources, ume=False, policy=False) -> None:
    """A model name (:func:`~ume_rl.models.names.resolve`) of the right kind whose local file or directory exists."""
    try:
        ref = resolve(name)
    except ValueError as err:
        raise config_error(field_name, shown, sources, str(err)) from None
    if ume and not ref.is_ume and ref.kind != "directory":
        raise config_error(field_name, shown, sources, f"is not a UME ({ref.kind})", NAMES_HELP)
    if policy and ref.is_ume and ref.kind != "tiny":
        raise config_error(
            field_name,
            shown,
            sources,
            f"is a UME ({ref.kind}), not a policy",
            "'tiny', a hub id or a directory",
        )
    if ref.kind == "checkpoint" or (ume and ref.kind == "directory"):
        path = Path(ref.location)
        if not path.is_file():
            raise config_error(
                field_name,
                shown,
                sources,
                "is not a file" if path.exists() else "this checkpoint does not exist",
                "the path of a UME .ckpt file, a registry name (ume-mini-base-12M ...), 'tiny' or 'demo'",
            )
    elif ref.kind == "directory" and not Path(ref.location).is_dir():
        what = "this policy directory" if policy else "this masked LM directory"
        raise config_error(
            field_name,
            shown,
            sources,
            f"{what} does not exist",
            f"a save_pretrained directory or {NAMES_HELP}",
        )


def _check_output_dir(grpo, sources: Sources) -> None:
    from ume_rl.training.rundir import RunDirectoryError, check_output_dir

    try:
        check_output_dir(grpo.output_dir, grpo.resume_from_checkpoint, grpo.overwrite_output_dir)
    except RunDirectoryError as err:
        if err.field == "resume_from_checkpoint":
            raise config_error(err.field, grpo.resume_from_checkpoint, sources, err.problem) from None
        raise ConfigError(
            f"output_dir={str(grpo.output_dir)!r} ({sources.of('output_dir')}) {err.problem}"
        ) from None
