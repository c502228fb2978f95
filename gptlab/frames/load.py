"""Run store (or W&B) -> two tidy DataFrames: one row per run, one row per (run, step).

The notebook API is `gptlab.load_runs` and `gptlab.load_history` (both here); `gptlab report` loads
through the same `load`, so a notebook, the report and W&B show the same numbers. Every source (local
store, W&B API, W&B offline files) is first turned into `RunRecord`s (records.py), so a run has the same
columns and values wherever it was read from. Runs that failed, diverged or were interrupted are kept with
their status; the statistics decide what to do with them.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from gptlab.frames.records import (ID_COLUMNS, RUN_COLUMNS, STATUSES, STUDY_META, SUMMARY_KEYS,  # noqa: F401
                                     LoadedRuns, RunRecord, as_number, frames_from_records, label_of,
                                     merge_stores, sectioned, with_ids)  # re-exported: the loader's API
from gptlab.config import SECTIONS
from gptlab.errors import UserError
from gptlab.store import StoreError, read_summary, read_yaml_mapping
from gptlab.store import read_metrics as read_metrics_file


def load(runs: str | Path | None = "runs", experiments: list[str] | str | None = None,
         wandb_dir: str | Path | None = None, wandb: str | None = None) -> LoadedRuns:
    """The run store at `runs` (None: none), plus W&B offline runs under `wandb_dir` and the runs of the
    W&B project `wandb` ("ENTITY/PROJECT", public API), merged; a run found twice keeps its first
    source in that order. `experiments` keeps only those."""
    stores = []
    if runs is not None:
        stores.append(load_store(runs))
    if wandb_dir is not None:
        from gptlab.frames.wandb_load import load_wandb_offline

        if not Path(wandb_dir).exists():
            raise UserError("W&B directory not found", source=str(wandb_dir), fix="check the W&B directory path")
        stores.append(load_wandb_offline(wandb_dir))
    if wandb is not None:
        from gptlab.frames.wandb_load import load_wandb_project

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
    `tokens_per_s`, ...). Sources as in `load`: the store, W&B offline directories, a W&B project.

    From the run's `run:` meta in config.yaml, as a study writes it: `stage` (the study round that
    trained the run; "compare" when the run does not say, as for `gptlab run` and older runs), `at`
    and `size` (None when absent)."""
    return load(runs, experiments, wandb_dir, wandb).runs


def load_history(runs: str | Path | None = "runs", experiments: list[str] | str | None = None,
                 wandb_dir: str | Path | None = None, wandb: str | None = None) -> pd.DataFrame:
    """One row per (run, step): experiment, run, variant, label, seed, step and every logged metric
    (`train/loss`, `val/loss` on eval steps, `lr`, `tokens_per_s`, diagnostics)."""
    return load(runs, experiments, wandb_dir, wandb).history


def load_store(root: str | Path) -> LoadedRuns:
    """Read `runs/<experiment>/<run>/` (config.yaml, metrics.jsonl, summary.json) and specs. `root` is the
    store (`runs/`) or one experiment's folder (`runs/<experiment>/`: it holds run folders with a config.yaml)."""
    root = Path(root)
    records: list[RunRecord] = []
    specs: dict[str, dict[str, Any]] = {}
    if not root.is_dir():
        return frames_from_records([])
    experiment = any((p / "config.yaml").is_file() for p in root.iterdir() if p.is_dir())
    for exp_dir in [root] if experiment else sorted(p for p in root.iterdir() if p.is_dir()):
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
    return [{k: as_number(v) if k != "step" else v for k, v in row.items()
             if not isinstance(v, (dict, list, str)) or k == "step"} for row in read.rows]


