"""One run directory, runs/<experiment>/<run>/: its paths, readers, writers and lock.

Whole files are written atomically (write then rename); metrics.jsonl is appended one line per logged
step and rewritten atomically when a run resumes (cut back to its checkpoint's step) or restarts
(emptied), so no step is ever held twice.
"""
from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from gptlab.store import layout
from gptlab.store.files import (MetricsRead, StoreError, read_metrics, read_summary, read_yaml_mapping, write_json,
                                write_metrics, write_yaml, writing)
from gptlab.store.layout import Status


LOCK_PATIENCE_S = 0.5  # longer than any probe holds a run's lock, far shorter than a run


class RunLocked(Exception):
    """Another process is running this run right now."""


class RunStore:
    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir)

    config_path = property(lambda self: self.dir / layout.CONFIG_FILE)
    metrics_path = property(lambda self: self.dir / layout.METRICS_FILE)
    summary_path = property(lambda self: self.dir / layout.SUMMARY_FILE)
    checkpoint_path = property(lambda self: self.dir / layout.CHECKPOINT_FILE)
    log_path = property(lambda self: self.dir / layout.TRAIN_LOG)
    stdout_path = property(lambda self: self.dir / layout.STDOUT_LOG)
    lock_path = property(lambda self: self.dir / layout.LOCK_FILE)

    def __repr__(self) -> str:
        return f"RunStore({str(self.dir)!r})"

    # ---- reading (StoreError when a file is damaged; None / [] when it is absent) ----
    def summary(self) -> dict[str, Any] | None:
        return read_summary(self.summary_path)

    def status(self) -> Status | None:
        summary = self.summary()
        return summary["status"] if summary else None

    def config(self) -> dict[str, Any] | None:
        return read_yaml_mapping(self.config_path)

    def read_metrics(self) -> MetricsRead:
        """The rows and the ones left out (with why)."""
        return read_metrics(self.metrics_path)

    def metrics(self) -> list[dict[str, Any]]:
        return self.read_metrics().rows

    def last_step(self) -> int | None:
        """The last logged step, None when nothing was logged (or metrics.jsonl is unreadable)."""
        try:
            rows = self.metrics()
        except StoreError:
            return None
        return rows[-1]["step"] if rows else None

    def fingerprint(self) -> str:
        """Which attempt of the run is on disk: changes whenever summary.json is rewritten. A process that
        planned from one fingerprint can tell, under the lock, whether someone else has touched the run."""
        try:
            st = os.stat(self.summary_path)
        except FileNotFoundError:
            return "none"
        return f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}"

    # ---- writing ----
    def write_config(self, config: dict[str, Any]) -> None:
        write_yaml(self.config_path, config, "config")

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.summary_path, summary, "summary")

    def truncate_metrics(self, last_step: int) -> None:
        """Keep rows up to `last_step` (the checkpoint's): a resumed run re-logs what came after.
        last_step < 0 empties the file (a run restarting from scratch)."""
        rows = [r for r in self.metrics() if r["step"] <= last_step] if last_step >= 0 else []
        write_metrics(self.metrics_path, rows)

    def open_metrics(self) -> IO[str]:
        """metrics.jsonl for appending, one line per write (line-buffered)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with writing("metrics", self.metrics_path):
            return open(self.metrics_path, "a", encoding="utf-8", buffering=1)

    # ---- the lock ----
    def lock(self, patience_s: float = LOCK_PATIENCE_S) -> IO[str]:
        """Hold an exclusive lock on this run for the life of the returned file; RunLocked if another
        process keeps it for longer than `patience_s` (a probe or a job pool's bookkeeping holds it for
        milliseconds, a training process for the whole run)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.lock_path, "a+")
        if not _flock(handle, patience_s):
            handle.close()
            raise RunLocked(str(self.dir))
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
        except OSError:  # a full disk must not lose the lock: the pid is only a courtesy for humans
            pass
        return handle

    @contextmanager
    def locked(self) -> Iterator[None]:
        """`with store.locked():` hold the run's lock for the block; RunLocked if another process has it."""
        handle = self.lock()
        try:
            yield
        finally:
            handle.close()

    def is_locked(self, patience_s: float = LOCK_PATIENCE_S) -> bool:
        """Does another process own the run (hold its lock for longer than a probe would)?"""
        if not self.lock_path.exists():
            return False
        with open(self.lock_path, "a+") as handle:
            if not _flock(handle, patience_s):
                return True
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return False


def _flock(handle: IO[str], patience_s: float) -> bool:
    """Take the exclusive lock, retrying for up to `patience_s`; False if it stayed taken."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)


def experiment_runs(exp_dir: str | Path) -> list[RunStore]:
    """The run directories of one experiment (runs/<experiment>/*/), sorted by name; hidden ones left out."""
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        return []
    return [RunStore(p) for p in sorted(exp_dir.iterdir()) if p.is_dir() and not p.name.startswith(".")]
