"""Run store (or W&B) -> two tidy DataFrames: one row per run, one row per (run, step).

The notebook API is `gptlab.load_runs` and `gptlab.load_history` (both here); `gptlab report` loads
through the same `load`, so a notebook, the report and W&B show the same numbers. Every source (local
store, W&B API, W&B offline files) is first turned into `RunRecord`s, so a run has the same columns and
values wherever it was read from. Runs that failed, diverged or were interrupted are kept with their
status; the statistics decide what to do with them.
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from gptlab.config import KEY_SECTION, SECTIONS
from gptlab.errors import UserError
from gptlab.overrides import label_from_name
from gptlab.store import SUMMARY_FIELDS, Status, StoreError, read_summary, read_yaml_mapping
from gptlab.store import read_metrics as read_metrics_file

STATUSES = tuple(Status)
RUN_COLUMNS = ("experiment", "run", "label", "variant", "seed", "status", "source", "error", "overrides")
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
            "status": str(rec.summary.get("status") or "running"),
            "source": rec.source, "error": rec.summary.get("error"),
            "overrides": json.dumps(rec.meta.get("overrides") or {}, sort_keys=True, default=str),
        }
        for key in SUMMARY_FIELDS:
            row[key] = _number(rec.summary.get(key))
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


def load(runs: str | Path | None = "runs", experiments: list[str] | str | None = None,
         wandb_dir: str | Path | None = None, wandb: str | None = None) -> LoadedRuns:
    """The run store at `runs` (None: none), plus W&B offline runs under `wandb_dir` and the runs of the
    W&B project `wandb` ("ENTITY/PROJECT", public API), merged; a run found twice keeps its first
    source in that order. `experiments` keeps only those."""
    stores = []
    if runs is not None:
        stores.append(load_store(runs))
    if wandb_dir is not None:
        from gptlab.analysis.wandb_load import load_wandb_offline

        if not Path(wandb_dir).exists():
            raise UserError("W&B directory not found", source=str(wandb_dir), fix="check the W&B directory path")
        stores.append(load_wandb_offline(wandb_dir))
    if wandb is not None:
        from gptlab.analysis.wandb_load import load_wandb_project

        if str(wandb).count("/") != 1:
            raise UserError(f"expected ENTITY/PROJECT, got '{wandb}'", key="--wandb-project",
                            fix="for example --wandb-project myteam/gptlab")
        stores.append(load_wandb_project(str(wandb)))
    store = merge_stores(stores)
    if experiments is not None:
        wanted = [experiments] if isinstance(experiments, str) else list(experiments)
        runs_f = store.runs[store.runs["experiment"].isin(wanted)].reset_index(drop=True)
        hist_f = store.history[store.history["experiment"].isin(wanted)].reset_index(drop=True)
        store = LoadedRuns(runs_f, hist_f, {k: v for k, v in store.specs.items() if k in wanted}, store.config_keys)
    return store


def load_runs(runs: str | Path | None = "runs", experiments: list[str] | str | None = None,
              wandb_dir: str | Path | None = None, wandb: str | None = None) -> pd.DataFrame:
    """One row per run: experiment, run, variant, label (the run without its seed), seed, status, every
    config leaf under its bare name (`lr`, `n_layer`), every summary field (`best_val_loss`, `steps`,
    `tokens_per_s`, ...). Sources as in `load`: the store, W&B offline directories, a W&B project."""
    return load(runs, experiments, wandb_dir, wandb).runs


def load_history(runs: str | Path | None = "runs", experiments: list[str] | str | None = None,
                 wandb_dir: str | Path | None = None, wandb: str | None = None) -> pd.DataFrame:
    """One row per (run, step): experiment, run, variant, label, seed, step and every logged metric
    (`train/loss`, `val/loss` on eval steps, `lr`, `tokens_per_s`, diagnostics)."""
    return load(runs, experiments, wandb_dir, wandb).history


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


def load_store(root: str | Path) -> LoadedRuns:
    """Read `runs/<experiment>/<run>/` (config.yaml, metrics.jsonl, summary.json) and specs."""
    root = Path(root)
    records: list[RunRecord] = []
    specs: dict[str, dict[str, Any]] = {}
    if not root.is_dir():
        return frames_from_records([])
    for exp_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        spec_path = exp_dir / "spec.yaml"
        sweep_path = exp_dir / "sweep.yaml"  # written by `gptlab sweep`
        if spec_path.is_file():
            spec = _unreadable_is_skipped(spec_path, lambda: read_yaml_mapping(spec_path))
            specs[exp_dir.name] = spec if isinstance(spec, dict) else {}
        elif sweep_path.is_file():
            sweep = _unreadable_is_skipped(sweep_path, lambda: read_yaml_mapping(sweep_path))
            specs[exp_dir.name] = spec_from_sweep(sweep) if isinstance(sweep, dict) else {}
        for run_dir in sorted(p for p in exp_dir.iterdir() if p.is_dir()):
            record = _unreadable_is_skipped(run_dir, lambda d=run_dir: read_run_dir(d, exp_dir.name))
            if record is not None:
                records.append(record)
    return frames_from_records(records, specs)


def spec_from_sweep(sweep: dict[str, Any]) -> dict[str, Any]:
    """A sweep file in spec terms: its description, and its metric and goal as what the report compares."""
    metric = sweep.get("metric") if isinstance(sweep.get("metric"), dict) else {}
    return {"name": sweep.get("name"), "description": sweep.get("description"),
            "compare": {"metric": metric.get("name", "val/loss"), "goal": metric.get("goal", "minimize")}}


def _unreadable_is_skipped(path: Path, read):  # noqa: ANN001, ANN202
    """A file damaged outside gptlab (the store's own writes are atomic) costs that run, not the report."""
    try:
        return read()
    except StoreError as err:
        print(f"warning: skipped {path}: {err.one_line()}", file=sys.stderr)
        return None
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError, AttributeError, TypeError) as exc:
        print(f"warning: skipped {path}: unreadable ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})",
              file=sys.stderr)
        return None


def read_run_dir(run_dir: Path, experiment: str) -> RunRecord | None:
    """One run directory; None when it holds neither a config nor a summary (not a run)."""
    config_path, summary_path = run_dir / "config.yaml", run_dir / "summary.json"
    if not config_path.is_file() and not summary_path.is_file():
        return None
    raw = read_yaml_mapping(config_path) or {}
    summary = read_summary(summary_path) or {}
    summary = {**summary, "status": str(summary["status"])} if summary else {}
    meta = dict(raw.get("run") or {})
    return RunRecord(
        experiment=meta.get("experiment") or experiment, name=meta.get("name") or run_dir.name,
        config=sectioned({s: raw.get(s) or {} for s in SECTIONS}), meta=meta, summary=summary,
        history=read_metrics(run_dir / "metrics.jsonl"), provenance=dict(raw.get("provenance") or {}))


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """metrics.jsonl rows (the store's reader); rows it leaves out (a torn last line, a non-numeric step)
    are named in one warning line."""
    read = read_metrics_file(path)
    if read.warning():
        print(f"warning: {read.warning()}", file=sys.stderr)
    return [{k: _number(v) if k != "step" else v for k, v in row.items()
             if not isinstance(v, (dict, list, str)) or k == "step"} for row in read.rows]


def _number(value: Any) -> float | None:
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
