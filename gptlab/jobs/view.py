"""What a job pool shows while it runs: a rich live table on a terminal, plain lines otherwise (CI, logs).

A job shown here has `name`, `action`, `store`, `result`, `status`, `slot`, `proc`, `started`, `max_steps`.
"""
from __future__ import annotations

import sys
import time
from typing import Any

from gptlab.store import UNSUCCESSFUL, Status, StoreError
from gptlab.store.files import read_metrics_tail
from gptlab.train.progress import fmt_duration


def last_row(job) -> dict[str, Any]:  # noqa: ANN001
    """The newest metrics row of a running job (reads only the file's tail)."""
    return read_metrics_tail(job.store.metrics_path)


def _summary(job) -> dict[str, Any]:  # noqa: ANN001
    if job.result:
        return job.result
    try:
        return job.store.summary() or {}
    except StoreError:
        return {}


def shown_status(job) -> str:  # noqa: ANN001
    """The job's status as a person reads it: 'finished elsewhere', 'running elsewhere', 'cancelled', ..."""
    if job.result.get("stopped"):  # a sweep's hyperband stop: a result, not a failure
        return "stopped early"
    if job.result.get("slurm_state") == "CANCELLED" and job.status != Status.finished:
        return "cancelled"
    if job.result.get("slurm_state") in ("PENDING", "RUNNING") and job.status in ("pending", Status.running):
        return f"{job.status} in Slurm"  # the driver stopped waiting; the job goes on
    return f"{job.status} elsewhere" if job.result.get("elsewhere") else str(job.status)


# shown statuses that are not a failure of this command: the run is done, or another process owns it
NOT_FAILED = ("finished", "finished elsewhere", "running elsewhere", "stopped early")


def final_counts(jobs) -> tuple[str, bool]:  # noqa: ANN001
    """The closing count, each run as what it is ('2/4 finished, 1 cancelled, 1 running elsewhere'), and
    whether any run is neither finished nor owned by another process."""
    shown = [shown_status(job) for job in jobs]
    finished = sum(s in ("finished", "finished elsewhere") for s in shown)
    others = [s for s in shown if s not in ("finished", "finished elsewhere")]
    counts = ", ".join(f"{others.count(s)} {s}" for s in dict.fromkeys(others))
    return f"{finished}/{len(jobs)} finished" + (f", {counts}" if counts else ""), any(s not in NOT_FAILED for s in shown)


def _best(job) -> str:  # noqa: ANN001
    best = _summary(job).get("best_val_loss")
    return f"{best:.4f}" if isinstance(best, (int, float)) else "-"


class PlainView:
    context = ""  # a study's round and its open comparisons, shown above the live table ("round 2 (...) | ")

    def __init__(self, stream=None) -> None:  # noqa: ANN001
        self.stream = stream or sys.stdout
        self.t0 = time.time()
        self.done = 0

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def start(self, jobs) -> None:  # noqa: ANN001
        todo = sum(not j.action.startswith("skip") for j in jobs)
        self.begin(len(jobs), f"{todo} of {len(jobs)} runs to execute ({len(jobs) - todo} skipped: finished, "
                              f"failed, damaged or elsewhere)")
        self.done = len(jobs) - todo
        for job in jobs:
            if job.action == "skip-damaged":
                self._print(f"  skipped {job.name}: {job.result.get('error')}")

    def begin(self, total: int | None, heading: str) -> None:
        """Open the view; total None: jobs keep coming until the caller runs out (a sweep's engine)."""
        self.total, self.done = total, 0
        self._print(heading)

    def _progress(self) -> str:
        return f"[{self.done}/{self.total}]" if self.total else f"[{self.done}]"

    def started(self, job) -> None:  # noqa: ANN001
        verb = {"resume": "resuming", "fresh": "restarting", "restart": "restarting"}.get(job.action, "starting")
        self._print(f"{self._progress()} {verb} {job.name} on {job.slot}")

    def ended(self, job) -> None:  # noqa: ANN001
        self.done += 1
        status = job.status
        line = f"{self._progress()} {shown_status(job)} {job.name} | best val {_best(job)} | " \
               f"{fmt_duration(time.time() - job.started)}"
        if job.result.get("stopped"):
            pass
        elif status in UNSUCCESSFUL or job.result.get("error") and status == Status.interrupted:
            err = job.result.get("error") or ("loss became non-finite" if status == Status.diverged else None)
            log = job.store.log_path if job.store.log_path.exists() else job.store.stdout_path
            line += f"\n  {status}: {err} (log: {log})"
        self._print(line)

    def refresh(self, jobs) -> None:  # noqa: ANN001
        pass

    def message(self, text: str) -> None:
        self._print(text)

    def finish(self, jobs) -> None:  # noqa: ANN001
        if jobs:
            self._print(final_table(jobs))


def final_table(jobs) -> str:  # noqa: ANN001
    rows = [(job.name, shown_status(job), _best(job), str(_summary(job).get("steps", "-"))) for job in jobs]
    return format_table(("run", "status", "best val", "steps"), rows)


def format_table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """Left-aligned columns under a header and a rule: the final table of `gptlab run` and `gptlab sweep`."""
    widths = [max([len(h)] + [len(r[c]) for r in rows]) for c, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*headers), fmt.format(*("-" * w for w in widths))]
    return "\n".join(line.rstrip() for line in lines + [fmt.format(*r) for r in rows])


class RichView(PlainView):
    """A live view: runs done/total, each active run's step, loss and ETA."""

    def begin(self, total: int | None, heading: str) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=self.stream)
        super().begin(total, heading)
        self.live = Live(self._render([]), console=self.console, refresh_per_second=2, transient=True)
        self.live.start()

    def _print(self, text: str) -> None:
        console = getattr(self, "console", None)
        (console.print(text, highlight=False, markup=False) if console else print(text, file=self.stream))

    def refresh(self, jobs) -> None:  # noqa: ANN001
        self.live.update(self._render(jobs))

    def _render(self, jobs):  # noqa: ANN001, ANN202
        from rich.table import Table

        done = f"{self.done}/{self.total}" if self.total else str(self.done)
        table = Table(title=f"{self.context}runs done {done} | elapsed {fmt_duration(time.time() - self.t0)}")
        for col in ("run", "device", "step", "train loss", "val loss", "eta"):
            table.add_column(col)
        for job in jobs:
            if job.proc is None or job.proc.poll() is not None:
                continue
            row = last_row(job)
            max_steps = job.max_steps
            step = row.get("step", 0)
            rate = step / max(1e-9, time.time() - job.started)
            eta = fmt_duration((max_steps - step) / rate) if rate > 0 and step else "-"
            loss = row.get("train/loss")
            val = row.get("val/loss")
            table.add_row(job.name, job.slot, f"{step}/{max_steps}",
                          f"{loss:.4f}" if loss is not None else "-", f"{val:.4f}" if val is not None else "-", eta)
        return table

    def finish(self, jobs) -> None:  # noqa: ANN001
        self.live.stop()
        super().finish(jobs)


def make_view():  # noqa: ANN201
    return RichView() if sys.stdout.isatty() else PlainView()
