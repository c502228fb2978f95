"""`gptlab report` through typer's CliRunner: all experiments, named ones, and bad input (exit 2)."""
from __future__ import annotations

from pathlib import Path

import pytest
import typer
from test_analysis_store import write_run
from typer.testing import CliRunner

from gptlab.cli.common import user_errors
from gptlab.cli.report_cmd import report
from gptlab.errors import UserError


def local_app() -> typer.Typer:
    """The command registered the way gptlab's app does (user errors -> one line, exit 2)."""
    app = typer.Typer()
    app.command("report")(user_errors(report))
    app.command("noop")(lambda: None)  # a second command keeps `report` a named subcommand
    return app


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    for exp in ("a", "b"):
        for seed, best in enumerate([1.5, 1.6]):
            write_run(tmp_path / "runs", exp, f"lr=0.001-seed{seed}", best=best, seed=seed, overrides={"lr": 1e-3})
            write_run(tmp_path / "runs", exp, f"lr=0.01-seed{seed}", best=best + 0.2, seed=seed,
                      overrides={"lr": 1e-2})
    return tmp_path


def test_report_all_and_named(store: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(local_app(), ["report", "--runs", str(store / "runs"), "--out", str(store / "rep")])
    assert result.exit_code == 0, result.output
    assert (store / "rep" / "a" / "report.html").is_file() and (store / "rep" / "b" / "summary.csv").is_file()
    assert "index.md" in result.output
    result = runner.invoke(local_app(), ["report", "b", "--runs", str(store / "runs"), "--out", str(store / "only")])
    assert result.exit_code == 0, result.output
    assert (store / "only" / "b" / "report.md").is_file() and not (store / "only" / "a").exists()
    index = (store / "only" / "index.md").read_text()
    assert "[b](b/report.md)" in index and "- a: " in index  # listed, but not linked: no report written


def test_unknown_experiment_and_empty_store(store: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(local_app(), ["report", "c", "--runs", str(store / "runs"), "--out", str(store / "r")])
    assert result.exit_code == 2 and "unknown experiment 'c'" in result.output
    result = runner.invoke(local_app(), ["report", "--runs", str(store / "nothing")])
    assert result.exit_code == 2 and "no runs found" in result.output and "Traceback" not in result.output
    with pytest.raises(UserError, match="unknown experiment"):
        report(["zzz"], runs=store / "runs", out=store / "r")


def test_help_lists_options() -> None:
    result = CliRunner().invoke(local_app(), ["report", "--help"])
    assert result.exit_code == 0
    for option in ("--runs", "--out", "--wandb", "--wandb-dir"):
        assert option in result.output
