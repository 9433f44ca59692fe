"""One progress bar for a Lightning fit, redrawn by time rather than per step.

Lightning's own bar redraws every ``refresh_rate`` steps; in a notebook each redraw is a widget message, and
thousands of them during a few minutes of training can fill the kernel's message queue when no browser reads it
(a headless ``nbclient`` run stalls). :class:`TimedProgressBar` draws one ``tqdm.auto`` bar (a widget in a
notebook, text elsewhere) that redraws at most once per ``min_seconds``, whatever the step rate:

>>> import lightning as L  # doctest: +SKIP
>>> trainer = L.Trainer(max_steps=3400, enable_progress_bar=False, callbacks=[TimedProgressBar("small UME")])  # doctest: +SKIP

The bar's postfix shows the latest training loss.
"""

from __future__ import annotations

import time

import lightning as L
from tqdm.auto import tqdm

DEFAULT_MIN_SECONDS = 2.0


class TimedProgressBar(L.Callback):
    """A Lightning callback: one ``tqdm`` bar over the fit's steps, redrawn at most once per ``min_seconds``.

    Args:
        desc: the bar's label.
        min_seconds: shortest time between two redraws (tqdm's ``mininterval``).
        file: where a text bar is written (default: tqdm's, stderr); a notebook draws a widget instead.

    Attributes:
        bar: the ``tqdm`` bar while the fit runs, ``None`` before and after.
    """

    def __init__(self, desc: str = "training", min_seconds: float = DEFAULT_MIN_SECONDS, file=None):
        if not min_seconds > 0:
            raise ValueError(f"min_seconds must be > 0, got {min_seconds!r}")
        self.desc = desc
        self.min_seconds = float(min_seconds)
        self.file = file
        self.bar = None
        self._postfix_at = 0.0

    def on_train_start(self, trainer, pl_module) -> None:
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        self.bar = tqdm(
            total=total,
            desc=self.desc,
            unit="step",
            mininterval=self.min_seconds,
            miniters=1,
            file=self.file,
            dynamic_ncols=True,
        )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.bar is None:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        now = time.monotonic()
        if loss is not None and now - self._postfix_at >= self.min_seconds:
            # set_postfix(refresh=False) only stores the text; the next timed redraw shows it
            self.bar.set_postfix(loss=f"{float(loss):.3f}", refresh=False)
            self._postfix_at = now
        self.bar.update(1)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_exception(self, trainer, pl_module, exception) -> None:
        self.on_train_end(trainer, pl_module)
