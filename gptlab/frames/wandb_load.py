"""W&B runs -> the same `RunRecord`s as the local store, so `load_runs` / `load_history` give the same
columns and numbers whether a run is read from the store, its offline W&B files or the W&B server.

Two sources: a W&B project through the public API (`wandb.Api()`; needs a server) and offline run
directories (`offline-run-*/run-*.wandb`, read with `gptlab.wandb_log`). A resumed run wrote one offline
folder per start with the same id: they are replayed in order as one run.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from gptlab.frames.records import SUMMARY_KEYS, LoadedRuns, RunRecord, frames_from_records, label_of, sectioned
from gptlab.wandb_log import item_key, read_wandb_file, records  # noqa: F401 - read_wandb_file re-exported

# wandb's run states -> gptlab statuses when the run never logged its own `status`
_STATE = {"finished": "finished", "crashed": "failed", "failed": "failed", "killed": "interrupted",
          "running": "running", "preempted": "interrupted", "preempting": "interrupted"}
# series the tracker adds to W&B's history for the sweep's benefit (the store's summary holds it)
_TRACKER_ONLY = ("best_val_loss",)


def parse_wandb_file(*paths: str | Path) -> RunRecord:
    """Replay run/config/history/summary/exit records of one offline run (its folders in start order)
    into a RunRecord."""
    config: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    info: dict[str, str] = {}
    exit_code: int | None = None
    for path in paths:
        for record in records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run = record.run
                info = {"id": run.run_id, "name": run.display_name, "group": run.run_group,
                        "job_type": run.job_type, "project": run.project}
                _apply(config, run.config.update, run.config.remove)
                _apply(summary, run.summary.update, run.summary.remove)
            elif kind == "config":
                _apply(config, record.config.update, record.config.remove)
            elif kind == "summary":
                _apply(summary, record.summary.update, record.summary.remove)
            elif kind == "history":
                history.append({item_key(i): json.loads(i.value_json) for i in record.history.item})
            elif kind == "exit":
                exit_code = record.exit.exit_code
    if "status" not in summary and exit_code is not None:
        summary["status"] = "finished" if exit_code == 0 else "failed"
    if not info and paths:  # killed before W&B wrote its run record: the store's layout names the run
        info = _info_from_layout(Path(paths[-1]))
    return _record(info, config, summary, history, source="wandb-offline")


def _info_from_layout(log: Path) -> dict[str, str]:
    """runs/<experiment>/<run>/wandb/offline-run-<time>-<id>/run-<id>.wandb -> that run's names."""
    run_dir = log.parent.parent.parent
    if log.parent.parent.name != "wandb" or not (run_dir / "config.yaml").is_file():
        return {}
    return {"id": log.stem.removeprefix("run-"), "name": run_dir.name, "group": run_dir.parent.name}


def _apply(target: dict[str, Any], updates: Any, removes: Any) -> None:
    for item in updates:
        target[item_key(item)] = json.loads(item.value_json)
    for item in removes:
        target.pop(item_key(item), None)


def _record(info: dict[str, str], config: dict[str, Any], summary: dict[str, Any],
            history: list[dict[str, Any]], source: str) -> RunRecord:
    """Map W&B's names onto the store's: group = experiment, `run:` config section or name = label."""
    config = {k: v.get("value", v) if isinstance(v, dict) and set(v) <= {"value", "desc"} else v
              for k, v in config.items() if not k.startswith("_")}  # API configs wrap values
    meta = dict(config.get("run") or {})
    name = meta.get("name") or info.get("name") or info.get("id") or "run"
    meta.setdefault("label", label_of(name))
    meta.setdefault("variant", info.get("job_type") or None)
    rows = []
    for row in history:
        step = row.get("step", row.get("_step"))
        if step is None:
            continue
        rows.append({"step": int(step), **{k: _float(v) for k, v in row.items()
                                           if not k.startswith("_") and k != "step" and k not in _TRACKER_ONLY
                                           and _float(v) is not None}})
    rows = _merge_steps(rows)
    # summary.json's fields only: W&B's summary also keeps each series' last value (history, not summary)
    summary = {k: v for k, v in summary.items() if k in SUMMARY_KEYS or k in ("status", "error")}
    experiment = meta.get("experiment") or info.get("group") or info.get("project") or "wandb"
    return RunRecord(experiment=experiment, name=name, config=sectioned(config), meta=meta,
                     summary=summary, history=rows, provenance=dict(config.get("provenance") or {}),
                     source=source)


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return float(value) if value in ("NaN", "Infinity", "-Infinity") else None
    return float(value)


def _merge_steps(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per step (a step may be logged in several calls), steps increasing."""
    merged: dict[int, dict[str, Any]] = {}
    for row in rows:
        merged.setdefault(row["step"], {}).update(row)
    return [merged[s] for s in sorted(merged)]


def offline_run_logs(root: str | Path) -> list[list[Path]]:
    """The `.wandb` logs under `root` (a `wandb/` folder, a run store, a copy from another machine), one
    list per run: the folders of one run id under one parent, in start order (the folder name's time)."""
    by_run: dict[tuple[Path, str], list[Path]] = defaultdict(list)
    for log in sorted(Path(root).rglob("run-*.wandb")):
        by_run[(log.parent.parent, log.stem)].append(log)
    return [sorted(logs, key=lambda p: p.parent.name) for _, logs in sorted(by_run.items())]


def load_wandb_offline(root: str | Path) -> LoadedRuns:
    """Every offline W&B run under `root`, resumed runs as one run."""
    by_start = sorted(offline_run_logs(root), key=lambda logs: logs[-1].parent.name.split("-run-")[-1])
    return frames_from_records(latest_attempts([parse_wandb_file(*logs) for logs in by_start]))


def latest_attempts(records_: list[RunRecord]) -> list[RunRecord]:
    """One record per (experiment, run): a run that started over (killed before its first checkpoint, or
    rerun from scratch) left its earlier attempt as another W&B run; the store holds the latest, so do we.
    `records_` come oldest start first."""
    latest = {(r.experiment, r.name): r for r in records_}
    return list(latest.values())


def load_wandb_project(path: str) -> LoadedRuns:
    """All runs of `ENTITY/PROJECT` through wandb's public API (needs network and credentials)."""
    import wandb

    records_ = []
    for run in sorted(wandb.Api().runs(path), key=lambda r: str(getattr(r, "created_at", "") or "")):
        summary = dict(run.summary._json_dict)
        summary.setdefault("status", _STATE.get(run.state, run.state))
        info = {"id": run.id, "name": run.name, "group": run.group or "", "job_type": run.job_type or "",
                "project": run.project}
        records_.append(_record(info, dict(run.config), summary, list(run.scan_history()), source="wandb"))
    return frames_from_records(latest_attempts(records_))
