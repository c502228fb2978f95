"""Documented behaviours of gptlab's tools around training, each on real tiny runs: `gptlab bench --grid`,
`--overhead` and `--pack`; hyperband in `gptlab sweep` stopping a real training process; a W&B failure
mid-run reported once with the run store complete; the memory estimate behind `--jobs auto` against the
memory a real training step holds on CPU."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import pytest
import yaml

from tests.conftest import tiny_args

ENV = {**os.environ, "WANDB_SILENT": "true", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
BENCH_MODEL = ["n_layer=1", "n_head=2", "n_embd=16", "block_size=16", "batch_size=4", "dropout=0.0",
               "max_steps=5", "eval_interval=5", "eval_steps=2", "log_interval=5", "warmup_steps=0"]


def gptlab(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gptlab", *args], cwd=cwd, env=env or {**ENV, "WANDB_MODE": "disabled"},
                          capture_output=True, text=True, timeout=300)


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# ---- gptlab bench ----

@pytest.mark.slow
def test_bench_grid_and_overhead_measure_real_runs(tmp_path):
    out = tmp_path / "bench.json"
    res = gptlab("bench", *BENCH_MODEL, "--steps", "2", "--warmup", "0", "--no-features", "--no-eager", "--overhead",
                 "--grid", "--grid-runs", "2", "--jobs", "2", "--out", str(out), cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads(out.read_text())
    (row,) = report["results"]
    assert row["median_ms"] > 0 and row["tokens_per_s"] > 0
    overhead = report["logging_overhead"]
    assert set(overhead["tokens_per_s"]) == {"logging off", "W&B offline + basic diagnostics"}
    assert all(v > 0 for v in overhead["tokens_per_s"].values()) and isinstance(overhead["overhead_pct"], float)
    grid = report["grid"]
    assert grid["runs"] == 2 and grid["jobs"] == 2 and grid["speedup"] > 0
    assert [w["exit_code"] for w in grid["walls"].values()] == [0, 0]  # every run of both studies finished
    assert "logging + basic diagnostics overhead" in res.stdout and "grid of 2 runs" in res.stdout


@pytest.mark.slow
def test_bench_pack_times_every_arm_and_checks_the_packed_losses(tmp_path):
    out = tmp_path / "pack.json"
    res = gptlab("bench", *BENCH_MODEL, "--pack", "--pack-seeds", "2", "--pack-repeats", "1", "--out", str(out),
                 "--wandb", "disabled", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads(out.read_text())
    study = report["study"]
    assert set(study["median_wall_s"]) == {"sequential", "processes", "packed", "packed_x2"}
    assert all(w > 0 for w in study["median_wall_s"].values())
    # the packed arm trains the same runs: its best val losses equal the sequential arm's
    assert study["max_abs_best_val_diff_packed_vs_sequential"] < 1e-3
    assert report["step_kernels"]["members"] == 2 and report["step_kernels"]["stacked bmm (gptlab.pack)"] > 0
    assert "runs/hour" in res.stdout


# ---- hyperband in gptlab sweep ----

MAX_STEPS = 60
HELD_AT = 30  # the run that cannot learn waits here: evaluated at 0, 10, 20, 30, so band 2 applies, band 6 not


def test_hyperband_stops_a_real_training_process_before_max_steps(tmp_path):
    """Two concurrent runs, one learning and one that cannot (lr 1e-7); from the 3rd evaluation on hyperband
    (min_iter 2, eta 3: the band keeps the best third, so of two runs the worse is cut) stops the worse:
    its process gets SIGTERM mid-run and the run is recorded stopped. The step barrier (tests/step_barrier.py)
    holds the worse run at step 30 and is never released: only hyperband's SIGTERM can end it there, whatever
    the machine's speed, while the other trains to max_steps."""
    from tests.step_barrier import barrier_env
    from tests.study_runs import ENV as STUDY_ENV

    sweep = tmp_path / "hb.yaml"
    fixed = {k: {"value": v} for k, v in (a.split("=") for a in tiny_args(
        batch_size=4, max_steps=MAX_STEPS, eval_interval=10, eval_steps=2, log_interval=5, lr_schedule="constant"))}
    fixed = {k: {"value": yaml.safe_load(v["value"])} for k, v in fixed.items() if k != "lr"}
    sweep.write_text(yaml.safe_dump({
        "name": "hb", "method": "grid", "command": ["${env}", "gptlab", "train", "${args}"],
        "metric": {"name": "best_val_loss", "goal": "minimize"},
        "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 3},
        "parameters": {"lr": {"values": [3e-3, 1e-7]}, **fixed, "plugins": {"value": ["tests.step_barrier"]}}}))
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "gptlab", "sweep", str(sweep), "--jobs", "2", "--runs",
                             str(tmp_path / "runs"), "--wandb", "disabled"], cwd=tmp_path,
                            env={**STUDY_ENV, **barrier_env(barrier, HELD_AT, "lr=1e-07")}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=180)  # held forever unless hyperband stops it
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError("hyperband never stopped the run held at step 30:\n" + out + err) from None
    assert (barrier / f"at-step-{HELD_AT}").read_text().startswith("lr=1e-07 "), out + err
    runs = {d.name: json.loads((d / "summary.json").read_text())
            for d in (tmp_path / "runs" / "hb").iterdir() if (d / "summary.json").is_file()}
    assert sorted(runs) == ["lr=0.003", "lr=1e-07"], out + err
    slow, good = "lr=1e-07", "lr=0.003"
    assert f"hyperband: stopping {slow}" in out, out
    assert runs[slow]["status"] == "interrupted" and runs[slow]["steps"] == HELD_AT, runs[slow]
    assert slow in json.loads((tmp_path / "runs" / "hb" / "sweep_stopped.json").read_text())
    assert runs[good]["status"] == "finished" and runs[good]["steps"] == MAX_STEPS
    assert proc.returncode == 0, out + err  # a hyperband stop is a result, not a failure


