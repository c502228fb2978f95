"""A pack as one job of the job pool: one process (python -m gptlab.pack) covering several runs.

The pool launches and polls it like any job; the study settles each member from its own run directory
(its summary, or the pack process's exit) exactly as it settles an unpacked run. The pack process's
stdout and stderr go to the first member's stdout.log.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gptlab.pack.plan import PackMember, group, pack_command


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


def describe_packs(pending: list[Any], mode: str | None, n_jobs: int = 1) -> list[str]:
    """`--dry-run` lines: which runs share a process."""
    lines = []
    for i, unit in enumerate(u for u in pack_jobs(pending, mode, n_jobs) if isinstance(u, PackJob)):
        lines.append(f"pack {i + 1} ({len(unit.members)} runs, one process): "
                     + ", ".join(m.run.name for m in unit.members))
    alone = sum(not isinstance(u, PackJob) for u in pack_jobs(pending, mode, n_jobs))
    if mode and alone:
        lines.append(f"{alone} run(s) unpacked (nothing to pack them with, or not stackable)")
    return lines
