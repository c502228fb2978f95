"""SIGTERM from Slurm under a sweep agent: the W&B run is marked preempting, and when the sweep requeues
that W&B run, it resumes in its own run directory from its checkpoint, as one W&B run. And the stop signals
themselves: TERM, CONT, TERM is one stop that keeps its checkpoint; a second Ctrl-C later stops at once.

Every first signal lands at a chosen step: the run is held there by the step barrier (tests/step_barrier.py)
until the signal stops it, whatever the machine's speed. Where the repeated signal must land in a chosen phase
of the stop (the checkpoint being written, the final status being written), the run's own process sends it
there (HOOK, a wrapper of `gptlab train`), so no test waits for a moment by sleeping. The one sleep left is
what a test is about: a second Ctrl-C pressed after the first, past SAME_STOP_S."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gptlab.sweep.command import agent_argv
from gptlab.train.trainer import SAME_STOP_S
from tests.conftest import REPO
from tests.step_barrier import barrier_env
from tests.test_sweep_nested import agent_env

WANDB = str(Path(sys.executable).parent / "wandb")
# the repository on the import path of every gptlab process: it loads the test plugin tests.step_barrier
HELD_ENV = {"PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
BARRIER = ["tests.step_barrier"]  # the `plugins` of a held run

# `python -c HOOK ARGS` is `gptlab ARGS` whose stop sends itself a repeated stop signal at a chosen phase
# (PREEMPT_HOOK): "checkpoint": CONT, TERM as the stop's checkpoint is being written (its temp file open);
# "summary": CONT, TERM as the final status "interrupted" is being written; "hang": the stop's checkpoint write
# never ends (a stalled filesystem) until a signal interrupts it, after writing the file PREEMPT_NOTE.
HOOK = """\
import os, signal, sys, time
from pathlib import Path
import torch
from gptlab.store.run import RunStore

phase, note = os.environ["PREEMPT_HOOK"], os.environ.get("PREEMPT_NOTE")
real_save, real_summary = torch.save, RunStore.write_summary

def again():
    os.kill(os.getpid(), signal.SIGCONT)
    os.kill(os.getpid(), signal.SIGTERM)

def save(obj, f, *args, **kwargs):
    if phase == "checkpoint":
        again()
    elif phase == "hang":
        Path(note).write_text(str(os.getpid()))
        while True:
            time.sleep(0.01)
    return real_save(obj, f, *args, **kwargs)

def write_summary(self, summary):
    if phase == "summary" and summary["status"] == "interrupted":
        again()
    return real_summary(self, summary)

