"""One pool of `gptlab train` subprocesses, shared by `gptlab run` and `gptlab sweep`.

Each job runs crash-isolated in its own process on one device slot, with its stdout and stderr captured
in the run's stdout.log; the pool keeps at most n_jobs running, polls them, hands each ended job to the
caller, and on Ctrl-C lets the running ones stop at a step boundary (their checkpoints are kept).

A job is any object with `store` (RunStore) and the attributes the pool sets: `slot`, `proc`, `started`.
"""
from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any

from gptlab.jobs.devices import device_env, threads_per_job

POLL_S = 0.2

# next_job() -> (job, argv) to launch, or None when there is nothing more to start
NextJob = Callable[[], "tuple[Any, Sequence[str]] | None"]


class JobPool:
    def __init__(self, n_jobs: int, slots: list[str], *,
                 env: Callable[[dict[str, str]], dict[str, str]] | None = None) -> None:
        self.n_jobs = n_jobs
        self.free = [slots[i % len(slots)] for i in range(n_jobs)]  # several jobs may share one GPU
        self.active: list[Any] = []
        self.env = env or (lambda e: e)
        self.stopping = False

    def launch(self, job: Any, argv: Sequence[str]) -> None:
        job.slot = self.free.pop(0)
        job.store.dir.mkdir(parents=True, exist_ok=True)
        with open(job.store.stdout_path, "ab") as out:  # the child holds its own handle
            job.proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env=self.env(device_env(job.slot, threads_per_job(self.n_jobs))))
        job.started = time.time()
        self.active.append(job)

    def run(self, next_job: NextJob, on_end: Callable[[Any, bool], None], *,
            on_start: Callable[[Any], None] | None = None,
            on_tick: Callable[[list[Any]], None] | None = None) -> bool:
        """Launch from `next_job` while slots are free (then `on_start(job)`), call `on_end(job, interrupted)`
        as each job ends and `on_tick(active)` every poll. Returns True when Ctrl-C interrupted the pool."""
        exhausted = False
        try:
            while True:
                while not exhausted and not self.stopping and self.free:
                    item = next_job()
                    if item is None:
                        exhausted = True
                        break
                    self.launch(*item)
                    if on_start is not None:
                        on_start(item[0])
                if not self.active:
                    return False
                time.sleep(POLL_S)
                if on_tick is not None:
                    on_tick(self.active)
                for job in [j for j in self.active if j.proc.poll() is not None]:
                    self.active.remove(job)
                    self.free.append(job.slot)
                    on_end(job, False)
        except KeyboardInterrupt:
            for job in list(self.active):  # they got the same SIGINT: each stops at a step boundary
                wait_or_kill(job.proc)
                self.active.remove(job)
                on_end(job, True)
            return True

    def stop(self) -> None:
        """Start nothing more; ask the running jobs to stop (SIGTERM: each records `interrupted`)."""
        self.stopping = True
        for job in self.active:
            if job.proc.poll() is None:
                job.proc.send_signal(signal.SIGTERM)


def wait_or_kill(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
