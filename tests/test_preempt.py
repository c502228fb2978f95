"""SIGTERM from Slurm under a sweep agent: the W&B run is marked preempting, and when the sweep requeues
that W&B run, it resumes in its own run directory from its checkpoint, as one W&B run."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gptlab.sweep.command import agent_argv
from tests.test_sweep_nested import agent_env

WANDB = str(Path(sys.executable).parent / "wandb")


def records(log: Path) -> list[dict]:
    out = subprocess.run([WANDB, "leet", "inspect", "--json", str(log)], capture_output=True, text=True, timeout=120)
    return [json.loads(line) for line in out.stdout.splitlines()]


@pytest.mark.slow
def test_slurm_sigterm_marks_preempting_and_requeue_resumes(tmp_path: Path) -> None:
    point = {"n_layer": 1, "n_embd": 16, "n_head": 2, "block_size": 16, "batch_size": 8, "max_steps": 400,
             "eval_interval": 100, "eval_steps": 2, "log_interval": 5}
    argv = agent_argv(["${env}", "gptlab", "train", "${args}"], point, None)
    env = {**agent_env(tmp_path, point, "pre1"), "SLURM_JOB_ID": "77"}
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    exp = tmp_path / "runs" / "sweep-sw1"
    deadline = time.time() + 120
    while time.time() < deadline:
        metrics = list(exp.glob("*/metrics.jsonl"))
        rows = metrics[0].read_text().splitlines() if metrics else []
        if rows and json.loads(rows[-1])["step"] >= 130:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # what Slurm sends before a preemption or the time limit
    assert proc.wait(timeout=120) == 130, proc.stderr.read()[-2000:]
    (run_dir,) = exp.iterdir()
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
    (first,) = (run_dir / "wandb").glob("offline-run-*-pre1/run-pre1.wandb")
    kinds = [r["type"] for r in records(first)]
    assert "preempting" in kinds and kinds.index("preempting") < kinds.index("exit")

    out = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)  # the requeue
    assert out.returncode == 0, out.stderr[-2000:]
    assert [d.name for d in exp.iterdir()] == [run_dir.name]  # same directory: resumed, not a new run
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == 400
    logs = sorted((run_dir / "wandb").glob("offline-run-*-pre1/run-pre1.wandb"))
    assert len(logs) == 2
    steps = [r["history"]["item"]["_step"] for log in logs for r in records(log) if r["type"] == "history"]
    assert len(steps) == len(set(steps)) and max(steps) == 400
