"""Checkpoints: model, optimizer, step and RNG states; saved atomically, loaded with weights_only=True."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Nothing from the file is executed: tensors and plain containers only."""
    return torch.load(path, map_location=device, weights_only=True)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The eager module behind torch.compile's wrapper."""
    return getattr(model, "_orig_mod", model)
