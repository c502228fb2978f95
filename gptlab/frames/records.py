"""A run as read from any source (`RunRecord`), and the two tidy frames built from runs (`LoadedRuns`).

The store reader (`load.py`) and the W&B readers (`wandb_load.py`) both turn what they read into
`RunRecord`s here, so a run has the same columns and values wherever it was read from.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from typing import Any

import pandas as pd

from gptlab.config import KEY_SECTION, SECTIONS
from gptlab.overrides import label_from_name
from gptlab.store import SUMMARY_FIELDS, Status

STATUSES = tuple(Status)
RUN_COLUMNS = ("experiment", "run", "label", "variant", "seed", "stage", "at", "size", "status", "source", "error",
               "overrides")
# the `run:` keys a study writes beside label/variant/seed, with what a run without them gets (older runs)
STUDY_META = {"stage": "compare", "at": None, "size": None}
# the identifying columns every history row carries
ID_COLUMNS = ("experiment", "run", "variant", "label", "seed")
# what summary.json holds besides `status` and `error`; a W&B summary also holds each series' last value,
# which is history, not a summary field
SUMMARY_KEYS = SUMMARY_FIELDS + ("device",)


@dataclass
class RunRecord:
    """One run as read from any source, before it becomes a DataFrame row."""

    experiment: str
    name: str
    config: dict[str, dict[str, Any]]  # sectioned: model/train/data/log
    meta: dict[str, Any]  # the `run:` section: label, variant, seed, overrides
    summary: dict[str, Any]
    history: list[dict[str, Any]]
    provenance: dict[str, Any] = field(default_factory=dict)
    source: str = "store"


@dataclass
class LoadedRuns:
    """The loaded runs. `config_keys` maps each config column to its section (for the setup table)."""

    runs: pd.DataFrame
    history: pd.DataFrame
    specs: dict[str, dict[str, Any]]
    config_keys: dict[str, str]

    def experiments(self) -> list[str]:
        return sorted(self.runs["experiment"].unique()) if len(self.runs) else []

    def select(self, experiment: str) -> "LoadedRuns":
        """The runs and history of one experiment."""
        runs = self.runs[self.runs["experiment"] == experiment].reset_index(drop=True)
        history = self.history[self.history["experiment"] == experiment].reset_index(drop=True)
        spec = {experiment: self.specs[experiment]} if experiment in self.specs else {}
        return LoadedRuns(runs, history, spec, self.config_keys)


def sectioned(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Accept a sectioned or a flat config (W&B sweeps log bare names) and return it sectioned."""
    out: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}

    def order(item: tuple[str, Any]) -> int:
        """Bare names (a sweep agent's copies, as W&B holds them), then sections, then `section.key` (what the
        tracker writes when an agent's parameter group hides a section): the run's resolved values win."""
        key, value = item
        return 1 if key in SECTIONS and isinstance(value, dict) else 2 if "." in key else 0

    for key, value in sorted((config or {}).items(), key=order):
        if key in SECTIONS and isinstance(value, dict):
            out[key].update(value)
        elif "." in key and key.split(".", 1)[0] in SECTIONS:
            section, _, leaf = key.partition(".")
            out[section][leaf] = value
        elif key in KEY_SECTION:
            out[KEY_SECTION[key]][key] = value
    return {section: {k: _typed(section, k, v) for k, v in values.items()} for section, values in out.items()}


def _typed(section: str, key: str, value: Any) -> Any:
    """A number W&B holds as sent (`'1e-3'`, YAML 1.1's reading of a sweep file) as the number the run used."""
    if not isinstance(value, str):
        return value
    hint = str(next((f.type for f in fields(SECTIONS[section]) if f.name == key), ""))
    if hint not in ("int", "float", "int | None", "float | None"):
        return value
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if hint.startswith("int") and number.is_integer() else number


def label_of(name: str) -> str:
    """The group a run belongs to: its name without the seed part."""
    return label_from_name(name)


