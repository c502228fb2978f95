"""`gptlab run SPEC --launcher submitit` with submitit's local executor: the jobs run gptlab train."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


def test_submitit_local_runs_a_two_run_spec(tmp_path: Path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"name": "tinyslurm", "seeds": [0, 1], "base": {
        "n_layer": 1, "n_embd": 16, "block_size": 16, "batch_size": 8, "max_steps": 20, "eval_steps": 2,
        "eval_interval": 20}}))
    env = {**os.environ, "GPTLAB_SUBMITIT": "local"}
    cmd = [sys.executable, "-m", "gptlab", "run", str(spec), "--launcher", "submitit", "--wandb", "disabled"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    exp = tmp_path / "runs" / "tinyslurm"
    for run in ("seed0", "seed1"):
        assert json.loads((exp / run / "summary.json").read_text())["status"] == "finished"
    assert any((exp / ".submitit").glob("*_result.pkl"))  # submitit's own logs and results
    assert "2/2 finished" in proc.stdout

    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "submitted" not in again.stdout  # finished runs are skipped


def test_final_counts_name_each_run_as_what_it_is():
    """A run running elsewhere was counted 'finished', a cancelled one 'failed': each is what it is."""
    from types import SimpleNamespace

    from gptlab.jobs.view import final_counts

    def job(status, **result):
        return SimpleNamespace(status=status, result={"status": status, **result})

    jobs = [job("finished"), job("finished", elsewhere=True), job("running", elsewhere=True),
            job("interrupted", slurm_state="CANCELLED"), job("pending", slurm_state="PENDING")]
    counts, bad = final_counts(jobs)
    assert counts == "2/5 finished, 1 running elsewhere, 1 cancelled, 1 pending in Slurm" and bad
    assert final_counts(jobs[:3]) == ("2/3 finished, 1 running elsewhere", False)


@pytest.mark.parametrize(("required", "outcome"), [("1", "fail"), ("", "skip"), ("0", "skip")])
def test_a_missing_slurm_skips_unless_required(monkeypatch, required, outcome):
    """tests/test_slurm_real.py without a cluster: a visible skip, or (GPTLAB_REQUIRE_SLURM=1, as CI sets it) a
    failure naming the reason."""
    from tests.slurm_cluster import REQUIRE_ENV, skip_or_fail

    monkeypatch.setenv(REQUIRE_ENV, required)
    with pytest.raises((pytest.fail.Exception, pytest.skip.Exception), match="no apt-get here") as raised:
        skip_or_fail("no apt-get here")  # caught either way: a skip must not skip this test
    assert type(raised.value) is (pytest.fail.Exception if outcome == "fail" else pytest.skip.Exception)


def test_ci_requires_slurm_and_runs_the_readmes_test_command():
    """.ci/run sets GPTLAB_REQUIRE_SLURM=1 and runs exactly the README's test command, which shows skips (-rs)."""
    from tests.conftest import REPO

    ci = (REPO / ".ci" / "run").read_text()
    readme = (REPO / "README.md").read_text()
    assert "\nexport GPTLAB_REQUIRE_SLURM=1" in ci
    command = ". .venv/bin/activate && python -m pytest -n 2 --dist loadfile -rs\n"
    assert ci.endswith(command) and f"\n{command}```" in readme
