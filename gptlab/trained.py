"""A trained run read back from its directory: the checkpoint (weights_only=True), then config, tokenizer
and model. Below the trainer and the analysis, which both read checkpoints (resume; report samples).

A checkpoint that cannot be read (zero-length, cut short, not a checkpoint) raises StoreError: one line
naming the file and what to do.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gptlab.config import RunConfig, config_from_dict
from gptlab.dataset import CharTokenizer
from gptlab.errors import UserError
from gptlab.model import build_model
from gptlab.store import RunStore, StoreError

# what every checkpoint holds; a file missing one of them is not a gptlab checkpoint
REQUIRED = ("model", "optimizer", "step", "config", "chars")
RESUME_FIX = "resume from scratch with --fresh (gptlab run --rerun all), or restore the file from a backup"


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


@dataclass(frozen=True)
class TrainedRun:
    config: RunConfig
    tokenizer: CharTokenizer
    model: nn.Module
    store: RunStore


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> TrainedRun:
    store = RunStore(run_dir)
    if not store.checkpoint_path.is_file():
        raise UserError("no checkpoint in this run directory", source=str(run_dir),
                        fix="give a run directory that has trained past its first eval")
    state = load_checkpoint(store.checkpoint_path, device)
    config = config_from_dict(state["config"])
    model = build_model(config.model).to(device)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise StoreError(store.checkpoint_path, "its weights do not fit the model its config describes "
                         f"({str(exc).splitlines()[0][:120]})", fix="retrain the run") from None
    model.eval()
    return TrainedRun(config, CharTokenizer(tuple(state["chars"])), model, store)
