"""The callable a Slurm job runs (through submitit): one `gptlab train` child, whose signals it owns.

Slurm stops a job with signals: USR2 some time before the time limit (submitit's `--signal=USR2@...`),
TERM on preemption, `scontrol requeue`, `scancel` and at the time limit. Which processes get them depends
on the cluster (`proctrack/linuxproc` signals every process of the step, `proctrack/cgroup` setups often
only the task), so the wrapper makes the outcome the same everywhere:
  - the child ignores USR2 (its default action would kill it without a checkpoint);
  - the first USR2 or TERM the wrapper gets is forwarded to the child as one TERM, a graceful stop: it
    checkpoints at the next step boundary and exits; repeats are the same stop and are not forwarded;
  - the wrapper waits for the child, then leaves without a result, so submitit's driver never takes a
    stopped attempt for the job's end: after USR2, submitit's own handler requeues the job (as it would
    for any checkpointable callable); after TERM, Slurm requeues it (preemption, `scontrol requeue`) or
    ends it (CANCELLED, TIMEOUT), and the driver reads which from Slurm.
A requeued attempt runs the same command without `--fresh`, so it resumes from the run's checkpoint.
"""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

STOPS = (signal.SIGUSR2, signal.SIGTERM)


def _ignore_usr2() -> None:  # runs in the child before exec: an ignored signal stays ignored across exec
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


class TrainJob:
    """Run one `gptlab train` command; requeued (without --fresh) when Slurm stops the job."""

    def __init__(self, cmd: list[str], log: str, threads: int) -> None:
        self.cmd, self.log, self.threads = cmd, log, threads

    def command(self) -> list[str]:
        if int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0:  # a requeued attempt keeps the checkpoint
            return [c for c in self.cmd if c != "--fresh"]
        return list(self.cmd)

    def __call__(self) -> int:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # Slurm gives the job its CPUs (and GPUs); locally the jobs share this machine's cores
        env.setdefault("OMP_NUM_THREADS", env.get("SLURM_CPUS_PER_TASK") or str(self.threads))
        Path(self.log).parent.mkdir(parents=True, exist_ok=True)  # only now: a job that never ran leaves no run
        stopped: list[int] = []
        with open(self.log, "ab") as out:
            child = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, preexec_fn=_ignore_usr2)

        def forward(signum, frame):  # noqa: ANN001
            if not stopped:
                stopped.append(signum)
                child.send_signal(signal.SIGTERM)

        previous = {sig: signal.signal(sig, forward) for sig in STOPS}
        try:
            code = child.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if not stopped or code == 0:
            return code
        handler = previous.get(stopped[0])
        if stopped[0] == signal.SIGUSR2 and callable(handler):
            handler(signal.SIGUSR2, None)  # submitit: save checkpoint(), `scontrol requeue`, exit
        raise SystemExit(code)  # no result: Slurm requeues or ends the job; the driver reads which

    def checkpoint(self):  # noqa: ANN201 - submitit calls this before it requeues the job
        import submitit

        resumed = TrainJob([c for c in self.cmd if c != "--fresh"], self.log, self.threads)  # keep the checkpoint
        return submitit.helpers.DelayedSubmission(resumed)
