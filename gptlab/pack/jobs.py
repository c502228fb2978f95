"""A pack as one job of the job pool: one process (python -m gptlab.pack) covering several runs.

The pool launches and polls it like any job; the study settles each member from its own run directory
(its summary, or the pack process's exit) exactly as it settles an unpacked run. The pack process's
stdout and stderr go to the first member's stdout.log.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gptlab.pack.plan import STARTS, PackMember, group, pack_command, why_not_packable


@dataclass(eq=False)
class PackJob:
    members: list[Any]  # the study's jobs (each with .run, .store, .action, .expect)
    slot: str = "cpu"
    proc: Any = None
    started: float = 0.0
    result: dict[str, Any] = field(default_factory=dict)

    store = property(lambda self: self.members[0].store)
    name = property(lambda self: f"pack({', '.join(m.run.name for m in self.members)})")
    max_steps = property(lambda self: self.members[0].run.config.train.max_steps)


def pack_jobs(pending: list[Any], mode: str | None, n_jobs: int = 1) -> list[Any]:
    """The pending jobs with every packable group replaced by one PackJob (order kept)."""
    if not mode:
        return list(pending)
    return [PackJob(g) if len(g) > 1 else g[0] for g in group(pending, mode, n_jobs)]


def members_of(job: Any) -> list[Any]:
    return job.members if isinstance(job, PackJob) else [job]


def pack_argv(job: PackJob, experiment: str, runs_root: Path, wandb: str | None) -> list[str]:
    members = [PackMember(m.run.name, m.run.variant, dict(m.run.overrides), dict(m.run.flat),
                          fresh=m.action == "fresh", expect=getattr(m, "expect", None),
                          study=dict(m.run.study)) for m in job.members]
    return pack_command(members, experiment, runs_root, wandb)


def unpacked_reasons(pending: list[Any], mode: str | None) -> list[str]:
    """One line per reason that keeps some of these runs out of any pack (e.g. optimizer=muon)."""
    if not mode:
        return []
    reasons: dict[str, int] = {}
    for job in pending:
        why = why_not_packable(job.run.config) if job.action in STARTS else None
        if why:
            reasons[why] = reasons.get(why, 0) + 1
    return [f"--pack: {n} run(s) unpacked, {why}" for why, n in reasons.items()]


def describe_packs(pending: list[Any], mode: str | None, n_jobs: int = 1) -> list[str]:
    """`--dry-run` lines: which runs share a process, and why any cannot."""
    lines = unpacked_reasons(pending, mode)
    for i, unit in enumerate(u for u in pack_jobs(pending, mode, n_jobs) if isinstance(u, PackJob)):
        lines.append(f"pack {i + 1} ({len(unit.members)} runs, one process): "
                     + ", ".join(m.run.name for m in unit.members))
    alone = sum(not isinstance(u, PackJob) for u in pack_jobs(pending, mode, n_jobs))
    if mode and alone:
        lines.append(f"{alone} run(s) unpacked (nothing to pack them with, or not stackable)")
    return lines
