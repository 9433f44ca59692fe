"""Model names: the one rule that says what a model name in a recipe, a flag or a function argument means.

:func:`resolve` reads a name as one of seven kinds, without loading or downloading anything:

- ``tiny``: an untrained, seeded stand-in built here (the tiny Qwen2 policy, or the tiny UME);
- ``demo``: the small UME trained here on real sequences (:func:`ume_rl.models.small_ume.demo_ume_checkpoint`);
- ``demo-esm``: the small ESM-style masked LMs (rotary positions, one per modality) trained here on the same
  sequences (:func:`ume_rl.models.small_esm.demo_esm_models`), for ``reward_models`` or ``audit_models``;
- ``checkpoint``: a local UME file (``.ckpt``, ``.pt``, ``.pth``);
- ``registry``: a lobster UME registry name (``ume-mini-base-12M`` ...), fetched by lobster;
- ``directory``: a local directory written by ``save_pretrained`` (a policy or a masked LM);
- ``hub``: a Hugging Face hub id (``facebook/esm2_t6_8M_UR50D``), fetched into the Hugging Face cache.

Loading (:func:`~ume_rl.models.ume.load_ume`, :func:`~ume_rl.models.masked_lms.load_reward_model`), checking
(:mod:`ume_rl.training.validation`) and downloading (:func:`ume_rl.training.run.download_models`) all call it.

>>> resolve("ume-mini-base-12M")
ModelRef(kind='registry', location='ume-mini-base-12M')
>>> resolve("facebook/esm2_t6_8M_UR50D").kind, resolve("./esm2").kind, resolve("~/ume.ckpt").kind
('hub', 'directory', 'checkpoint')
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Kind = Literal["tiny", "demo", "demo-esm", "checkpoint", "registry", "directory", "hub"]
KINDS: tuple[str, ...] = ("tiny", "demo", "demo-esm", "checkpoint", "registry", "directory", "hub")
UME_KINDS: frozenset[str] = frozenset({"tiny", "demo", "checkpoint", "registry"})
"""Kinds :func:`~ume_rl.models.ume.load_ume` loads (a UME); the others are Hugging Face models."""
CHECKPOINT_SUFFIXES = (".ckpt", ".pt", ".pth")
REGISTRY_PREFIX = "ume-"
NAMES_HELP = (
    "'tiny', 'demo', 'demo-esm' (not a UME), a UME registry name (ume-mini-base-12M ...), a .ckpt file, a hub id (org/name) or a "
    "local directory"
)


@dataclass(frozen=True)
class ModelRef:
    """What a model name means.

    Attributes:
        kind: one of :data:`KINDS`.
        location: the expanded path for ``checkpoint`` / ``directory`` (a :class:`~pathlib.Path`), else the name
            (``tiny``, ``demo`` and ``demo-esm`` lower case).
    """

    kind: Kind
    location: str | Path

    @property
    def is_ume(self) -> bool:
        """True for what :func:`~ume_rl.models.ume.load_ume` loads."""
        return self.kind in UME_KINDS

    @property
    def is_local(self) -> bool:
        """True for a file or directory on this machine (checked by validation, never downloaded)."""
        return self.kind in ("checkpoint", "directory")


def _looks_local(name: str) -> bool:
    """An explicit path: absolute, relative (``./``, ``../``), home (``~``), or with two or more ``/`` (a hub id
    has exactly one)."""
    return (
        name.startswith(("/", "./", "../", "~", ".\\"))
        or name.count("/") >= 2
        or (os.sep != "/" and os.sep in name)
    )


def resolve(name: str | Path) -> ModelRef:
    """Read a model name as a :class:`ModelRef` (nothing is loaded, downloaded or checked for existence, except
    that a relative name which exists here is read as that local path).

    Args:
        name: see the module docstring for the six kinds.

    Raises:
        ValueError: an empty name.
    """
    text = str(name).strip()
    if not text:
        raise ValueError(f"empty model name: give {NAMES_HELP}")
    if text.lower() in ("tiny", "demo", "demo-esm"):
        return ModelRef(text.lower(), text.lower())  # type: ignore[arg-type]
    path = Path(text).expanduser()
    if text.endswith(CHECKPOINT_SUFFIXES):
        return ModelRef("checkpoint", path)
    if _looks_local(text) or path.exists():
        return ModelRef("directory", path)
    if text.lower().startswith(REGISTRY_PREFIX):
        return ModelRef("registry", text)
    return ModelRef("hub", text)