# ---- W&B failing mid-run ----

def _descendants(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            continue
        for kid in kids:
            out += [kid, *_descendants(kid)]
    return out


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc to find W&B's service")
def test_wandb_dying_mid_run_is_reported_once_and_the_store_is_complete(tmp_path):
    """W&B's service process (wandb-core) killed while the run trains: one warning line on the terminal, no
    traceback, and the run store ends finished with every metric row once."""
    args = ["train", *tiny_args(batch_size=4, max_steps=600, eval_interval=100, log_interval=5), "--runs",
            str(tmp_path), "--name", "r", "--experiment", "wb", "--wandb", "offline"]
    proc = subprocess.Popen([sys.executable, "-m", "gptlab", *args], cwd=tmp_path, env={**ENV, "WANDB_MODE": "offline"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "wb" / "r" / "metrics.jsonl"
    core, deadline = None, time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        core = next((p for p in _descendants(proc.pid) if _comm(p) == "wandb-core"), None)
        if core and metrics.exists() and len(metrics.read_text().splitlines()) > 5:
            break
        time.sleep(0.05)
    assert core is not None, "W&B's service process never appeared"
    os.kill(core, signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning: W&B logging turned off"), err
    summary = json.loads((tmp_path / "wb" / "r" / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == 600
    assert [r["step"] for r in rows(metrics.parent)] == list(range(0, 601, 5))  # every row, once


# ---- the memory estimate behind --jobs auto ----

class _LiveTensorBytes:
    """Bytes of CPU tensor storage alive at once, at most, while active: every storage an op creates is
    counted until it is freed (autograd's saved tensors included). The CPU allocator keeps no peak
    counter of its own, and peak RSS adds allocator slack of about the same size as the tensors."""

    def __init__(self) -> None:
        from torch.utils._python_dispatch import TorchDispatchMode

        tracker = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
                out = func(*args, **(kwargs or {}))
                tracker.count(out)
                return out

        self.mode, self.live, self.now, self.peak = Mode(), {}, 0, 0

    def count(self, out) -> None:  # noqa: ANN001
        import torch
        from torch.utils._pytree import tree_flatten

        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor) or t.device.type != "cpu":
                continue
            storage = t.untyped_storage()
            key, size = storage.data_ptr(), storage.nbytes()
            if size == 0 or key in self.live:
                continue
            self.live[key] = size
            self.now += size
            self.peak = max(self.peak, self.now)
            weakref.finalize(storage, self._freed, key)

    def _freed(self, key: int) -> None:
        self.now -= self.live.pop(key, 0)


@pytest.mark.parametrize("overrides", [
    {"dtype": "float32"},                                   # fused attention, float32
    {"dtype": "bfloat16"},                                  # autocast, the manual attention path
    {"dtype": "float32", "activation": "swiglu", "dropout": 0.1},
])
def test_memory_estimate_matches_the_peak_of_a_real_training_step_within_20_percent(overrides):
    """run_memory_mb (what `--jobs auto` sizes GPUs by) against the tensors a real TrainStep holds at its
    peak: AdamW's states and gradients, the activations autograd keeps, the logits. Stated tolerance: 20%
    (the formula leaves out kernel workspaces and counts autocast copies a little generously)."""
    import torch

    from gptlab.config import build_config
    from gptlab.dataset import load_data
    from gptlab.model import build_model
    from gptlab.runner.packing import run_memory_mb
    from gptlab.train.device import resolve_runtime
    from gptlab.train.step import TrainStep

    cfg = build_config({"n_layer": 2, "n_head": 4, "n_embd": 64, "block_size": 64, "batch_size": 16,
                        "dropout": 0.0, "diagnostics": "off", "compile": "false", **overrides})
    data = load_data(cfg.data, cfg.model.block_size)
    cfg = cfg.replace(vocab_size=data.tokenizer.vocab_size)
    runtime = resolve_runtime(cfg.train)
    torch.manual_seed(0)
    model = build_model(cfg.model)
    step = TrainStep(cfg, model, runtime, data.train)
    step(1e-3)  # AdamW's states exist from here on
    params = [p for p in model.parameters()]
    held = sum(p.untyped_storage().nbytes() for p in params)
    held += sum(v.untyped_storage().nbytes() for s in step.opt.state.values() for v in s.values()
                if isinstance(v, torch.Tensor) and v.dim() > 0)
    tracker = _LiveTensorBytes()
    with tracker.mode:
        step(1e-3)
    measured_mb = (held + tracker.peak) / 2**20
    estimate = run_memory_mb(cfg)
    assert estimate == pytest.approx(measured_mb, rel=0.20), (estimate, measured_mb)
