"""What `wandb agent` would run for depth_vs_width.yaml trains, joins the agent's W&B run, and puts the
sweep metric in that run's summary, as W&B's own reader (`wandb leet inspect`) reads it back."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests import leet

ROOT = Path(__file__).resolve().parents[1]
SHRINK = ["--max_steps=20", "--block_size=16", "--batch_size=8", "--eval_steps=2", "--eval_interval=20"]


def agent_command(sweep: dict) -> list[str]:
    """The first parameter point, expanded as wandb.wandb_agent.Agent._command_run does."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command, create_sweep_command_args

    point = {k: {"value": s["value"] if "value" in s else s["values"][0]} for k, s in sweep["parameters"].items()}
    sweep_vars = create_sweep_command_args({"args": point})
    sweep_vars.update(interpreter=["python"], program=[sweep.get("program")], env=["/usr/bin/env"])
    argv = []
    for c in map(str, create_sweep_command(list(sweep["command"]))):
        argv += (sweep_vars.get(c[2:-1]) or []) if c.startswith("${") and c.endswith("}") else [c]
    return argv


def test_agent_command_trains_and_reports_the_sweep_metric(tmp_path: Path):
    sweep = yaml.safe_load((ROOT / "sweeps" / "depth_vs_width.yaml").read_text())
    argv = agent_command(sweep)
    assert argv[:3] == ["/usr/bin/env", "gptlab", "train"] and "--n_layer=2" in argv
    params = tmp_path / "wandb" / "sweep-sw123" / "config-run456.yaml"  # what the agent writes
    params.parent.mkdir(parents=True)
    params.write_text(yaml.safe_dump({"wandb_version": 1, **{a[2:].split("=")[0]: {"value": yaml.safe_load(
        a.split("=", 1)[1])} for a in argv[3:]}}))
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SWEEP_ID": "sw123", "WANDB_RUN_ID": "run456",
           "WANDB_SWEEP_PARAM_PATH": str(params), "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true",
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    proc = subprocess.run(argv + SHRINK, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]

    run_dirs = list((tmp_path / "runs" / "sweep-sw123").iterdir())  # the sweep's experiment
    assert len(run_dirs) == 1
    run_dir = run_dirs[0]
    assert run_dir.name.startswith("n_layer=2-n_embd=128-n_head=4-") and "seed0" in run_dir.name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished"

    metric = sweep["metric"]["name"]
    offline = list((run_dir / "wandb").glob("offline-run-*-run456/run-run456.wandb"))  # the agent's run, joined
    assert len(offline) == 1, list((run_dir / "wandb").iterdir())
    records = leet.records(offline[0])  # W&B's own reader, not gptlab's
    [run] = [r["run"] for r in records if r["type"] == "run"]
    assert run["run_id"] == "run456" and run["sweep_id"] == "sw123"
    read_back = leet.summary(offline[0])
    assert read_back["summary"][metric] == summary[metric]
    assert read_back["summary"]["status"] == "finished" and read_back["state"] == "finished"
    history = leet.history(offline[0])
    assert any(metric in row for row in history.values())  # hyperband reads the metric's history
    exits = [r["exit"].get("exit_code", 0) for r in records if r["type"] == "exit"]
    assert exits == [0]
