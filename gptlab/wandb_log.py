"""Read a W&B transaction log (`run-<id>.wandb`) without a server: torch-free, used by the tracker (which
steps a resumed run's earlier segments hold) and by the analysis loaders.

wandb 0.31 no longer ships its Python `DataStore` reader, so this reads the log's framing itself (the
LevelDB log format: 32 KiB blocks of CRC-checked chunks after a 7-byte `:W&B` header) and parses each
record with wandb's own protobuf `Record`.
"""
from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any, Iterator

_FILE_HEADER = struct.Struct("<4sHB")  # ident ':W&B', magic 0xBEE1, version
_CHUNK_HEADER = struct.Struct("<IHB")  # crc32 (seeded with the chunk type), length, type
_BLOCK = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def read_wandb_file(path: str | Path) -> Iterator[bytes]:
    """Yield each serialized record of a `.wandb` transaction log; stops at a torn tail (a killed run)."""
    data = Path(path).read_bytes()
    if len(data) < _FILE_HEADER.size:
        return
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


def records(path: str | Path) -> Iterator[Any]:
    """wandb's protobuf `Record`s of one log."""
    from wandb.proto import wandb_internal_pb2 as pb

    for raw in read_wandb_file(path):
        record = pb.Record()
        record.ParseFromString(raw)
        yield record


def item_key(item: Any) -> str:
    return "/".join(item.nested_key) if len(item.nested_key) else item.key


def last_history_step(path: str | Path) -> int:
    """The highest `_step` of a log's history rows (-1 when it has none)."""
    last = -1
    for record in records(path):
        if record.WhichOneof("record_type") == "history":
            last = max([last] + [int(json.loads(i.value_json)) for i in record.history.item if item_key(i) == "_step"])
    return last


def offline_logs(wandb_dir: str | Path) -> list[Path]:
    """Every offline run's log under a `wandb/` folder (one folder per start of a run, resumes included),
    oldest first."""
    return sorted(Path(wandb_dir).glob("offline-run-*/run-*.wandb"))
