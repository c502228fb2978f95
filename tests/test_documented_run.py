"""Documented `gptlab run` behaviours, each on real tiny runs in real subprocesses: Ctrl-C marks unfinished
runs `interrupted` and the same command resumes them; `--fail-fast` stops after the first failed run;
`--rerun failed` retrains it from scratch; `--jobs N` gives each child its share of the CPU threads; W&B's
own reader shows `group` = experiment and `job_type` = variant; the README's main job leaves its report.

A run fails for real through a plugin norm (`probe`) that raises after a number of forward passes when
GPTLAB_TEST_FAIL_AFTER is set (a crash in the middle of training), and that prints the child's
torch.get_num_threads() on its first forward (the threads the child really trains with)."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, TINY
from tests.test_wandb_fidelity import leet, offline_dirs

PROBE = '''
import os
import torch
from torch import nn
import gptlab

_calls = 0


@gptlab.register("norm", "probe")
class Probe(nn.LayerNorm):
    """LayerNorm that reports the child's torch threads once and fails on request after N forwards."""

    def __init__(self, cfg):
        super().__init__(cfg.n_embd, bias=cfg.bias)

    def forward(self, x):
        global _calls
        _calls += 1
        if _calls == 1:
            print(f"probe: torch threads {torch.get_num_threads()}", flush=True)
        fail_after = int(os.environ.get("GPTLAB_TEST_FAIL_AFTER") or 0)
        if fail_after and _calls > fail_after:
            raise RuntimeError(f"probe: failing on purpose at forward {_calls}")
        return super().forward(x)
