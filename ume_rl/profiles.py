"""Run profiles: which policy and which UME a run uses, decided in one place.

Two profiles exist:

- ``full``: Qwen2-0.5B-Instruct from the Hugging Face cache and a real UME checkpoint
  (a registry name such as ``ume-mini-base-12M`` or a local ``.ckpt`` file).
- ``tiny``: offline stand-ins built by this package: a tiny Qwen2 with a locally trained
  tokenizer and chat template, and an untrained UME with lobster's real tokenizers.

The profile comes from ``UME_RL_PROFILE`` (``tiny`` or ``full``); when unset it is ``full`` if
CUDA is available and ``tiny`` otherwise. Notebooks and scripts only ask:

>>> from ume_rl.profiles import get_profile
>>> profile = get_profile("tiny")
>>> profile.name, profile.ume
('tiny', 'tiny')

``full`` never falls back to ``tiny``: a missing model is an error that names the fix.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

logger = logging.getLogger(__name__)

ProfileName = Literal["tiny", "full"]
PROFILES: tuple[str, ...] = ("tiny", "full")
DEFAULT_QWEN = "Qwen/Qwen2-0.5B-Instruct"
DEFAULT_UME = "ume-mini-base-12M"


def resolve_profile_name(name: str | None = None) -> ProfileName:
    """Return the profile name: ``name``, else ``$UME_RL_PROFILE``, else ``full`` on CUDA and ``tiny`` otherwise."""
    name = name or os.environ.get("UME_RL_PROFILE") or ("full" if torch.cuda.is_available() else "tiny")
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

    name: ProfileName = field(metadata={"help": "'tiny' (offline stand-ins) or 'full' (real models)."})
    qwen: str = field(metadata={"help": "Policy: hub repo id (full) or 'tiny'."})
    ume: str = field(metadata={"help": "Reward model: registry name, local .ckpt path, or 'tiny'."})
    runs: Path = field(metadata={"help": "Output directory for this profile."})
    seed: int = field(default=0, metadata={"help": "Seed for the tiny stand-ins."})

    def policy_path(self, download: bool = False) -> Path:
        """Local path of the policy model.

        ``tiny``: built once under ``runs/models``. ``full``: the newest snapshot of ``qwen`` in the Hugging Face
        cache; with ``download=True`` it is fetched first (a no-op when cached), else a missing model is an
        error that names the fix.
        """
        from ume_rl.models import build_tiny_qwen, download_qwen, find_qwen_in_cache

        if self.name == "tiny":
            out = self.runs / "models" / f"tiny-qwen-seed{self.seed}"
            if not (out / "config.json").is_file():
                build_tiny_qwen(out, seed=self.seed)
            return out
        return download_qwen(self.qwen) if download else find_qwen_in_cache(repo_id=self.qwen)

    def load_ume(self, device: str | torch.device | None = None):
        """The reward model for this profile, frozen, in eval mode, on ``device``."""
        from ume_rl.models import load_ume

        return load_ume(self.ume, device=device, seed=self.seed)

    @property
    def figures(self) -> Path:
        return self.runs / "figures"

    @property
    def dataset_dir(self) -> Path:
        return self.runs / "data" / "synthetic_molecular_dataset"


def get_profile(name: str | None = None) -> Profile:
    """Build the :class:`Profile` for ``name`` (see :func:`resolve_profile_name`).

    ``full`` reads ``$UME_RL_QWEN`` (default ``Qwen/Qwen2-0.5B-Instruct``) and
    ``$UME_RL_UME_CHECKPOINT`` (default ``ume-mini-base-12M``; a local ``.ckpt`` path works too).
    """
    resolved = resolve_profile_name(name)
    if resolved == "tiny":
        profile = Profile(name="tiny", qwen="tiny", ume="tiny", runs=runs_dir())
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
