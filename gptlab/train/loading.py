"""Load a trained run back from its directory: config, tokenizer and weights (weights_only=True)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from gptlab.config import RunConfig, config_from_dict
from gptlab.dataset import CharTokenizer
from gptlab.errors import UserError
from gptlab.model import build_model
from gptlab.train.checkpoint import load_checkpoint
from gptlab.store import RunStore, StoreError


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
