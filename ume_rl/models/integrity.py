"""Model files checked before they are used: a manifest of sizes and hashes, and a full parse of each file.

A directory of model files this package writes (a cached tiny policy, a warm start) ends with a manifest,
``ume_rl_manifest.json``, written last: the size and sha256 of every file. :func:`manifest_problem` says why a
directory does not match its manifest (a file missing, truncated or changed; no manifest: interrupted while
writing). Files written by others (a Trainer's ``checkpoint-N``) are checked by :func:`file_problem`, which
parses each file whole: a safetensors header and its tensor extents, a JSON document, the zip directory and
CRCs of a ``torch.save`` file. Neither loads a model.

>>> from pathlib import Path
>>> folder = Path("/tmp/ume_rl_doctest_manifest"); folder.mkdir(exist_ok=True)
>>> _ = (folder / "config.json").write_text("{}")
>>> _ = write_manifest(folder)
>>> manifest_problem(folder) is None
True
>>> _ = (folder / "config.json").write_text("{ }")
>>> manifest_problem(folder)
'config.json: size 3 != 2 recorded (truncated or changed?)'
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

MANIFEST_NAME = "ume_rl_manifest.json"
# The file names a saved model's weights may have (one list for the whole package).
WEIGHT_FILES: tuple[str, ...] = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "adapter_model.safetensors",
)


def sha256_file(path: str | Path) -> str:
    """The sha256 of the file at ``path`` (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_json_atomic(path: str | Path, value) -> None:
    """Write ``value`` as JSON to ``path`` through a temporary file renamed into place."""
    path = Path(path)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        json.dump(value, handle, indent=1, default=str)
    os.replace(handle.name, path)


def write_manifest(directory: str | Path) -> Path:
    """Record the size and sha256 of every file under ``directory`` in its manifest; call it last."""
    directory = Path(directory)
    files = {
        str(path.relative_to(directory)): {"size": path.stat().st_size, "sha256": sha256_file(path)}
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != MANIFEST_NAME and not path.name.startswith(".")
    }
    write_json_atomic(directory / MANIFEST_NAME, {"files": files})
    return directory / MANIFEST_NAME


def manifest_problem(directory: str | Path) -> str | None:
    """Why ``directory`` does not hold the files its manifest records (``None``: it does)."""
    directory = Path(directory)
    try:
        files = json.loads((directory / MANIFEST_NAME).read_text())["files"]
    except FileNotFoundError:
        return f"no {MANIFEST_NAME} (interrupted while writing?)"
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"unreadable {MANIFEST_NAME} ({type(err).__name__})"
    for name, recorded in files.items():
        path = directory / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != recorded.get("size"):
            return f"{name}: size {path.stat().st_size} != {recorded.get('size')} recorded (truncated or changed?)"
        if sha256_file(path) != recorded.get("sha256"):
            return f"{name}: sha256 differs from the recorded one (corrupted?)"
    return None


def file_problem(path: str | Path) -> str | None:
    """Why the file at ``path`` cannot be read whole (``None``: it can), by its kind: ``.safetensors`` (header
    and tensor extents), ``.json`` (a JSON document), ``.pt``/``.bin``/``.pth`` (a ``torch.save`` zip: directory
    and CRCs); any other file must exist. A model is never loaded."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        return f"{path.name} is missing"
    try:
        if path.suffix == ".safetensors":
            with safe_open(str(path), "pt") as handle:
                handle.keys()
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix in (".pt", ".bin", ".pth"):
            if not zipfile.is_zipfile(path):
                return f"{path.name} is not a complete torch.save file (truncated?)"
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
            if bad is not None:
                return f"{path.name}: {bad} fails its CRC check (corrupted?)"
    except Exception as err:  # safetensors' SafetensorError, json's ValueError, zipfile's BadZipFile, OSError
        return f"{path.name} is unreadable ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
    return None
