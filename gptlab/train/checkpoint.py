"""Checkpoints: model, optimizer, step and RNG states; saved atomically, loaded with weights_only=True
(the reader lives below the trainer, in gptlab/trained.py, since the analysis reads checkpoints too).

A save that fails (disk full, quota, read-only or failing disk) removes its temp file and raises
StoreWriteError, leaving the last good checkpoint in place.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from gptlab.store import writing
from gptlab.trained import REQUIRED, RESUME_FIX, load_checkpoint  # noqa: F401 - re-exported


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


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The eager module behind torch.compile's wrapper."""
    return getattr(model, "_orig_mod", model)
