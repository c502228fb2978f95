"""Shared fixtures: tiny-but-real configs, CLI subprocesses, and one small trained run per session."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# a real GPT, small enough to train for tens of steps in a couple of seconds on one core
TINY = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16, "batch_size": 8, "max_steps": 30,
        "eval_interval": 10, "eval_steps": 2, "log_interval": 5, "dropout": 0.0, "warmup_steps": 0, "lr": 3e-3}


def tiny_args(**changes) -> list[str]:
    merged = {**TINY, **changes}
    return [f"{k}={v}" for k, v in merged.items()]


def cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m gptlab ARGS` as a real subprocess."""
    full_env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONUNBUFFERED": "1",
                "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "gptlab", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def assert_user_error(out: subprocess.CompletedProcess, *needles: str) -> None:
    """Bad input: exit code 2, exactly one line on stderr, no traceback, every needle in that line."""
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


if os.environ.get("PYTEST_XDIST_WORKER"):
    # two test processes share the cores: each trains in-process on one thread, and OpenMP threads of every
    # process they start sleep instead of spinning while they wait (spinning threads of oversubscribed
    # processes slowed training a hundredfold); a test that needs the user's environment sets its own
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(autouse=True)
def _no_inherited_wandb_service(monkeypatch) -> None:
    """An in-process wandb.init in an earlier test leaves WANDB_SERVICE in os.environ; subprocesses that
    inherit it attach to that test's W&B service instead of starting their own."""
    monkeypatch.delenv("WANDB_SERVICE", raising=False)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """One finished tiny run (60 steps) shared by the sampling and loading tests."""
    root = tmp_path_factory.mktemp("store")
    out = cli("train", *tiny_args(max_steps=60, eval_interval=30), "--runs", str(root), "--name", "tiny",
              "--wandb", "disabled")
    assert out.returncode == 0, out.stderr
    return root / "adhoc" / "tiny"
