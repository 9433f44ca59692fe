"""Profiles: a profile is a recipe name plus where runs go.

A recipe (``ume_rl/recipes/<name>.yaml``, read by :mod:`ume_rl.training.recipes`) is the whole run
configuration: policy (``model_path``), reward models (``ume_model_path``, ``reward_models``), references, rewards
and weights. A profile only picks one, and :func:`runs_dir` says where everything a run writes goes:

- ``tiny``: the tiny Qwen2 and an untrained UME with lobster's real tokenizers; random references. For tests.
- ``demo``: the tiny Qwen2 (its tokenizer trained on real sequences) against a small UME trained here on real
  SMILES / protein / DNA (a few CPU minutes on first use, cached under ``runs/models``); real references.
- ``full``: Qwen2-0.5B-Instruct and a UME registry checkpoint; ``full-public``: the same policy against a public
  Hugging Face masked LM per modality.

``UME_RL_PROFILE`` picks one (a shipped recipe name, or the path of your own recipe YAML); when unset it is
``full`` if CUDA is available and ``demo`` otherwise. Notebooks and scripts only ask:

>>> profile = get_profile("tiny")
>>> profile.name, profile.ume, profile.references
('tiny', 'tiny', 'random')

A profile never falls back to another: a missing model is an error that names the fix.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch
import yaml

from ume_rl.data.generate import tokenizer_corpus
from ume_rl.models.names import resolve
from ume_rl.models.policy import cached_tiny_qwen, download_qwen, find_qwen_in_cache
from ume_rl.models.ume import load_ume

logger = logging.getLogger(__name__)

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"
"""The recipes shipped in the package (``ume_rl/recipes/<name>.yaml``)."""
PROFILES: tuple[str, ...] = tuple(sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")))
"""Profile names: the shipped recipes."""
REFERENCES = ("random", "real")
"""Dataset references: ``random`` (generated) or ``real`` (the corpus, :mod:`ume_rl.data.corpus`)."""
STAND_IN_SEED = 0
"""Seed of the tiny stand-in models."""


def recipe_path(name_or_path: str | Path) -> Path:
    """The recipe file for a recipe name (one of :data:`PROFILES`, shipped in the package) or a YAML path.

    Raises:
        FileNotFoundError: no such recipe; lists the shipped ones.
    """
    path = Path(name_or_path).expanduser()
    if path.suffix not in (".yaml", ".yml"):
        path = RECIPES_DIR / f"{str(name_or_path).strip().lower()}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"recipe {path} not found: pass a YAML path or one of {', '.join(PROFILES)}")
    return path


def resolve_profile_name(name: str | None = None) -> str:
    """The profile: ``name``, else ``$UME_RL_PROFILE``, else ``full`` on CUDA and ``demo`` otherwise.

    Returns a shipped recipe name (lower case) or the path of a recipe YAML.

    Raises:
        ValueError: neither a shipped recipe nor an existing YAML file.
    """
    name = name or os.environ.get("UME_RL_PROFILE") or ("full" if torch.cuda.is_available() else "demo")
    name = name.strip()
    if name.lower() in PROFILES:
        return name.lower()
    if name.endswith((".yaml", ".yml")) and Path(name).expanduser().is_file():
        return str(Path(name).expanduser())
    raise ValueError(
        f"Unknown profile {name!r}: set UME_RL_PROFILE to one of {PROFILES} or the path of a recipe YAML."
    )


def runs_dir() -> Path:
    """Directory for everything a run writes (models, datasets, figures, checkpoints).

    ``$UME_RL_RUNS_DIR`` if set, else ``runs/`` at the project root (the nearest parent of the
    working directory holding ``pyproject.toml``; notebooks run from ``notebooks/``), else ``./runs``.
    """
    if env := os.environ.get("UME_RL_RUNS_DIR"):
        return Path(env).expanduser().resolve()
    cwd = Path.cwd().resolve()
    for parent in (cwd, *cwd.parents):
        if (parent / "pyproject.toml").is_file() and (parent / "ume_rl").is_dir():
            return parent / "runs"
    return cwd / "runs"


def default_output_dir(recipe: str | Path | None = None) -> Path:
    """Where a run goes unless ``output_dir`` is set: ``runs/grpo-<recipe>`` (the recipe file's name, e.g.
    ``grpo-full-public``), ``runs/grpo-run`` without one; two recipes never share a run directory."""
    return runs_dir() / f"grpo-{Path(recipe).stem if recipe is not None else 'run'}"


def dataset_dir(references: str) -> Path:
    """The dataset directory of ``references`` (``random`` or ``real``) under :func:`runs_dir`."""
    if references not in REFERENCES:
        raise ValueError(f"references must be one of {REFERENCES}, got {references!r}")
    name = "real_reference_dataset" if references == "real" else "synthetic_molecular_dataset"
    return runs_dir() / "data" / name


def policy_path(name: str, references: str = "random", download: bool = False) -> Path:
    """Local path of the policy ``name`` (read by :func:`~ume_rl.models.names.resolve`).

    ``tiny``: built once under ``runs/models`` (its tokenizer trained on ``references``: real sequences or random
    ones). A local directory: itself. A hub id: the newest snapshot in the Hugging Face cache; with
    ``download=True`` it is fetched first (a no-op when cached), else a missing model is an error naming the fix.
    """
    ref = resolve(name)
    if ref.kind == "tiny":
        kind = "-real" if references == "real" else ""
        out = runs_dir() / "models" / f"tiny-qwen{kind}-seed{STAND_IN_SEED}"
        corpus = lambda: tokenizer_corpus(seed=STAND_IN_SEED, references=references)  # noqa: E731
        return cached_tiny_qwen(out, seed=STAND_IN_SEED, corpus=corpus)
    if ref.kind == "directory":
        return Path(ref.location)
    if ref.kind != "hub":
        raise ValueError(
            f"policy {name!r} is a UME ({ref.kind}), not a causal LM: give 'tiny', a hub id or a directory"
        )
    return download_qwen(name) if download else find_qwen_in_cache(repo_id=name)


@dataclass(frozen=True)
class Profile:
    """A recipe name and where runs go; what the run uses is read from the recipe. Build it with :func:`get_profile`."""

    name: str = field(
        metadata={"help": "The recipe's name (tiny, demo, full, full-public or your YAML's stem)."}
    )
    recipe: Path = field(metadata={"help": "The recipe file."})
    runs: Path = field(metadata={"help": "Where runs go (runs_dir())."})

    @cached_property
    def _values(self) -> dict:
        values = yaml.safe_load(self.recipe.read_text()) or {}
        if not isinstance(values, dict):
            raise ValueError(f"recipe {self.recipe} must be a YAML mapping of field: value")
        return values

    def _required(self, key: str) -> str:
        if not self._values.get(key):
            raise ValueError(f"recipe {self.recipe} does not name its {key}: add `{key}: ...` to it")
        return str(self._values[key])

    @property
    def policy(self) -> str:
        """The recipe's ``model_path``."""
        return self._required("model_path")

    @property
    def ume(self) -> str:
        """The recipe's ``ume_model_path``."""
        return self._required("ume_model_path")

    @property
    def references(self) -> str:
        """The recipe's ``references`` (default ``random``)."""
        return str(self._values.get("references", "random"))

    def policy_path(self, download: bool = False) -> Path:
        """Local path of the recipe's policy (:func:`policy_path`)."""
        return policy_path(self.policy, self.references, download=download)

    def load_ume(self, device: str | torch.device | None = None):
        """The recipe's UME, frozen, in eval mode, on ``device`` (``demo``: trained on first use, cached)."""
        return load_ume(self.ume, device=device, seed=STAND_IN_SEED, runs_dir=self.runs)

    @property
    def figures(self) -> Path:
        return self.runs / "figures"

    @property
    def dataset_dir(self) -> Path:
        return dataset_dir(self.references)


def get_profile(name: str | None = None) -> Profile:
    """Build the :class:`Profile` for ``name`` (see :func:`resolve_profile_name`)."""
    resolved = resolve_profile_name(name)
    path = recipe_path(resolved)
    profile = Profile(name=path.stem, recipe=path, runs=runs_dir())
    logger.info("ume_rl profile: %s (recipe %s, runs %s)", profile.name, profile.recipe, profile.runs)
    return profile
