"""W&B offline run directories load into the same frames as the local store (real wandb runs)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gptlab.report.build import write_reports

SCRIPT = textwrap.dedent("""
    import wandb
    runs = [("pre_ln", 0, 1.50), ("pre_ln", 1, 1.52), ("post_ln", 0, 1.70), ("post_ln", 1, 1.72)]
    for variant, seed, best in runs:
        name = f"{variant}-seed{seed}"
        config = {"model": {"n_layer": 2, "norm_placement": variant.split("_")[0]},
                  "train": {"lr": 0.001, "seed": seed},
                  "run": {"experiment": "norms", "name": name, "label": variant, "variant": variant,
                          "seed": seed}}
        run = wandb.init(project="gptlab", group="norms", job_type=variant, name=name, config=config)
        for step in range(0, 101, 10):
            row = {"train/loss": 4.0 - step * (4.0 - best) / 100, "lr": 0.001}
            if step % 50 == 0:
                row["val/loss"] = 4.1 - step * (4.1 - best) / 100
            run.log(row, step=step)
        run.summary["best_val_loss"] = best
        run.summary["status"] = "finished"
        run.summary["n_params"] = 1234
        run.finish()
    # a sweep-style run: flat config, no `run:` section, crashed
    run = wandb.init(project="gptlab", group="norms", job_type="post_ln", name="post_ln-seed2",
                     config={"n_layer": 2, "norm_placement": "post", "lr": 0.001, "seed": 2})
    run.log({"train/loss": 4.0}, step=0)
    run.finish(exit_code=1)
""")


@pytest.fixture(scope="module")
def wandb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wandb_runs")
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(root),
           "WANDB_DISABLE_GIT": "true", "WANDB_CONSOLE": "off"}
    subprocess.run([sys.executable, "-c", SCRIPT], cwd=root, env=env, check=True, timeout=120)
    return root


def test_offline_runs_load_into_frames(wandb_dir: Path) -> None:
    from gptlab.frames.wandb_load import load_wandb_offline

    store = load_wandb_offline(wandb_dir)
    assert len(store.runs) == 5
    runs = store.runs.set_index("run")
    assert set(runs["experiment"]) == {"norms"} and set(runs["source"]) == {"wandb-offline"}
    assert runs.loc["pre_ln-seed1", "label"] == "pre_ln" and runs.loc["pre_ln-seed1", "seed"] == 1
    assert runs.loc["pre_ln-seed1", "best_val_loss"] == 1.52 and runs.loc["pre_ln-seed1", "n_layer"] == 2
    assert runs.loc["pre_ln-seed1", "status"] == "finished"
    crashed = runs.loc["post_ln-seed2"]  # flat sweep config, label from the name, status from the exit code
    assert crashed["label"] == "post_ln" and crashed["status"] == "failed" and crashed["seed"] == 2
    assert crashed["norm_placement"] == "post"
    hist = store.history[store.history["run"] == "pre_ln-seed0"]
    assert list(hist["step"]) == list(range(0, 101, 10))
    assert hist["val/loss"].notna().sum() == 3 and hist["val/loss"].min() == pytest.approx(1.50)
    assert {"train/loss", "lr"} <= set(hist.columns) and not any(c.startswith("_") for c in hist.columns)


def test_report_from_wandb_dir(wandb_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    write_reports(tmp_path / "no_store", out, wandb_dir=wandb_dir)
    md = (out / "norms" / "report.md").read_text()
    assert "| post_ln | 2/3 |" in md and "post_ln failed in 1 of 3 seeds." in md
    assert "post_ln has 0.200 higher val/loss than pre_ln" in md
