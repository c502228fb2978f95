"""The three random streams of a run, each from its own seed, so that seed s of two variants pairs.

    init     torch.manual_seed(init) before build_model: every weight is drawn from a stream keyed by
             this seed and the parameter's name (gptlab/model/init.py), plugin components from torch's
             global generator seeded with it
    data     the batch sampler's generator: which training windows, in which order
    dropout  the dropout masks' generator (gptlab/model/dropout.py); a packed member has its own

`init_seed` and `data_seed` (train keys, default null = `seed`) vary one stream with the other held;
the dropout stream follows `seed`. The data stream is the generator seeded with the seed itself, as
before 0.4.0, so a run's batches did not change; the dropout seed is hashed from `seed` so that its masks
are not the data stream's draws.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from gptlab.model.init import stream_seed


@dataclass(frozen=True)
class Streams:
    init: int
    data: int
    dropout: int


def run_streams(train) -> Streams:  # noqa: ANN001 - a TrainConfig
    init = train.seed if train.init_seed is None else train.init_seed
    data = train.seed if train.data_seed is None else train.data_seed
    return Streams(init=init, data=data, dropout=stream_seed(train.seed, "dropout"))


def dropout_generator(train, device: torch.device) -> torch.Generator:  # noqa: ANN001
    """The run's dropout stream on `device` (masks are drawn where the activations live)."""
    return torch.Generator(device=device).manual_seed(run_streams(train).dropout)
