"""Reading and writing the store's files: atomic writes, and readers that turn damage into one line.

A damaged file (cut short, not UTF-8, not the expected shape) raises `StoreError`, a `UserError` naming the
file and what to do, so a command prints one line and a study can skip that run and go on. A write that
fails for lack of space, quota, a read-only or failing disk raises `StoreWriteError` ("disk full while
writing checkpoint"): the run is recorded as failed, not blamed on the user's input.
"""
from __future__ import annotations

import errno
import json
import math
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gptlab.errors import UserError
from gptlab.store.layout import Status
from gptlab.yamlio import atomic_write_text, load_yaml_text

DAMAGED_FIX = "move the run directory aside (or delete it) and train it again, e.g. gptlab run --rerun all"

# errno -> the words a summary and a log line use for it
IO_FAILURES = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded",
               errno.EROFS: "read-only file system", errno.EIO: "I/O error"}


class StoreError(UserError):
    """A stored file is damaged or unreadable. One line: the file, what is wrong, what to do."""

    def __init__(self, path: str | Path, problem: str, fix: str = DAMAGED_FIX) -> None:
        self.path = Path(path)
        super().__init__(problem, source=str(path), fix=fix)


class StoreWriteError(Exception):
    """Writing a store file failed for a reason outside the run's input (disk full, quota, read-only, EIO)."""

    def __init__(self, reason: str, what: str, path: str | Path) -> None:
        self.reason, self.what, self.path = reason, what, Path(path)
        super().__init__(f"{reason} while writing {what} ({path})")


@contextmanager
def writing(what: str, path: str | Path) -> Iterator[None]:
    """Turn the disk's failures inside the block into StoreWriteError naming `what` was being written."""
    try:
        yield
    except OSError as exc:
        reason = IO_FAILURES.get(exc.errno)
        if reason is None:
            raise
        raise StoreWriteError(reason, what, path) from exc


def io_failure(summary: dict[str, Any] | None) -> bool:
    """Did the run fail because the disk did (full, quota, read-only, EIO)? Such a run resumes when rerun."""
    error = str((summary or {}).get("error") or "")
    return any(error.startswith(f"{reason} while writing") for reason in IO_FAILURES.values())


# why a signal stopped or killed a run, as a hint for its summary
SIGNAL_HINTS = {"SIGKILL": "likely out of memory (the OOM killer) or killed by hand",
                "SIGTERM": "preempted or stopped", "SIGINT": "stopped with Ctrl-C",
                "SIGSEGV": "a crash in native code", "SIGABRT": "a crash in native code",
                "SIGBUS": "a crash in native code or a vanished file"}


def signal_text(signum: int, last_step: int | None, *, verb: str = "killed by") -> str:
    """'killed by signal 9 (SIGKILL) after step 120: likely out of memory ...; rerun to resume'."""
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    hint = SIGNAL_HINTS.get(name, "")
    where = f"after step {last_step}" if last_step is not None else "before its first logged step"
    return (f"{verb} signal {signum} ({name}) {where}" + (f": {hint}" if hint else "")
            + "; the same command resumes from the last checkpoint")



