"""`gptlab report` through the real app (`gptlab.cli.app`, typer's CliRunner): all experiments, named
ones, W&B offline folders, --log-x, and bad input (exit 2)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from test_analysis_store import write_run
from typer.testing import CliRunner

from gptlab.cli.app import app


def invoke(*args: str):
    return CliRunner().invoke(app, ["report", *args])


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    for exp in ("a", "b"):
        for seed, best in enumerate([1.5, 1.6]):
            write_run(tmp_path / "runs", exp, f"lr=0.001-seed{seed}", best=best, seed=seed, overrides={"lr": 1e-3})
            write_run(tmp_path / "runs", exp, f"lr=0.01-seed{seed}", best=best + 0.2, seed=seed,
                      overrides={"lr": 1e-2})
    return tmp_path


def test_report_all_and_named(store: Path) -> None:
    result = invoke("--runs", str(store / "runs"), "--out", str(store / "rep"))
    assert result.exit_code == 0, result.output
    assert (store / "rep" / "a" / "report.html").is_file() and (store / "rep" / "b" / "summary.csv").is_file()
    assert "index.md" in result.output
    result = invoke("b", "--runs", str(store / "runs"), "--out", str(store / "only"))
    assert result.exit_code == 0, result.output
    assert (store / "only" / "b" / "report.md").is_file() and not (store / "only" / "a").exists()
    index = (store / "only" / "index.md").read_text()
    assert "[b](b/report.md)" in index and "- a: " in index  # listed, but not linked: no report written


def test_unknown_experiment_and_empty_store(store: Path) -> None:
    result = invoke("c", "--runs", str(store / "runs"), "--out", str(store / "r"))
    assert result.exit_code == 2 and "unknown experiment 'c'" in result.output and "Traceback" not in result.output
    assert not (store / "r").exists()
    result = invoke("--runs", str(store / "nothing"))
    assert result.exit_code == 2 and "no runs found" in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_log_x_changes_only_the_learning_curves(store: Path) -> None:
    """The same store reported twice gives byte-identical figures; --log-x changes the learning curves."""
    def figures(out: str, *extra: str) -> dict[str, bytes]:
        result = invoke("a", "--runs", str(store / "runs"), "--out", str(store / out), *extra)
        assert result.exit_code == 0, result.output
        return {p.name: p.read_bytes() for p in sorted((store / out / "a" / "figures").glob("*.png"))}

    linear, again, log = figures("lin"), figures("lin2"), figures("log", "--log-x")
    assert linear == again and linear.keys() == log.keys()
    changed = {name for name in linear if linear[name] != log[name]}
    assert changed and all("curve" in name for name in changed), changed


WANDB_SCRIPT = textwrap.dedent("""
    import wandb
    for variant, seed, best in [("pre_ln", 0, 1.50), ("pre_ln", 1, 1.54), ("post_ln", 0, 1.70), ("post_ln", 1, 1.76)]:
        name = f"{variant}-seed{seed}"
        config = {"model": {"norm_placement": variant.split("_")[0]}, "train": {"seed": seed},
                  "run": {"experiment": "wb", "name": name, "label": variant, "variant": variant, "seed": seed}}
        run = wandb.init(project="gptlab", group="wb", job_type=variant, name=name, config=config)
        for step in range(0, 101, 50):
            run.log({"train/loss": 4.0 - step * (4.0 - best) / 100, "val/loss": 4.1 - step * (4.1 - best) / 100},
                    step=step)
        run.summary["best_val_loss"] = best
        run.summary["status"] = "finished"
        run.finish()
""")


def test_report_reads_wandb_offline_runs(tmp_path: Path) -> None:
    """Real W&B offline runs (written by wandb itself), reported with --wandb-dir and no local store."""
    wandb_root = tmp_path / "wandb_runs"
    wandb_root.mkdir()
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(wandb_root),
           "WANDB_DISABLE_GIT": "true", "WANDB_CONSOLE": "off"}
    subprocess.run([sys.executable, "-c", WANDB_SCRIPT], cwd=wandb_root, env=env, check=True, timeout=180)
    result = invoke("--runs", str(tmp_path / "no_store"), "--wandb-dir", str(wandb_root), "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    csv = pd.read_csv(tmp_path / "r" / "wb" / "summary.csv").set_index("variant")
    assert csv.loc["pre_ln", "n"] == csv.loc["post_ln", "n"] == 2
    assert csv.loc["pre_ln", "mean"] == pytest.approx(1.52) and csv.loc["post_ln", "mean"] == pytest.approx(1.73)
    result = invoke("--runs", str(tmp_path / "no_store"), "--wandb-dir", str(tmp_path / "missing"))
    assert result.exit_code == 2 and "missing" in result.output and "Traceback" not in result.output


def test_wandb_project_must_be_entity_slash_project(store: Path) -> None:
    result = invoke("--runs", str(store / "runs"), "--wandb-project", "just-a-project", "--out", str(store / "r"))
    assert result.exit_code == 2 and "ENTITY/PROJECT" in result.output and "Traceback" not in result.output
    assert not (store / "r").exists()


def test_help_lists_options() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for option in ("--runs", "--out", "--wandb-project", "--wandb-dir", "--log-x"):
        assert option in result.output
