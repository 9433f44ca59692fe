"""The small UME's progress bar: one bar, redrawn by time, not per step (widget traffic stalls headless runs)."""

from __future__ import annotations

import io
import time
from types import SimpleNamespace

import pytest

from ume_rl.models.progress import TimedProgressBar


def _fit(callback, steps: int, seconds_per_step: float = 0.0) -> None:
    """Drive the callback as Lightning's fit loop does."""
    trainer = SimpleNamespace(max_steps=steps)
    callback.on_train_start(trainer, None)
    for step in range(steps):
        if seconds_per_step:
            time.sleep(seconds_per_step)
        callback.on_train_batch_end(trainer, None, {"loss": 1.0 / (step + 1)}, None, step)
    callback.on_train_end(trainer, None)


def test_thousands_of_fast_steps_draw_a_handful_of_times():
    out = io.StringIO()
    callback = TimedProgressBar("small UME", min_seconds=5.0, file=out)
    _fit(callback, steps=3000)
    draws = out.getvalue().count("\r")
    # tqdm draws when the bar opens and when it closes; a per-step bar would draw 3000 times
    assert 1 <= draws <= 3, out.getvalue()
    assert "3000/3000" in out.getvalue() and "small UME" in out.getvalue()
    assert callback.bar is None


def test_redraws_follow_time_not_steps():
    out = io.StringIO()
    _fit(TimedProgressBar(min_seconds=0.05, file=out), steps=40, seconds_per_step=0.01)  # ~0.4 s
    draws = out.getvalue().count("\r")
    assert 3 <= draws <= 0.4 / 0.05 + 4, draws  # several timed redraws, far fewer than 40 steps
    assert "loss=" in out.getvalue()


def test_min_seconds_must_be_positive():
    with pytest.raises(ValueError, match="min_seconds must be > 0"):
        TimedProgressBar(min_seconds=0)


@pytest.mark.slow
def test_train_small_ume_draws_one_timed_bar(
    tmp_path, capfd, real_corpus, fast_small_ume_config, single_thread
):
    from ume_rl.models.small_ume import train_small_ume

    capfd.readouterr()
    start = time.monotonic()
    train_small_ume(tmp_path, real_corpus, fast_small_ume_config, progress=True)
    seconds = time.monotonic() - start
    err = capfd.readouterr().err
    steps = fast_small_ume_config.steps
    assert "small UME: 100%" in err and f"{steps}/{steps}" in err, err[-2000:]
    assert "Epoch 0" not in err  # Lightning's own bar (a redraw per step) is off
    assert err.count("\r") <= seconds / 2.0 + 3  # redrawn by time (2 s), not per step