def frames_from_records(records: list[RunRecord], specs: dict[str, dict[str, Any]] | None = None) -> LoadedRuns:
    """Build the per-run and per-step frames; rows sorted by (experiment, run) for determinism."""
    records = sorted(records, key=lambda r: (r.experiment, r.name))
    rows, histories, config_keys = [], [], {}
    for rec in records:
        row: dict[str, Any] = {
            "experiment": rec.experiment, "run": rec.name,
            "label": rec.meta.get("label") or label_of(rec.name),
            "variant": rec.meta.get("variant"),
            "seed": rec.meta.get("seed", rec.config.get("train", {}).get("seed")),
            **{key: rec.meta.get(key, default) for key, default in STUDY_META.items()},
            "status": str(rec.summary.get("status") or "running"),
            "source": rec.source, "error": rec.summary.get("error"),
            "overrides": json.dumps(rec.meta.get("overrides") or {}, sort_keys=True, default=str),
        }
        for key in SUMMARY_FIELDS:
            row[key] = as_number(rec.summary.get(key))
        row["packed"] = as_number(rec.summary.get("packed"))  # members of its pack; NaN: trained alone (or unknown)
        for key in SUMMARY_KEYS[len(SUMMARY_FIELDS):]:
            if rec.summary.get(key) is not None:
                row[key] = rec.summary[key]
        for section, values in rec.config.items():
            for key, value in values.items():
                config_keys.setdefault(key, section)
                row[key] = value
        for key, value in rec.provenance.items():
            row[f"provenance.{key}"] = value
        rows.append(row)
        if rec.history:
            frame = pd.DataFrame.from_records(rec.history)
            frame.insert(0, "run", rec.name)
            frame.insert(0, "experiment", rec.experiment)
            histories.append(frame)
    runs = pd.DataFrame(rows, columns=_ordered_columns(rows))
    history = pd.concat(histories, ignore_index=True) if histories else pd.DataFrame(
        columns=["experiment", "run", "step"])
    if len(history):
        history = history.sort_values(["experiment", "run", "step"], kind="stable").reset_index(drop=True)
    return LoadedRuns(runs, with_ids(history, runs), dict(specs or {}), config_keys)


def with_ids(history: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """History rows with each run's identifying columns (variant, label, seed) first."""
    ids = runs[list(ID_COLUMNS)].drop_duplicates(["experiment", "run"]) if len(runs) else pd.DataFrame(
        columns=list(ID_COLUMNS))
    history = history.drop(columns=[c for c in ID_COLUMNS[2:] if c in history.columns])
    merged = history.merge(ids, on=["experiment", "run"], how="left", sort=False)
    return merged[list(ID_COLUMNS) + [c for c in merged.columns if c not in ID_COLUMNS]]


def merge_stores(stores: list[LoadedRuns]) -> LoadedRuns:
    """Concatenate stores from several sources (local, W&B) into one."""
    stores = [s for s in stores if len(s.runs)]
    if not stores:
        return frames_from_records([])
    seen: set[tuple[str, str]] = set()
    run_parts, history_parts = [], []
    for s in stores:  # the same run from two sources (store and its W&B copy): the first wins
        keys = list(zip(s.runs["experiment"], s.runs["run"]))
        fresh = [k not in seen for k in keys]
        run_parts.append(s.runs[fresh])
        kept = {k for k, f in zip(keys, fresh) if f}
        seen.update(kept)
        if len(s.history):
            mask = [k in kept for k in zip(s.history["experiment"], s.history["run"])]
            history_parts.append(s.history[mask])
    runs = pd.concat(run_parts, ignore_index=True)
    runs = runs.sort_values(["experiment", "run"], kind="stable").reset_index(drop=True)
    history = pd.concat(history_parts, ignore_index=True) if history_parts else stores[0].history
    if len(history):
        history = history.sort_values(["experiment", "run", "step"], kind="stable").reset_index(drop=True)
    specs: dict[str, dict[str, Any]] = {}
    keys: dict[str, str] = {}
    for s in stores:
        specs.update(s.specs)
        keys.update(s.config_keys)
    return LoadedRuns(runs, history, specs, keys)


def as_number(value: Any) -> float | None:
    """JSON number (or null / non-finite) -> float; inf/NaN become NaN so plots and stats skip them."""
    if value is None or isinstance(value, bool):
        return None if value is None else float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else math.nan


def _ordered_columns(rows: list[dict[str, Any]]) -> list[str]:
    fixed = list(RUN_COLUMNS) + list(SUMMARY_FIELDS)
    extra = sorted({k for row in rows for k in row} - set(fixed))
    return fixed + extra
