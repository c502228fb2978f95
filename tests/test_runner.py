"""`gptlab run`: specs expanded into runs, executed crash-isolated, resumable, tracked. Real subprocesses."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests import leet
from tests.conftest import REPO, TINY, assert_user_error, cli

SPEC = {"name": "mini", "description": "Tiny two-variant study.", "base": dict(TINY),
        "variants": {"learned": {"pos_encoding": "learned"}, "rope": {"pos_encoding": "rope"}},
        "seeds": [0, 1], "compare": {"metric": "val/loss", "goal": "minimize", "baseline": "learned"}}


def write_spec(tmp_path, spec=SPEC, name="spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def steps(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_two_variants_two_seeds_then_rerun_executes_nothing(tmp_path):
    spec = write_spec(tmp_path)
    runs = tmp_path / "runs"
    out = cli("run", str(spec), "--runs", str(runs), "--wandb", "disabled", "--jobs", "2")
    assert out.returncode == 0, out.stdout + out.stderr
    names = sorted(p.name for p in (runs / "mini").iterdir() if p.is_dir())
    assert names == ["learned-seed0", "learned-seed1", "rope-seed0", "rope-seed1"]
    for name in names:
        run_dir = runs / "mini" / name
        assert summary(run_dir)["status"] == "finished"
        assert {"config.yaml", "metrics.jsonl", "summary.json", "checkpoint.pt"} <= {p.name for p in run_dir.iterdir()}
        meta = yaml.safe_load((run_dir / "config.yaml").read_text())["run"]
        assert meta["label"] == name.rsplit("-", 1)[0] and meta["variant"] == name.split("-")[0]
    assert (runs / "mini" / "spec.yaml").is_file()
    mtimes = {p: p.stat().st_mtime for p in (runs / "mini").glob("*/metrics.jsonl")}
    again = cli("run", str(spec), "--runs", str(runs), "--wandb", "disabled")
    assert again.returncode == 0 and "0 of 4 runs to execute" in again.stdout
    assert mtimes == {p: p.stat().st_mtime for p in (runs / "mini").glob("*/metrics.jsonl")}
    dry = cli("run", str(spec), "--runs", str(runs), "--dry-run")
    assert dry.returncode == 0 and dry.stdout.count("finished (skip)") == 4


def test_killed_study_resumes_from_checkpoint_without_duplicate_rows(tmp_path):
    spec = write_spec(tmp_path, {**SPEC, "variants": None, "seeds": [0], "compare": None,
                                 "base": {**TINY, "max_steps": 400, "eval_interval": 50}})
    runs = tmp_path / "runs"
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "gptlab", "run", str(spec), "--runs", str(runs),
                             "--wandb", "disabled"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    run_dir = runs / "mini" / "seed0"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:  # until a checkpoint past the first eval exists
        rows = steps(run_dir) if (run_dir / "metrics.jsonl").exists() else []
        if (run_dir / "checkpoint.pt").exists() and rows and rows[-1] >= 60:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and its training process, no chance to clean up
    proc.wait()
    killed_at = steps(run_dir)[-1]
    assert 0 < killed_at < 400 and summary(run_dir)["status"] == "running"
    out = cli("run", str(spec), "--runs", str(runs), "--wandb", "disabled")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "resuming seed0" in out.stdout
    final = steps(run_dir)
    assert summary(run_dir)["status"] == "finished" and final[-1] == 400
    assert final == sorted(set(final))  # strictly increasing, nothing duplicated


def test_diverged_variant_is_recorded_and_the_study_goes_on(tmp_path):
    spec = write_spec(tmp_path, {**SPEC, "seeds": [0], "compare": {"baseline": "ok"},
                                 "variants": {"ok": {}, "boom": {"lr": 1000.0, "grad_clip": 0.0}}})
    runs = tmp_path / "runs"
    out = cli("run", str(spec), "--runs", str(runs), "--wandb", "disabled")
    assert out.returncode == 1
    assert summary(runs / "mini" / "boom-seed0")["status"] == "diverged"
    assert summary(runs / "mini" / "ok-seed0")["status"] == "finished"
    assert "diverged boom-seed0" in out.stdout  # visible when it happens
    rerun = cli("run", str(spec), "--runs", str(runs), "--wandb", "disabled", "--rerun", "failed", "--dry-run")
    assert "rerun from scratch" in rerun.stdout and rerun.stdout.count("finished (skip)") == 1


def test_crashing_run_is_recorded_failed_with_its_log(tmp_path):
    spec = write_spec(tmp_path, {**SPEC, "seeds": [0], "compare": {"baseline": "ok"},
                                 "variants": {"ok": {}, "crash": {"data.path": str(tmp_path / "gone.txt")}}})
    (tmp_path / "gone.txt").write_text("abcdefgh" * 1000)
    runs = tmp_path / "runs"
    # the data file exists when the spec is validated, then disappears: the run itself fails
    out = subprocess.run([sys.executable, "-c", f"""