# ---- readers ----
def read_text(path: str | Path) -> str | None:
    """The file's text; None when it does not exist; StoreError when it cannot be read."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise StoreError(path, "is a directory, not a file") from None
    except OSError as exc:
        raise StoreError(path, f"cannot be read ({exc.strerror or exc})", fix="check the disk and the "
                         "file's permissions") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise StoreError(path, "damaged: not UTF-8 text") from None


def read_yaml_mapping(path: str | Path) -> dict[str, Any] | None:
    """config.yaml, spec.yaml, sweep.yaml copies: a mapping, None when absent, StoreError when damaged."""
    text = read_text(path)
    if text is None:
        return None
    try:
        data, _ = load_yaml_text(text, str(path))
    except UserError as err:
        raise StoreError(path, f"damaged: {err.message}" + (f" (line {err.line})" if err.line else "")) from None
    if not isinstance(data, dict):
        raise StoreError(path, "damaged: empty" if data is None else "damaged: not a YAML mapping")
    return data


def read_json_object(path: str | Path) -> dict[str, Any] | None:
    text = read_text(path)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        problem = "empty" if not text.strip() else f"not valid JSON ({exc.msg} at line {exc.lineno})"
        raise StoreError(path, f"damaged: {problem}") from None
    if not isinstance(data, dict):
        raise StoreError(path, "damaged: not a JSON object")
    return data


def read_summary(path: str | Path) -> dict[str, Any] | None:
    """summary.json; its `status` must be one of Status."""
    summary = read_json_object(path)
    if summary is None:
        return None
    status = summary.get("status")
    if status not in set(Status):
        raise StoreError(path, f"damaged: status {status!r} is not one of {', '.join(Status)}")
    summary["status"] = Status(status)
    return summary


@dataclass(frozen=True)
class MetricsRead:
    """metrics.jsonl's rows (one per step, steps as ints) and the rows left out, each with why."""

    path: Path
    rows: list[dict[str, Any]]
    dropped: tuple[str, ...] = ()

    def warning(self) -> str | None:
        """One line for the user when rows were left out, else None."""
        if not self.dropped:
            return None
        shown = "; ".join(self.dropped[:3]) + (f"; and {len(self.dropped) - 3} more" if len(self.dropped) > 3 else "")
        return f"{self.path}: left out {len(self.dropped)} row(s): {shown}"


def read_metrics(path: str | Path) -> MetricsRead:
    """Every well-formed row; a row is left out (and said why) when it is cut short, not a JSON object,
    or has no integer step. When a step appears twice the later row is kept."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return MetricsRead(path, [])
    except OSError as exc:
        raise StoreError(path, f"cannot be read ({exc.strerror or exc})", fix="check the disk and the "
                         "file's permissions") from None
    lines = data.split(b"\n")
    torn_tail = not data.endswith(b"\n")
    by_step: dict[int, dict[str, Any]] = {}
    dropped: list[str] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        last = number == len(lines)
        try:
            row = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            dropped.append(f"line {number}: " + ("truncated last line (the run was stopped while writing it)"
                                                 if last and torn_tail else "not valid JSON"))
            continue
        if not isinstance(row, dict):
            dropped.append(f"line {number}: not a JSON object")
            continue
        step = _step(row.get("step"))
        if step is None:
            dropped.append(f"line {number}: " + ("no step" if "step" not in row
                                                 else f"non-numeric or negative step {row.get('step')!r}"))
            continue
        if step in by_step:
            dropped.append(f"line {number}: step {step} logged again (kept this later row)")
        by_step[step] = {**row, "step": step}
    rows = sorted(by_step.values(), key=lambda r: r["step"])
    return MetricsRead(path, rows, tuple(dropped))


def _step(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None
    return int(value) if value >= 0 else None


# ---- writers ----
def write_text(path: str | Path, text: str, what: str) -> None:
    """Atomic (write, fsync, rename); the temp file is removed when the write fails."""
    with writing(what, path):
        atomic_write_text(path, text)


def write_json(path: str | Path, obj: Any, what: str) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n", what)


def write_yaml(path: str | Path, obj: Any, what: str) -> None:
    import yaml

    write_text(path, yaml.safe_dump(_plain(obj), sort_keys=False), what)


def write_metrics(path: str | Path, rows: list[dict[str, Any]]) -> None:
    write_text(path, "".join(json.dumps(r) + "\n" for r in rows), "metrics")


def _plain(obj: Any) -> Any:
    """Status members as plain strings (yaml's safe dumper refuses str subclasses)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return str(obj) if isinstance(obj, Status) else obj


def read_metrics_tail(path: str | Path, tail_bytes: int = 4096) -> dict[str, Any]:
    """The newest complete row of a metrics file being written (reads only its tail); {} when none."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - tail_bytes))
            lines = f.read().decode(errors="replace").splitlines()
    except FileNotFoundError:
        return {}
    for line in reversed(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            return row
    return {}
