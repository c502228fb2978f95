"""The modern model axes (issue 31) train packed exactly as unpacked: a pack of seeds with QK-norm (its
gains stacked like the other norms), ReLU², the logit soft cap, the z-loss and μP all on at once."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import TINY
from gptlab.config import build_config
from gptlab.pack.loop import run_pack
from gptlab.pack.plan import why_not_packable
from gptlab.store import RunStore
from gptlab.train.trainer import RunMeta, run_training

SEEDS = (0, 1)
MODERN = {"qk_norm": True, "pos_encoding": "rope", "activation": "relu2", "logit_softcap": 4.0, "z_loss": 1e-2,
          "parametrization": "mup", "mup_base_width": 8}
BASE = {**TINY, "batch_size": 4, "lr": 3e-3, "max_steps": 20, "wandb": "disabled", "dtype": "float32", **MODERN}


def configs():
    return [build_config({**BASE, "seed": s}) for s in SEEDS]


def test_the_modern_axes_pack_as_unpacked(tmp_path: Path):
    assert why_not_packable(configs()[0]) is None  # nothing falls back to unpacked runs
    torch.set_num_threads(1)
    for cfg in configs():
        run_training(cfg, tmp_path / "u", RunMeta("s", f"seed{cfg.train.seed}", overrides={"seed": cfg.train.seed}))
    run_pack(configs(), [RunMeta("s", f"seed{s}", overrides={"seed": s}) for s in SEEDS], tmp_path / "p")
    for seed in SEEDS:
        p, u = RunStore(tmp_path / "p" / "s" / f"seed{seed}"), RunStore(tmp_path / "u" / "s" / f"seed{seed}")
        assert p.summary()["status"] == u.summary()["status"] == "finished"
        prows, urows = p.metrics(), u.metrics()
        assert [r["step"] for r in prows] == [r["step"] for r in urows]
        assert any("train/z_loss" in r for r in urows)
        for a, b in zip(prows, urows):
            assert a.keys() - {"tokens_per_s"} >= {"step"} and set(a) & {"train/loss", "train/z_loss", "val/loss"} \
                == set(b) & {"train/loss", "train/z_loss", "val/loss"}
            for key in ("train/loss", "train/z_loss", "val/loss"):
                if key in a:
                    assert a[key] == pytest.approx(b[key], abs=1e-5), (seed, a["step"], key)
        pc = torch.load(p.checkpoint_path, weights_only=True)["model"]
        uc = torch.load(u.checkpoint_path, weights_only=True)["model"]
        assert any("qk_norm" in name for name in uc)
        for name, tensor in uc.items():
            assert torch.allclose(pc[name], tensor, atol=1e-5), name
