"""A report from a store written by real (tiny) training runs through `gptlab.train.run_training`."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from gptlab import train
from gptlab.frames.load import load_store
from gptlab.report.build import write_reports
from gptlab.config import build_config
from gptlab.dataset import default_data_path

TINY = {"max_steps": 10, "n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16, "batch_size": 8,
        "eval_interval": 5, "eval_steps": 1, "log_interval": 5, "device": "cpu", "compile": False,
        "warmup_steps": 2, "dropout": 0.0, "wandb": "disabled"}


def test_report_on_real_runs(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    text = tmp_path / "tiny.txt"  # a slice of Tiny Shakespeare: tokenizing it is instant
    text.write_text(default_data_path().read_text(encoding="utf-8")[:20_000], encoding="utf-8")
    variants = {"learned": {"pos_encoding": "learned"}, "rope": {"pos_encoding": "rope"},
                "blowup": {"lr": 1.0e4, "grad_clip": 0.0, "warmup_steps": 0}}
    for variant, overrides in variants.items():
        for seed in (0, 1):
            cfg = build_config({**TINY, **overrides, "seed": seed, "path": str(text)})
            meta = train.RunMeta(experiment="tiny", name=f"{variant}-seed{seed}", variant=variant,
                                 overrides={**overrides, "seed": seed})
            train.run_training(cfg, runs, meta)
    store = load_store(runs)
    assert len(store.runs) == 6 and set(store.runs["label"]) == set(variants)
    assert (store.runs[store.runs["label"] != "blowup"]["status"] == "finished").all()
    write_reports(runs, tmp_path / "reports")
    csv = pd.read_csv(tmp_path / "reports" / "tiny" / "summary.csv").set_index("variant")
    finished = store.runs[store.runs["status"] == "finished"]
    for label in ("learned", "rope"):
        assert csv.loc[label, "n"] == 2
        assert csv.loc[label, "mean"] == pytest.approx(
            finished[finished["label"] == label]["best_val_loss"].mean(), rel=1e-5)
    blowup = store.runs[store.runs["label"] == "blowup"]
    assert list(blowup["status"]) == ["diverged", "diverged"]  # lr 1e4 without clipping: every seed
    assert csv.loc["blowup", "n"] == 0 and csv.loc["blowup", "n_diverged"] == 2 and csv.loc["blowup", "n_failed"] == 0
    md = (tmp_path / "reports" / "tiny" / "report.md").read_text()
    assert "## Findings" in md and "| learned | 2/2 |" in md
    assert "blowup diverged in 2 of 2 seeds." in md
