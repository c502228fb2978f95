"""Faults injected in-process: full disks, damaged files, killed processes' leftovers, aliases, degenerate input.

Each test drives the real code path (a real tiny training run where one is needed) and checks what the
store holds afterwards, so a regression (a duplicated row, a half checkpoint left, a wiped run) fails it.
"""
from __future__ import annotations

import contextlib
import errno
import json
import signal
import sys

import pytest
import torch

from gptlab.config import build_config
from gptlab.errors import ConfigError, DataError, UserError
from gptlab.store import RunStore, Status, StoreError, StoreWriteError, writing
from tests.conftest import TINY


def tiny_cfg(**changes):
    return build_config({**TINY, "wandb": "disabled", **changes})


def train(tmp_path, name="r", **changes):
    from gptlab.train import RunMeta, run_training

    return run_training(tiny_cfg(**changes), tmp_path / "runs", RunMeta(experiment="e", name=name))


def logged_steps(store: RunStore) -> list[int]:
    return [json.loads(line)["step"] for line in store.metrics_path.read_text().splitlines()]


@pytest.mark.parametrize("code,words", [(errno.ENOSPC, "disk full"), (errno.EDQUOT, "disk quota exceeded"),
                                        (errno.EROFS, "read-only file system"), (errno.EIO, "I/O error")])
def test_disk_failures_are_named_by_what_was_written(tmp_path, code, words):
    with pytest.raises(StoreWriteError, match=f"^{words} while writing checkpoint"):
        with writing("checkpoint", tmp_path / "checkpoint.pt"):
            raise OSError(code, "boom")
    with pytest.raises(PermissionError):  # not the disk's fault: left to the caller
        with writing("checkpoint", tmp_path / "checkpoint.pt"):
            raise PermissionError(errno.EACCES, "denied")


@pytest.mark.parametrize("code,words", [(errno.ENOSPC, "disk full"), (errno.EIO, "I/O error")])
def test_disk_failure_mid_checkpoint_is_recorded_and_the_same_run_resumes(tmp_path, monkeypatch, code, words):
    import gptlab.train.checkpoint as ckpt

    real_save, calls = torch.save, []

    def failing_save(obj, f, *args, **kwargs):
        calls.append(obj["step"])
        if len(calls) == 2:  # the second checkpoint: half written, then the disk gives out
            f.write(b"PK\x03\x04" + b"\0" * 512)
            raise OSError(code, "injected")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(ckpt.torch, "save", failing_save)
    summary = train(tmp_path)
    store = RunStore(tmp_path / "runs" / "e" / "r")
    assert summary["status"] == Status.failed
    assert summary["error"].startswith(f"{words} while writing checkpoint"), summary["error"]
    assert store.summary()["status"] == Status.failed and store.summary()["error"] == summary["error"]
    assert not list(store.dir.glob(".*.tmp")), "a half-written temp file was left behind"
    assert ckpt.load_checkpoint(store.checkpoint_path)["step"] == 10  # the last good one stands
    monkeypatch.setattr(ckpt.torch, "save", real_save)
    again = train(tmp_path)
    assert again["status"] == Status.finished and again["steps"] == 30
    assert logged_steps(store) == list(range(0, 31, 5))  # nothing lost, nothing twice
    assert "== resume at step 10" in store.log_path.read_text()


@pytest.mark.slow
def test_disk_full_exits_1_not_2(tmp_path):
    """The CLI: a run that failed on a full disk is a failed run (exit 1), not bad input (exit 2)."""
    import subprocess
    import sys

    code = ("import errno, sys, torch\n"
            "def full(*a, **k): raise OSError(errno.ENOSPC, 'No space left on device')\n"
            "torch.save = full\n"
            "sys.argv = ['gptlab', 'train', '--runs', sys.argv[1], '--name', 'r', '--wandb', 'disabled', *sys.argv[2:]]\n"
            "from gptlab.cli.app import main\nmain()\n")
    args = [f"{k}={v}" for k, v in {**TINY, "max_steps": 10}.items()]
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path), *args], capture_output=True, text=True,
                         timeout=120, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and "disk full while writing checkpoint" in out.stdout + out.stderr
    assert json.loads((tmp_path / "adhoc" / "r" / "summary.json").read_text())["status"] == "failed"


