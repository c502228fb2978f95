"""A run's progress: rich's progress bar on a terminal, plain lines otherwise (logs, pipes, job pools).

Every logged step goes to the run's train.log as one line; on a terminal the bar shows step, loss, val,
lr, tokens/s and the time left, and eval steps print a line above it; elsewhere only eval steps print.
"""
from __future__ import annotations

import sys
from typing import IO, Any


def fmt_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def metrics_text(row: dict[str, Any]) -> str:
    parts = []
    if "train/loss" in row:
        parts.append(f"loss {row['train/loss']:.4f}")
    if "val/loss" in row:
        parts.append(f"val {row['val/loss']:.4f}")
    if "lr" in row:
        parts.append(f"lr {row['lr']:.2e}")
    if row.get("tokens_per_s"):
        parts.append(f"{row['tokens_per_s'] / 1000:.1f}k tok/s")
    return " | ".join(parts)


class ProgressPrinter:
    def __init__(self, name: str, max_steps: int, stream: IO[str] | None = None,
                 log_file: IO[str] | None = None) -> None:
        self.name, self.max_steps = name, max_steps
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.log_file = log_file
        self._bar: Any = None  # rich Progress, started at the first row on a terminal
        self._task: Any = None

    def line(self, row: dict[str, Any], eta_s: float | None) -> str:
        parts = [f"{self.name} step {row['step']}/{self.max_steps}"]
        if metrics_text(row):
            parts.append(metrics_text(row))
        if eta_s is not None:
            parts.append(f"eta {fmt_duration(eta_s)}")
        return " | ".join(parts)

    def update(self, row: dict[str, Any], eta_s: float | None) -> None:
        text = self.line(row, eta_s)
        if self.log_file is not None:
            self.log_file.write(text + "\n")
        if self.tty:
            bar = self._progress()
            bar.update(self._task, completed=row["step"], metrics=metrics_text(row))
            if "val/loss" in row:
                bar.console.print(text, highlight=False, markup=False)
        elif "val/loss" in row:
            print(text, file=self.stream, flush=True)

    def _progress(self) -> Any:
        if self._bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[metrics]}"), TimeRemainingColumn(),
                                 console=Console(file=self.stream), transient=False)
            short = self.name if len(self.name) <= 32 else self.name[:31] + "…"  # leave the bar room
            self._task = self._bar.add_task(short, total=self.max_steps, metrics="")
            self._bar.start()
        return self._bar

    def message(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, highlight=False, markup=False)
        else:
            print(text, file=self.stream, flush=True)
        if self.log_file is not None:
            self.log_file.write(text + "\n")

    def close(self) -> None:
        """Stop the bar (its last state stays on screen)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
