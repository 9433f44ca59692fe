"""The output directory of a run: one run at a time, never clobbered, resumed only from complete checkpoints.

``ume-rl train`` and :class:`~ume_rl.training.run.TrainRun` start a run only into a directory that is missing or
empty, or that holds a run when they are told what to do with it:

- ``--resume_from_checkpoint last`` continues it from its newest complete ``checkpoint-N``;
- ``--overwrite_output_dir`` deletes everything in it first (a directory that holds other files than a run's
  is never cleared);
- otherwise the start is refused, before anything is loaded or written, with both ways forward.

While a run is going, its main process holds an exclusive lock (``output_dir/.ume_rl.lock``, with the holder's
PID, host and start time beside it in ``.ume_rl.lock.json``); a second run on the same directory fails at once,
naming the holder. The operating system frees the lock when the holder dies; a holder file left by a dead
process is taken over with a warning. ``output_dir/ume_rl_run.json`` records the run's state (``running``,
``trained``) for the next start's messages.

>>> check_output_dir("/tmp/ume_rl_doctest_new_run", resume=None, overwrite=False)
'new'
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import shutil
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

LOCK_FILE = ".ume_rl.lock"
HOLDER_FILE = ".ume_rl.lock.json"
RUN_MARKER = "ume_rl_run.json"
LOCK_FILES = frozenset({LOCK_FILE, HOLDER_FILE})
# What a run writes at the top of its output directory (besides checkpoint-N/): how a run is recognised.
RUN_ENTRIES = frozenset(
    {
        RUN_MARKER,
        "warm_start",
        "reward_stats",
        "completions",
        "evaluation.csv",
        "trainer_state.json",
        "training_args.bin",
        "model.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
        "config.json",
    }
)
RESUME_LAST = ("last", "true")
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "adapter_model.safetensors",
)


class RunDirectoryError(RuntimeError):
    """The output directory cannot take this run (it holds one, another run uses it, ...); the message says why
    and what to do."""


# ------------------------------------------------------------------------------------------- contents


def complete_checkpoint(path: str | Path) -> bool:
    """True when ``path`` is a checkpoint directory the Trainer finished writing (trainer state and weights)."""
    path = Path(path)
    return (path / "trainer_state.json").is_file() and any((path / name).is_file() for name in _WEIGHTS)


def checkpoints(path: str | Path) -> list[Path]:
    """The ``checkpoint-N`` directories of ``path``, by step."""
    path = Path(path)
    if not path.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in path.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))]
    return [p for _, p in sorted(found)]


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``, or ``None`` when it is missing or unreadable."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


@dataclass
class RunContents:
    """What an output directory holds."""

    path: Path
    entries: list[str] = field(default_factory=list)  # everything but the lock files
    checkpoints: list[str] = field(default_factory=list)
    marker: dict | None = None

    @property
    def empty(self) -> bool:
        return not self.entries

    @property
    def is_run(self) -> bool:
        """It holds a run (or part of one): a checkpoint, a warm start, a final model, the run marker..."""
        return bool(self.checkpoints) or any(name in RUN_ENTRIES for name in self.entries)

    @property
    def final_model(self) -> bool:
        return any(name in self.entries for name in _WEIGHTS)

    def describe(self) -> str:
        """One phrase: what run this is and what it holds."""
        parts = []
        if self.checkpoints:
            parts.append(", ".join(self.checkpoints))
        if "warm_start" in self.entries:
            parts.append("a warm start")
        if self.final_model:
            parts.append("a final model")
        if "evaluation.csv" in self.entries:
            parts.append("evaluation.csv")
        status = (self.marker or {}).get("status")
        if status == "trained" or (status is None and self.final_model):
            kind = "a finished run"
        elif self.checkpoints or status == "running":
            kind = "an interrupted run"
        else:
            kind = "a run"
        return f"{kind} ({', '.join(parts) or ', '.join(self.entries[:5])})"


def inspect_run_dir(path: str | Path) -> RunContents:
    """What ``path`` holds (nothing when it is missing)."""
    path = Path(path)
    if not path.is_dir():
        return RunContents(path)
    entries = sorted(p.name for p in path.iterdir() if p.name not in LOCK_FILES)
    return RunContents(path, entries, [p.name for p in checkpoints(path)], read_json(path / RUN_MARKER))


# ----------------------------------------------------------------------------------------------- lock


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), to tell a PID reused from it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def holder_alive(holder: dict) -> bool | None:
    """Whether the process a holder file names still runs: ``None`` when it ran on another host."""
    if holder.get("host") != socket.gethostname():
        return None
    pid = int(holder.get("pid", -1))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, OverflowError, ValueError):
        return False
    started = holder.get("process_start")
    return started is None or _process_start(pid) in (None, started)


def describe_holder(holder: dict | None) -> str:
    if not holder:
        return "a process that left no holder record"
    started = holder.get("started", "?")
    command = " ".join(holder.get("command", []))[:200]
    return f"PID {holder.get('pid', '?')} on {holder.get('host', '?')}, started {started} ({command})"


def _busy_error(path: Path) -> RunDirectoryError:
    holder = read_json(path / HOLDER_FILE)
    return RunDirectoryError(
        f"output_dir {path} is in use by another run: {describe_holder(holder)}. Fix: wait for it to finish "
        "(or stop it), or pick another --output_dir; two runs in one directory would overwrite each other."
    )


class RunLock:
    """The exclusive lock of one output directory, held by a run's main process (``filelock``, non-blocking).

    Acquiring fails at once when another process holds it; a holder record left by a dead process is taken
    over with a warning. A process that already holds the lock of a directory (an earlier run in the same
    notebook kernel) hands it on to its next run there. Released by :meth:`release` or at exit.
    """

    _held: dict[str, RunLock] = {}  # this process's locks, by directory

    def __init__(self, path: str | Path):
        from filelock import FileLock

        self.path = Path(path).resolve()
        self._lock = FileLock(str(self.path / LOCK_FILE), timeout=0)

    @classmethod
    def acquire(cls, path: str | Path) -> RunLock:
        """Lock ``path`` (created if missing) for this process, or raise :class:`RunDirectoryError` at once."""
        from filelock import Timeout

        key = str(Path(path).resolve())
        held = cls._held.get(key)
        if held is not None and held.locked:
            logger.info(
                "this process already holds the lock of %s (an earlier run): it passes to this run", key
            )
            return held
        lock = cls(path)
        lock.path.mkdir(parents=True, exist_ok=True)
        try:
            lock._lock.acquire()
        except Timeout:
            raise _busy_error(lock.path) from None
        stale = read_json(lock.path / HOLDER_FILE)
        if stale is not None:
            alive = holder_alive(stale)
            if alive and int(stale.get("pid", -1)) != os.getpid():
                lock._lock.release()
                raise RunDirectoryError(
                    f"output_dir {lock.path} is recorded as in use by {describe_holder(stale)}, which is still "
                    "running, although the file lock is free (a file system without locks?). Fix: wait for it, "
                    f"or, if that process is not a run, delete {lock.path / HOLDER_FILE}."
                )
            logger.warning(
                "taking over the lock of %s from %s, which %s",
                lock.path,
                describe_holder(stale),
                "is no longer running" if alive is False else "ran on another host and no longer holds it",
            )
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "process_start": _process_start(os.getpid()),
            "command": sys.argv,
        }
        _write_json(lock.path / HOLDER_FILE, holder)
        cls._held[key] = lock
        atexit.register(lock.release)
        return lock

    @property
    def locked(self) -> bool:
        return self._lock.is_locked

    def release(self) -> None:
        """Free the lock (and remove the holder record); a no-op when it is not held."""
        if not self._lock.is_locked:
            return
        (self.path / HOLDER_FILE).unlink(missing_ok=True)
        self._lock.release(force=True)
        if self._held.get(str(self.path)) is self:
            del self._held[str(self.path)]


def lock_is_held(path: str | Path) -> bool:
    """True when another process (or another lock object of this one) holds the run lock of ``path``."""
    from filelock import FileLock, Timeout

    lock_file = Path(path) / LOCK_FILE
    if not lock_file.is_file():
        return False
    held = RunLock._held.get(str(Path(path).resolve()))
    if held is not None and held.locked:
        return False  # ours: handed on to the next run of this process
    probe = FileLock(str(lock_file), timeout=0)
    try:
        probe.acquire()
    except Timeout:
        return True
    probe.release()
    return False


# ------------------------------------------------------------------------------------------- the rules


def resolve_resume(path: str | Path, value) -> str | None:
    """``resume_from_checkpoint`` as a checkpoint path: ``"last"``/``"true"``/``True`` → the newest *complete*
    ``checkpoint-N`` of ``path`` (incomplete ones, from a run killed while saving, are skipped with a warning);
    a path must be a complete checkpoint. ``None``/``False`` → ``None``.

    Raises:
        RunDirectoryError: nothing to resume, or the path is not a complete checkpoint.
    """
    if value is None or value is False:
        return None
    if value is True or str(value).lower() in RESUME_LAST:
        found = checkpoints(path)
        complete = [p for p in found if complete_checkpoint(p)]
        skipped = [p.name for p in found if p not in complete]
        if not complete:
            raise RunDirectoryError(
                f"--resume_from_checkpoint {value}: output_dir {path} holds no complete checkpoint-N"
                f"{' (incomplete: ' + ', '.join(skipped) + ')' if skipped else ''}. Fix: drop "
                "--resume_from_checkpoint to start a new run, or point --output_dir at the run to resume."
            )
        newer = [name for name in skipped if int(name.split("-")[1]) > int(complete[-1].name.split("-")[1])]
        if newer:
            logger.warning("skipping incomplete checkpoint(s) %s: resuming from %s", newer, complete[-1].name)
        return str(complete[-1])
    if not complete_checkpoint(value):
        raise RunDirectoryError(
            f"--resume_from_checkpoint {value} is not a complete checkpoint directory (trainer_state.json and "
            "model weights). Fix: pass 'last' (the newest checkpoint-N in output_dir) or a checkpoint-N directory."
        )
    return str(value)


def check_output_dir(path: str | Path, resume=None, overwrite: bool = False) -> str:
    """Whether a run may start in ``path``, read-only: ``"new"``, ``"resume"`` or ``"overwrite"`` (clear first).

    Raises:
        RunDirectoryError: ``path`` is a file; another run holds it; it holds a run and neither ``resume`` nor
            ``overwrite`` is set (the message names both); ``overwrite`` of a directory that is not a run;
            ``resume`` with nothing complete to resume.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirectoryError(f"output_dir {path} is a file, not a directory. Fix: pass a directory path.")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise RunDirectoryError(f"output_dir {path}: {parent} is a file. Fix: pass a directory path.")
            break
    if lock_is_held(path):
        raise _busy_error(path)
    contents = inspect_run_dir(path)
    if resume not in (None, False):
        if overwrite:
            raise RunDirectoryError(
                "--resume_from_checkpoint and --overwrite_output_dir contradict each other: pass one."
            )
        resolve_resume(path, resume)
        return "resume"
    if contents.empty:
        return "new"
    if not contents.is_run:
        listed = ", ".join(contents.entries[:5]) + (" ..." if len(contents.entries) > 5 else "")
        raise RunDirectoryError(
            f"output_dir {path} is not empty and holds no run ({listed}); it is left as it is"
            f"{' (--overwrite_output_dir only clears run directories)' if overwrite else ''}. "
            "Fix: pick a new or empty --output_dir."
        )
    if overwrite:
        return "overwrite"
    resumable = any(complete_checkpoint(path / name) for name in contents.checkpoints)
    resume_hint = "resume it with --resume_from_checkpoint last, or " if resumable else ""
    raise RunDirectoryError(
        f"output_dir {path} holds {contents.describe()}; starting again would overwrite it. Fix: {resume_hint}"
        f"start over with --overwrite_output_dir (deletes everything in {path} first), or pick another "
        "--output_dir."
    )


