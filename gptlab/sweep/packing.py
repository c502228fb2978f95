"""`gptlab sweep --pack seeds|auto`: grid points that qualify train as one stacked model in one process.

A packed point must get exactly the run its `gptlab train` process would have made, so its member config
is parsed from the very argv the sweep would launch (the agent's `--key=value` args, then --set), the
way `gptlab train` parses it. Commands that do more than `gptlab train ${args}` (an env assignment, a
config file) stay unpacked: only that process knows what it would do.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gptlab.errors import UserError
from gptlab.overrides import parse_overrides, resolve

# what may come before `train` in an expanded sweep command that gptlab can pack
LAUNCHERS = ("env", "gptlab", "gptlab.exe", "-m")


@dataclass(frozen=True)
class MemberRun:
    """What gptlab.pack's planner reads of a run (as of runner.spec.PlannedRun)."""
    name: str
    variant: str | None
    overrides: dict[str, Any]  # the searched parameters and the seed: the run's --meta overrides
    flat: dict[str, Any]       # every key its `gptlab train` would receive
    config: Any                # RunConfig
    study: dict[str, Any] = field(default_factory=dict)  # a sweep's runs belong to no study design


def member_run(argv: list[str], name: str, searched: dict[str, Any], python: str) -> MemberRun | None:
    """The run a sweep's `gptlab train` argv (up to, not including, --experiment) trains; None when the
    command is not a plain `gptlab train ${args}` or its args do not resolve (that run reports itself)."""
    if "train" not in argv:
        return None
    at = argv.index("train")
    prefix, args = argv[:at], argv[at + 1:]
    if any(Path(t).name not in LAUNCHERS and t != python for t in prefix):
        return None
    if args and not args[0].startswith("-") and "=" not in args[0]:
        return None  # a config file first
    try:
        cfg, flat = resolve(None, parse_overrides(args))
    except (UserError, ValueError):
        return None
    flat.pop("wandb", None)  # the sweep's --wandb goes to the pack process as to every run
    return MemberRun(name, None, dict(searched), flat, cfg)


def refuse_hyperband(early_terminate: bool, pack: str | None, source: str) -> None:
    """A hyperband stop is a SIGTERM to one run's process: a pack shares one process, so it cannot."""
    if pack and early_terminate:
        raise UserError("--pack cannot stop one packed run early (early_terminate: hyperband)", source=source,
                        key="--pack", fix="drop --pack, or early_terminate from the sweep file")
