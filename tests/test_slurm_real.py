"""`gptlab run --launcher submitit` on a real one-node Slurm (tests/slurm_cluster.py): a study finishes and
reports, a requeued or timed-out job resumes from its checkpoint while the driver waits for it, a job
cancelled while pending is recorded as cancelled and rerun, impossible requests are refused up front,
GPTLAB_SLURM_* reach the job, and sweeps/slurm_agents.sbatch is a valid batch script."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, assert_user_error
from tests.slurm_cluster import SlurmCluster, skip_or_fail, unavailable
from tests.step_barrier import barrier_env

TINY = {"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 32, "batch_size": 4, "eval_steps": 2,
        "log_interval": 10, "dropout": 0.0}


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    reason = unavailable()
    if reason:
        skip_or_fail(reason)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm")).start()
    yield cluster
    cluster.cancel_all()
    cluster.stop()


@pytest.fixture(autouse=True)
def _no_jobs_left(request):
    yield
    if "slurm" in request.fixturenames:
        request.getfixturevalue("slurm").cancel_all()


def spec(tmp_path: Path, name: str, seeds=(0,), **base) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "seeds": list(seeds), "base": {**TINY, **base}}))
    return path


def gptlab_env(slurm: SlurmCluster, **settings) -> dict[str, str]:
    env = {k: v for k, v in slurm.env.items() if not k.startswith("GPTLAB_")}
    env.update({"WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1",
                **{f"GPTLAB_SLURM_{k}": str(v) for k, v in settings.items()}})
    return env


def run(slurm: SlurmCluster, tmp_path: Path, spec_path: Path, timeout: float = 240, **settings):
    return subprocess.run([sys.executable, "-m", "gptlab", "run", str(spec_path), "--launcher", "submitit",
                           "--wandb", "disabled"], cwd=tmp_path, env=gptlab_env(slurm, **settings),
                          capture_output=True, text=True, timeout=timeout)


def start(slurm: SlurmCluster, tmp_path: Path, spec_path: Path, env: dict[str, str] | None = None,
          **settings) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gptlab", "run", str(spec_path), "--launcher", "submitit",
                             "--wandb", "disabled"], cwd=tmp_path, env={**gptlab_env(slurm, **settings), **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def our_job(slurm: SlurmCluster, name: str, state: str | None = None) -> str | None:
    for job in slurm.jobs():
        if job["name"] == f"gptlab-{name}" and (state is None or job["state"] == state):
            return job["id"]
    return None


def last_step(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    rows = path.read_text().splitlines() if path.exists() else []
    return json.loads(rows[-1])["step"] if rows else 0


def assert_rows_once(run_dir: Path, max_steps: int, log_interval: int = 10) -> None:
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [s for s in steps if s > 0]
    assert len(train) == len(set(train)), "a metric row logged twice"
    assert sorted(set(train)) == list(range(log_interval, max_steps + 1, log_interval)), "a metric row lost"


def test_study_finishes_reports_and_the_settings_reach_the_job(slurm: SlurmCluster, tmp_path: Path) -> None:
    path = spec(tmp_path, "slurmstudy", seeds=(0, 1), max_steps=40, eval_interval=20)
    out = run(slurm, tmp_path, path, CPUS=1, MEM_GB=1, TIME=7, PARTITION="debug", CONSTRAINT="gptlabfeat",
              PARALLEL=2, ACCOUNT="gptlabacct")
    assert out.returncode == 0, out.stdout + out.stderr + slurm.logs()
    assert "slurmstudy: 2/2 finished" in out.stdout
    for seed in (0, 1):
        summary = json.loads((tmp_path / "runs" / "slurmstudy" / f"seed{seed}" / "summary.json").read_text())
        assert summary["status"] == "finished" and summary["steps"] == 40
    job_id = re.search(r"\(job (\d+_\d+)\)", out.stdout).group(1)
    job = slurm.job(job_id)
    assert (job["Partition"], job["TimeLimit"], job["Features"], job["Account"]) == \
        ("debug", "00:07:00", "gptlabfeat", "gptlabacct")
    assert job["MinMemoryNode"] == "1G" and job["NumCPUs"] == "1" and job["ArrayTaskThrottle"] == "2"
    assert "gres" not in job.get("TresPerNode", "")  # no GPU asked of a GPU-less cluster
    report = subprocess.run([sys.executable, "-m", "gptlab", "report", "slurmstudy"], cwd=tmp_path,
                            env=gptlab_env(slurm), capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "reports" / "slurmstudy" / "report.md").exists()


def test_defaults_fit_the_partition(slurm: SlurmCluster, monkeypatch) -> None:
    from gptlab.runner.slurm import slurm_parameters
    from gptlab.runner.slurm_query import partition

    monkeypatch.setenv("SLURM_CONF", slurm.env["SLURM_CONF"])
    for key in ("GPUS", "CPUS", "MEM_GB", "PARTITION"):
        monkeypatch.delenv(f"GPTLAB_SLURM_{key}", raising=False)
    part = partition(None)
    assert (part.name, part.gpus, part.cpus) == ("debug", 0, slurm.cpus)
    params = slurm_parameters("x", part)
    assert "gpus_per_node" not in params  # README's 1 GPU only where the partition has GPUs
    assert params["cpus_per_task"] == min(8, slurm.cpus) and params["mem_gb"] == min(32, slurm.mem_mb // 1024)


@pytest.mark.parametrize(("settings", "needles"), [
    ({"GPUS": 1}, ("GPTLAB_SLURM_GPUS", "no GPUs", "GPTLAB_SLURM_GPUS=0")),
    ({"CPUS": 512}, ("GPTLAB_SLURM_CPUS", "has")),
    ({"MEM_GB": 100000}, ("GPTLAB_SLURM_MEM_GB", "or less")),
    ({"CONSTRAINT": "nosuchfeature"}, ("sbatch refused the jobs", "Invalid feature")),  # sbatch's own refusal
    ({"PARTITION": "short", "TIME": 5}, ("pending with reason Partition",)),  # accepted, then pending for ever
])
def test_impossible_requests_are_one_line_and_leave_nothing(slurm: SlurmCluster, tmp_path: Path, settings,
                                                            needles) -> None:
    out = run(slurm, tmp_path, spec(tmp_path, "refused", max_steps=10), timeout=120, **settings)
    assert_user_error(out, *needles)
    assert not (tmp_path / "runs").exists(), list((tmp_path / "runs").rglob("*"))
    assert not [j for j in slurm.jobs() if j["state"] in ("PENDING", "RUNNING")]


def test_requeued_job_resumes_and_the_driver_waits_for_it(slurm: SlurmCluster, tmp_path: Path) -> None:
    max_steps = 3000
    driver = start(slurm, tmp_path, spec(tmp_path, "requeue", max_steps=max_steps, eval_interval=500), CPUS=1,
                   MEM_GB=1)
    run_dir = tmp_path / "runs" / "requeue" / "seed0"
    wait_for(lambda: last_step(run_dir) >= 400, 120, "the run to train")
    job_id = our_job(slurm, "requeue", "RUNNING")
    slurm.run("scontrol", "requeue", job_id)
    stopped_at = wait_for(lambda: json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
                          and json.loads((run_dir / "summary.json").read_text())["steps"], 60, "the checkpoint")
    output, _ = driver.communicate(timeout=180)
    assert driver.returncode == 0, output + slurm.logs()
    assert "requeued" in output and "requeue: 1/1 finished" in output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == max_steps
    assert stopped_at < max_steps and f"resum" in (run_dir / "train.log").read_text()
    assert_rows_once(run_dir, max_steps)


def test_time_limit_checkpoints_on_usr2_and_resumes(slurm: SlurmCluster, tmp_path: Path) -> None:
    """A 2-minute limit: USR2 (submitit's) comes 60 s before it (Slurm sends it up to 30 s earlier still);
    the run checkpoints, the job is requeued and resumes. The run is held after step 150 by the step barrier
    (tests/step_barrier.py) until the resumed attempt has begun, so the signal lands at step 150 on any machine
    and the resume starts there; once it has, the limit is raised so the test need not wait for a third
    attempt. (With a 1-minute limit Slurm sends USR2 as the job starts, before submitit can catch it.)"""
    max_steps, held = 300, 150
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {"PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
           **barrier_env(barrier, held, "seed0")}
    path = spec(tmp_path, "timelimit", max_steps=max_steps, eval_interval=100, plugins=["tests.step_barrier"])
    driver = start(slurm, tmp_path, path, env, CPUS=1, MEM_GB=1, TIME=2)
    run_dir = tmp_path / "runs" / "timelimit" / "seed0"
    try:
        wait_for(lambda: (barrier / f"at-step-{held}").exists(), 150, f"the run to be held at step {held}")
        wait_for(lambda: "== resume" in ((run_dir / "train.log").read_text() if (run_dir / "train.log").exists()
                                         else ""), 180, "the requeued attempt to resume")
    except AssertionError:
        driver.kill()
        submitit = "".join(p.read_text()[-3000:] for p in (run_dir.parent / ".submitit").glob("*_log.err"))
        train = [ln for ln in (run_dir / "train.log").read_text().splitlines() if " step " not in ln] \
            if (run_dir / "train.log").exists() else []
        raise AssertionError(f"{driver.communicate()[0]}\n{slurm.jobs()}\n{train}\n{submitit}") from None
    job_id = our_job(slurm, "timelimit", "RUNNING")
    slurm.run("scontrol", "update", f"JobId={job_id}", "TimeLimit=10")
    (barrier / "release").touch()
    output, _ = driver.communicate(timeout=420)
    assert driver.returncode == 0, output + slurm.logs()
    resumed_at = int(re.search(r"== resume at step (\d+)", (run_dir / "train.log").read_text()).group(1))
    assert resumed_at == held and "requeued" in output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == max_steps
    assert_rows_once(run_dir, max_steps)


def test_cancelled_while_pending_is_recorded_and_rerun(slurm: SlurmCluster, tmp_path: Path) -> None:
    blocker = slurm.run("sbatch", "--parsable", f"--cpus-per-task={slurm.cpus}", "-o", "/dev/null", "--wrap",
                        "sleep 300").stdout.strip()
    wait_for(lambda: slurm.job(blocker)["JobState"] == "RUNNING", 30, "the blocker")
    path = spec(tmp_path, "cancelled", max_steps=20, eval_interval=10)
    driver = start(slurm, tmp_path, path, CPUS=1, MEM_GB=1)
    job_id = wait_for(lambda: our_job(slurm, "cancelled", "PENDING"), 60, "the job to be pending")
    slurm.run("scancel", job_id)
    output, _ = driver.communicate(timeout=60)
    assert driver.returncode == 1, output
    assert "cancelled (state: CANCELLED)" in output and "cancelled: 0/1 finished, 1 cancelled" in output
    assert not (tmp_path / "runs" / "cancelled" / "seed0").exists()  # never ran: nothing recorded as failed
    slurm.run("scancel", blocker)
    again = run(slurm, tmp_path, path, CPUS=1, MEM_GB=1)
    assert again.returncode == 0 and "1/1 finished" in again.stdout, again.stdout + again.stderr


def test_agents_sbatch_is_valid_and_signals_the_batch_shell(slurm: SlurmCluster) -> None:
    script = REPO / "sweeps" / "slurm_agents.sbatch"
    assert "#SBATCH --signal=B:TERM@" in script.read_text()  # no job steps: only B: reaches the exec'd agent
    out = slurm.run("sbatch", "--test-only", "--gres=none", "--cpus-per-task=1", "--mem=1G", str(script),
                    "ent/proj/sweep1", check=False)
    assert out.returncode == 0 and "to start at" in out.stderr, out.stderr