def clear_run_dir(path: str | Path) -> None:
    """Delete everything in the run directory ``path`` but its lock."""
    path = Path(path)
    for entry in path.iterdir():
        if entry.name in LOCK_FILES:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    logger.warning("--overwrite_output_dir: deleted the earlier run in %s", path)


def _write_json(path: Path, value: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(value, indent=1, default=str))
    tmp.replace(path)


def mark_run(path: str | Path, **fields) -> None:
    """Update ``output_dir/ume_rl_run.json`` (the run's state) with ``fields``."""
    marker = Path(path) / RUN_MARKER
    _write_json(marker, {**(read_json(marker) or {}), **fields})


def claim_output_dir(path: str | Path, resume=None, overwrite: bool = False) -> RunLock:
    """Lock ``path`` for this run, check it (:func:`check_output_dir`), clear it for ``overwrite``, and mark the
    run as running. Call it on the main process only. Returns the held lock.
    """
    lock = RunLock.acquire(path)
    try:
        action = check_output_dir(path, resume, overwrite)
        if action == "overwrite":
            clear_run_dir(path)
        mark_run(
            path,
            status="running",
            started=time.strftime("%Y-%m-%d %H:%M:%S %z"),
            command=sys.argv,
            resumed=action == "resume",
        )
    except BaseException:
        lock.release()
        raise
    return lock


def claim_on_main_process(path: str | Path, resume=None, overwrite: bool = False) -> RunLock | None:
    """:func:`claim_output_dir` on the main process of an ``accelerate`` launch (or the only process); a refusal
    is raised as :class:`RunDirectoryError` on every rank, so none waits for the main process. Returns the lock
    on the main process, ``None`` on the others."""
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    state = PartialState()
    state.wait_for_everyone()  # every rank has checked the directory before the main process changes it
    lock, error = None, None
    if state.is_main_process:
        try:
            lock = claim_output_dir(path, resume, overwrite)
        except Exception as err:
            error = str(err) if isinstance(err, RunDirectoryError) else f"{type(err).__name__}: {err}"
    if state.num_processes > 1:
        error = broadcast_object_list([error])[0]
    if error is not None:
        raise RunDirectoryError(error)
    return lock
