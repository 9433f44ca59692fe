"""The MOSES benchmark's SMILES sets (ZINC clean leads), read from the ``molsets`` 0.3.1 wheel (MIT).

>>> train = moses_smiles("train")  # 1,584,663 SMILES  # doctest: +SKIP
>>> test = moses_smiles("test")  # 176,074 SMILES, the set MOSES metrics (FCD, novelty ...) compare to  # doctest: +SKIP

The wheel is fetched once without its dependencies and checksummed (:mod:`ume_rl.data.wheels`); the sets are
gzipped CSV files with one ``SMILES`` column.
"""

from __future__ import annotations

import csv
import gzip
import io
from functools import lru_cache

from ume_rl.data.wheels import WHEELS, read_member

MOSES_SPLITS: tuple[str, ...] = ("train", "test", "test_scaffolds")
MOSES_DIR = "moses/dataset/data/"


@lru_cache(maxsize=len(MOSES_SPLITS))
def moses_smiles(split: str = "train") -> tuple[str, ...]:
    """The SMILES of a MOSES set (``train``, ``test`` or ``test_scaffolds``), in file order.

    Raises:
        ValueError: unknown ``split``.
        ume_rl.data.wheels.WheelError: the wheel cannot be fetched (offline without a cached copy).
    """
    if split not in MOSES_SPLITS:
        raise ValueError(f"MOSES split must be one of {MOSES_SPLITS}, got {split!r}")
    text = gzip.decompress(read_member("molsets", f"{MOSES_DIR}{split}.csv.gz")).decode()
    rows = csv.DictReader(io.StringIO(text))
    return tuple(row["SMILES"] for row in rows if row.get("SMILES"))


def moses_provenance(split: str = "train") -> dict[str, str]:
    """Package, version, licence, wheel sha256 and member of a MOSES set (for a corpus's provenance)."""
    spec = WHEELS["molsets"]
    return {
        "package": spec.name,
        "version": spec.version,
        "licence": spec.licence,
        "sha256": spec.sha256,
        "file": f"{MOSES_DIR}{split}.csv.gz",
    }