'''
SMALL = {**TINY, "batch_size": 4, "n_embd": 16, "block_size": 16, "max_steps": 40, "eval_interval": 20,
         "eval_steps": 2, "log_interval": 5}


def env_for(probe_dir: Path, **extra: str) -> dict[str, str]:
    """The child environment a user has: no test-wide OMP_NUM_THREADS, the plugin on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "GPTLAB_TEST_FAIL_AFTER")}
    return {**env, "WANDB_MODE": "disabled", "WANDB_SILENT": "true", "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(probe_dir), os.environ.get("PYTHONPATH")])), **extra}


def gptlab(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gptlab", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def write_spec(path: Path, name: str, base: dict, variants: dict | None = None, seeds=(0,)) -> Path:
    spec = {"name": name, "base": {"plugins": ["probe_norm"], "norm": "probe", **base},
            "variants": variants, "seeds": list(seeds)}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def last_step(run_dir: Path) -> int:
    """The last whole metrics row's step of a run being written (-1 before the first)."""
    try:
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
        return json.loads(lines[-2] if len(lines) > 1 else lines[-1])["step"]
    except (OSError, IndexError, ValueError):
        return -1


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("probe")
    (root / "probe_norm.py").write_text(PROBE)
    return root


@pytest.fixture(scope="module")
def cut_study(probe_dir, tmp_path_factory) -> tuple[Path, dict, str]:
    """A two-run study as a user runs it (no OMP_NUM_THREADS, W&B offline, --jobs 2), Ctrl-C'd once both runs
    are past their first checkpoint, then the same command again. Returns (study dir, first and second
    invocation's output)."""
    root = tmp_path_factory.mktemp("cut")
    spec = write_spec(root / "spec.yaml", "cc", {**SMALL, "max_steps": 250, "eval_interval": 10},
                      variants={"alpha": {"lr": 3e-3}, "beta": {"lr": 1e-3}})
    argv = [sys.executable, "-m", "gptlab", "run", str(spec), "--runs", str(root / "runs"), "--jobs", "2",
            "--wandb", "offline"]
    env = env_for(probe_dir, WANDB_MODE="offline")
    # a session of its own: Ctrl-C in a terminal reaches the whole foreground process group
    proc = subprocess.Popen(argv, env=env, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    run_dirs = [root / "runs" / "cc" / f"{v}-seed0" for v in ("alpha", "beta")]
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:  # both past their first checkpoint
        if all((d / "checkpoint.pt").exists() and last_step(d) >= 15 for d in run_dirs):
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    first, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, first
    interrupted = {d.name: summary(d) for d in run_dirs}
    again = gptlab("run", *argv[4:], env=env, cwd=root)
    assert again.returncode == 0, again.stdout + again.stderr
    return root / "runs" / "cc", interrupted, again.stdout


def test_ctrl_c_on_run_marks_unfinished_runs_interrupted_and_the_same_command_resumes_them(cut_study):
    study, interrupted, again = cut_study
    for name, s in interrupted.items():
        assert s["status"] == "interrupted" and 0 < s["steps"] < 250, (name, s)
    assert again.count("resuming") == 2, again
    for name in interrupted:
        assert summary(study / name)["status"] == "finished" and summary(study / name)["steps"] == 250
        steps = [r["step"] for r in rows(study / name)]
        assert steps == sorted(set(steps)) and steps[-1] == 250  # no row lost or written twice


def test_jobs_n_gives_each_child_its_share_of_threads(cut_study):
    """Without OMP_NUM_THREADS set, each of --jobs 2 children trains with half the usable cores (torch's own
    default would be all of them), in both attempts."""
    from gptlab.jobs.devices import usable_cpus

    study, interrupted, _ = cut_study
    for name in interrupted:
        printed = re.findall(r"probe: torch threads (\d+)", (study / name / "stdout.log").read_text())
        assert printed == [str(max(1, usable_cpus() // 2))] * 2, printed


def test_wandb_group_and_job_type_read_back_with_wandb_s_reader(cut_study):
    study, interrupted, _ = cut_study
    for name in interrupted:
        folders = offline_dirs(study / name)
        assert len(folders) == 2  # the interrupted attempt and the resumed one: one W&B run, two segments
        for folder in folders:
            (run,) = [json.loads(line)["run"] for line in leet(folder, "--json").splitlines()
                      if json.loads(line).get("type") == "run"]
            assert run["run_group"] == "cc" and run["job_type"] == name.split("-")[0], run
        last = json.loads(leet(folders[-1], "--summary", "--json"))
        assert last["state"] == "finished" and last["summary"]["steps"] == 250


def test_fail_fast_stops_after_the_first_failed_run_and_rerun_failed_retrains_it(probe_dir, tmp_path):
    spec = write_spec(tmp_path / "spec.yaml", "ff", SMALL, seeds=(0, 1))
    args = ["run", str(spec), "--runs", str(tmp_path / "runs"), "--wandb", "disabled"]
    study = tmp_path / "runs" / "ff"
    # every run crashes after 30 forward passes (the evals at step 0 and a dozen training steps)
    out = gptlab(*args, "--fail-fast", env=env_for(probe_dir, OMP_NUM_THREADS="1", GPTLAB_TEST_FAIL_AFTER="30"))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "--fail-fast: stopping after seed0 failed" in out.stdout
    failed = summary(study / "seed0")
    assert failed["status"] == "failed" and "failing on purpose" in failed["error"]
    first = rows(study / "seed0")
    assert first and first[-1]["step"] < SMALL["max_steps"]  # it crashed mid-run, rows written
    assert not (study / "seed1" / "summary.json").exists()  # never started

    again = gptlab(*args, "--rerun", "failed", env=env_for(probe_dir, OMP_NUM_THREADS="1"))
    assert again.returncode == 0, again.stdout + again.stderr
    redone = summary(study / "seed0")
    assert redone["status"] == "finished" and redone["steps"] == SMALL["max_steps"] and not redone.get("error")
    new = rows(study / "seed0")
    steps = [r["step"] for r in new]
    assert steps == sorted(set(steps)) and steps[0] == 0 and steps[-1] == SMALL["max_steps"]  # from scratch, once
    assert new[0] == first[0]  # the same seed trains the same first step: a fresh start, not an appended one
    starts = [ln for ln in (study / "seed0" / "train.log").read_text().splitlines() if ln.startswith("== ")]
    assert len(starts) == 1 and starts[0].startswith("== fresh"), starts  # --fresh cleared the failed attempt
    assert summary(study / "seed1")["status"] == "finished"


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux-only")
def test_a_child_s_thread_share_counts_the_cores_it_may_use():
    """Under taskset (or a Slurm/cgroup CPU set) the share is of the usable cores, not of the machine's."""
    if not shutil.which("taskset"):
        pytest.skip("taskset (util-linux) not installed")
    code = "from gptlab.jobs.devices import threads_per_job; print(threads_per_job(1))"
    out = subprocess.run(["taskset", "-c", str(min(os.sched_getaffinity(0))), sys.executable, "-c", code],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.split() == ["1"], out.stdout + out.stderr


@pytest.mark.slow
def test_readme_main_job_leaves_report_md_and_html(tmp_path):
    """`gptlab run experiments/smoke.yaml && gptlab report smoke` from a checkout, shortened with --set."""
    (tmp_path / "experiments").mkdir()
    shutil.copy(REPO / "experiments" / "smoke.yaml", tmp_path / "experiments" / "smoke.yaml")
    exe = Path(sys.executable).parent / "gptlab"  # the console script the install puts on PATH
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([str(exe), "run", "experiments/smoke.yaml", "--set", "max_steps=10", "--set",
                          "eval_interval=5", "--set", "eval_steps=2", "--wandb", "disabled"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    report = subprocess.run([str(exe), "report", "smoke"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert report.returncode == 0, report.stdout + report.stderr
    md = (tmp_path / "reports" / "smoke" / "report.md").read_text()
    html = (tmp_path / "reports" / "smoke" / "report.html").read_text()
    for text in (md, html):
        assert "learned" in text and "rope" in text
    assert html.lstrip().lower().startswith("<!doctype html") and "<img" in html and "src=\"data:" in html
    assert len(list((tmp_path / "runs" / "smoke").glob("*/summary.json"))) == 4
