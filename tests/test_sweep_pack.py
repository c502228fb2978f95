"""`gptlab sweep --pack`: grid points that qualify train in one process, each run as an unpacked sweep writes it."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from gptlab import load_history, load_runs
from tests.conftest import TINY, assert_user_error, cli

TOL = 1e-5  # as tests/test_pack.py: packed and unpacked losses agree to float tolerance
# float32: packed and unpacked grid points are compared at float tolerance
FIXED = {k: v for k, v in TINY.items() if k not in ("lr", "max_steps")} | {"max_steps": 20, "dtype": "float32"}


def write_sweep(path: Path, **extra) -> Path:
    body = {"name": "pk", "method": "grid", "command": ["${env}", "gptlab", "train", "${args}"],
            "metric": {"name": "best_val_loss", "goal": "minimize"},
            "parameters": {"seed": {"values": [0, 1]}, "lr": {"values": [1e-3, 3e-3]},
                           **{k: {"value": v} for k, v in FIXED.items()}}, **extra}
    path.write_text(yaml.safe_dump(body))
    return path


def trainer_pids(runs: Path) -> list[set[str]]:
    """Per run directory, the processes that started an attempt (train.log's start lines)."""
    return [set(re.findall(r"^== .*\(pid (\d+)\)$", (d / "train.log").read_text(), re.M))
            for d in sorted((runs / "pk").iterdir()) if d.is_dir()]


@pytest.mark.slow
def test_packed_grid_sweep_equals_unpacked_and_reruns_nothing(tmp_path: Path):
    sweep = write_sweep(tmp_path / "pk.yaml")
    plain, packed = tmp_path / "plain", tmp_path / "packed"
    out = cli("sweep", str(sweep), "--runs", str(plain), "--jobs", "2", "--wandb", "disabled")
    assert out.returncode == 0, out.stdout + out.stderr
    out = cli("sweep", str(sweep), "--runs", str(packed), "--pack", "auto", "--wandb", "disabled")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "best: " in out.stdout

    # every point once, in fewer processes than points
    pids = trainer_pids(packed)
    assert len(pids) == 4 and all(len(p) == 1 for p in pids)
    assert len(set.union(*pids)) == 1 < len(set.union(*trainer_pids(plain))) == 4

    # read back exactly like the unpacked sweep's runs
    a, b = (load_runs(r, "pk").sort_values("run").reset_index(drop=True) for r in (plain, packed))
    assert list(a["run"]) == list(b["run"]) == ["lr=0.001-seed0", "lr=0.001-seed1", "lr=0.003-seed0",
                                                "lr=0.003-seed1"]
    assert set(a.columns) == set(b.columns)
    for col in ("status", "seed", "lr", "label", "variant", "n_embd", "max_steps", "steps"):
        assert list(a[col].astype(str)) == list(b[col].astype(str)), col
    assert b["best_val_loss"].to_numpy() == pytest.approx(a["best_val_loss"].to_numpy(), abs=TOL)
    ha, hb = (load_history(r, "pk").sort_values(["run", "step"]).reset_index(drop=True) for r in (plain, packed))
    assert list(ha["step"]) == list(hb["step"]) and len(ha) == 4 * 5  # steps 0, 5, ..., 20
    for key in ("train/loss", "val/loss", "lr"):
        assert hb[key].to_numpy() == pytest.approx(ha[key].to_numpy(), abs=TOL, nan_ok=True), key

    again = cli("sweep", str(sweep), "--runs", str(packed), "--pack", "auto", "--wandb", "disabled")
    assert again.returncode == 0 and "no runs started" in again.stdout, again.stdout + again.stderr
    assert trainer_pids(packed) == pids


def test_pack_with_hyperband_is_refused(tmp_path: Path):
    sweep = write_sweep(tmp_path / "pk.yaml", early_terminate={"type": "hyperband", "min_iter": 5})
    out = cli("sweep", str(sweep), "--runs", str(tmp_path / "runs"), "--pack", "seeds")
    assert_user_error(out, "--pack", "early_terminate")
    assert not (tmp_path / "runs").exists()