torch.save, RunStore.write_summary = save, write_summary
sys.argv = ["gptlab", *sys.argv[1:]]
from gptlab.cli.app import main
main()
"""


def records(log: Path) -> list[dict]:
    out = subprocess.run([WANDB, "leet", "inspect", "--json", str(log)], capture_output=True, text=True, timeout=120)
    return [json.loads(line) for line in out.stdout.splitlines()]


def wait_held(proc: subprocess.Popen, barrier: Path, step: int, timeout: float = 120) -> None:
    """Until the run is held at the barrier after `step` steps (it waits there: no race to lose)."""
    deadline = time.monotonic() + timeout
    while not (barrier / f"at-step-{step}").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the run ended (or hung) before step {step}: {proc.communicate()[1][-2000:]}")
        time.sleep(0.01)


@pytest.mark.slow
def test_slurm_sigterm_marks_preempting_and_requeue_resumes(tmp_path: Path) -> None:
    point = {"n_layer": 1, "n_embd": 16, "n_head": 2, "block_size": 16, "batch_size": 8, "max_steps": 200,
             "eval_interval": 100, "eval_steps": 2, "log_interval": 5, "plugins": BARRIER}
    argv = agent_argv(["${env}", "gptlab", "train", "${args}"], point, None)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {**agent_env(tmp_path, point, "pre1"), "SLURM_JOB_ID": "77", **HELD_ENV, **barrier_env(barrier, 130)}
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_held(proc, barrier, 130)
    proc.send_signal(signal.SIGTERM)  # what Slurm sends before a preemption or the time limit: at step 130
    assert proc.wait(timeout=120) == 130, proc.stderr.read()[-2000:]
    exp = tmp_path / "runs" / "sweep-sw1"
    (run_dir,) = exp.iterdir()
    stopped = json.loads((run_dir / "summary.json").read_text())
    assert stopped["status"] == "interrupted" and stopped["steps"] == 130, stopped
    (first,) = (run_dir / "wandb").glob("offline-run-*-pre1/run-pre1.wandb")
    kinds = [r["type"] for r in records(first)]
    assert "preempting" in kinds and kinds.index("preempting") < kinds.index("exit")

    (barrier / "release").touch()  # the requeue passes step 130
    out = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)  # the requeue
    assert out.returncode == 0, out.stderr[-2000:]
    assert [d.name for d in exp.iterdir()] == [run_dir.name]  # same directory: resumed, not a new run
    assert [ln.split(" (pid")[0] for ln in (run_dir / "train.log").read_text().splitlines()
            if ln.startswith("== ")] == ["== fresh at step 0", "== resume at step 130"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == 200
    logs = sorted((run_dir / "wandb").glob("offline-run-*-pre1/run-pre1.wandb"))
    assert len(logs) == 2
    steps = [[r["history"]["item"]["_step"] for r in records(log) if r["type"] == "history"] for log in logs]
    assert max(steps[0]) == 130 and min(steps[1]) > 130  # the requeue went on from the stop's checkpoint
    every = steps[0] + steps[1]
    assert len(every) == len(set(every)) and max(every) == 200


def _train_held(tmp_path: Path, step: int, hook: str | None = None) -> tuple[subprocess.Popen, Path]:
    """A tiny `gptlab train` (checkpoints only when stopped: eval_interval past max_steps) held after `step`
    steps by the step barrier; with `hook`, run through HOOK with PREEMPT_HOOK=hook."""
    args = [f"{k}={v}" for k, v in {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16, "batch_size": 8,
                                     "max_steps": 5000, "eval_interval": 5000, "eval_steps": 2,
                                     "log_interval": 5}.items()]
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", **HELD_ENV, **barrier_env(barrier, step, "t"),
           **({"PREEMPT_HOOK": hook, "PREEMPT_NOTE": str(tmp_path / "hung")} if hook else {})}
    head = [sys.executable, "-c", HOOK] if hook else [sys.executable, "-m", "gptlab"]
    proc = subprocess.Popen([*head, "train", *args, "plugins=[tests.step_barrier]", "--name", "t", "--runs",
                             str(tmp_path / "runs"), "--wandb", "disabled"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_held(proc, barrier, step)
    return proc, tmp_path / "runs" / "adhoc" / "t"


def _exit_code(proc: subprocess.Popen, timeout: float) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"still running {timeout} s after the signal: {proc.communicate()[1][-2000:]}") from None


@pytest.mark.parametrize("phase", ["boundary", "checkpoint", "summary"])
def test_term_cont_term_is_one_stop_that_keeps_its_checkpoint(tmp_path: Path, phase: str) -> None:
    """Slurm's preemption sends TERM, CONT, TERM within milliseconds (and a job wrapper forwards TERM to a
    child that got it too): one graceful stop, so the checkpoint is the state at the step it stopped at. The
    first TERM lands at step 40 (held there); the repeated one back to back from outside ("boundary": Slurm's
    sequence as sent, where the two TERMs often reach the handler as one), or from inside the run as the stop
    writes its checkpoint ("checkpoint") or its final status ("summary"): these two pin the SAME_STOP_S window."""
    import torch

    proc, run_dir = _train_held(tmp_path, 40, None if phase == "boundary" else phase)
    for sig in (signal.SIGTERM, signal.SIGCONT, signal.SIGTERM) if phase == "boundary" else (signal.SIGTERM,):
        os.kill(proc.pid, sig)
    assert _exit_code(proc, 60) == 130, proc.stderr.read()[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["steps"] == 40, summary
    assert (run_dir / "checkpoint.pt").exists(), "the stop dropped its checkpoint"
    assert torch.load(run_dir / "checkpoint.pt", weights_only=False)["step"] == 40


def test_a_second_ctrl_c_later_still_stops_at_once(tmp_path: Path) -> None:
    """Ctrl-C at step 20 (held there) starts a stop that hangs writing its checkpoint; Ctrl-C again later, past
    SAME_STOP_S, is a person who means it: the run stops at once, without that checkpoint."""
    proc, run_dir = _train_held(tmp_path, 20, "hang")
    proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 60
    while not (tmp_path / "hung").exists():  # the stop is in its checkpoint write, and stays there
        assert proc.poll() is None and time.monotonic() < deadline, "the stop never reached its checkpoint write"
        time.sleep(0.01)
    # past SAME_STOP_S (counted from the first Ctrl-C's handler, which ran before the note was written): a person
    # pressing Ctrl-C again means it. This sleep is what the test is about, not a wait for training (at most 5 s:
    # a window made endless fails here rather than hanging the test).
    time.sleep(min(SAME_STOP_S, 5.0) + 0.25)
    assert proc.poll() is None, "the hung stop ended by itself"
    proc.send_signal(signal.SIGINT)
    assert _exit_code(proc, 30) == 130, proc.stderr.read()[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["steps"] == 20, summary
    assert not (run_dir / "checkpoint.pt").exists() and not list(run_dir.glob(".checkpoint.pt.tmp"))
