"""The UME reward model: lobster's ``UME`` from a registry name, a local ``.ckpt`` or an untrained tiny stand-in.

:func:`load_ume` takes a registry name (``ume-mini-base-12M``), a local ``.ckpt`` path, or ``"tiny"``
(an untrained, seeded UME with lobster's real tokenizers) and returns it frozen, in eval mode. Any Hugging Face
masked LM per modality: :mod:`ume_rl.models.masked_lms`.

>>> ume = load_ume("tiny")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import warnings
import zipfile
from pathlib import Path

import torch

from ume_rl.models.names import resolve
from ume_rl.models.small_ume import demo_ume_checkpoint

logger = logging.getLogger(__name__)

# Architecture of the tiny UME stand-in (registered next to lobster's UME_mini ... UME_large).
TINY_UME_ARCH = "UME_tiny"
TINY_UME_CONFIG = {
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "hidden_size": 64,
}
TINY_UME_MAX_LENGTH = 512


# ----------------------------------------------------------------------------------------- reward model


def flash_attn_available() -> bool:
    """True when flash-attn can be used: CUDA present and the ``flash_attn`` package importable."""
    if not torch.cuda.is_available():
        return False
    try:
        import flash_attn  # noqa: F401
    except ImportError:
        return False
    return True


# lobster's warnings that tell a user of this package nothing, as (category, module, message) filters: the
# module is the one warnings.warn attributes the warning to (a regex on its __name__), the message a regex on
# the text's start. Import: lobster scripts TorchScript functions and registers Hydra command lines and an
# OmegaConf resolver with deprecated APIs. Use: FlexBERT notes that flash-attn is absent on CPU, where SDPA is
# what this package asks for.
LOBSTER_IMPORT_WARNINGS = (
    (FutureWarning, r"torch\.jit\._script", r"`torch\.jit\.script` is deprecated"),
    (UserWarning, r"lobster\.cmdline\.", r"The version_base parameter is deprecated"),
    (UserWarning, r"lobster\.model\.latent_generator\.", r"register_new_resolver\(\) is deprecated"),
    (ResourceWarning, r"lobster\.tokenization\.", r"unclosed file"),
)
LOBSTER_USE_WARNINGS = (
    (
        UserWarning,
        r"lobster\.model\.modern_bert\.",
        r"(flash_attn not available|Unable to import flash_attn)",
    ),
)
# lobster's logger -> the starts of the log notes about attention kernels dropped from it
LOBSTER_LOG_NOTES = {
    "lobster.model.modern_bert._attention": (
        "SDPA attention",
        "Unable to import flash_attn",
        "Flash Attention 2 does not support attention masks",
    ),
}


class DropLogNotes(logging.Filter):
    """Drops the records of one logger whose message starts with one of ``starts``."""

    def __init__(self, starts: tuple[str, ...]):
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.starts)


def quiet_lobster() -> None:
    """Filter lobster's known use-time warnings (:data:`LOBSTER_USE_WARNINGS`) and attention-kernel log notes
    (:data:`LOBSTER_LOG_NOTES`), each by category, module and message; every other warning still shows.
    Idempotent; called by :func:`lobster_ume_class`."""
    for category, module, message in LOBSTER_USE_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    for name, starts in LOBSTER_LOG_NOTES.items():
        lobster_logger = logging.getLogger(name)
        if not any(isinstance(f, DropLogNotes) for f in lobster_logger.filters):
            lobster_logger.addFilter(DropLogNotes(starts))


@contextlib.contextmanager
def lobster_import_filters():
    """While lobster is imported: :data:`LOBSTER_IMPORT_WARNINGS` filtered (by category, module and message),
    every other warning shown as usual."""
    with warnings.catch_warnings():
        for category, module, message in LOBSTER_IMPORT_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category, module=module)
        yield


def lobster_ume_class():
    """lobster's ``UME`` class, imported without lobster's known warnings (:func:`lobster_import_filters`,
    :func:`quiet_lobster`)."""
    quiet_lobster()
    with lobster_import_filters():
        from lobster.model import UME
    return UME


def register_flexbert_arch(name: str, config: dict[str, int]) -> None:
    """Add ``name`` to lobster's FlexBERT architectures (``FLEXBERT_CONFIG_ARGS``, beside ``UME_mini`` …).

    Registering a name again with the same configuration is a no-op; with another one it is an error.
    """
    quiet_lobster()
    with lobster_import_filters():  # the first lobster import may be this one
        from lobster.model.modern_bert._modern_bert_configuration import FLEXBERT_CONFIG_ARGS

    known = FLEXBERT_CONFIG_ARGS.setdefault(name, dict(config))
    if known != dict(config):
        raise ValueError(f"FlexBERT architecture {name!r} is already registered as {known}, not {config}")


def _register_tiny_arch() -> None:
    register_flexbert_arch(TINY_UME_ARCH, TINY_UME_CONFIG)


def _register_checkpoint_arch(path: Path) -> None:
    """Register the architecture a checkpoint trained by ``ume_rl.models.small_ume`` names (it stores its FlexBERT
    configuration under ``"ume_rl"``); real UME checkpoints name lobster's own architectures."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as err:
        raise RuntimeError(
            f"UME checkpoint {path} cannot be read ({type(err).__name__}: {err}); it is truncated or corrupt. "
            "Fix: train or copy it again (the demo profile's checkpoint is rebuilt automatically)."
        ) from err
    extra = checkpoint.get("ume_rl") if isinstance(checkpoint, dict) else None
    if extra:
        register_flexbert_arch(extra["arch"], extra["flexbert_config"])


