"""What the store holds for a study's runs: each run's status and compared value, read through the analysis
loader (which reads the store through gptlab.store), so the planner and the report see the same numbers."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from gptlab.runner.spec import Spec


@dataclass(frozen=True)
class Stored:
    status: str | None  # None: not in the store
    value: float  # the compared metric (nan unless finished)


def stored(spec: Spec, runs_root: Path, names: list[str]) -> dict[str, Stored]:
    """Status and compared value of each named run of the spec's experiment."""
    from gptlab.frames.load import load
    from gptlab.stats.summary import Criterion, metric_values

    exp_dir = Path(runs_root) / spec.name
    out = {name: Stored(None, math.nan) for name in names}
    if not exp_dir.is_dir():
        return out
    loaded = load(runs_root, experiments=[spec.name])
    if not len(loaded.runs):
        return out
    values = metric_values(loaded.runs, loaded.history, Criterion.from_spec(spec.raw))
    wanted = set(names)
    for (_, row), value in zip(loaded.runs.iterrows(), values):
        if row["run"] in wanted:
            status = str(row["status"]) if row["status"] == row["status"] else None
            out[row["run"]] = Stored(status, float(value) if status == "finished" else math.nan)
    return out
