"""`gptlab sweep` runs a W&B sweep file with W&B's engine and real `gptlab train` subprocesses."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

TINY = {"n_embd": 16, "block_size": 16, "batch_size": 8, "max_steps": 20, "eval_steps": 2, "eval_interval": 20}


def gptlab(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gptlab", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def write_sweep(tmp_path: Path, name: str, **body) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "command": ["${env}", "gptlab", "train", "${args}"],
                                    "metric": {"name": "best_val_loss", "goal": "minimize"}, **body}))
    return path


def stored_runs(tmp_path: Path, experiment: str) -> dict[str, dict]:
    out = {}
    for run_dir in (tmp_path / "runs" / experiment).iterdir():
        if (run_dir / "config.yaml").is_file():
            out[run_dir.name] = {"config": yaml.safe_load((run_dir / "config.yaml").read_text()),
                                 "summary": json.loads((run_dir / "summary.json").read_text())}
    return out


def test_grid_sweep_runs_every_point_once(tmp_path: Path):
    sweep = write_sweep(tmp_path, "tinygrid", method="grid", parameters={
        "n_layer": {"values": [1, 2]}, "seed": {"values": [0, 1]}, "max_steps": {"value": 5000}})
    sets = [f"--set={k}={v}" for k, v in TINY.items()]  # max_steps=20 replaces the file's GPU-sized value
    proc = gptlab("sweep", str(sweep), "--jobs", "2", "--wandb", "disabled", *sets, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = stored_runs(tmp_path, "tinygrid")
    assert sorted(runs) == ["n_layer=1-seed0", "n_layer=1-seed1", "n_layer=2-seed0", "n_layer=2-seed1"]
    assert all(r["summary"]["status"] == "finished" and r["summary"]["steps"] == 20 for r in runs.values())
    assert {(r["config"]["model"]["n_layer"], r["config"]["train"]["seed"]) for r in runs.values()} == {
        (1, 0), (1, 1), (2, 0), (2, 1)}
    assert proc.stdout.count(" starting ") == 4 and "best: " in proc.stdout  # the job view, the final lines

    again = gptlab("sweep", str(sweep), "--wandb", "disabled", *sets, cwd=tmp_path)  # nothing left to run
    assert again.returncode == 0 and "no runs started" in again.stdout


def test_bayes_sweep_count_runs_distinct_lrs(tmp_path: Path):
    sweep = write_sweep(tmp_path, "tinybayes", method="bayes", parameters={
        "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2}, "n_layer": {"value": 1},
        **{k: {"value": v} for k, v in TINY.items()}})
    proc = gptlab("sweep", str(sweep), "--count", "4", "--jobs", "2", "--wandb", "disabled", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = stored_runs(tmp_path, "tinybayes")
    lrs = {r["config"]["train"]["lr"] for r in runs.values()}
    assert len(runs) == 4 and len(lrs) == 4 and all(1e-4 <= lr <= 1e-2 for lr in lrs)
    assert all(r["summary"]["status"] == "finished" for r in runs.values())


@pytest.mark.parametrize("text,problem", [
    ("method: [grid\n", "malformed YAML"),
    ("method: gird\nparameters: {n_layer: {values: [1, 2]}}\n", "method"),
    ("method: grid\ncommand: ['${env}', 'gptlab', 'train', '${args}']\nparameters: {n_layr: {values: [1, 2]}}\n",
     "n_layr"),
])
def test_bad_sweep_file_exits_2_naming_the_file(tmp_path: Path, text: str, problem: str):
    from typer.testing import CliRunner

    from gptlab.cli.app import app

    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["sweep", str(path), "--runs", str(tmp_path / "runs")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.yaml" in lines[0] and problem in lines[0], result.stderr
    assert not (tmp_path / "runs").exists()


def test_engine_sees_each_runs_metrics_and_hyperband_stops_the_worst(tmp_path: Path):
    """No subprocess: runs as the store holds them -> SweepRuns the engine reads (summary and history)."""
    from gptlab.sweep.config import load_sweep, sweeps_engine
    from gptlab.sweep.engine import SweepJob
    from gptlab.store import RunStore

    sweep = load_sweep(write_sweep(tmp_path, "hb", method="bayes", early_terminate={
        "type": "hyperband", "min_iter": 2, "eta": 2}, parameters={
        "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2}}))
    jobs = []
    for i, (lr, losses) in enumerate([(1e-3, [4.0, 3.0, 2.5, 2.0]), (2e-3, [4.0, 3.1, 2.4, 2.6]),
                                      (1e-4, [4.0, 3.9, 3.8, 3.7])]):
        run_dir = tmp_path / "runs" / f"r{i}"
        run_dir.mkdir(parents=True)
        (run_dir / "metrics.jsonl").write_text("".join(
            json.dumps({"step": 10 * s, "val/loss": v}) + "\n" for s, v in enumerate(losses)))
        status = "running" if i == 2 else "finished"
        (run_dir / "summary.json").write_text(json.dumps({"status": status, "best_val_loss": min(losses)}))
        job = SweepJob(f"r{i}", {"lr": lr}, RunStore(run_dir), status=status)
        job.refresh()
        jobs.append(job)
    runs = [j.sweep_run() for j in jobs]
    runs[2].state = sweeps_engine().RunState.running
    assert runs[0].summary_metrics["best_val_loss"] == 2.0
    assert runs[1].metric_history("best_val_loss") == [4.0, 3.1, 2.4, 2.4]  # running minimum, as W&B logs it
    assert [r.name for r in sweeps_engine().stop_runs(sweep.config, runs)] == ["r2"]
    proposal = sweeps_engine().next_run(sweeps_engine().SweepConfig(sweep.config), runs[:2])
    assert "no valid samples" not in proposal.search_info["warnings"]  # it fitted on the real metrics
