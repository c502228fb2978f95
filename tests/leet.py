"""W&B's own reader of a run's `.wandb` log (`wandb leet inspect`), so that tests check what gptlab logged
to W&B without trusting gptlab's reader (gptlab/wandb_log.py)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any


def _inspect(path: Path, *flags: str) -> str:
    beside = Path(sys.executable).parent / "wandb"
    exe = str(beside) if beside.exists() else shutil.which("wandb")
    out = subprocess.run([exe, "leet", "inspect", *flags, "--json", str(path)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def records(path: Path) -> list[dict[str, Any]]:
    """Every record of the log, in order, as W&B prints it: {"type": "history", "history": {...}, ...}."""
    return [json.loads(line) for line in _inspect(path).splitlines() if line.strip()]


def summary(path: Path) -> dict[str, Any]:
    """The run's state, id, config and summary as W&B reads them back."""
    return json.loads(_inspect(path, "--summary"))


def history(path: Path) -> dict[int, dict[str, Any]]:
    """History rows by `_step`, the rows logged for one step merged."""
    rows: dict[int, dict[str, Any]] = {}
    for r in records(path):
        if r["type"] == "history":
            rows.setdefault(int(r["history"]["item"]["_step"]), {}).update(r["history"]["item"])
    return rows
