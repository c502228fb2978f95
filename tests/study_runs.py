"""Helpers of the study tests (tests/test_study_*.py): a real `gptlab run` killed by SIGKILL at a chosen step of a
chosen run (held there by the step barrier, tests/step_barrier.py), and what a run directory says about how
often it was trained."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from gptlab.store.layout import METRICS_FILE, START_MARK, SUMMARY_FILE, TRAIN_LOG
from tests.step_barrier import barrier_env

REPO = Path(__file__).resolve().parents[1]
# the repository on the import path of every gptlab process: specs load the test plugin tests.step_barrier
ENV = {**os.environ, "WANDB_MODE": "disabled", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1",
       "PYTHONUNBUFFERED": "1",
       "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
BARRIER = {"plugins": ["tests.step_barrier"]}  # in a spec's base: its runs can be held by run_killed
# a tiny real GPT; training is a fraction of each process's time, so steps are cheap and runs last long
# enough (checkpoints at every eval) to be killed in the middle
TINY = {"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 32, "batch_size": 8, "dropout": 0.0,
        "warmup_steps": 0, "eval_steps": 2, "log_interval": 10, "dtype": "float32", "diagnostics": "off",
        "wandb": "disabled"}


def gptlab_run(spec: Path, runs: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m gptlab run SPEC --runs RUNS ARGS` to its end."""
    return subprocess.run([sys.executable, "-m", "gptlab", "run", str(spec), "--runs", str(runs), *args], env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def run_killed(spec: Path, runs: Path, args: tuple[str, ...], log: Path, *, step: int, run: str | None = None,
               timeout: float = 300) -> str:
    """Start `gptlab run` in its own process group with the step barrier (tests/step_barrier.py; the spec's base
    lists it in `plugins`) armed at `step` of `run` (of the first run to get there, if None); once that run is
    held there, SIGKILL the whole group (the study and every training process). The output. Fails when the
    study ends (or hangs) before the run reaches the barrier."""
    barrier = log.with_suffix(".barrier")
    barrier.mkdir()
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gptlab", "run", str(spec), "--runs", str(runs), *args],
                                env={**ENV, **barrier_env(barrier, step, run)}, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        try:
            while not (barrier / f"at-step-{step}").exists():  # held there until killed: no race to lose
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the study ended (or hung) before {run or 'a run'} reached step {step}:\n"
                                         + log.read_text())
                time.sleep(0.05)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return log.read_text()


def rows(run_dir: Path) -> list[dict]:
    path = run_dir / METRICS_FILE
    return [json.loads(ln) for ln in path.read_text().splitlines()] if path.exists() else []


def last_step(run_dir: Path) -> int:
    try:
        return max((r["step"] for r in rows(run_dir)), default=-1)
    except json.JSONDecodeError:  # a row being written right now
        return -1


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / SUMMARY_FILE).read_text())


def status(run_dir: Path) -> str | None:
    return summary(run_dir)["status"] if (run_dir / SUMMARY_FILE).exists() else None


def starts(run_dir: Path) -> list[str]:
    """train.log's start lines: one per process that began an attempt at the run."""
    path = run_dir / TRAIN_LOG
    return [ln for ln in path.read_text().splitlines() if ln.startswith(START_MARK)] if path.exists() else []


def pid_of(start_line: str) -> int:
    return int(re.search(r"\(pid (\d+)\)$", start_line).group(1))


def assert_trained_once(run_dir: Path, steps: list[int]) -> None:
    """Finished; started fresh once, every later attempt a resume (or a restart of an attempt that died before
    its first checkpoint), each by its own process; metrics.jsonl holds every logged step exactly once."""
    assert status(run_dir) == "finished", (run_dir, status(run_dir))
    lines = starts(run_dir)
    kinds = [ln[len(START_MARK):].split(" ")[0] for ln in lines]
    assert kinds[:1] == ["fresh"] and set(kinds[1:]) <= {"resume", "restart"}, (run_dir.name, lines)
    pids = [pid_of(ln) for ln in lines]
    assert len(set(pids)) == len(pids), (run_dir.name, lines)  # one start line per attempt
    assert [r["step"] for r in rows(run_dir)] == steps, (run_dir.name, [r["step"] for r in rows(run_dir)])
