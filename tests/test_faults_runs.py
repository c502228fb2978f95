"""Faults injected into real `gptlab` processes: SIGKILL at random steps (before the first checkpoint and in
the middle of a checkpoint write), several runners on one spec at once, a really full filesystem, damaged
files met by a study and by generate / eval / attention."""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, TINY, assert_user_error, cli, tiny_args
from tests.step_barrier import barrier_env

pytestmark = pytest.mark.slow
ENV = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
# checkpoints at steps 20, 40 and 60; a metrics row every step
KILLABLE = {"max_steps": 60, "eval_interval": 20, "log_interval": 1}
HELD_ENV = {"PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def starts(run_dir: Path) -> list[str]:
    return [ln for ln in (run_dir / "train.log").read_text().splitlines() if ln.startswith("== ")]


def train_argv(runs: Path) -> list[str]:
    return ["train", *tiny_args(**KILLABLE), "--runs", str(runs), "--name", "r", "--wandb", "disabled"]


def held_argv(runs: Path) -> list[str]:
    """train_argv with the step barrier (tests/step_barrier.py) loaded: a run held at a step until killed."""
    return [*train_argv(runs), "plugins=[tests.step_barrier]"]


def test_sigkill_before_the_first_checkpoint_and_during_a_checkpoint_write(tmp_path):
    # 1. killed at a (seeded) random step before any checkpoint exists, then the same command again
    early = tmp_path / "early"
    run_dir = early / "adhoc" / "r"
    # seeded, so a failure reproduces at the same step (this seed: 9); the run is held after that step by the step
    # barrier, so the kill lands there exactly, before the step-20 checkpoint, on any machine
    target = random.Random(20231).randint(2, 10)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "gptlab", *held_argv(early)],
                            env={**ENV, **HELD_ENV, **barrier_env(barrier, target, "r")},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not (barrier / f"at-step-{target}").exists():
        time.sleep(0.05)  # the run waits at the barrier until killed: no race to lose
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert [r["step"] for r in rows(run_dir)] == list(range(0, target + 1)), "not held at the target step"
    assert not (run_dir / "checkpoint.pt").exists(), "killed too late to test the no-checkpoint path"
    out = cli(*held_argv(early), env={"WANDB_MODE": "disabled", **HELD_ENV})
    assert out.returncode == 0, out.stdout + out.stderr
    restarted = rows(run_dir)
    assert [r["step"] for r in restarted] == list(range(0, 61)), "a metric row was duplicated or lost"
    assert [s.split(" at ")[0] for s in starts(run_dir)] == ["== fresh", "== restart"]

    # 2. killed by SIGKILL in the middle of writing its second checkpoint (step 40)
    mid = tmp_path / "mid"
    run_dir = mid / "adhoc" / "r"
    code = ("import os, signal, sys, torch\n"
            "real, n = torch.save, []\n"
            "def dying(obj, f, *a, **k):\n"
            "    n.append(1)\n"
            "    if len(n) == 2:\n"
            "        f.write(b'PK' + bytes(4096)); f.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
            "    return real(obj, f, *a, **k)\n"
            "torch.save = dying\n"
            "sys.argv = ['gptlab', *sys.argv[1:]]\n"
            "from gptlab.cli.app import main\nmain()\n")
    killed = subprocess.run([sys.executable, "-c", code, *train_argv(mid)], env=ENV, capture_output=True,
                            text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "running"
    out = cli(*train_argv(mid), env={"WANDB_MODE": "disabled"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert [s.split(" (pid")[0] for s in starts(run_dir)] == ["== fresh at step 0", "== resume at step 20"]
    resumed = rows(run_dir)
    assert [r["step"] for r in resumed] == list(range(0, 61))
    assert not list(run_dir.glob(".*.tmp")), "the killed write's temp file outlived the next checkpoint"
    # resuming is exact: the run killed twice over ends where the restarted one does, row for row
    for a, b in zip(restarted, resumed):
        for key in ("train/loss", "val/loss"):
            assert (key in a) == (key in b) and a.get(key, 0.0) == pytest.approx(b.get(key, 0.0), rel=1e-5), (a, b)


def test_three_runners_on_one_spec_train_every_run_exactly_once(tmp_path):
    spec = {"name": "conc", "description": "concurrency", "base": dict(TINY), "seeds": [0, 1, 2]}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    runs = tmp_path / "runs"
    # a study killed earlier left two runs "running" with rows but no checkpoint
    for seed in (1,):
        d = runs / "conc" / f"seed{seed}"
        d.mkdir(parents=True)
        (d / "summary.json").write_text('{"status": "running"}')
        (d / "metrics.jsonl").write_text('{"step": 0, "val/loss": 9.0}\n{"step": 5, "train/loss": 9.0}\n')
    procs = [subprocess.Popen([sys.executable, "-m", "gptlab", "run", str(tmp_path / "spec.yaml"), "--runs", str(runs),
                               "--wandb", "disabled"], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], "\n\n".join(outputs)
    trained_here = sum(len(re.findall(r"^\[\d+/\d+\] finished seed\d ", o, re.M)) for o in outputs)
    assert trained_here == 3, "\n\n".join(outputs)  # each run reported trained by exactly one process
    for seed in range(3):
        d = runs / "conc" / f"seed{seed}"
        assert json.loads((d / "summary.json").read_text())["status"] == "finished"
        assert [r["step"] for r in rows(d)] == list(range(0, 31, 5)), d
        assert len(starts(d)) == 1, (d, starts(d))  # trained once: one attempt in its log
        assert rows(d)[0]["val/loss"] != 9.0  # the dead attempt's rows are gone


def test_a_really_full_filesystem_fails_the_run_then_the_same_command_resumes(tmp_path):
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True,
                             text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        st = os.statvfs(mnt)
        filler = mnt / "filler"
        filler.write_bytes(bytes(st.f_bavail * st.f_frsize - 48 * 1024))  # room for the logs, not a checkpoint
        argv = ["train", *tiny_args(max_steps=20), "--runs", str(mnt / "runs"), "--name", "r", "--wandb", "disabled"]
        full = cli(*argv)
        run_dir = mnt / "runs" / "adhoc" / "r"
        summary = json.loads((run_dir / "summary.json").read_text())
        assert full.returncode == 1 and "Traceback" not in full.stderr, full.stdout + full.stderr
        assert summary["status"] == "failed" and summary["error"].startswith("disk full while writing checkpoint")
        assert not list(run_dir.glob(".*.tmp"))
        filler.unlink()
        again = cli(*argv)
        assert again.returncode == 0, again.stdout + again.stderr
        assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"
        assert [r["step"] for r in rows(run_dir)] == list(range(0, 21, 5))
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_study_skips_a_damaged_run_and_goes_on(tmp_path):
    spec = {"name": "dmg", "description": "damage", "base": dict(TINY), "seeds": [0, 1]}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    runs = tmp_path / "runs"
    (runs / "dmg" / "seed1").mkdir(parents=True)
    (runs / "dmg" / "seed1" / "config.yaml").write_text("model: [1, 2\n")
    out = cli("run", str(tmp_path / "spec.yaml"), "--runs", str(runs), "--wandb", "disabled")
    assert out.returncode == 1 and "Traceback" not in out.stdout + out.stderr, out.stdout + out.stderr
    line = next(ln for ln in out.stdout.splitlines() if "skipped seed1" in ln)
    assert "config.yaml" in line and "damaged" in line
    assert json.loads((runs / "dmg" / "seed0" / "summary.json").read_text())["status"] == "finished"
    assert (runs / "dmg" / "seed1" / "config.yaml").read_text() == "model: [1, 2\n"  # left for the user


@pytest.mark.parametrize("command", ["generate", "eval", "attention"])
def test_commands_on_a_truncated_checkpoint_print_one_line(tmp_path, trained_run, command):
    run_dir = tmp_path / "tiny"
    shutil.copytree(trained_run, run_dir)
    data = (run_dir / "checkpoint.pt").read_bytes()
    (run_dir / "checkpoint.pt").write_bytes(data[: len(data) // 3])
    extra = ["--out", str(tmp_path / "fig")] if command == "attention" else []
    assert_user_error(cli(command, str(run_dir), *extra), "checkpoint.pt", "damaged")


def test_two_sweeps_on_one_grid_train_every_point_once(tmp_path):
    body = {"name": "twice", "method": "grid", "command": ["${env}", "gptlab", "train", "${args}"],
            "metric": {"name": "best_val_loss", "goal": "minimize"},
            "parameters": {"seed": {"values": [0, 1, 2]}, **{k: {"value": v} for k, v in TINY.items()}}}
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(body))
    procs = [subprocess.Popen([sys.executable, "-m", "gptlab", "sweep", str(tmp_path / "sweep.yaml"), "--runs",
                               str(tmp_path / "runs"), "--wandb", "disabled"], env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n\n".join(outputs)
    trained_here = sum(len(re.findall(r"^\[\d+\] finished\s+\S+ \|", o, re.M)) for o in outputs)
    assert trained_here == 3, "\n\n".join(outputs)
    run_dirs = [d for d in (tmp_path / "runs" / "twice").iterdir() if d.is_dir()]
    assert len(run_dirs) == 3
    for d in run_dirs:
        assert json.loads((d / "summary.json").read_text())["status"] == "finished"
        assert len(starts(d)) == 1 and [r["step"] for r in rows(d)] == list(range(0, 31, 5)), d
