"""Checkpoints: model, optimizer, step and RNG states; saved atomically, loaded with weights_only=True.

A save that fails (disk full, quota, read-only or failing disk) removes its temp file and raises
StoreWriteError, leaving the last good checkpoint in place; a checkpoint that cannot be read (zero-length,
cut short, not a checkpoint) raises StoreError: one line naming the file and what to do.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from gptlab.store import StoreError, writing

# what every checkpoint holds; a file missing one of them is not a gptlab checkpoint
REQUIRED = ("model", "optimizer", "step", "config", "chars")
RESUME_FIX = "resume from scratch with --fresh (gptlab run --rerun all), or restore the file from a backup"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with writing("checkpoint", path):
            with open(tmp, "wb") as f:  # a file object: write errors surface as OSError with their errno
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # never leave half a checkpoint using the space a failure record needs
        raise


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Nothing from the file is executed: tensors and plain containers only."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise StoreError(path, "no checkpoint", fix="train the run past its first eval") from None
    if size == 0:
        raise StoreError(path, "damaged: zero-length checkpoint (the disk filled or the copy was cut short)",
                         fix=RESUME_FIX)
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except (PermissionError, IsADirectoryError) as exc:
        raise StoreError(path, f"cannot be read ({exc.strerror or exc})", fix="check the file's permissions") from None
    except Exception as exc:  # noqa: BLE001 - torch reports a cut-short zip as RuntimeError, pickle errors, ...
        problem = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise StoreError(path, f"damaged checkpoint: truncated or not a gptlab checkpoint ({problem})",
                         fix=RESUME_FIX) from None
    missing = [k for k in REQUIRED if not isinstance(state, dict) or k not in state]
    if missing:
        raise StoreError(path, f"not a gptlab checkpoint (missing {', '.join(missing)})", fix=RESUME_FIX)
    return state


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The eager module behind torch.compile's wrapper."""
    return getattr(model, "_orig_mod", model)