def build_tiny_ume(
    seed: int = 0, layout: str = "padded", max_length: int = TINY_UME_MAX_LENGTH, use_flash_attn: bool = False
):
    """An untrained UME with a tiny FlexBERT and lobster's real tokenizers, seeded.

    The weights depend on ``seed`` alone: the same seed gives the same tensors in either layout.

    Args:
        seed: weights are a function of the seed alone.
        layout: ``"padded"`` (SDPA over a padded batch; CPU, or GPU without flash-attn) or ``"unpadded"``
            (the layout of flash-attn-trained checkpoints).
        max_length: UME's maximum tokenized length, special tokens included.
        use_flash_attn: only with ``layout="unpadded"``: run attention through flash-attn (CUDA). Without it
            lobster's unpadded layout runs through SDPA and mixes sequences that share a forward.
    """
    UME = lobster_ume_class()

    if layout not in ("padded", "unpadded"):
        raise ValueError(f"layout must be 'padded' or 'unpadded', got {layout!r}")
    if use_flash_attn and layout != "unpadded":
        raise ValueError("flash-attn needs the unpadded layout: pass layout='unpadded'")
    _register_tiny_arch()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # Any ckpt_path makes lobster build the unpadded layout; nothing is read from it.
        kwargs = {"ckpt_path": "unpadded-layout"} if layout == "unpadded" else {}
        return UME(model_name=TINY_UME_ARCH, max_length=max_length, use_flash_attn=use_flash_attn, **kwargs)


CHECKPOINT_LOOKS_LIKE = (
    "A UME checkpoint is what Lightning's Trainer.save_checkpoint writes: a torch.save zip archive of a dict "
    "with 'state_dict', 'hyper_parameters' and 'pytorch-lightning_version' (lobster's ume-*.ckpt files). "
    "Fix: pass such a file, a registry name, or 'tiny'."
)


def ume_registry_names() -> tuple[str, ...]:
    """The UME names lobster's ``UME.from_pretrained`` knows (``ume-mini-base-12M`` ...)."""
    with lobster_import_filters():
        from lobster.constants import UMEModelVersion
    return tuple(version.value for version in UMEModelVersion)


