"""What became of a run once its `gptlab train` process exited: read from the store, and recorded there
when the process could not record it itself (killed by a signal, crashed before writing its summary).

The verdict is written under the run's lock, so a run another process has taken over meanwhile is never
overwritten. Whether the child trained the run itself is read from the run's train.log (each attempt
writes a start line with its pid): the run's stdout.log is shared by every process sent to the run.
"""
from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from gptlab.store import ENDED, RunLocked, RunStore, Status, StoreError, signal_text
from gptlab.store.files import read_text
from gptlab.store.layout import started_by

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
ELSEWHERE_RUNNING = {"status": Status.running, "elsewhere": True, "error": "running in another process"}


def settle(store: RunStore, code: int, *, pid: int | None = None, interrupted: bool = False) -> dict[str, Any]:
    """The run's result: its summary, plus `elsewhere: True` when another process owns or ran it.
    `code` is the process's return code (negative: killed by that signal); `pid` the process's id, to tell
    from the run's train.log whether it trained the run itself (None: assume it did)."""
    try:
        summary = store.summary()
        ran_here = pid is None or started_by(read_text(store.log_path) or "", pid)
    except StoreError as err:
        return {"status": Status.failed, "error": err.one_line()}
    # exit 0/1 without a start line: it found the run taken, or ended, by another process, or it crashed
    # before it could decide (a traceback in stdout.log), which is recorded below
    elsewhere = not ran_here and code in (0, 1)
    if elsewhere and summary is not None and summary["status"] in ENDED:
        return {**summary, "elsewhere": True}
    if elsewhere and store.is_locked():
        return dict(ELSEWHERE_RUNNING)
    last = last_line(store.stdout_path)
    if summary is not None and summary["status"] != Status.running:
        if code == 2 and summary["status"] != Status.finished:  # refused its input: the summary is older
            return {**summary, "status": Status.failed, "error": last or "bad input (exit code 2)"}
        return summary
    try:
        with store.locked():
            summary = store.summary()
            if summary is not None and summary["status"] != Status.running:  # it ended meanwhile
                return {**summary, "elsewhere": True} if elsewhere and summary["status"] in ENDED else summary
            verdict = _verdict(store, code, interrupted, last)
            store.write_summary({**(summary or {}), **verdict})
            return {**(summary or {}), **verdict}
    except RunLocked:
        return dict(ELSEWHERE_RUNNING)
    except StoreError as err:
        return {"status": Status.failed, "error": err.one_line()}


def _verdict(store: RunStore, code: int, interrupted: bool, last: str | None) -> dict[str, Any]:
    """Status, error and last completed step of a process that died without recording its end."""
    step = store.last_step()
    signum = -code if code < 0 else code - 128 if 128 < code < 160 else None
    verdict: dict[str, Any] = {"steps": step or 0}
    if interrupted or code == 130 or signum in STOP_SIGNALS:
        verdict.update(status=Status.interrupted,
                       error=signal_text(signum or signal.SIGINT, step, verb="stopped by"))
    elif signum is not None:
        verdict.update(status=Status.failed, error=signal_text(signum, step))
    else:
        verdict.update(status=Status.failed, error=last or f"process exited with code {code}")
    return verdict


def last_line(path: Path) -> str | None:
    """The last non-empty line of a log (at most 300 characters), None when there is none."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 8192))
            lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    except FileNotFoundError:
        return None
    return lines[-1][:300] if lines else None


# Slurm states of a job that ended without its process recording why: the run keeps its checkpoint and
# the next `gptlab run` resumes it (an interrupted run is planned as resume, a failed one is skipped)
RESUMABLE_STATES = ("CANCELLED", "TIMEOUT", "PREEMPTED", "NODE_FAIL", "DEADLINE", "BOOT_FAIL")


def slurm_end(store: RunStore, state: str) -> dict[str, Any]:
    """The result of a run whose Slurm job ended in `state` without a result of its own (cancelled while
    pending or running, timed out, its node failed), with `slurm_state` set. A run that never started
    records nothing: the next `gptlab run` starts it."""
    words = f"{state.lower().replace('_', ' ')} (state: {state})"
    resumable = state in RESUMABLE_STATES
    never_ran = {"status": "cancelled" if state == "CANCELLED" else Status.failed, "error": words,
                 "slurm_state": state}
    if not store.dir.exists():
        return never_ran
    try:
        with store.locked():
            summary = store.summary()
            if summary is None:  # no attempt got as far as its first summary
                return never_ran
            if summary["status"] in ENDED:  # it recorded its own end after all
                return {**summary, "slurm_state": state}
            step = summary.get("steps") or store.last_step() or 0
            summary = {**summary, "steps": step, "status": Status.interrupted if resumable else Status.failed,
                       "error": f"{words} at step {step}"}
            store.write_summary(summary)
            return {**summary, "slurm_state": state}
    except RunLocked:
        return {**ELSEWHERE_RUNNING, "slurm_state": state}
    except StoreError as err:
        return {"status": Status.failed, "error": err.one_line(), "slurm_state": state}
