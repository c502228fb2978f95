"""What a run directory holds: file names, the run statuses and the summary fields (CONTRACT's run store).

Every module that names a store file, a status or a summary field imports it from here.
"""
from __future__ import annotations

import math

from enum import StrEnum

CONFIG_FILE = "config.yaml"        # the resolved config plus `run:` and `provenance:`
METRICS_FILE = "metrics.jsonl"     # one JSON object per logged step
SUMMARY_FILE = "summary.json"      # status and the SUMMARY_FIELDS
CHECKPOINT_FILE = "checkpoint.pt"  # enough to resume and to generate
TRAIN_LOG = "train.log"            # the trainer's progress lines and tracebacks
STDOUT_LOG = "stdout.log"          # a job pool's capture of the `gptlab train` process
LOCK_FILE = ".lock"                # held (flock) by the process that owns the run
SPEC_COPY = "spec.yaml"            # runs/<experiment>/spec.yaml: the spec a study ran
SWEEP_COPY = "sweep.yaml"          # runs/<experiment>/sweep.yaml: the sweep file a local sweep ran


class Status(StrEnum):
    """A run's `status` in summary.json. A str: compares and serialises as its value."""

    running = "running"
    finished = "finished"
    failed = "failed"
    diverged = "diverged"
    interrupted = "interrupted"


# the run ended and produced no usable result; `--rerun failed` retrains these
UNSUCCESSFUL = (Status.diverged, Status.failed)
# nothing more will happen to the run unless someone reruns it
ENDED = (Status.finished, Status.diverged, Status.failed)
# the order reports list statuses in: results first
STATUS_ORDER = (Status.finished, Status.diverged, Status.failed, Status.interrupted, Status.running)
assert set(STATUS_ORDER) == set(Status), "STATUS_ORDER must name every status once"

SUMMARY_FIELDS = ("best_val_loss", "final_val_loss", "steps", "wall_s", "tokens_per_s", "n_params")


def summary_record(status: str, *, best: float, final: float | None, steps: int, wall_s: float, train_tokens: int,
                   train_time: float, n_params: int | None, device: str, error: str | None = None,
                   packed: int = 1) -> dict:
    """summary.json's content for a run (an unpacked or a packed one): a non-finite best is None, tokens/s
    is over the time spent training (evals excluded); `packed`: the members of the pack that trained it (absent
    when unpacked), since a member's tokens/s is its share of the pack's time, not comparable with an unpacked
    run's."""
    summary = {"status": status, "best_val_loss": best if math.isfinite(best) else None, "final_val_loss": final,
               "steps": steps, "wall_s": round(wall_s, 3),
               "tokens_per_s": round(train_tokens / train_time, 1) if train_time else None,
               "n_params": n_params, "device": device}
    if packed > 1:
        summary["packed"] = int(packed)
    if error:
        summary["error"] = error
    return summary

# what a `gptlab train` process prints when the run it was sent to is not its to train (for people: a job
# pool tells from train.log's start lines, below, which process trained a run)
ELSEWHERE = "ran elsewhere: another process trained it since this one was planned; nothing to do"
LOCKED = "is being run by another process"

START_MARK = "== "  # train.log: one line per `gptlab train` process that trains the run (or fails setting it up)


def start_line(start: str, step: int | None, pid: int) -> str:
    """'== resume at step 20 (pid 4242)': how an attempt began, and which process made it."""
    return f"{START_MARK}{start}" + (f" at step {step}" if step is not None else "") + f" (pid {pid})"


def started_by(log_text: str, pid: int) -> bool:
    """Did process `pid` start an attempt of this run (a start line in its train.log)?"""
    tag = f"(pid {pid})"
    return any(line.startswith(START_MARK) and line.endswith(tag) for line in log_text.splitlines())
