"""Run profiles: which policy and which UME a run uses, decided in one place.

Three profiles exist:

- ``full``: Qwen2-0.5B-Instruct from the Hugging Face cache and a real UME checkpoint
  (a registry name such as ``ume-mini-base-12M`` or a local ``.ckpt`` file).
- ``demo``: offline, and the reward knows real sequences: the tiny Qwen2 policy (its tokenizer trained on
  real sequences too) and a small UME trained here on real SMILES / protein / DNA
  (:func:`ume_rl.models.small_ume.demo_ume_checkpoint`: a few CPU minutes on first use, cached under
  ``runs/models``). Dataset references are real sequences (:mod:`ume_rl.data.corpus`).
- ``tiny``: the fastest, for unit tests: the tiny Qwen2 and an untrained UME with lobster's real tokenizers;
  random references.

The profile comes from ``UME_RL_PROFILE`` (``tiny``, ``demo`` or ``full``); when unset it is ``full`` if
CUDA is available and ``demo`` otherwise. Notebooks and scripts only ask:

>>> from ume_rl.profiles import get_profile
>>> profile = get_profile("tiny")
>>> profile.name, profile.ume, profile.references
('tiny', 'tiny', 'random')

``full`` never falls back to another profile: a missing model is an error that names the fix.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

logger = logging.getLogger(__name__)

ProfileName = Literal["tiny", "demo", "full"]
PROFILES: tuple[str, ...] = ("tiny", "demo", "full")
DEFAULT_QWEN = "Qwen/Qwen2-0.5B-Instruct"
DEFAULT_UME = "ume-mini-base-12M"


def resolve_profile_name(name: str | None = None) -> ProfileName:
    """Return the profile name: ``name``, else ``$UME_RL_PROFILE``, else ``full`` on CUDA and ``demo`` otherwise."""
    name = name or os.environ.get("UME_RL_PROFILE") or ("full" if torch.cuda.is_available() else "demo")
    name = name.strip().lower()
    if name not in PROFILES:
        raise ValueError(f"Unknown profile {name!r}: set UME_RL_PROFILE to one of {PROFILES}.")
    return name  # type: ignore[return-value]


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


@dataclass(frozen=True)
class Profile:
    """What a run uses. Build it with :func:`get_profile`."""

    name: ProfileName = field(
        metadata={"help": "'tiny', 'demo' (offline stand-ins) or 'full' (real models)."}
    )
    qwen: str = field(metadata={"help": "Policy: hub repo id (full) or 'tiny'."})
    ume: str = field(metadata={"help": "Reward model: registry name, local .ckpt path, 'tiny' or 'demo'."})
    runs: Path = field(metadata={"help": "Output directory for this profile."})
    seed: int = field(default=0, metadata={"help": "Seed for the tiny stand-ins."})
    references: str = field(
        default="random", metadata={"help": "Dataset references: 'random' (generated) or 'real' (corpus)."}
    )

    def policy_path(self, download: bool = False) -> Path:
        """Local path of the policy model.

        ``tiny`` / ``demo``: built once under ``runs/models`` (``demo``: its tokenizer is trained on real
        sequences as well). ``full``: the newest snapshot of ``qwen`` in the Hugging Face cache; with
        ``download=True`` it is fetched first (a no-op when cached), else a missing model is an error that
        names the fix.
        """
        from ume_rl.data.generate import tokenizer_corpus
        from ume_rl.models.policy import cached_tiny_qwen, download_qwen, find_qwen_in_cache

        if self.qwen == "tiny":
            kind = "-real" if self.references == "real" else ""
            out = self.runs / "models" / f"tiny-qwen{kind}-seed{self.seed}"
            corpus = lambda: tokenizer_corpus(seed=self.seed, references=self.references)  # noqa: E731
            return cached_tiny_qwen(out, seed=self.seed, corpus=corpus)
        return download_qwen(self.qwen) if download else find_qwen_in_cache(repo_id=self.qwen)

    def ume_path(self) -> str:
        """What ``load_ume`` takes for this profile: ``demo`` trains its small UME on first use (cached)."""
        if self.ume == "demo":
            from ume_rl.models.small_ume import demo_ume_checkpoint

            return str(demo_ume_checkpoint(self.runs))
        return self.ume

    def load_ume(self, device: str | torch.device | None = None):
        """The reward model for this profile, frozen, in eval mode, on ``device``."""
        from ume_rl.models.ume import load_ume

        return load_ume(self.ume_path(), device=device, seed=self.seed)

    @property
    def figures(self) -> Path:
        return self.runs / "figures"

    @property
    def dataset_dir(self) -> Path:
        name = "real_reference_dataset" if self.references == "real" else "synthetic_molecular_dataset"
        return self.runs / "data" / name


def get_profile(name: str | None = None) -> Profile:
    """Build the :class:`Profile` for ``name`` (see :func:`resolve_profile_name`).

    ``full`` reads ``$UME_RL_QWEN`` (default ``Qwen/Qwen2-0.5B-Instruct``) and
    ``$UME_RL_UME_CHECKPOINT`` (default ``ume-mini-base-12M``; a local ``.ckpt`` path works too).
    """
    resolved = resolve_profile_name(name)
    if resolved == "tiny":
        profile = Profile(name="tiny", qwen="tiny", ume="tiny", runs=runs_dir())
    elif resolved == "demo":
        profile = Profile(name="demo", qwen="tiny", ume="demo", runs=runs_dir(), references="real")
    else:
        profile = Profile(
            name="full",
            qwen=os.environ.get("UME_RL_QWEN", DEFAULT_QWEN),
            ume=os.environ.get("UME_RL_UME_CHECKPOINT", DEFAULT_UME),
            runs=runs_dir(),
        )
    logger.info(
        "ume_rl profile: %s (policy=%s, ume=%s, runs=%s)",
        profile.name,
        profile.qwen,
        profile.ume,
        profile.runs,
    )
    return profile