def test_decisions_are_taken_from_the_disk_under_the_lock(tmp_path):
    from gptlab.train.runstart import Start, decide_start

    cfg = tiny_cfg()
    store = RunStore(tmp_path / "run")
    assert decide_start(store, cfg) == (Start.fresh, None)
    # planned from an empty directory, but another process finished the run before this one got the lock
    planned = store.fingerprint()
    store.write_summary({"status": "finished", "steps": 30})
    store.metrics_path.write_text('{"step": 0}\n')
    start, previous = decide_start(store, cfg, fresh=True, expect=planned)
    assert start == Start.elsewhere and previous["status"] == "finished"
    assert store.metrics_path.read_text() == '{"step": 0}\n', "a run finished elsewhere was cleared"
    # --fresh with the state it planned from: cleared
    start, _ = decide_start(store, cfg, fresh=True, expect=store.fingerprint())
    assert start == Start.fresh and not store.summary_path.exists() and not store.metrics_path.exists()
    # an attempt killed before its first checkpoint: restarted, its rows gone
    store.write_summary({"status": "running"})
    store.metrics_path.write_text('{"step": 0}\n{"step": 5}\n')
    assert decide_start(store, cfg)[0] == Start.restart and store.metrics_path.read_text() == ""
    store.write_summary({"status": "finished"})
    assert decide_start(store, cfg)[0] == Start.done


def test_a_dead_process_is_recorded_with_its_signal_step_and_a_hint(tmp_path):
    from gptlab.jobs.outcome import settle

    store = RunStore(tmp_path / "run")
    store.write_summary({"status": "running", "steps": 0})
    store.metrics_path.write_text('{"step": 0}\n{"step": 5}\n{"step": 10}\n{"step": 15, "tr')
    result = settle(store, -signal.SIGKILL)
    assert result["status"] == Status.failed and result["steps"] == 10
    assert "signal 9 (SIGKILL) after step 10" in result["error"] and "out of memory" in result["error"]
    assert store.summary()["error"] == result["error"]
    store.write_summary({"status": "running"})
    result = settle(store, -signal.SIGTERM)
    assert result["status"] == Status.interrupted and "SIGTERM" in result["error"] and "preempted" in result["error"]
    # a process that exited 0 without training (no start line with its pid): the run ended elsewhere
    store.write_summary({"status": "finished", "steps": 30})
    store.log_path.write_text("== fresh at step 0 (pid 111)\n")
    assert settle(store, 0, pid=222)["elsewhere"] and not settle(store, 0, pid=111).get("elsewhere")
    # a process that crashed before deciding anything (exit 1, no start line) on an unowned run: failed, said why
    store.write_summary({"status": "running"})
    store.stdout_path.write_text("Traceback (most recent call last):\nRuntimeError: no CUDA here\n")
    result = settle(store, 1, pid=333)
    assert result["status"] == Status.failed and not result.get("elsewhere") and "no CUDA" in result["error"]
    # a run another process owns now is never overwritten
    store.write_summary({"status": "running"})
    with store.locked():
        assert settle(store, -signal.SIGKILL)["elsewhere"]
    assert store.status() == Status.running


