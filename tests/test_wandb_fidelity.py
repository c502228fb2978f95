"""What W&B shows equals what gptlab stored: real offline W&B runs, read back with W&B's own reader
(`wandb leet inspect --summary --json`, and `--json` for every record)."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import cli, tiny_args

WANDB = str(Path(sys.executable).parent / "wandb")


def leet(path: Path, *flags: str) -> str:
    out = subprocess.run([WANDB, "leet", "inspect", *flags, str(path)], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "WANDB_SILENT": "true"})
    assert out.returncode == 0, out.stderr
    return out.stdout


def offline_dirs(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "wandb").glob("offline-run-*"))


def history_steps(offline_dir: Path) -> list[int]:
    """Every history record's step, as W&B's reader prints the log's records."""
    steps = []
    for line in leet(offline_dir, "--json").splitlines():
        record = json.loads(line)
        if record.get("type") == "history":
            steps.append(int(record["history"]["item"]["_step"]))
    return steps


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fidelity")
    out = cli("train", *tiny_args(max_steps=20), "--runs", str(root), "--name", "r", "--experiment", "fid",
              "--wandb", "offline", cwd=root)
    assert out.returncode == 0, out.stderr
    return root / "fid" / "r"


def test_wandb_summary_equals_summary_json(offline_run: Path) -> None:
    (folder,) = offline_dirs(offline_run)
    wb = json.loads(leet(folder, "--summary", "--json"))
    stored = json.loads((offline_run / "summary.json").read_text())
    shared = [k for k in stored if k in wb["summary"]]
    assert {"status", "best_val_loss", "final_val_loss", "steps", "tokens_per_s", "wall_s", "n_params"} <= set(shared)
    for key in shared:
        assert wb["summary"][key] == stored[key], key  # tokens_per_s above all: the history row also has one
    assert wb["state"] == "finished" and wb["exit_code"] == 0
    # group = experiment, job_type = variant or the seedless label, the label in the config
    assert wb["config"]["run"]["label"] == "r" and wb["config"]["run"]["experiment"] == "fid"


def test_val_loss_summary_is_its_minimum(offline_run: Path) -> None:
    (folder,) = offline_dirs(offline_run)
    wb = json.loads(leet(folder, "--summary", "--json"))
    vals = [json.loads(line)["val/loss"] for line in (offline_run / "metrics.jsonl").read_text().splitlines()
            if "val/loss" in json.loads(line)]
    assert len(vals) >= 3  # several evals
    assert math.isclose(wb["summary"]["val/loss"]["min"], min(vals))
    assert math.isclose(wb["summary"]["best_val_loss"], min(vals))


@pytest.mark.slow
def test_resumed_run_is_one_wandb_run_without_repeated_steps(tmp_path: Path) -> None:
    """Kill a run between checkpoints, resume it: two offline segments, one id, every step sent once."""
    args = [*tiny_args(max_steps=400, eval_interval=100, log_interval=5), "--runs", str(tmp_path), "--name", "r",
            "--experiment", "fid", "--wandb", "offline"]
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "gptlab", "train", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = tmp_path / "fid" / "r" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:  # past the first checkpoint (step 100), before the next one
        rows = [json.loads(x) for x in metrics.read_text().splitlines()] if metrics.exists() else []
        if rows and rows[-1]["step"] >= 130:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # no clean exit: steps after the checkpoint reached W&B already
    proc.wait(timeout=60)
    killed_at = rows[-1]["step"]
    assert killed_at < 200
    out = cli("train", *args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    run_dir = tmp_path / "fid" / "r"
    folders = offline_dirs(run_dir)
    assert len(folders) == 2
    ids = {json.loads(leet(f, "--summary", "--json"))["run_id"] for f in folders}
    assert len(ids) == 1
    steps = [s for f in folders for s in history_steps(f)]
    assert len(steps) == len(set(steps)), "a step reached W&B twice"
    stored = [json.loads(x)["step"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert sorted(steps) == stored
    wb = json.loads(leet(folders[-1], "--summary", "--json"))
    assert wb["summary"]["steps"] == 400


@pytest.mark.slow
def test_a_run_that_starts_over_is_a_new_wandb_run_and_loads_as_the_store_s(tmp_path: Path) -> None:
    """Killed before its first checkpoint, a run starts over from step 0: W&B cannot restart a run id, so it
    is a new W&B run; the loaders keep the latest attempt, as the store does."""
    import pandas as pd

    import gptlab

    args = [*tiny_args(max_steps=300, eval_interval=300, log_interval=5), "--runs", str(tmp_path / "runs"),
            "--name", "r", "--experiment", "fid", "--wandb", "offline"]
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "gptlab", "train", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = tmp_path / "runs" / "fid" / "r" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and len(metrics.read_text().splitlines()) > 5):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert not (metrics.parent / "checkpoint.pt").exists()
    out = cli("train", *args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    folders = offline_dirs(metrics.parent)
    assert len({f.name.rsplit("-", 1)[1] for f in folders}) == len(folders) == 2
    store, wb = gptlab.load_runs(tmp_path / "runs"), gptlab.load_runs(None, wandb_dir=tmp_path / "runs")
    assert len(wb) == 1 and wb.iloc[0]["steps"] == store.iloc[0]["steps"] == 300
    hs, hw = gptlab.load_history(tmp_path / "runs"), gptlab.load_history(None, wandb_dir=tmp_path / "runs")
    pd.testing.assert_frame_equal(hs, hw[hs.columns], check_dtype=False)
