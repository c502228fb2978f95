"""A tuned study through W&B offline: tuning runs are W&B runs with job_type `tune` and the tuned value in
their config (read back with W&B's own reader), comparison runs keep the variant as job_type, and
comparison runs carry the study's `stage` and `at` in their W&B config (also read with W&B's reader), and
`load_runs()` says which stage each run belongs to."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.leet import records

pytestmark = pytest.mark.slow

SPEC = """\
name: tw
base: {n_layer: 1, n_head: 2, n_embd: 16, block_size: 16, batch_size: 4, max_steps: 6, eval_interval: 3,
       eval_steps: 2, dropout: 0.0, warmup_steps: 1, log_interval: 3, dtype: float32}
variants:
  a: {norm_placement: pre}
tune: {lr: [1.0e-3, 1.0e-2], seeds: [100], compare_shared: true}
seeds: [0]
"""


@pytest.fixture(scope="module")
def tuned_store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tw")
    (root / "spec.yaml").write_text(SPEC)
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    env.pop("WANDB_SERVICE", None)
    out = subprocess.run([sys.executable, "-m", "gptlab", "run", str(root / "spec.yaml"), "--runs", str(root / "runs"),
                          "--wandb", "offline"], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return root / "runs" / "tw"


def _run_record(run_dir: Path) -> dict:
    (log,) = sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    (run,) = [r["run"] for r in records(log) if r.get("type") == "run"]
    return run


def test_tuning_runs_are_wandb_runs_with_job_type_tune_and_the_tuned_value(tuned_store):
    for lr, text in ((1e-3, "0.001"), (1e-2, "0.01")):
        run = _run_record(tuned_store / f"a-tune-lr={text}-seed100")
        assert run["job_type"] == "tune" and run["run_group"] == "tw", run
        config = run["config"]["update"]
        assert config["train"]["lr"] == pytest.approx(lr) and config["run"]["stage"] == "tune", config
    compared = _run_record(tuned_store / "a-seed0")
    assert compared["job_type"] == "a", compared
    # the study's stage and at, as W&B itself reads them back from each comparison run's log
    for name, at in (("a-seed0", "tuned"), ("a-shared-seed0", "shared")):
        meta = _run_record(tuned_store / name)["config"]["update"]["run"]
        assert (meta["stage"], meta["at"], meta["variant"]) == ("compare", at, "a"), (name, meta)


def test_load_runs_has_the_stage_of_each_run(tuned_store):
    import gptlab

    runs = gptlab.load_runs(runs=tuned_store.parent, experiments=["tw"]).set_index("run")
    assert runs.loc["a-tune-lr=0.001-seed100", "stage"] == "tune"
    assert runs.loc["a-tune-lr=0.01-seed100", "stage"] == "tune"
    assert runs.loc["a-seed0", "stage"] == "compare" and runs.loc["a-seed0", "at"] == "tuned"
    assert runs.loc["a-shared-seed0", "stage"] == "compare" and runs.loc["a-shared-seed0", "at"] == "shared"
