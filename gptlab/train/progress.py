"""A compact progress line per logged step: overwritten in place on a terminal, eval steps only in logs."""
from __future__ import annotations

import sys
from typing import IO, Any


def fmt_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressPrinter:
    def __init__(self, name: str, max_steps: int, stream: IO[str] | None = None,
                 log_file: IO[str] | None = None) -> None:
        self.name, self.max_steps = name, max_steps
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.log_file = log_file

    def line(self, row: dict[str, Any], eta_s: float | None) -> str:
        parts = [f"{self.name} step {row['step']}/{self.max_steps}"]
        if "train/loss" in row:
            parts.append(f"loss {row['train/loss']:.4f}")
        if "val/loss" in row:
            parts.append(f"val {row['val/loss']:.4f}")
        if "lr" in row:
            parts.append(f"lr {row['lr']:.2e}")
        if row.get("tokens_per_s"):
            parts.append(f"{row['tokens_per_s'] / 1000:.1f}k tok/s")
        if eta_s is not None:
            parts.append(f"eta {fmt_duration(eta_s)}")
        return " | ".join(parts)

    def update(self, row: dict[str, Any], eta_s: float | None) -> None:
        text = self.line(row, eta_s)
        if self.log_file is not None:
            self.log_file.write(text + "\n")
        if self.tty:
            end = "\n" if "val/loss" in row else ""
            self.stream.write("\r\033[K" + text + end)
            self.stream.flush()
        elif "val/loss" in row:
            print(text, file=self.stream, flush=True)

    def message(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
        print(text, file=self.stream, flush=True)
        if self.log_file is not None:
            self.log_file.write(text + "\n")