def check_checkpoint_file(path: str | Path) -> None:
    """Cheap checks that ``path`` can be a Lightning checkpoint, before lobster reads it.

    Raises:
        ValueError: the file is empty, is not a ``torch.save`` archive (garbage, text, another format), or is a
            truncated or corrupt one; the message says what a checkpoint looks like.
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise ValueError(
            f"UME checkpoint {path} is empty (0 bytes): an interrupted copy? {CHECKPOINT_LOOKS_LIKE}"
        )
    with path.open("rb") as handle:
        head = handle.read(4)
    if head.startswith(b"\x80"):  # torch's legacy (pre-1.6) pickle format: torch reads it, or says why
        return
    if head != b"PK\x03\x04":
        raise ValueError(
            f"UME checkpoint {path} ({size} bytes) is not a PyTorch checkpoint (it starts with {head!r}, "
            f"not a torch.save zip archive). {CHECKPOINT_LOOKS_LIKE}"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile as err:
        raise ValueError(
            f"UME checkpoint {path} ({size} bytes) is a truncated or corrupt torch.save archive ({err}): copy or "
            f"download it again. {CHECKPOINT_LOOKS_LIKE}"
        ) from err
    if not any(member.endswith("/data.pkl") for member in names):
        raise ValueError(
            f"UME checkpoint {path} is a zip archive but not a torch.save file (no data.pkl). {CHECKPOINT_LOOKS_LIKE}"
        )


def load_ume(
    name_or_path: str | Path,
    device: str | torch.device | None = None,
    use_flash_attn: bool | None = None,
    seed: int = 0,
    runs_dir: str | Path | None = None,
):
    """Load a UME reward model, frozen and in eval mode, on ``device``.

    Args:
        name_or_path: read by :func:`~ume_rl.models.names.resolve`: ``"tiny"``; ``"demo"`` (with ``runs_dir``);
            a registry name (``ume-mini-base-12M``, ``ume-small-base-90M``,
            ``ume-medium-base-480M``, ``ume-large-base-740M``, via ``UME.from_pretrained``); or a local
            ``.ckpt`` file (via ``UME.load_from_checkpoint``).
        device: default ``cuda`` when available, else ``cpu``.
        use_flash_attn: default (None): when ``device`` is CUDA and the ``flash_attn`` package is importable.
            ``True`` without both is an error, not a silent fallback. Without flash-attn, lobster uses the
            padded SDPA layout (the tiny stand-in too; with flash-attn it is built in the unpadded layout).
        seed: seed of the ``"tiny"`` stand-in.
        runs_dir: where the ``"demo"`` UME is trained on first use and cached (``runs_dir/models``).

    Raises:
        FileNotFoundError: a ``.ckpt`` path that does not exist or is not a file.
        ValueError: an unknown name (the message lists lobster's registry names; names are matched
            case-insensitively), or a file that is not a Lightning checkpoint (empty, not a ``torch.save``
            archive, truncated).
        RuntimeError: a registry name that cannot be fetched (offline, no credentials), or a checkpoint lobster
            cannot load; names the fix.

    A ``.ckpt`` is a Lightning checkpoint of lobster's ``UME`` (``state_dict`` + ``hyper_parameters``), in either
    FlexBERT layout: flash-attn-trained checkpoints are unpadded; on CPU lobster rebuilds them padded (or keeps
    them unpadded) and :class:`~ume_rl.rewards.engine.ume_scoring.UmeScorer` scores both exactly.
    """
    UME = lobster_ume_class()

    device = (
        torch.device(device)
        if device is not None
        else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    )
    if use_flash_attn and not (device.type == "cuda" and flash_attn_available()):
        raise RuntimeError(
            f"use_flash_attn=True needs a CUDA device and the flash_attn package (device {device}). "
            "Fix: install flash-attn on the GPU machine, or pass use_flash_attn=None (use it when available)."
        )
    flash = (device.type == "cuda" and flash_attn_available()) if use_flash_attn is None else use_flash_attn
    name = str(name_or_path)
    ref = resolve(name)
    if ref.kind == "demo":
        if runs_dir is None:
            raise ValueError(
                "the 'demo' UME is trained and cached under a runs directory: pass runs_dir "
                "(ume_rl.profiles.runs_dir()), or the path of its .ckpt file."
            )
        name = str(demo_ume_checkpoint(runs_dir))
        ref = resolve(name)
    if ref.kind == "tiny":
        ume = build_tiny_ume(seed=seed, layout="unpadded" if flash else "padded", use_flash_attn=flash)
    elif ref.is_local:
        path = Path(ref.location)
        if not path.is_file():
            problem = "is not a file" if path.exists() else "does not exist"
            raise FileNotFoundError(
                f"UME checkpoint {name} {problem}. Fix: pass the path of a UME .ckpt file "
                "(--ume_model_path /path/to/model.ckpt), a registry name, or the offline recipe: UME_RL_PROFILE=tiny."
            )
        check_checkpoint_file(path)
        _register_tiny_arch()  # a checkpoint of the tiny stand-in names the UME_tiny architecture
        _register_checkpoint_arch(path)  # a checkpoint of ume_rl.models.small_ume names its own architecture
        try:
            ume = UME.load_from_checkpoint(str(path), device=device.type, use_flash_attn=flash)
        except Exception as err:
            raise RuntimeError(
                f"UME checkpoint {path} could not be loaded by UME.load_from_checkpoint "
                f"({type(err).__name__}: {err}). {CHECKPOINT_LOOKS_LIKE}"
            ) from err
    else:
        registry = {known.lower(): known for known in ume_registry_names()}
        if name.lower() not in registry:
            raise ValueError(
                f"Unknown UME {name!r}: pass one of {', '.join(registry.values())} (lobster's registry), "
                "'tiny' (the offline stand-in), 'demo' (trained here) or the path of a .ckpt file."
            )
        if registry[name.lower()] != name:
            logger.info("UME name %r read as lobster's %r", name, registry[name.lower()])
        name = registry[name.lower()]
        try:
            ume = UME.from_pretrained(name, device=device.type, use_flash_attn=flash)
        except Exception as err:
            raise RuntimeError(
                f"Could not load UME {name!r} ({type(err).__name__}: {err}). Registry checkpoints are fetched "
                "from Prescient Design's storage and need network access and credentials. Fix: pass a local "
                "checkpoint (load_ume('/path/to/model.ckpt') or --ume_model_path /path/to/model.ckpt), "
                "or use the offline recipe: UME_RL_PROFILE=tiny."
            ) from err
    ume.freeze()
    ume.eval()
    return ume.to(device)
