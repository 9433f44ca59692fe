"""The output directory of a run: refusal rules, the run lock (busy, stale, handed on), resume from complete
checkpoints only, clearing for --overwrite_output_dir."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time

import pytest
from filelock import FileLock

from ume_rl.training.rundir import (
    HOLDER_FILE,
    LOCK_FILE,
    RUN_MARKER,
    RunDirectoryError,
    RunLock,
    check_output_dir,
    claim_output_dir,
    complete_checkpoint,
    resolve_resume,
)


def _checkpoint(path, step, complete=True):
    """A checkpoint as the Trainer writes it (real safetensors, torch.save and JSON files, tiny)."""
    import torch
    from safetensors.torch import save_file

    ckpt = path / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    save_file({"w": torch.zeros(4)}, str(ckpt / "model.safetensors"))
    if complete:
        torch.save({"state": {}, "param_groups": []}, ckpt / "optimizer.pt")
        torch.save({"last_epoch": step}, ckpt / "scheduler.pt")
        (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return ckpt


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_what_may_start_where(tmp_path):
    assert check_output_dir(tmp_path / "new") == "new"
    assert check_output_dir(tmp_path) == "new"  # empty
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirectoryError, match="is a file, not a directory"):
        check_output_dir(tmp_path / "file")
    with pytest.raises(RunDirectoryError, match="is a file. Fix"):
        check_output_dir(tmp_path / "file" / "run")
    with pytest.raises(
        RunDirectoryError, match=r"is not empty and holds no run \(file\).*only clears run directories"
    ):
        check_output_dir(tmp_path, overwrite=True)  # never clears a directory that is not a run


def test_a_run_is_refused_with_both_ways_forward(tmp_path):
    run = tmp_path / "run"
    _checkpoint(run, 115)
    _checkpoint(run, 120)
    with pytest.raises(RunDirectoryError) as err:
        check_output_dir(run)
    message = str(err.value)
    assert "an interrupted run (checkpoint-115, checkpoint-120)" in message
    assert (
        "--resume_from_checkpoint last" in message and "--overwrite_output_dir (deletes everything" in message
    )
    assert check_output_dir(run, resume="last") == "resume"
    assert check_output_dir(run, overwrite=True) == "overwrite"
    with pytest.raises(RunDirectoryError, match="contradict"):
        check_output_dir(run, resume="last", overwrite=True)
    (run / "model.safetensors").write_bytes(b"final")
    (run / RUN_MARKER).write_text(json.dumps({"status": "trained"}))
    with pytest.raises(RunDirectoryError, match="holds a finished run"):
        check_output_dir(run)


def test_resume_takes_the_newest_complete_checkpoint(tmp_path, caplog):
    with pytest.raises(RunDirectoryError, match="holds no complete checkpoint-N"):
        resolve_resume(tmp_path, "last")
    _checkpoint(tmp_path, 2)
    _checkpoint(tmp_path, 4, complete=False)  # killed while saving
    with caplog.at_level(logging.WARNING, logger="ume_rl.training.rundir"):
        assert resolve_resume(tmp_path, "last") == str(tmp_path / "checkpoint-2")
    assert "skipping checkpoint-4 (trainer_state.json is missing): resuming from checkpoint-2" in caplog.text
    assert (
        resolve_resume(tmp_path, True) == resolve_resume(tmp_path, "TRUE") == str(tmp_path / "checkpoint-2")
    )
    assert resolve_resume(tmp_path, None) is None
    with pytest.raises(RunDirectoryError, match="is not a complete checkpoint directory"):
        resolve_resume(tmp_path, str(tmp_path / "checkpoint-4"))
    assert complete_checkpoint(tmp_path / "checkpoint-2") and not complete_checkpoint(
        tmp_path / "checkpoint-4"
    )


def test_overwrite_clears_the_whole_run_but_keeps_the_lock(tmp_path):
    run = tmp_path / "run"
    _checkpoint(run, 115)
    (run / "completions").mkdir()
    (run / "completions" / "completions_00115.parquet").write_bytes(b"old")
    lock = claim_output_dir(run, overwrite=True)
    try:
        assert sorted(p.name for p in run.iterdir()) == sorted([LOCK_FILE, HOLDER_FILE, RUN_MARKER])
        assert json.loads((run / RUN_MARKER).read_text())["status"] == "running"
    finally:
        lock.release()
    assert not (run / HOLDER_FILE).exists()


def test_a_lock_held_by_another_process_fails_fast_naming_the_holder(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from ume_rl.training.rundir import RunLock; RunLock.acquire(sys.argv[1]); "
            "print('locked', flush=True); time.sleep(120)",
            str(run),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirectoryError) as err:
            check_output_dir(run)
        assert f"in use by another run: PID {holder.pid} on {socket.gethostname()}, started " in str(
            err.value
        )
        start = time.monotonic()
        with pytest.raises(RunDirectoryError, match=f"PID {holder.pid}"):
            claim_output_dir(run)
        assert time.monotonic() - start < 30  # fails at once (a generous bound: no waiting on the lock)
    finally:
        holder.kill()
        holder.wait()
    lock = claim_output_dir(run)  # the OS freed the dead holder's lock: taken over (its record is stale)
    lock.release()


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path, caplog):
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_FILE).write_text("")
    stale = {
        "pid": _dead_pid(),
        "host": socket.gethostname(),
        "started": "2020-01-01 00:00:00",
        "command": ["x"],
    }
    (run / HOLDER_FILE).write_text(json.dumps(stale))
    with caplog.at_level(logging.WARNING, logger="ume_rl.training.rundir"):
        lock = claim_output_dir(run)
    try:
        assert f"taking over the lock of {run.resolve()} from PID {stale['pid']}" in caplog.text
        assert "is no longer running" in caplog.text
        assert json.loads((run / HOLDER_FILE).read_text())["pid"] == os.getpid()
    finally:
        lock.release()


def test_a_live_holder_record_without_the_os_lock_is_not_taken_over(tmp_path):
    """A file system without working locks: the record names a live process (the test's parent), so refuse."""
    run = tmp_path / "run"
    run.mkdir()
    parent = {"pid": os.getppid(), "host": socket.gethostname(), "started": "today", "command": ["pytest"]}
    (run / HOLDER_FILE).write_text(json.dumps(parent))
    with pytest.raises(RunDirectoryError, match="which is still running, although the file lock is free"):
        RunLock.acquire(run)


def test_this_process_hands_its_lock_on_and_another_lock_object_is_refused(tmp_path):
    run = tmp_path / "run"
    first = RunLock.acquire(run)
    try:
        assert RunLock.acquire(run) is first  # a notebook cell run again: the same process's next run
        foreign = FileLock(str(run / LOCK_FILE), timeout=0)  # a holder this module does not know
        first.release()
        foreign.acquire()
        try:
            with pytest.raises(RunDirectoryError, match="in use by another run"):
                RunLock.acquire(run)
        finally:
            foreign.release()
    finally:
        first.release()


# ----------------------------------------------------- damaged checkpoints are skipped, saying why (issue 20)


def _truncate(path, keep=20):
    path.write_bytes(path.read_bytes()[:keep])


@pytest.mark.parametrize(
    "damage,why",
    [
        (lambda c: (c / "optimizer.pt").unlink(), "optimizer.pt is missing"),
        (lambda c: (c / "scheduler.pt").unlink(), "scheduler.pt is missing"),
        (lambda c: _truncate(c / "model.safetensors"), "model.safetensors is unreadable (SafetensorError"),
        (
            lambda c: _truncate(c / "trainer_state.json", 5),
            "trainer_state.json is unreadable (JSONDecodeError",
        ),
        (lambda c: _truncate(c / "optimizer.pt", 100), "optimizer.pt is not a complete torch.save file"),
    ],
    ids=["no-optimizer", "no-scheduler", "truncated-weights", "truncated-state", "truncated-optimizer"],
)
def test_resume_skips_a_damaged_newest_checkpoint_and_says_why(tmp_path, caplog, damage, why):
    from ume_rl.training.rundir import checkpoint_problem

    _checkpoint(tmp_path, 2)
    damage(_checkpoint(tmp_path, 4))
    assert why in checkpoint_problem(tmp_path / "checkpoint-4")
    with caplog.at_level(logging.WARNING, logger="ume_rl.training.rundir"):
        assert resolve_resume(tmp_path, "last") == str(tmp_path / "checkpoint-2")
    assert f"skipping checkpoint-4 ({why}" in caplog.text
    with pytest.raises(RunDirectoryError) as err:
        resolve_resume(tmp_path, str(tmp_path / "checkpoint-4"))
    assert f"is not a complete checkpoint directory ({why}" in str(err.value)


def test_errors_carry_the_field_and_the_problem(tmp_path):
    _checkpoint(tmp_path / "run", 1)
    with pytest.raises(RunDirectoryError) as err:
        check_output_dir(tmp_path / "run")
    assert err.value.field == "output_dir" and err.value.problem.startswith("holds an interrupted run")
    assert str(err.value) == f"output_dir {tmp_path / 'run'} {err.value.problem}"
    with pytest.raises(RunDirectoryError) as err:
        check_output_dir(tmp_path / "new", resume="last")
    assert err.value.field == "resume_from_checkpoint" and err.value.problem.startswith("output_dir ")


def test_a_held_directory_is_given_back_as_found(tmp_path):
    from ume_rl.training.rundir import hold_output_dir

    new = tmp_path / "new"
    claim = hold_output_dir(new)
    assert claim.action == "new" and not (new / RUN_MARKER).exists()
    claim.abandon()
    assert not new.exists()  # created by the claim: removed again
    run = tmp_path / "run"
    _checkpoint(run, 1)
    before = sorted(p.name for p in run.iterdir())
    claim = hold_output_dir(run, overwrite=True)
    claim.abandon()  # a start that failed before begin(): nothing cleared
    assert sorted(p.name for p in run.iterdir() if p.name != LOCK_FILE) == before


def test_a_run_stopped_before_its_first_checkpoint_can_be_resumed(tmp_path, caplog):
    run = tmp_path / "run"
    (run / "warm_start").mkdir(parents=True)
    (run / RUN_MARKER).write_text(json.dumps({"status": "running"}))
    with pytest.raises(RunDirectoryError, match="resume it with --resume_from_checkpoint last"):
        check_output_dir(run)
    assert check_output_dir(run, resume="last") == "resume"
    with caplog.at_level(logging.WARNING, logger="ume_rl.training.rundir"):
        assert resolve_resume(run, "last") is None  # GRPO from step 0
    assert "holds no checkpoint yet" in caplog.text
