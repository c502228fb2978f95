"""The run store: runs/<experiment>/<run>/ with config.yaml, metrics.jsonl, summary.json, checkpoint.pt.

Every whole-file write is atomic (write then rename); metrics.jsonl is append-only and rewritten
atomically (truncated to the checkpoint's step) when a run resumes, so no row is ever duplicated.
"""
from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import IO, Any

import yaml

from gptlab.yamlio import atomic_write_json, atomic_write_text, atomic_write_yaml

STATUSES = ("running", "finished", "failed", "diverged", "interrupted")
DONE = "finished"


class RunLocked(Exception):
    """Another process is running this run right now."""


class RunStore:
    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir)

    config_path = property(lambda self: self.dir / "config.yaml")
    metrics_path = property(lambda self: self.dir / "metrics.jsonl")
    summary_path = property(lambda self: self.dir / "summary.json")
    checkpoint_path = property(lambda self: self.dir / "checkpoint.pt")
    log_path = property(lambda self: self.dir / "train.log")
    lock_path = property(lambda self: self.dir / ".lock")

    # ---- reading ----
    def summary(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.summary_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def status(self) -> str | None:
        summary = self.summary()
        return summary.get("status") if summary else None

    def config(self) -> dict[str, Any] | None:
        try:
            return yaml.safe_load(self.config_path.read_text())
        except FileNotFoundError:
            return None

    def metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.exists():
            return []
        rows = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill mid-append: drop it
                continue
        return rows

    # ---- writing ----
    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_yaml(self.config_path, config)

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.summary_path, summary)

    def truncate_metrics(self, last_step: int) -> None:
        """Keep rows up to `last_step` (the checkpoint's): a resumed run re-logs what came after."""
        rows = [r for r in self.metrics() if r.get("step", -1) <= last_step]
        atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in rows))

    def open_metrics(self) -> IO[str]:
        self.dir.mkdir(parents=True, exist_ok=True)
        return open(self.metrics_path, "a", encoding="utf-8", buffering=1)

    def lock(self) -> IO[str]:
        """Hold an exclusive lock on this run for the life of the returned file; RunLocked if taken."""
        self.dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.lock_path, "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise RunLocked(str(self.dir)) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        return handle

    def is_locked(self) -> bool:
        if not self.lock_path.exists():
            return False
        with open(self.lock_path, "a+") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return False
