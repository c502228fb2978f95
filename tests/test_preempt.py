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


def _train_until(tmp_path: Path, step: int, *extra: str) -> tuple[subprocess.Popen, Path]:
    """A tiny `gptlab train` (checkpoints only when stopped: eval_interval past max_steps) running past `step`."""
    args = [f"{k}={v}" for k, v in {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16, "batch_size": 8,
                                     "max_steps": 5000, "eval_interval": 5000, "eval_steps": 2,
                                     "log_interval": 5}.items()]
    proc = subprocess.Popen([sys.executable, "-m", "gptlab", "train", *args, *extra, "--name", "t", "--runs",
                             str(tmp_path / "runs"), "--wandb", "disabled"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    run_dir = tmp_path / "runs" / "adhoc" / "t"
    deadline = time.time() + 120
    while time.time() < deadline:
        rows = (run_dir / "metrics.jsonl").read_text().splitlines() if (run_dir / "metrics.jsonl").exists() else []
        if rows and json.loads(rows[-1]).get("step", 0) >= step:
            return proc, run_dir
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the run never reached step %d" % step)


@pytest.mark.parametrize("trial", range(3))
def test_term_cont_term_is_one_stop_that_keeps_its_checkpoint(tmp_path: Path, trial: int) -> None:
    """Slurm's preemption sends TERM, CONT, TERM within milliseconds (and a job wrapper forwards TERM to a
    child that got it too): one graceful stop, so the checkpoint is the state at the step it stopped at."""
    import os

    import torch

    proc, run_dir = _train_until(tmp_path, 40 + 17 * trial)
    for sig in (signal.SIGTERM, signal.SIGCONT, signal.SIGTERM):
        os.kill(proc.pid, sig)
        time.sleep(0.003 * trial)
    assert proc.wait(timeout=60) == 130, proc.stderr.read()[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["steps"] >= 40
    assert (run_dir / "checkpoint.pt").exists(), "the stop dropped its checkpoint"
    assert torch.load(run_dir / "checkpoint.pt", weights_only=False)["step"] == summary["steps"]


def test_a_second_ctrl_c_later_still_stops_at_once(tmp_path: Path) -> None:
    proc, run_dir = _train_until(tmp_path, 20)
    proc.send_signal(signal.SIGINT)
    time.sleep(3)  # past SAME_STOP_S: a person pressing Ctrl-C again means it
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
