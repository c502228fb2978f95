"""gptlab.load_runs / load_history: one row per run and per (run, step); the store and the runs' own offline
W&B files give the same columns and numbers, and `gptlab report` loads through the same function."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import cli, tiny_args


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("nb")
    for seed in (0, 1):
        out = cli("train", *tiny_args(max_steps=20, seed=seed), "--runs", str(root), "--experiment", "nb",
                  "--name", f"lr=0.003-seed{seed}", "--wandb", "offline", cwd=root)
        assert out.returncode == 0, out.stderr
    return root


def test_import_gptlab_is_light() -> None:
    code = "import sys, gptlab, gptlab.frames.load; gptlab.load_runs; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_load_runs_from_the_store(store: Path) -> None:
    import gptlab

    runs = gptlab.load_runs(store)
    assert list(runs["run"]) == ["lr=0.003-seed0", "lr=0.003-seed1"]
    for column in ("experiment", "run", "variant", "label", "seed", "status", "lr", "n_layer", "max_steps",
                   "best_val_loss", "final_val_loss", "steps", "wall_s", "tokens_per_s", "n_params", "device"):
        assert column in runs.columns, column
    assert set(runs["label"]) == {"lr=0.003"} and list(runs["seed"]) == [0, 1]
    for _, row in runs.iterrows():  # every summary field, as summary.json holds it
        summary = json.loads((store / "nb" / row["run"] / "summary.json").read_text())
        for key in ("best_val_loss", "final_val_loss", "steps", "wall_s", "tokens_per_s", "n_params"):
            assert row[key] == summary[key], key
        assert row["status"] == summary["status"] == "finished"
    assert gptlab.load_runs(store, experiments=["other"]).empty


def test_an_experiments_folder_loads_as_the_store_does(store: Path) -> None:
    """`load_runs("runs/nb")` (an experiment's folder: run folders with a config.yaml) is `load_runs("runs")`'s
    rows of nb, history and all; a folder of neither kind is empty."""
    import gptlab
    from gptlab.frames.load import load

    (store / "nb" / "spec.yaml").write_text("name: nb\ndescription: one experiment\n")
    try:
        whole, one = load(store), load(store / "nb")
        pd.testing.assert_frame_equal(one.runs, whole.runs)
        pd.testing.assert_frame_equal(one.history, whole.history)
        assert one.specs == whole.specs == {"nb": {"name": "nb", "description": "one experiment"}}
        assert list(gptlab.load_runs(store / "nb", experiments="nb")["run"]) == ["lr=0.003-seed0", "lr=0.003-seed1"]
        assert len(gptlab.load_history(store / "nb")) == len(gptlab.load_history(store)) > 0
        assert gptlab.load_runs(store / "nb" / "lr=0.003-seed0").empty  # a run's folder holds no runs
    finally:
        (store / "nb" / "spec.yaml").unlink()


def test_load_history_has_one_row_per_step(store: Path) -> None:
    import gptlab

    hist = gptlab.load_history(store, experiments="nb")
    assert list(hist.columns[:6]) == ["experiment", "run", "variant", "label", "seed", "step"]
    for name, rows in hist.groupby("run"):
        stored = [json.loads(x) for x in (store / "nb" / name / "metrics.jsonl").read_text().splitlines()]
        assert list(rows["step"]) == [r["step"] for r in stored]
        evals = rows.dropna(subset=["val/loss"])
        assert list(evals["val/loss"]) == [r["val/loss"] for r in stored if "val/loss" in r]
        assert set(rows["seed"]) == {int(name[-1])}


def test_store_and_offline_wandb_agree(store: Path) -> None:
    import gptlab

    a, b = gptlab.load_runs(store), gptlab.load_runs(None, wandb_dir=store)
    assert set(b["source"]) == {"wandb-offline"}
    a, b = a.drop(columns="source"), b.drop(columns="source")
    assert sorted(a.columns) == sorted(b.columns)
    pd.testing.assert_frame_equal(a, b[a.columns], check_dtype=False)
    ha, hb = gptlab.load_history(store), gptlab.load_history(wandb_dir=store, runs=None)
    assert sorted(ha.columns) == sorted(hb.columns)
    pd.testing.assert_frame_equal(ha, hb[ha.columns], check_dtype=False)


def test_report_loads_through_the_notebook_api(store: Path) -> None:
    import gptlab
    from gptlab.report.build import load_all

    loaded = load_all(store)
    pd.testing.assert_frame_equal(loaded.runs, gptlab.load_runs(store))
    pd.testing.assert_frame_equal(loaded.history, gptlab.load_history(store))
