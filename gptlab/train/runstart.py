"""How a run starts: fresh, resumed from its checkpoint, restarted, or left alone (already done).

Decided with the run's lock held, from what is on disk at that moment, never from what a planner saw
earlier: a planner (gptlab run, gptlab sweep) passes the fingerprint of the state it planned from
(`expect`), and when someone else has rewritten the run since, this process does not clear it or train
it again.
"""
from __future__ import annotations

import os
import shutil
import traceback
from enum import StrEnum
from typing import Any

from gptlab.config import RunConfig, config_from_dict
from gptlab.errors import UserError
from gptlab.store import ENDED, SUMMARY_FIELDS, RunStore, Status, StoreWriteError, signal_text
from gptlab.store import layout


class Start(StrEnum):
    fresh = "fresh"          # nothing usable on disk (or asked to discard it): step 0
    resume = "resume"        # from checkpoint.pt; metrics.jsonl cut back to its step
    restart = "restart"      # an earlier attempt died before its first checkpoint: its rows removed, step 0
    done = "done"            # finished already (or ended in another process since planning): nothing to do
    elsewhere = "elsewhere"  # `done`, by another process after this one was planned


def decide_start(store: RunStore, cfg: RunConfig, *, fresh: bool = False,
                 expect: str | None = None) -> tuple[Start, dict[str, Any] | None]:
    """The run's start and its previous summary. Call with the run's lock held. `fresh` discards the run's
    state, but with `expect` only if the run is still the one that fingerprint describes."""
    moved_on = expect is not None and store.fingerprint() != expect
    if fresh and not moved_on:
        clear_run(store)
        return Start.fresh, None
    previous = store.summary()
    if moved_on and previous and previous["status"] in ENDED:
        return Start.elsewhere, previous
    saved = store.config()
    changed = config_from_dict(saved).diff(cfg) if saved else []
    if changed:
        raise UserError(f"this run directory holds a run with a different config ({'; '.join(changed[:3])})",
                        source=str(store.dir), fix="choose another --name or --runs, or rerun it from "
                        "scratch (gptlab run --rerun all)")
    if previous and previous["status"] == Status.finished:
        return Start.done, previous
    if store.checkpoint_path.exists():
        return Start.resume, previous
    if previous is not None or store.metrics_path.exists():
        store.truncate_metrics(-1)  # rows of an attempt killed before its first checkpoint: never twice
        return Start.restart, previous
    return Start.fresh, None


def clear_run(store: RunStore) -> None:
    """Remove the run's files, except the lock this process holds and a job pool's capture of it."""
    for path in store.dir.iterdir():
        if path.name in (layout.LOCK_FILE, layout.STDOUT_LOG):
            continue
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def record_failure(store: RunStore, error: str, *, with_traceback: bool = True) -> dict[str, Any]:
    """Mark the run failed with `error` (one line), keeping what an earlier summary knew. When even that
    cannot be written (the disk is still full), say so on stdout; the returned summary is the verdict."""
    try:
        previous = store.summary() or {}
    except UserError:
        previous = {}
    summary = {**dict.fromkeys(SUMMARY_FIELDS), "steps": 0, "wall_s": 0.0, **previous, "status": Status.failed,
               "error": error}
    try:
        if with_traceback:
            with open(store.log_path, "a", encoding="utf-8") as log:
                log.write(traceback.format_exc())
        store.write_summary(summary)
    except (OSError, StoreWriteError) as exc:
        print(f"{store.dir.name}: could not record the failure in {store.summary_path} ({exc})")
    print(f"{store.dir.name} failed: {error} (log: {store.log_path})")
    return summary


def failure_text(exc: BaseException) -> str:
    """One line for summary.json's `error`: a store's own words, else 'Type: message'."""
    if isinstance(exc, (StoreWriteError, UserError)):
        return str(exc).splitlines()[0]
    return f"{type(exc).__name__}: {exc}".splitlines()[0]



def stop_signal_text(signum: int, step: int) -> str:
    return signal_text(signum, step, verb="stopped by")


def log_start(store: RunStore, start: Start, step: int | None) -> None:
    """One line in train.log per attempt: how it started, where, and which process (the job pool reads it)."""
    try:
        with open(store.log_path, "a", encoding="utf-8") as log:
            log.write(layout.start_line(start, step, os.getpid()) + "\n")
    except OSError:
        pass  # a full disk is reported by the writes that matter