def test_damaged_checkpoints_are_one_line_errors(tmp_path, trained_run):
    from gptlab.train.checkpoint import load_checkpoint

    good = (trained_run / "checkpoint.pt").read_bytes()
    cases = {"zero-length": b"", "truncated": good[: len(good) // 2], "not a gptlab": b"hello world" * 10}
    for words, data in cases.items():
        path = tmp_path / "checkpoint.pt"
        path.write_bytes(data)
        with pytest.raises(StoreError) as err:
            load_checkpoint(path)
        line = err.value.one_line()
        assert str(path) in line and "\n" not in line and ("zero-length" in line or "damaged" in line), line
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(StoreError, match="missing optimizer"):
        load_checkpoint(tmp_path / "other.pt")


def test_a_damaged_checkpoint_on_resume_fails_the_run_with_one_line(tmp_path):
    run_dir = tmp_path / "runs" / "e" / "r"
    run_dir.mkdir(parents=True)
    (run_dir / "checkpoint.pt").write_bytes(b"")
    summary = train(tmp_path)
    assert summary["status"] == Status.failed
    assert "checkpoint.pt" in summary["error"] and "zero-length" in summary["error"]


def test_report_loader_names_the_rows_and_runs_it_left_out(tmp_path, capsys):
    from gptlab.frames.load import load_store

    good, bad = tmp_path / "e" / "good", tmp_path / "e" / "bad"
    for d in (good, bad):
        RunStore(d).write_config({"model": {"n_layer": 1}, "train": {"seed": 0}, "run": {"name": d.name}})
        RunStore(d).write_summary({"status": "finished", "best_val_loss": 1.5})
    (good / "metrics.jsonl").write_text('{"step": 0, "val/loss": 4}\n{"step": "x", "train/loss": 1}\n'
                                        '{"step": 5, "train/loss": 2}\n{"step": 10, "tra')
    (bad / "summary.json").write_text('{"status": "fini')
    store = load_store(tmp_path)
    assert list(store.runs["run"]) == ["good"]
    assert sorted(store.history["step"]) == [0, 5]
    err = capsys.readouterr().err
    assert "left out 2 row(s)" in err and "non-numeric" in err and "truncated last line" in err
    assert f"skipped {bad}" in err and "summary.json" in err


def test_alias_bombs_and_recursive_specs_are_refused_quickly(tmp_path):
    from gptlab.runner.spec import load_spec

    levels = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    (tmp_path / "bomb.yaml").write_text("name: x\ndescription: hi\n" + "\n".join(levels) + "\n")
    (tmp_path / "loop.yaml").write_text("name: x\ndescription: &a [*a]\n")
    for name, words in (("bomb.yaml", "alias bomb"), ("loop.yaml", "recursive structure")):
        with pytest.raises(UserError, match=words) as err, call_budget(200_000):  # refused: ~10,000 calls
            load_spec(tmp_path / name)
        assert name in err.value.one_line()


@contextlib.contextmanager
def call_budget(calls: int):
    """Quickly, counted instead of timed: more than `calls` Python function calls (an alias expanded
    node by node, 9**9 of them here) raise RuntimeError inside the code under test."""
    count = 0

    def tracer(frame, event, arg):  # noqa: ANN001, ANN202 - sys.settrace's signature
        nonlocal count
        count += 1
        if count > calls:
            raise RuntimeError(f"over a budget of {calls:,} function calls")

    previous = sys.gettrace()
    sys.settrace(tracer)  # a global tracer only: no per-line events
    try:
        yield
    finally:
        sys.settrace(previous)


def test_degenerate_inputs_are_refused(tmp_path):
    from gptlab.dataset import load_data

    with pytest.raises(ConfigError, match="must be > 0"):
        tiny_cfg(lr=0)
    (tmp_path / "one.txt").write_text("a" * 5000)
    with pytest.raises(DataError, match="single distinct character"):
        load_data(tiny_cfg(path=str(tmp_path / "one.txt")).data, 16)
    (tmp_path / "short.txt").write_text("ab" * 100)  # 200 tokens: 20 for validation < one window of 17+1
    with pytest.raises(DataError, match="validation split") as err:
        load_data(tiny_cfg(path=str(tmp_path / "short.txt"), val_fraction=0.05).data, 16)
    assert err.value.key == "val_fraction"


def test_memory_passes_the_fused_flag_not_the_device(monkeypatch):
    import gptlab.diagnostics.memory as memory

    seen = []
    real = memory.build_optimizer

    def spy(model, cfg, *args, **kwargs):
        seen.append((args, kwargs))
        return real(model, cfg, *args, **kwargs)

    monkeypatch.setattr(memory, "build_optimizer", spy)
    memory.memory_table(tiny_cfg(), [2], steps=1)
    assert seen and all(not args and isinstance(kwargs.get("fused"), bool) for args, kwargs in seen), seen
