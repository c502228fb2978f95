"""`gptlab eval`: val loss at the trained and at longer context lengths, on real tiny trained runs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import cli
from gptlab.cli.app import app

TRAIN = ["max_steps=30", "n_layer=1", "n_embd=32", "block_size=32", "batch_size=8", "eval_steps=2",
         "eval_interval=30"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    for pos in ("alibi", "learned"):
        out = cli("train", *TRAIN, f"pos_encoding={pos}", "--runs", str(root), "--name", pos, "--wandb", "disabled")
        assert out.returncode == 0, out.stderr
    return root / "adhoc"


def test_eval_beyond_the_trained_length_writes_length_eval_json(runs):
    result = CliRunner().invoke(app, ["eval", str(runs / "alibi"), "--block-size", "64"])
    assert result.exit_code == 0, result.output
    rows = json.loads((runs / "alibi" / "length_eval.json").read_text())
    assert [r["block_size"] for r in rows] == [32, 64]
    summary = json.loads((runs / "alibi" / "summary.json").read_text())
    assert rows[0]["val_loss"] == pytest.approx(summary["final_val_loss"], rel=1e-4)  # same windows as training's eval
    assert 0 < rows[1]["val_loss"] < 10
    assert "(trained)" in result.output and "64" in result.output


def test_several_lengths_after_one_flag_or_comma_separated(runs):
    result = CliRunner().invoke(app, ["eval", str(runs / "alibi"), "--block-size", "48", "16,64"])
    assert result.exit_code == 0, result.output
    rows = json.loads((runs / "alibi" / "length_eval.json").read_text())
    assert [r["block_size"] for r in rows] == [32, 16, 48, 64]
    again = CliRunner().invoke(app, ["eval", str(runs / "alibi")])  # only the trained length this time
    assert again.exit_code == 0, again.output
    kept = json.loads((runs / "alibi" / "length_eval.json").read_text())
    assert [r["block_size"] for r in kept] == [32, 16, 48, 64]  # earlier lengths are kept, not overwritten


def test_learned_positions_beyond_block_size_exit_2(runs):
    out = CliRunner().invoke(app, ["eval", str(runs / "learned"), "--block-size", "64"])
    assert out.exit_code == 2
    assert "learned positions cannot evaluate beyond block_size=32" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.output
    ok = CliRunner().invoke(app, ["eval", str(runs / "learned"), "--block-size", "16"])  # shorter is fine
    assert ok.exit_code == 0, ok.output


def test_bad_lengths_and_missing_runs_exit_2(runs, tmp_path):
    result = CliRunner().invoke(app, ["eval", str(runs / "alibi"), "--block-size", "abc"])
    assert result.exit_code == 2 and "not a context length" in result.output
    result = CliRunner().invoke(app, ["eval", str(tmp_path), "--block-size", "64"])
    assert result.exit_code == 2 and "no checkpoint" in result.output
