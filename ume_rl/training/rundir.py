"""The output directory of a run: one run at a time, never clobbered, resumed only from complete checkpoints.

``ume-rl train`` and :class:`~ume_rl.training.run.TrainRun` start a run only into a directory that is missing or
empty, or that holds a run when they are told what to do with it:

- ``--resume_from_checkpoint last`` continues it from its newest complete ``checkpoint-N`` (weights, trainer
  state, optimizer and scheduler, each parsed whole: :func:`checkpoint_problem`), or from step 0 when it stopped
  before its first checkpoint;
- ``--overwrite_output_dir`` deletes everything in it first (a directory that holds other files than a run's
  is never cleared);
- otherwise the start is refused, before anything is loaded or written, with both ways forward.

While a run is going, its main process holds an exclusive lock (``output_dir/.ume_rl.lock``, with the holder's
PID, host and start time beside it in ``.ume_rl.lock.json``); a second run on the same directory fails at once,
naming the holder. The operating system frees the lock when the holder dies; a holder file left by a dead
process is taken over with a warning. ``output_dir/ume_rl_run.json`` records the run's state (``running``,
``trained``) and its fingerprint (:mod:`ume_rl.training.fingerprint`) for the next start.

A run first *holds* the directory (:func:`hold_output_dir`: locked and checked, nothing else written), loads what
it needs, then *begins* there (:meth:`RunClaim.begin`: cleared for overwrite, marked running); a start that fails
before it begins gives the directory back as it was found (:meth:`RunClaim.abandon`).

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

from ume_rl.models.integrity import WEIGHT_FILES, file_problem

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
        "config.json",
        *WEIGHT_FILES,
    }
)
RESUME_LAST = ("last", "true")
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# What a Trainer checkpoint needs besides its weights to continue where it stopped (DeepSpeed keeps the optimizer
# state in global_stepN/ instead of optimizer.pt).
TRAINING_STATE = ("trainer_state.json", "optimizer.pt", "scheduler.pt")


class RunDirectoryError(RuntimeError):
    """The output directory cannot take this run (it holds one, another run uses it, ...); the message says why
    and what to do.

    Attributes:
        field: the setting the problem is about (``"output_dir"``, ``"resume_from_checkpoint"``).
        problem: the message without the leading setting and value (``"holds a finished run ... Fix: ..."``).
    """

    def __init__(self, message: str, field: str = "output_dir", problem: str | None = None):
        super().__init__(message)
        self.field = field
        self.problem = problem if problem is not None else message


class RunStartError(RuntimeError):
    """Something the run needs (a dataset, a model, a cache) is missing or damaged, found before the output
    directory was written; the message is one line naming it and the fix."""


def _dir_error(path, problem: str) -> RunDirectoryError:
    """``output_dir <path> <problem>``, as a :class:`RunDirectoryError` about ``output_dir``."""
    return RunDirectoryError(f"output_dir {path} {problem}", "output_dir", problem)


def _resume_error(value, problem: str) -> RunDirectoryError:
    """``--resume_from_checkpoint <value>: <problem>``, about ``resume_from_checkpoint``."""
    return RunDirectoryError(
        f"--resume_from_checkpoint {value}: {problem}", "resume_from_checkpoint", problem
    )


# ------------------------------------------------------------------------------------------- contents


def checkpoint_problem(path: str | Path) -> str | None:
    """Why ``path`` is not a checkpoint a run can continue from (``None``: it is one).

    Complete means: ``trainer_state.json``, the weights (every shard of a sharded index), ``optimizer.pt`` and
    ``scheduler.pt`` (or DeepSpeed's ``global_step*/``), each parsed whole (:func:`~ume_rl.models.integrity.file_problem`).
    """
    path = Path(path)
    if not path.is_dir():
        return "not a directory"
    weights = next((path / name for name in WEIGHT_FILES if (path / name).is_file()), None)
    if weights is None:
        return "no model weights (killed while saving?)"
    needed = ["trainer_state.json", weights.name]
    if weights.name.endswith(".index.json"):
        index = read_json(weights)
        if index is None or not isinstance(index.get("weight_map"), dict):
            return f"{weights.name} is unreadable"
        needed += sorted(set(index["weight_map"].values()))
    if not any(p.is_dir() for p in path.glob("global_step*")):
        needed += [name for name in TRAINING_STATE if name != "trainer_state.json"]
    for name in needed:
        problem = file_problem(path / name)
        if problem is not None:
            return problem
    return None


def complete_checkpoint(path: str | Path) -> bool:
    """True when ``path`` is a checkpoint a run can continue from (:func:`checkpoint_problem`)."""
    return checkpoint_problem(path) is None


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
        return any(name in self.entries for name in WEIGHT_FILES)

    @property
    def restartable(self) -> bool:
        """A run that started (its marker) but has neither a checkpoint nor a final model: killed during the
        warm start or before GRPO's first checkpoint. Resuming it starts GRPO from step 0 (a complete warm
        start is reused)."""
        return self.marker is not None and not self.checkpoints and not self.final_model

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
    return _dir_error(
        path,
        f"is in use by another run: {describe_holder(holder)}. Fix: wait for it to finish "
        "(or stop it), or pick another --output_dir; two runs in one directory would overwrite each other.",
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
                raise _dir_error(
                    lock.path,
                    f"is recorded as in use by {describe_holder(stale)}, which is still "
                    "running, although the file lock is free (a file system without locks?). Fix: wait for it, "
                    f"or, if that process is not a run, delete {lock.path / HOLDER_FILE}.",
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
    ``checkpoint-N`` of ``path`` (:func:`checkpoint_problem`; a newer damaged or incomplete one is skipped
    with a warning that says why); a path must be a complete checkpoint. ``None``/``False`` → ``None``.
    A run killed before its first checkpoint (:attr:`RunContents.restartable`) resumes from step 0: ``None``.

    Raises:
        RunDirectoryError: nothing to resume, or the path is not a complete checkpoint.
    """
    if value is None or value is False:
        return None
    if value is True or str(value).lower() in RESUME_LAST:
        found = checkpoints(path)
        problems = {p.name: checkpoint_problem(p) for p in found}
        complete = [p for p in found if problems[p.name] is None]
        if not complete:
            if not found and inspect_run_dir(path).restartable:
                logger.warning(
                    "%s holds no checkpoint yet (stopped before the first one): GRPO starts from step 0, "
                    "a complete warm start is reused",
                    path,
                )
                return None
            damaged = "; ".join(f"{name}: {why}" for name, why in problems.items())
            raise _resume_error(
                value,
                f"output_dir {path} holds no complete checkpoint-N{f' ({damaged})' if damaged else ''}. Fix: drop "
                "--resume_from_checkpoint to start a new run, or point --output_dir at the run to resume.",
            )
        newest = int(complete[-1].name.split("-")[1])
        for p in found:
            if problems[p.name] is not None and int(p.name.split("-")[1]) > newest:
                logger.warning(
                    "skipping %s (%s): resuming from %s", p.name, problems[p.name], complete[-1].name
                )
        return str(complete[-1])
    problem = checkpoint_problem(value)
    if problem is not None:
        raise _resume_error(
            value,
            f"is not a complete checkpoint directory ({problem}). Fix: pass 'last' (the newest complete "
            "checkpoint-N in output_dir) or a complete checkpoint-N directory.",
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
        raise _dir_error(path, "is a file, not a directory. Fix: pass a directory path.")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise _dir_error(path, f"is under {parent}, which is a file. Fix: pass a directory path.")
            break
    if lock_is_held(path):
        raise _busy_error(path)
    contents = inspect_run_dir(path)
    if resume not in (None, False):
        if overwrite:
            raise RunDirectoryError(
                "--resume_from_checkpoint and --overwrite_output_dir contradict each other: pass one.",
                "resume_from_checkpoint",
                "contradicts --overwrite_output_dir: pass one of them.",
            )
        resolve_resume(path, resume)
        return "resume"
    if contents.empty:
        return "new"
    if not contents.is_run:
        listed = ", ".join(contents.entries[:5]) + (" ..." if len(contents.entries) > 5 else "")
        raise _dir_error(
            path,
            f"is not empty and holds no run ({listed}); it is left as it is"
            f"{' (--overwrite_output_dir only clears run directories)' if overwrite else ''}. "
            "Fix: pick a new or empty --output_dir.",
        )
    if overwrite:
        return "overwrite"
    resumable = contents.restartable or any(complete_checkpoint(path / name) for name in contents.checkpoints)
    resume_hint = "resume it with --resume_from_checkpoint last, or " if resumable else ""
    raise _dir_error(
        path,
        f"holds {contents.describe()}; starting again would overwrite it. Fix: {resume_hint}"
        f"start over with --overwrite_output_dir (deletes everything in {path} first), or pick another "
        "--output_dir.",
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


@dataclass
class RunClaim:
    """An output directory held for one run: locked and checked, nothing else written yet.

    :meth:`begin` starts the run there (clears it for ``overwrite``, marks it ``running``); until then
    :meth:`abandon` gives it back as it was found (a directory this claim created is removed again).
    """

    path: Path
    action: str  # "new", "resume" or "overwrite"
    lock: RunLock
    created: bool = False
    begun: bool = False

    def begin(self, **fields) -> None:
        """Clear the directory for ``overwrite`` and mark the run ``running`` with ``fields`` in its marker."""
        if self.action == "overwrite":
            clear_run_dir(self.path)
        mark_run(
            self.path,
            status="running",
            started=time.strftime("%Y-%m-%d %H:%M:%S %z"),
            command=sys.argv,
            resumed=self.action == "resume",
            **fields,
        )
        self.begun = True

    def abandon(self) -> None:
        """Release the lock; before :meth:`begin`, also remove what the claim itself created."""
        self.release()
        only_lock = self.path.is_dir() and not [p for p in self.path.iterdir() if p.name not in LOCK_FILES]
        if not self.begun and self.created and only_lock:
            shutil.rmtree(self.path, ignore_errors=True)

    def release(self) -> None:
        self.lock.release()

    @property
    def locked(self) -> bool:
        return self.lock.locked


def hold_output_dir(path: str | Path, resume=None, overwrite: bool = False) -> RunClaim:
    """Lock ``path`` for this run and check it (:func:`check_output_dir`); nothing but the lock is written.
    Call it on the main process only; :meth:`RunClaim.begin` starts the run there."""
    created = not Path(path).exists()
    lock = RunLock.acquire(path)
    try:
        action = check_output_dir(path, resume, overwrite)
    except BaseException:
        RunClaim(Path(path), "new", lock, created).abandon()
        raise
    return RunClaim(Path(path), action, lock, created)


def claim_output_dir(path: str | Path, resume=None, overwrite: bool = False, **fields) -> RunClaim:
    """:func:`hold_output_dir` and :meth:`RunClaim.begin` at once: lock, check, clear for ``overwrite``,
    mark the run as running (with ``fields``). Returns the claim (``release()`` frees the lock)."""
    claim = hold_output_dir(path, resume, overwrite)
    try:
        claim.begin(**fields)
    except BaseException:
        claim.release()
        raise
    return claim


def hold_on_main_process(path: str | Path, resume=None, overwrite: bool = False) -> RunClaim | None:
    """:func:`hold_output_dir` on the main process of an ``accelerate`` launch (or the only process); a refusal
    is raised as :class:`RunDirectoryError` on every rank, so none waits for the main process. Returns the
    claim on the main process, ``None`` on the others."""
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    state = PartialState()
    state.wait_for_everyone()  # every rank has checked the directory before the main process changes it
    claim, error = None, None
    if state.is_main_process:
        try:
            claim = hold_output_dir(path, resume, overwrite)
        except Exception as err:
            error = (
                (str(err), err.field, err.problem)
                if isinstance(err, RunDirectoryError)
                else (f"{type(err).__name__}: {err}", "output_dir", str(err))
            )
    if state.num_processes > 1:
        error = broadcast_object_list([error])[0]
    if error is not None:
        raise RunDirectoryError(*error)
    return claim
