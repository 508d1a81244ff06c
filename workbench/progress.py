"""Headless progress on stderr: a rich progress bar on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import sys
import time

from workbench.numbers import format_number
from workbench.training.telemetry import Callback


class ProgressReporter(Callback):
    """Shows step/total, the last step's loss ("step loss"), val metrics and speed. stdout stays free for --json."""

    def __init__(self, preset, stream=None, min_interval: float = 0.25):
        self.total = preset.train.max_steps
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()
        self.min_interval = min_interval
        self._last = 0.0
        self._last_line_step = -1
        self._progress = None
        self._task = None
        self._fields = {"loss": None, "val_loss": None, "val_accuracy": None, "steps_per_s": None}

    def on_setup(self, trainer):
        if self.interactive:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
                TimeRemainingColumn

            self._progress = Progress(
                TextColumn(f"[bold]{trainer.preset.name}[/]"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                console=Console(file=self.stream), transient=False,
            )
            self._task = self._progress.add_task("train", total=self.total, completed=trainer.step, info="")
            self._progress.start()
        else:
            self._write(f"training {trainer.preset.name} for {self.total:,} steps on {trainer.device} (run "
                        f"{trainer.run_id})")

    def _info(self) -> str:
        parts = []
        for key, label, fmt in (("loss", "step loss", ".4f"), ("val_loss", "val", ".4f"),
                                ("val_accuracy", "acc", ".3f"), ("steps_per_s", "steps/s", ".0f")):
            value = self._fields.get(key)
            if value is not None:
                parts.append(f"{label} {format_number(value, decimals=int(fmt[1:-1]))}")
        return "  ".join(parts)

    def on_batch(self, trainer, batch):
        for step, name, value in batch.rows:
            if name in self._fields:
                self._fields[name] = value
        now = time.monotonic()
        if now - self._last < self.min_interval and trainer.step < self.total:
            return
        self._last = now
        if self._progress is not None:
            self._progress.update(self._task, completed=trainer.step, info=self._info())
        elif trainer.step - self._last_line_step >= max(1, self.total // 10) or trainer.step >= self.total:
            self._last_line_step = trainer.step
            self._write(f"step {trainer.step:,}/{self.total:,}  {self._info()}")

    def on_event(self, trainer, event):
        if event.data.get("setup"):  # a slow build saying what it does, before the progress bar exists
            self._write(event.text)
        elif event.kind == "finding" and event.data.get("count") == 1:
            self._write(f"[{event.data['severity']}] {event.data['code']}: {event.text}")
        elif event.kind == "profile":
            self._write(event.text)
        elif event.kind == "sample" and not self.interactive:
            self._write(f"sample at step {event.step}: {event.text[:200]!r}")

    def _write(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
