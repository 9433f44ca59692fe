"""Data files read from PyPI wheels that are fetched by name, checksummed and cached, never installed.

Some packages carry useful data but cannot be installed next to ume_rl: ``molsets`` 0.3.1 (MOSES, MIT) pins
``pomegranate==0.12.0``, which does not build on Python 3.11. Its wheel is fetched from the package index
without dependencies (``pip download --no-deps``), its sha256 is checked against :data:`WHEELS`, and the
file is kept in a cache directory; only the data members are read (nothing is imported).

>>> smiles = read_member("molsets", "moses/dataset/data/test.csv.gz")  # doctest: +SKIP

A cached wheel whose checksum does not match (a partial or corrupt download) is deleted and fetched again;
a wheel that cannot be fetched (offline, no cache) is an error naming the command that fetches it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WheelSpec:
    """A wheel on the package index, pinned by version and checksum."""

    name: str
    version: str
    sha256: str
    licence: str

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}-py3-none-any.whl"


WHEELS: dict[str, WheelSpec] = {
    # MOSES benchmark data: train (1,584,663 ZINC SMILES), test, test_scaffolds and their precomputed statistics.
    "molsets": WheelSpec(
        "molsets", "0.3.1", "7f4450e3ebecebe79c3a2a55950c93daddee071120daf64a163d03481e811d34", "MIT"
    ),
}


class WheelError(RuntimeError):
    """A wheel could not be fetched or does not match its checksum."""


def wheel_cache_dir() -> Path:
    """Where fetched wheels are kept: ``$UME_RL_WHEEL_CACHE``, else ``~/.cache/ume_rl/wheels``."""
    return Path(
        os.environ.get("UME_RL_WHEEL_CACHE") or Path.home() / ".cache" / "ume_rl" / "wheels"
    ).expanduser()


def sha256_file(path: str | Path) -> str:
    """The sha256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_command(spec: WheelSpec, cache_dir: Path) -> str:
    """The shell command that fetches ``spec`` into ``cache_dir`` (what :func:`fetch_wheel` runs)."""
    return f"python -m pip download --no-deps --only-binary :all: {spec.name}=={spec.version} -d {cache_dir}"


def fetch_wheel(
    spec: WheelSpec | str, cache_dir: str | Path | None = None, pip_args: tuple[str, ...] = ()
) -> Path:
    """Return the path of the cached, verified wheel ``spec``, fetching it first when needed.

    Args:
        spec: a :class:`WheelSpec` or a name in :data:`WHEELS`.
        cache_dir: where wheels are kept (default :func:`wheel_cache_dir`).
        pip_args: extra arguments for ``pip download`` (e.g. ``("--no-index", "--find-links", DIR)``).

    Raises:
        WheelError: the wheel cannot be fetched, or the fetched file does not match ``spec.sha256``.
    """
    spec = WHEELS[spec] if isinstance(spec, str) else spec
    cache = Path(cache_dir) if cache_dir is not None else wheel_cache_dir()
    path = cache / spec.filename
    if path.is_file():
        if sha256_file(path) == spec.sha256:
            return path
        logger.warning(
            "cached wheel %s does not match its sha256 (partial or corrupt): fetching it again", path
        )
        path.unlink()
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".fetch-") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--quiet"]
        command += [*pip_args, f"{spec.name}=={spec.version}", "-d", tmp]
        logger.info("fetching %s %s (no dependencies) into %s", spec.name, spec.version, cache)
        done = subprocess.run(command, capture_output=True, text=True)
        fetched = Path(tmp) / spec.filename
        if done.returncode != 0 or not fetched.is_file():
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel written"]
            raise WheelError(
                f"could not fetch {spec.filename} ({last[0]}); with network access run "
                f"`{fetch_command(spec, cache)}`, or set UME_RL_WHEEL_CACHE to a directory holding it"
            )
        if (got := sha256_file(fetched)) != spec.sha256:
            raise WheelError(f"{spec.filename} from the index has sha256 {got}, expected {spec.sha256}")
        os.replace(fetched, path)
    return path


def read_member(
    spec: WheelSpec | str, member: str, cache_dir: str | Path | None = None, **fetch_kwargs
) -> bytes:
    """The bytes of ``member`` (a path inside the wheel), from the cached, verified wheel.

    Raises:
        WheelError: as :func:`fetch_wheel`, or ``member`` is not in the wheel.
    """
    path = fetch_wheel(spec, cache_dir, **fetch_kwargs)
    with zipfile.ZipFile(path) as wheel:
        try:
            return wheel.read(member)
        except KeyError:
            raise WheelError(f"{path.name} holds no {member}") from None
