"""Every shipped sweep file is a valid W&B sweep (the engine's own schema) and a runnable gptlab sweep."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gptlab.sweep.command import check_command
from gptlab.sweep.config import load_sweep, sweeps_engine

SWEEPS = sorted((Path(__file__).resolve().parents[1] / "sweeps").glob("*.yaml"))


def test_sweeps_are_shipped():
    assert {p.stem for p in SWEEPS} >= {"depth_vs_width", "lr_bayes", "positions"}


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_sweep_file_passes_the_engine_schema(path: Path):
    raw = yaml.safe_load(path.read_text())
    assert sweeps_engine().schema_violations_from_proposed_config(raw) == []
    assert raw["command"] == ["${env}", "gptlab", "train", "${args}"]
    assert raw["name"] and raw["metric"] == {"name": "best_val_loss", "goal": "minimize"}
    sweep = load_sweep(path)  # gptlab keys, values and combinations
    check_command(sweep.command, raw.get("program"), str(path))
    assert sweeps_engine().next_run(sweeps_engine().SweepConfig(raw), []) is not None


def test_depth_vs_width_compares_4x128_with_2x256():
    params = yaml.safe_load((SWEEPS[0].parent / "depth_vs_width.yaml").read_text())["parameters"]
    assert {2, 4} <= set(params["n_layer"]["values"]) and {128, 256} <= set(params["n_embd"]["values"])
    assert len(params["seed"]["values"]) >= 2


def test_lr_bayes_is_log_uniform_with_hyperband():
    raw = yaml.safe_load((SWEEPS[0].parent / "lr_bayes.yaml").read_text())
    assert raw["method"] == "bayes" and raw["early_terminate"]["type"] == "hyperband"
    assert raw["parameters"]["lr"]["distribution"] == "log_uniform_values"
