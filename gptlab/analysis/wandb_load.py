"""W&B runs -> the same `RunRecord`s as the local store, so sweeps run elsewhere can be reported.

Two sources: a W&B project through the public API (`wandb.Api()`; needs a server, untested here)
and offline run directories (`wandb/offline-run-*/run-*.wandb`). wandb 0.31 no longer ships its
Python `DataStore` reader, so `read_wandb_file` reads the transaction log's framing itself (the
LevelDB log format: 32 KiB blocks of CRC-checked chunks after a 7-byte `:W&B` header) and parses
each record with wandb's own protobuf `Record`.
"""
from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any, Iterator

from gptlab.analysis.load import RunRecord, Store, frames_from_records, label_of, sectioned

_FILE_HEADER = struct.Struct("<4sHB")  # ident ':W&B', magic 0xBEE1, version
_CHUNK_HEADER = struct.Struct("<IHB")  # crc32 (seeded with the chunk type), length, type
_BLOCK = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4
# wandb's run states -> gptlab statuses when the run never logged its own `status`
_STATE = {"finished": "finished", "crashed": "failed", "failed": "failed", "killed": "interrupted",
          "running": "running", "preempted": "interrupted"}


def read_wandb_file(path: str | Path) -> Iterator[bytes]:
    """Yield each serialized record of a `.wandb` transaction log; stops at a torn tail."""
    data = Path(path).read_bytes()
    ident, magic, _version = _FILE_HEADER.unpack_from(data, 0)
    if ident != b":W&B" or magic != 0xBEE1:
        raise ValueError(f"{path}: not a W&B transaction log")
    pos, pending = _FILE_HEADER.size, b""
    while pos + _CHUNK_HEADER.size <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _CHUNK_HEADER.size:  # block trailer padding
            pos += left
            continue
        crc, length, kind = _CHUNK_HEADER.unpack_from(data, pos)
        chunk = data[pos + _CHUNK_HEADER.size: pos + _CHUNK_HEADER.size + length]
        if kind == 0 or len(chunk) < length or zlib.crc32(chunk, zlib.crc32(bytes([kind]))) != crc:
            return
        pos += _CHUNK_HEADER.size + length
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            yield pending + chunk


def _item_key(item: Any) -> str:
    return "/".join(item.nested_key) if len(item.nested_key) else item.key


def parse_wandb_file(path: str | Path) -> RunRecord:
    """Replay run/config/history/summary/exit records of one offline run into a RunRecord."""
    from wandb.proto import wandb_internal_pb2 as pb

    config: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    info: dict[str, str] = {}
    exit_code: int | None = None
    for raw in read_wandb_file(path):
        record = pb.Record()
        record.ParseFromString(raw)
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
            history.append({_item_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "exit":
            exit_code = record.exit.exit_code
    if "status" not in summary and exit_code is not None:
        summary["status"] = "finished" if exit_code == 0 else "failed"
    return _record(info, config, summary, history, source="wandb-offline")


def _apply(target: dict[str, Any], updates: Any, removes: Any) -> None:
    for item in updates:
        target[_item_key(item)] = json.loads(item.value_json)
    for item in removes:
        target.pop(_item_key(item), None)


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
                                           if not k.startswith("_") and k != "step" and _float(v) is not None}})
    rows = _merge_steps(rows)
    summary = {k: v for k, v in summary.items() if not k.startswith("_")}
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


def load_wandb_offline(root: str | Path) -> Store:
    """Every `*.wandb` file under `root` (e.g. a `wandb/` folder copied from another machine)."""
    files = sorted(Path(root).rglob("run-*.wandb"))
    return frames_from_records([parse_wandb_file(f) for f in files])


def load_wandb_project(path: str) -> Store:
    """All runs of `ENTITY/PROJECT` through wandb's public API (needs network and credentials)."""
    import wandb

    records = []
    for run in wandb.Api().runs(path):
        summary = dict(run.summary._json_dict)
        summary.setdefault("status", _STATE.get(run.state, run.state))
        info = {"id": run.id, "name": run.name, "group": run.group or "", "job_type": run.job_type or "",
                "project": run.project}
        records.append(_record(info, dict(run.config), summary, list(run.scan_history()), source="wandb"))
    return frames_from_records(records)
