"""`gptlab sync`: the store's offline W&B runs, found as W&B's own `wandb sync` finds them, synced ones skipped."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from tests.conftest import cli, tiny_args


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """Experiments a and b, one offline W&B run each (b's copied from a, as from another machine), and a run
    trained without W&B."""
    root = tmp_path_factory.mktemp("sync")
    out = cli("train", *tiny_args(max_steps=10), "--runs", str(root), "--experiment", "a", "--name", "r",
              "--wandb", "offline", cwd=root)
    assert out.returncode == 0, out.stderr
    shutil.copytree(root / "a" / "r", root / "b" / "r", symlinks=True)
    shutil.copytree(root / "a" / "r", root / "a" / "no_wandb", ignore=shutil.ignore_patterns("wandb"))
    return root


def gptlab(*args: str) -> Result:
    from gptlab.cli.app import app

    return CliRunner().invoke(app, list(args))


def listed(out: Result) -> set[Path]:
    return {Path(line).resolve() for line in out.stdout.splitlines() if "offline-run-" in line}


def wandb_would_sync(*paths: Path) -> set[Path]:
    """The run folders W&B's own `wandb sync --dry-run` picks from the same wandb/ folders."""
    out = subprocess.run([sys.executable, "-m", "wandb", "sync", "--dry-run", *map(str, paths)], capture_output=True,
                         text=True, env={**os.environ, "WANDB_SILENT": "false"}, timeout=120)
    files = re.findall(r"(\S+\.wandb)\s*$", out.stdout + out.stderr, flags=re.M)
    return {Path(f).resolve().parent for f in files}


def test_dry_run_lists_what_wandb_sync_would_upload(store: Path) -> None:
    out = gptlab("sync", "--runs", str(store), "--dry-run")
    assert out.exit_code == 0, out.output
    folders = listed(out)
    assert len(folders) == 2 and "would sync 2 offline W&B folder(s) of 2 run(s)" in out.stdout
    assert folders == wandb_would_sync(store / "a" / "r" / "wandb", store / "b" / "r" / "wandb")
    only_b = listed(gptlab("sync", "b", "--runs", str(store), "--dry-run"))
    assert only_b == {f for f in folders if f.parts[-4] == "b"}


def test_synced_runs_are_skipped(store: Path) -> None:
    (log,) = (store / "b" / "r" / "wandb").glob("offline-run-*/run-*.wandb")
    marker = log.with_suffix(".wandb.synced")  # what `wandb sync` leaves beside a log it uploaded
    marker.touch()
    try:
        out = gptlab("sync", "--runs", str(store), "--dry-run")
        assert out.exit_code == 0, out.output
        assert {f.parts[-4] for f in listed(out)} == {"a"} and "1 already synced" in out.stdout
        assert wandb_would_sync(store / "b" / "r" / "wandb") == set()  # W&B agrees it is synced
    finally:
        marker.unlink()


def test_sync_hands_off_to_wandb_sync(store: Path, tmp_path: Path) -> None:
    """Without credentials W&B's own sync refuses: the command reports its failure as exit 1."""
    env = {"HOME": str(tmp_path), "WANDB_API_KEY": "", "NETRC": str(tmp_path / "netrc"), "WANDB_MODE": "online"}
    out = cli("sync", "a", "--runs", str(store), env=env)
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "syncing 1 offline W&B folder(s)" in out.stdout


def test_unknown_experiment_is_bad_input(store: Path) -> None:
    out = gptlab("sync", "nope", "--runs", str(store), "--dry-run")
    assert out.exit_code == 2 and out.stdout == ""
    assert "nope" in out.stderr and "choose from: a, b" in out.stderr and len(out.stderr.splitlines()) == 1