import os, sys
from gptlab.runner.spec import load_spec
from gptlab.runner.execute import Study, plan
from gptlab.jobs.view import PlainView
spec = load_spec({str(spec)!r})
os.remove({str(tmp_path / 'gone.txt')!r})
sys.exit(Study(spec, plan(spec, __import__('pathlib').Path({str(runs)!r}), None), __import__('pathlib').Path({str(runs)!r}),
         n_jobs=1, slots=['cpu'], wandb='disabled', fail_fast=False, view=PlainView()).execute())
"""], capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stdout + out.stderr
    crashed = summary(runs / "mini" / "crash-seed0")
    assert crashed["status"] == "failed" and "not found" in crashed["error"]
    assert summary(runs / "mini" / "ok-seed0")["status"] == "finished"
    assert "failed crash-seed0" in out.stdout and "stdout.log" not in crashed["error"]


@pytest.mark.parametrize("text,needles", [
    ("name: x\nbase:\n  lrr: 0.1\n", ("spec.yaml:3", "lrr", "did you mean 'lr'")),
    ("name: x\nbase:\n  max_steps: lots\n", ("spec.yaml:3", "max_steps", "integer")),
    ("name: x\nvariants:\n  a:\n    norm: batch\n", ("spec.yaml:4", "norm", "layernorm")),
    ("name: x\ngrid: {lr: [0.1, 0.2\n", ("spec.yaml", "malformed YAML")),
    ("name: x\ngrid:\n  lr: []\n", ("spec.yaml:3", "empty grid")),
    ("name: x\nseed: [1]\n", ("spec.yaml:2", "did you mean 'seeds'")),
    ("name: x\nvariants:\n  a: {n_head: 5}\n", ("spec.yaml:3", "divisible")),
    ("name: x\nvariants: {a: {}}\ncompare: {baseline: b}\n", ("spec.yaml:3", "baseline")),
])
def test_bad_specs_exit_2_with_file_and_line_and_write_nothing(tmp_path, text, needles):
    (tmp_path / "spec.yaml").write_text(text)
    out = cli("run", str(tmp_path / "spec.yaml"), "--runs", str(tmp_path / "runs"))
    assert_user_error(out, *needles)
    assert not (tmp_path / "runs").exists()


def test_wandb_offline_history_matches_the_local_store(tmp_path):
    """W&B's own reader (`wandb leet inspect`) reads back what the store holds; gptlab's reader agrees."""
    from gptlab.frames.wandb_load import parse_wandb_file

    spec = write_spec(tmp_path, {**SPEC, "variants": {"learned": {}}, "seeds": [0],
                                 "compare": {"baseline": "learned"}})
    runs = tmp_path / "runs"
    out = cli("run", str(spec), "--runs", str(runs), "--wandb", "offline")
    assert out.returncode == 0, out.stdout + out.stderr
    run_dir = runs / "mini" / "learned-seed0"
    files = list(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1
    local = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    logged = {row["step"]: row for row in leet.history(files[0]).values()}
    assert sorted(logged) == [r["step"] for r in local]
    for row in local:
        for key in ("train/loss", "val/loss"):
            if key in row:
                assert logged[row["step"]][key] == pytest.approx(row[key])
    read_back = leet.summary(files[0])
    assert read_back["summary"]["best_val_loss"] == pytest.approx(summary(run_dir)["best_val_loss"])
    assert read_back["summary"]["status"] == "finished" and read_back["state"] == "finished"
    record = parse_wandb_file(files[0])  # gptlab's reader (what `gptlab report --wandb-dir` uses)
    assert [r["step"] for r in record.history] == sorted(logged)
    for row in record.history:
        assert row == pytest.approx({k: v for k, v in logged[row["step"]].items()
                                     if not k.startswith("_") and k != "best_val_loss"})
    assert {k: record.summary[k] for k in ("best_val_loss", "status")} == \
        {k: read_back["summary"][k] for k in ("best_val_loss", "status")}
    from gptlab.frames.load import load_runs

    stored, from_wandb = load_runs(runs), load_runs(None, wandb_dir=run_dir / "wandb")
    for rows in (stored, from_wandb):  # a run without a study's meta: the defaults, from either source
        assert rows[["stage", "at", "size"]].iloc[0].tolist() == ["compare", None, None]


def test_every_shipped_spec_passes_dry_run(tmp_path):
    """The specs, not the process, are under test: `gptlab run --dry-run` in this process (typer's CliRunner),
    14 specs without 14 interpreter start-ups; the dry run's own process is tested in test_study_*."""
    from typer.testing import CliRunner

    from gptlab.cli.app import app

    for spec in sorted((REPO / "experiments").glob("*.yaml")):
        out = CliRunner().invoke(app, ["run", str(spec), "--dry-run", "--runs", str(tmp_path / "runs"), "--set",
                                       "max_steps=10"])
        assert out.exit_code == 0, (spec, out.output, out.exception)
        assert "runs (" in out.stdout
        data = yaml.safe_load(spec.read_text())
        if spec.stem != "smoke":
            assert len(data["seeds"]) >= 3, spec
    assert not (tmp_path / "runs").exists()


def test_a_run_locked_by_another_process_is_skipped(tmp_path):
    from gptlab.runner.execute import plan
    from gptlab.runner.spec import load_spec
    from gptlab.store import RunStore

    spec = load_spec(write_spec(tmp_path))
    runs = tmp_path / "runs"
    holder = subprocess.Popen([sys.executable, "-c", f"""
import time
from gptlab.store import RunStore
lock = RunStore({str(runs / 'mini' / 'rope-seed1')!r}).lock()
print('locked', flush=True)
time.sleep(60)
"""], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        actions = {job.run.name: job.action for job in plan(spec, runs, None)}
        assert actions["rope-seed1"] == "skip-locked" and actions["rope-seed0"] == "run"
        assert RunStore(runs / "mini" / "rope-seed1").is_locked()
    finally:
        holder.kill()
        holder.wait()
    assert not RunStore(runs / "mini" / "rope-seed1").is_locked()


def test_jobs_auto_sizes_from_memory(tmp_path, monkeypatch):
    import torch

    from gptlab.runner import packing
    from gptlab.runner.packing import MAX_PER_GPU, MEMORY_HEADROOM, auto_jobs, run_memory_mb
    from gptlab.runner.spec import load_spec

    small = load_spec(write_spec(tmp_path))
    big = load_spec(write_spec(tmp_path, {**SPEC, "base": {**TINY, "n_embd": 256, "n_layer": 4, "batch_size": 64}},
                               name="big.yaml"))
    big_mb = max(run_memory_mb(run.config) for run in big.runs)
    assert big_mb > 10 * max(run_memory_mb(run.config) for run in small.runs) > 0
    # CPU: one run per 4 cores, at least one
    for cores, jobs in ((16, 4), (7, 1), (2, 1), (1, 1)):
        monkeypatch.setattr(packing, "usable_cpus", lambda cores=cores: cores)
        assert auto_jobs(small, ["cpu"]) == jobs
    # GPUs: free memory is the one hardware fact given; how many runs fit follows from the estimate
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    gpu = load_spec(write_spec(tmp_path, {**SPEC, "base": {**TINY, "n_embd": 256, "n_layer": 4, "batch_size": 64,
                                                           "device": "cuda", "dtype": "float32"}}, name="gpu.yaml"))
    need_mb = max(run_memory_mb(run.config) for run in gpu.runs) + 500  # + the CUDA context of each process
    free = {0: 3.5 * need_mb / MEMORY_HEADROOM, 1: 10 * 3.5 * need_mb / MEMORY_HEADROOM}  # MiB
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i: (int(free[i] * 2**20), int(80e9)))
    assert auto_jobs(gpu, ["0"]) == 3                 # 3.5 runs' worth of memory: 3 runs
    assert auto_jobs(gpu, ["0", "1"]) == 2 * 3        # the fuller GPU sets the pace for both
    assert auto_jobs(gpu, ["1"]) == min(MAX_PER_GPU, 35) == MAX_PER_GPU
    free[0] = 0.5 * need_mb / MEMORY_HEADROOM
    assert auto_jobs(gpu, ["0"]) == 1                 # not even one fits: still one at a time


def test_set_seed_is_refused_because_seeds_belong_to_the_spec(tmp_path):
    out = cli("run", str(write_spec(tmp_path)), "--set", "seed=5", "--runs", str(tmp_path / "runs"))
    assert out.returncode == 2 and "seeds" in out.stderr and "--set" in out.stderr
    assert not (tmp_path / "runs").exists()


def test_stored_runs_with_another_config_are_never_reused(tmp_path):
    spec = write_spec(tmp_path, {**SPEC, "variants": {"learned": {}}, "seeds": [0], "compare": None})
    runs = tmp_path / "runs"
    assert cli("run", str(spec), "--runs", str(runs), "--wandb", "disabled").returncode == 0
    before = (runs / "mini" / "learned-seed0" / "summary.json").read_text()
    out = cli("run", str(spec), "--set", "max_steps=40", "--runs", str(runs), "--wandb", "disabled")
    assert out.returncode == 2 and "different config" in out.stderr and "max_steps: 30 -> 40" in out.stderr
    assert (runs / "mini" / "learned-seed0" / "summary.json").read_text() == before
    dry = cli("run", str(spec), "--set", "max_steps=40", "--runs", str(runs), "--dry-run")
    assert dry.returncode == 0 and "CONFLICT" in dry.stdout
    rerun = cli("run", str(spec), "--set", "max_steps=40", "--runs", str(runs), "--wandb", "disabled",
                "--rerun", "all")
    assert rerun.returncode == 0 and summary(runs / "mini" / "learned-seed0")["steps"] == 40
    assert not (runs / "mini" / "learned-seed0" / "stdout.log").read_text().count("Traceback")


@pytest.mark.parametrize("text,needles", [
    ("name: x\nbase: {data.path: /nonexistent/text.txt}\n", ("spec.yaml", "data.path", "not found")),
    ("name: x\nbase: {block_size: 100000000}\n", ("spec.yaml", "block_size", "larger than the data")),
    ("name: x\nvariants:\n  a: {}\n  a: {lr: 0.1}\n", ("spec.yaml:4", "duplicate key")),
])
def test_machine_level_problems_are_caught_before_anything_runs(tmp_path, text, needles):
    (tmp_path / "spec.yaml").write_text(text)
    out = cli("run", str(tmp_path / "spec.yaml"), "--runs", str(tmp_path / "runs"))
    assert out.returncode == 2, out.stdout + out.stderr
    assert all(n in out.stderr for n in needles), out.stderr
    assert not (tmp_path / "runs").exists()
