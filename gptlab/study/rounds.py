"""A round of a study: the runs one step of the planner hands to the job pool."""
from __future__ import annotations

from dataclasses import dataclass

from gptlab.runner.spec import PlannedRun


@dataclass
class Round:
    title: str  # "tuning", "comparison", "round 2: ..."
    runs: list[PlannedRun]
    pack: str | None = None
    note: str = ""  # what the live view says about the round (open comparisons)
