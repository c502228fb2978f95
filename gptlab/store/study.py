"""A study's own files beside its runs (runs/<experiment>/): the tuning choice (`tuning.json`).

Torch-free, atomic like every store write. The planner writes the choice once and reuses it; the report
reads it to show what was chosen and from which runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from gptlab.store.files import read_json_object, write_json

TUNING_FILE = "tuning.json"  # runs/<experiment>/tuning.json: each cell's tuned values and every tuning run's metric
STAGES = ("tune", "compare")  # a run's `stage` in a study (config.yaml's run: section, load_runs' column)
AT = ("tuned", "shared")  # where a comparison run's tuned keys stand: the cell's chosen value or the base value


def tuning_path(exp_dir: str | Path) -> Path:
    return Path(exp_dir) / TUNING_FILE


def read_tuning(exp_dir: str | Path) -> dict[str, Any] | None:
    """The stored choice, or None; a damaged file raises StoreError (one line)."""
    return read_json_object(tuning_path(exp_dir))


def write_tuning(exp_dir: str | Path, record: dict[str, Any]) -> None:
    write_json(tuning_path(exp_dir), record, "tuning choice")
