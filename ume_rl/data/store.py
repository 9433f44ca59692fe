"""A generated dataset on disk: saved atomically, checked before it is loaded, never silently regenerated.

>>> dataset = load_or_generate_dataset("runs/data/synthetic")  # generated once, loaded afterwards  # doctest: +SKIP
>>> load_dataset_dir("my/dataset")  # a directory you made: loaded as it is, or an error naming what is wrong  # doctest: +SKIP

:func:`save_dataset` writes next to the directory and renames it into place, with a marker
(``ume_rl_dataset.json``) holding the generation arguments; :func:`dataset_problems` says what keeps a
directory from being a complete saved ``DatasetDict`` (cheaply, without reading the Arrow data);
:func:`load_or_generate_dataset` regenerates only a directory this package generated, and refuses one whose
generation arguments disagree with the ones asked for. The generator itself is :mod:`ume_rl.data.generate`.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import shutil
from collections import Counter
from pathlib import Path

from datasets import DatasetDict, load_from_disk

from ume_rl.data.generate import generate_synthetic_dataset

logger = logging.getLogger(__name__)

REQUIRED_SPLITS: tuple[str, ...] = ("train", "validation", "test")
REQUIRED_COLUMNS: tuple[str, ...] = ("prompt", "completion", "modality")
# Written last into a directory this package generated: the generation arguments (and "ours, may be rebuilt").
GENERATED_MARKER = "ume_rl_dataset.json"


def generate_command(out_dir: str | Path) -> str:
    """The shell command that generates the synthetic dataset into ``out_dir`` (missing or empty)."""
    return f"python -c \"import ume_rl; ume_rl.load_or_generate_dataset('{out_dir}')\""


def regenerate_fix(path: str | Path) -> str:
    """The fix for a directory that is not a usable dataset: a dataset (or part of one) is deleted and generated
    again in place; anything else is left alone and a new directory is generated."""
    path = Path(path)
    if path.is_dir() and any(
        (path / name).exists() for name in ("dataset_dict.json", GENERATED_MARKER, "train")
    ):
        return f"delete it and generate it again: rm -rf '{path}' && {generate_command(path)}"
    return f"generate one into a new directory: {generate_command(path.with_name(path.name + '-new'))}"


def dataset_fingerprint(dataset: DatasetDict) -> dict[str, str]:
    """A content hash of each split (sha256 of its rows as sorted-key JSON, 16 hex digits): the same rows give
    the same fingerprint wherever and however they were saved."""
    found = {}
    for name, split in sorted(dataset.items()):
        digest = hashlib.sha256()
        for row in split:
            digest.update(json.dumps(row, sort_keys=True, default=str).encode())
            digest.update(b"\n")
        found[name] = digest.hexdigest()[:16]
    return found


def recorded_fingerprint(path: str | Path) -> dict[str, str] | None:
    """The fingerprint :func:`save_dataset` recorded in ``path``'s marker (``None``: none recorded)."""
    try:
        value = json.loads((Path(path) / GENERATED_MARKER).read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, dict) else None


def dataset_problems(path: str | Path, splits: tuple[str, ...] = REQUIRED_SPLITS) -> list[str]:
    """What keeps ``path`` from being a complete saved ``DatasetDict`` with ``splits``; ``[]`` when nothing does.

    Read-only and cheap (the JSON files and the data files' presence, no Arrow data is read): a missing
    directory, a file, a single saved ``Dataset``, a missing or unreadable ``dataset_dict.json``, missing
    splits, or a split whose data files are missing or empty (an interrupted save).
    """
    path = Path(path)
    if not path.exists():
        return ["it does not exist"]
    if not path.is_dir():
        return ["it is a file, not a directory"]
    if not (path / "dataset_dict.json").is_file():
        if (path / "state.json").is_file():
            return [f"it holds a single saved Dataset, not a DatasetDict with splits {', '.join(splits)}"]
        entries = sorted(p.name for p in path.iterdir())
        listed = ", ".join(entries[:5]) + (" ..." if len(entries) > 5 else "") if entries else "nothing"
        return [f"it has no dataset_dict.json, so it is not a saved DatasetDict (it holds {listed})"]
    try:
        saved = json.loads((path / "dataset_dict.json").read_text())["splits"]
    except (ValueError, KeyError, TypeError) as err:
        return [f"dataset_dict.json is unreadable ({type(err).__name__}: {err})"]
    problems = []
    missing = [split for split in splits if split not in saved]
    if missing:
        problems.append(
            f"split(s) {', '.join(missing)} missing (it has {', '.join(map(str, saved)) or 'none'})"
        )
    for split in saved:
        split_dir = path / str(split)
        try:
            files = [
                entry["filename"]
                for entry in json.loads((split_dir / "state.json").read_text())["_data_files"]
            ]
        except (OSError, ValueError, KeyError, TypeError) as err:
            problems.append(f"split {split}: state.json missing or unreadable ({type(err).__name__})")
            continue
        absent = [
            name
            for name in files
            if not (split_dir / name).is_file() or not (split_dir / name).stat().st_size
        ]
        if absent or not files:
            problems.append(
                f"split {split}: data file(s) {', '.join(absent) or '(none listed)'} missing or empty"
            )
    return problems


