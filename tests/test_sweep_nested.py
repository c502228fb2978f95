"""Every W&B parameter form: nested groups (at any depth, or chosen whole), null, numbers written as strings,
through `gptlab sweep` and through the command a `wandb agent` runs; a diverged agent run is a result."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gptlab.overrides import parse_overrides
from gptlab.sweep.command import agent_argv
from gptlab.sweep.config import load_sweep
from tests.conftest import cli

NESTED = """
name: nested_sweep
method: grid
metric: {name: best_val_loss, goal: minimize}
command: ["${env}", "gptlab", "train", "${args}"]
parameters:
  model:
    parameters:
      n_layer: {values: [1, 2]}
      width:
        parameters:
          n_embd: {value: 16}
          n_head: {value: 2}
  train:
    parameters:
      lr: {value: "1e-3"}
      max_steps: {value: 6}
      eval_interval: {value: 6}
      eval_steps: {value: 2}
  dropout: {value: null}
  shape:
    values: [{block_size: 16, batch_size: 4}]
"""
TINY_FIXED = {"n_embd": 16, "n_head": 2, "block_size": 16, "batch_size": 4, "max_steps": 6, "eval_interval": 6,
              "eval_steps": 2}


def test_nested_groups_flatten_to_gptlab_keys(tmp_path: Path, capsys) -> None:
    path = tmp_path / "nested.yaml"
    path.write_text(NESTED)
    sweep = load_sweep(path)
    params = sweep.config["parameters"]
    assert set(params) == {"n_layer", "n_embd", "n_head", "lr", "max_steps", "eval_interval", "eval_steps", "shape"}
    assert params["lr"] == {"value": 0.001} and sweep.searched == ("n_layer",)
    err = capsys.readouterr().err
    assert "nested.yaml:16: parameters.train.parameters.lr.value: '1e-3' is a string" in err and "1.0e-3" in err


def test_distributions_at_depth_and_bad_leaves(tmp_path: Path) -> None:
    path = tmp_path / "bayes.yaml"
    path.write_text(yaml.safe_dump({"method": "bayes", "metric": {"name": "val/loss", "goal": "minimize"},
                                    "parameters": {"opt": {"parameters": {"lr": {
                                        "distribution": "log_uniform_values", "min": "1e-4", "max": 0.01}}}}}))
    assert load_sweep(path).config["parameters"]["lr"]["min"] == 1e-4
    path.write_text(yaml.safe_dump({"method": "grid", "parameters": {"model": {"parameters": {
        "n_layers": {"values": [1, 2]}}}}}))
    from typer.testing import CliRunner

    from gptlab.cli.app import app

    out = CliRunner().invoke(app, ["sweep", str(path), "--count", "1"])
    assert out.exit_code == 2 and "n_layers" in out.stderr and "did you mean 'n_layer'" in out.stderr, out.output
    assert "bayes.yaml:5: parameters.model.parameters.n_layers" in out.stderr and len(out.stderr.splitlines()) == 1


def test_agent_overrides_read_every_form() -> None:
    argv = agent_argv(["${env}", "gptlab", "train", "${args}"], {
        "model": {"n_layer": 2, "inner": {"n_embd": 16}}, "train": {"lr": "1e-3"}, "arch.n_head": 2,
        "dropout": None}, None)
    assert "--model={'n_layer': 2, 'inner': {'n_embd': 16}}" in argv and "--dropout=None" in argv
    assert parse_overrides(argv[3:]) == {"n_layer": 2, "n_embd": 16, "lr": 0.001, "n_head": 2, "dropout": None}


@pytest.mark.slow
def test_gptlab_sweep_runs_a_nested_sweep(tmp_path: Path) -> None:
    (tmp_path / "nested.yaml").write_text(NESTED)
    out = cli("sweep", "nested.yaml", "--wandb", "disabled", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    runs = sorted((tmp_path / "runs" / "nested_sweep").glob("n_layer=*"))
    assert [r.name for r in runs] == ["n_layer=1", "n_layer=2"]
    for i, run in enumerate(runs, start=1):
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["model"]["n_layer"] == i and config["model"]["n_embd"] == 16
        assert config["model"]["block_size"] == 16 and config["train"]["batch_size"] == 4
        assert config["train"]["lr"] == 0.001 and config["model"]["dropout"] == 0.2  # null: the default
        assert json.loads((run / "summary.json").read_text())["status"] == "finished"
    again = cli("sweep", "nested.yaml", "--wandb", "disabled", cwd=tmp_path)  # the stored runs are the grid
    assert again.returncode == 0 and "no runs started" in again.stdout, again.stdout + again.stderr


def agent_env(tmp_path: Path, params: dict, run_id: str) -> dict:
    """What `wandb agent` sets up for a run: the sweep and run ids and the parameters file it writes."""
    path = tmp_path / "wandb" / "sweep-sw1" / f"config-{run_id}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"wandb_version": 1, **{k: {"value": v} for k, v in params.items()}}))
    return {**os.environ, "WANDB_MODE": "offline", "WANDB_SWEEP_ID": "sw1", "WANDB_RUN_ID": run_id,
            "WANDB_SWEEP_PARAM_PATH": str(path), "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true",
            "OMP_NUM_THREADS": "1", "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}


def leet_summary(run_dir: Path, run_id: str) -> dict:
    (log,) = (run_dir / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb")
    out = subprocess.run([str(Path(sys.executable).parent / "wandb"), "leet", "inspect", "--summary", "--json",
                          str(log)], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)


@pytest.mark.slow
def test_agent_runs_a_nested_point_and_a_diverged_run_exits_0(tmp_path: Path) -> None:
    import gptlab

    point = {"model": {"n_layer": 1, "width": {"n_embd": 16, "n_head": 2}},
             "train": {"lr": "1e-3", "max_steps": 6, "eval_interval": 6, "eval_steps": 2, "batch_size": 4},
             "block_size": 16, "dropout": None}
    argv = agent_argv(["${env}", "gptlab", "train", "${args}"], point, None)
    out = subprocess.run(argv, cwd=tmp_path, env=agent_env(tmp_path, point, "ok1"), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    (run_dir,) = (tmp_path / "runs" / "sweep-sw1").iterdir()
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["model"]["n_layer"] == 1 and config["train"]["lr"] == 0.001 and config["model"]["dropout"] == 0.2
    # what W&B holds reads back as the same run: every config leaf, despite the agent's locked `model` group
    store_row = gptlab.load_runs(tmp_path / "runs").iloc[0]
    wandb_row = gptlab.load_runs(None, wandb_dir=tmp_path / "runs").iloc[0]
    for key in ("n_layer", "n_embd", "n_head", "block_size", "lr", "dropout", "max_steps", "best_val_loss"):
        assert wandb_row[key] == store_row[key], key

    bad = {**point, "train": {**point["train"], "lr": 1000.0, "max_steps": 30, "warmup_steps": 0, "grad_clip": 0.0}}
    argv = agent_argv(["${env}", "gptlab", "train", "${args}"], bad, None)
    out = subprocess.run(argv, cwd=tmp_path, env=agent_env(tmp_path, bad, "div1"), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]  # a result for the sweep, not a crash
    (run_dir,) = [d for d in (tmp_path / "runs" / "sweep-sw1").iterdir() if "lr=1000" in d.name]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["best_val_loss"] is not None
    wb = leet_summary(run_dir, "div1")
    assert wb["exit_code"] == 0 and wb["summary"]["status"] == "diverged"
    assert wb["summary"]["best_val_loss"] == summary["best_val_loss"]
