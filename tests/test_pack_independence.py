"""A run's numbers do not depend on its pack-mates: the same run unpacked, in a pack of 2 (another seed) and in
a pack of 8 whose mates differ in seed and in every packable key (lr, weight decay, clipping, betas,
dropout rate), real tiny training, float32 and bf16 autocast, with dropout on. The issue's bound is 1e-4 on
the final val loss; on a CPU the packed member is its unpacked run bit for bit, every logged number."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gptlab.config import build_config
from gptlab.pack.loop import run_pack
from gptlab.train.trainer import RunMeta, run_training

BASE = {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 32, "batch_size": 4, "max_steps": 40, "lr": 3e-3,
        "warmup_steps": 5, "eval_interval": 20, "eval_steps": 4, "log_interval": 5, "dropout": 0.1,
        "wandb": "disabled", "diagnostics": "off"}
MATES = [{"seed": s, "lr": 3e-3 * (1 + s / 4), "weight_decay": 0.05 * s, "grad_clip": [1.0, 0.5, 0.0][s % 3],
          "beta2": [0.99, 0.95][s % 2], "dropout": 0.05 + 0.05 * (s % 3)} for s in range(1, 8)]


def rows(root: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (root / "e" / name / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_member_trains_the_same_unpacked_in_a_pack_of_2_and_in_a_pack_of_8(tmp_path: Path, dtype: str):
    torch.set_num_threads(1)
    cfg = lambda **k: build_config({**BASE, "dtype": dtype, **k})  # noqa: E731
    run_training(cfg(seed=0), tmp_path / "alone", RunMeta("e", "run"))
    run_pack([cfg(seed=0), cfg(seed=1)], [RunMeta("e", "run"), RunMeta("e", "mate")], tmp_path / "two")
    run_pack([cfg(seed=0)] + [cfg(**m) for m in MATES],
             [RunMeta("e", "run")] + [RunMeta("e", f"mate{i}") for i in range(7)], tmp_path / "eight")
    alone, two, eight = (rows(tmp_path / d, "run") for d in ("alone", "two", "eight"))
    final = alone[-1]["val/loss"]
    assert two[-1]["val/loss"] == pytest.approx(final, abs=1e-4)
    assert eight[-1]["val/loss"] == pytest.approx(final, abs=1e-4)
    for packed in (two, eight):  # and on this CPU, every logged loss to the bit
        assert [(r["step"], r.get("train/loss"), r.get("val/loss")) for r in packed] == \
               [(r["step"], r.get("train/loss"), r.get("val/loss")) for r in alone]
    mates = [rows(tmp_path / "eight", f"mate{i}")[-1]["val/loss"] for i in range(7)]
    assert len({final, *mates}) == 8  # the mates really trained differently
