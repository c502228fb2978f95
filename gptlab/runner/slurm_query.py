"""What gptlab asks Slurm itself (sinfo, squeue, scancel), never through accounting: `sacct` needs slurmdbd,
which many small clusters do not run, and submitit's own watcher then sees every job as UNKNOWN forever.
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

# a job in one of these states will not run again
ENDED_STATES = ("COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY",
                "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT", "REVOKED")
# pending reasons that no amount of waiting resolves: only another request (or an administrator) does
HOPELESS_REASONS = ("PartitionConfig", "PartitionNodeLimit", "PartitionTimeLimit", "BadConstraints",
                    "InvalidAccount", "InvalidQOS", "AccountNotAllowed", "QOSNotAllowed", "PartitionInactive")
# pending reasons that may resolve (a node back from maintenance), but deserve a word while waiting
STUCK_REASONS = ("ReqNodeNotAvail", "PartitionDown", "NodeDown", "Nodes_required_for_job_are_DOWN")


@dataclass(frozen=True)
class Partition:
    name: str
    default: bool
    cpus: int      # the most CPUs of any of its nodes
    mem_mb: int    # the most memory of any of its nodes
    gpus: int      # the most GPUs (gres gpu) of any of its nodes


@dataclass(frozen=True)
class JobState:
    state: str   # PENDING, RUNNING, COMPLETED, CANCELLED, ...
    reason: str  # why it is pending (None when it is not)


def _gpus(gres: str) -> int:
    """GPUs in sinfo's %G, e.g. 'gpu:4', 'gpu:a100:2(S:0-1),nic:1', '(null)'."""
    total = 0
    for item in gres.split(","):
        if item.startswith("gpu"):
            count = re.match(r"(\d+)", item.split(":")[-1])
            total += int(count.group(1)) if count else 1
    return total


def partitions() -> dict[str, Partition] | None:
    """Every partition with its largest node; None when sinfo cannot tell (then Slurm itself decides)."""
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%P|%c|%m|%G"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    found: dict[str, Partition] = {}
    for line in out.stdout.splitlines():
        try:
            name, cpus, mem, gres = line.strip().split("|")
            cpus_n, mem_n = int(cpus.rstrip("+")), int(mem.rstrip("+"))
        except ValueError:
            continue
        default = name.endswith("*")
        name = name.rstrip("*")
        old = found.get(name)
        found[name] = Partition(name, default or bool(old and old.default), max(cpus_n, old.cpus if old else 0),
                                max(mem_n, old.mem_mb if old else 0), max(_gpus(gres), old.gpus if old else 0))
    return found or None


def partition(name: str | None) -> Partition | None:
    """The named partition (None: the cluster's default one), None when unknown."""
    found = partitions() or {}
    if name is None:
        return next((p for p in found.values() if p.default), None)
    return found.get(name)


def job_states(job_ids: list[str]) -> dict[str, JobState] | None:
    """State and pending reason of each job (array tasks one by one, `123_4`) that squeue still knows:
    a job leaves squeue MinJobAge (default 300 s) after it ended. None when squeue failed."""
    if not job_ids:
        return {}
    ids = sorted({j.split("_")[0] for j in job_ids})
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-j", ",".join(ids), "-o", "%i|%T|%r"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        # an id squeue no longer knows (ended long ago) fails the whole query: the caller asks again later
        return None if "Invalid job id" not in out.stderr else {}
    states = {}
    for line in out.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            states[parts[0]] = JobState(parts[1], parts[2])
    return states


def cancel(job_ids: list[str]) -> None:
    if job_ids:
        subprocess.run(["scancel", *job_ids], capture_output=True, timeout=60)