def load_dataset_dir(path: str | Path, splits: tuple[str, ...] = REQUIRED_SPLITS) -> DatasetDict:
    """Load the ``DatasetDict`` saved at ``path``, checked: it is never generated, repaired or written here.

    Raises:
        FileNotFoundError: ``path`` does not exist (the message gives the command that generates one).
        ValueError: ``path`` is not a complete saved ``DatasetDict`` with ``splits`` and the columns
            ``prompt``, ``completion``, ``modality``, or a data file is corrupt; the message names the path,
            what is missing and the command that regenerates it.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"dataset directory {path} does not exist. Fix: point at a saved DatasetDict, or generate one: "
            f"{generate_command(path)}"
        )
    problems = dataset_problems(path, splits)
    if problems:
        raise ValueError(f"dataset {path} is not usable: {'; '.join(problems)}. Fix: {regenerate_fix(path)}")
    try:
        # In memory: nothing (no cache-*.arrow of a later .map) is ever written into the dataset directory,
        # which may be read-only or shared by several runs.
        dataset = load_from_disk(str(path), keep_in_memory=True)
    except Exception as err:  # pyarrow's ArrowInvalid / OSError for truncated files, and their kin
        raise ValueError(
            f"dataset {path} has a corrupt data file ({type(err).__name__}: {str(err).splitlines()[0]}). "
            f"Fix: {regenerate_fix(path)}"
        ) from err
    for split in splits:
        missing = [column for column in REQUIRED_COLUMNS if column not in dataset[split].column_names]
        if missing or not len(dataset[split]):
            what = f"column(s) {', '.join(missing)} missing" if missing else "no rows"
            raise ValueError(f"dataset {path}, split {split}: {what}. Fix: {regenerate_fix(path)}")
    return dataset


def save_dataset(dataset: DatasetDict, out_dir: str | Path, generated_with: dict | None = None) -> Path:
    """``save_to_disk`` into ``out_dir`` plus ``<out_dir>.json`` (every split, for inspection).

    The save is atomic: the dataset is written beside ``out_dir`` and renamed into place, so an interrupted save
    never leaves a partial dataset. ``out_dir`` may be missing, empty or a saved dataset (which is replaced,
    with a warning that names both fingerprints when the rows differ: runs trained on the old rows refuse to
    resume on the new ones); a directory holding anything else is refused, never overwritten.
    The marker ``out_dir/ume_rl_dataset.json`` records the content fingerprint of each split
    (:func:`dataset_fingerprint`) and ``generated_with`` (the generation arguments, ``None`` when not given).
    """
    out_dir = Path(out_dir)
    fingerprint = dataset_fingerprint(dataset)
    replacing = out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir()))
    if replacing:
        if not out_dir.is_dir() or not (
            (out_dir / "dataset_dict.json").is_file() or (out_dir / GENERATED_MARKER).is_file()
        ):
            raise FileExistsError(
                f"{out_dir} exists and is not a saved dataset: it is left as it is. Fix: pass a new or empty "
                "directory, or delete it first."
            )
        old = recorded_fingerprint(out_dir)
        if old is not None and old != fingerprint:
            logger.warning(
                "replacing the dataset saved at %s (fingerprint %s) with different rows (%s): runs trained on "
                "the old rows refuse to resume on these",
                out_dir,
                old,
                fingerprint,
            )
        else:
            logger.warning("replacing the dataset saved at %s", out_dir)
    staging = out_dir.with_name(f".{out_dir.name}.saving-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    dataset.save_to_disk(str(staging))
    marker = {"fingerprint": fingerprint, "generate_synthetic_dataset": generated_with}
    (staging / GENERATED_MARKER).write_text(json.dumps(marker))
    old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
    if out_dir.exists():
        out_dir.rename(old)
    staging.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)
    json_path = out_dir.with_suffix(".json")
    json_path.write_text(json.dumps({name: split.to_list() for name, split in dataset.items()}, indent=1))
    logger.info("saved dataset to %s and %s", out_dir, json_path)
    return out_dir


def _generation_arguments(kwargs: dict) -> dict:
    """The explicit generation arguments of ``kwargs`` (not ``progress``), checked before anything is generated."""

    parameters = inspect.signature(generate_synthetic_dataset).parameters
    unknown = sorted(set(kwargs) - set(parameters))
    if unknown:
        raise TypeError(
            f"unknown dataset argument(s) {', '.join(unknown)}: choose from {', '.join(parameters)}"
        )
    n = kwargs.get("n_per_modality", 3)
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(
            f"n_per_modality must be an integer (rows per modality), got {type(n).__name__} {n!r}"
        )
    seed = kwargs.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__} {seed!r}")
    return {key: value for key, value in kwargs.items() if key != "progress"}


def _check_agrees(out_dir: Path, dataset: DatasetDict, asked: dict) -> None:
    """Raise when the generation arguments asked for disagree with the dataset already saved at ``out_dir``."""
    if not asked:
        return
    marker = out_dir / GENERATED_MARKER
    recorded = json.loads(marker.read_text()).get("generate_synthetic_dataset") if marker.is_file() else None
    if recorded is None:
        recorded = {}
        if "full" in dataset and "modality" in dataset["full"].column_names:
            counts = set(Counter(dataset["full"]["modality"]).values())
            if len(counts) == 1:
                recorded["n_per_modality"] = counts.pop()
        unchecked = sorted(set(asked) - set(recorded))
        if unchecked:
            logger.warning(
                "dataset %s records no generation arguments: %s cannot be checked against it",
                out_dir,
                unchecked,
            )
    differ = {
        key: (recorded[key], value)
        for key, value in asked.items()
        if key in recorded and recorded[key] != value
    }
    if differ:
        saved = ", ".join(f"{key}={old!r}" for key, (old, _) in differ.items())
        wanted = ", ".join(f"{key}={new!r}" for key, (_, new) in differ.items())
        raise ValueError(
            f"the dataset saved at {out_dir} has {saved}, not {wanted}: it is not generated again over it. "
            f"Fix: pass another directory, or delete {out_dir} to generate it with the new arguments."
        )


def load_or_generate_dataset(out_dir: str | Path, rebuild: bool = False, **kwargs) -> DatasetDict:
    """Load the dataset saved at ``out_dir``; generate and save it there first if ``out_dir`` is missing or empty.

    Never generates over anything: a directory that is not a complete saved dataset is an error naming what is
    missing (:func:`dataset_problems`), and generation arguments (``**kwargs`` of
    :func:`generate_synthetic_dataset`) that disagree with the saved dataset are an error too. With
    ``rebuild=True`` a broken dataset that this package generated (it holds ``ume_rl_dataset.json``: a cache,
    e.g. a profile's dataset) is generated again, with a warning.

    >>> ds = load_or_generate_dataset("/tmp/ume_rl_doctest_ds", n_per_modality=3, seed=0, progress=False)
    >>> len(ds["full"])
    9
    """
    out_dir = Path(out_dir)
    asked = _generation_arguments(kwargs)

    def generate() -> DatasetDict:
        save_dataset(generate_synthetic_dataset(**kwargs), out_dir, generated_with=asked)
        return load_dataset_dir(out_dir)

    if not out_dir.exists() or (out_dir.is_dir() and not any(out_dir.iterdir())):
        return generate()
    ours = (out_dir / GENERATED_MARKER).is_file()
    try:
        dataset = load_dataset_dir(out_dir)
    except ValueError as err:
        if not (rebuild and ours):
            raise
        logger.warning("the dataset cache %s is broken (%s): generating it again", out_dir, err)
        return generate()
    _check_agrees(out_dir, dataset, asked)
    return dataset
