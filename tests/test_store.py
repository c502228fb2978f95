"""The run store package: torch-free, its readers name damage, its writers are atomic."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gptlab.store import RunStore, Status, StoreError, read_metrics


def test_import_store_leaves_torch_out():
    code = "import sys, gptlab.store; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_status_is_a_plain_string_everywhere():
    assert Status.finished == "finished" and f"{Status.diverged}" == "diverged"
    assert json.dumps({"status": Status.failed}) == '{"status": "failed"}'
    assert set(Status) == {"running", "finished", "failed", "diverged", "interrupted"}


def test_summary_round_trip_and_damage(tmp_path):
    store = RunStore(tmp_path / "exp" / "run")
    assert store.summary() is None and store.status() is None
    store.write_summary({"status": Status.finished, "steps": 3})
    assert store.status() is Status.finished
    assert not list(store.dir.glob(".*.tmp"))
    for text, words in (("", "empty"), ('{"status": "finished", "st', "not valid JSON"),
                        ("[1, 2]", "not a JSON object"), ('{"status": "done"}', "status 'done'"),
                        (b"\xff\xfe", "not UTF-8")):
        store.summary_path.write_bytes(text if isinstance(text, bytes) else text.encode())
        with pytest.raises(StoreError) as err:
            store.summary()
        line = err.value.one_line()
        assert str(store.summary_path) in line and words in line and "\n" not in line


def test_config_damage_is_one_line(tmp_path):
    store = RunStore(tmp_path / "r")
    store.write_config({"model": {"n_layer": 1}, "run": {"name": "r"}})
    assert store.config()["model"] == {"n_layer": 1}
    for text, words in (("model: [1, 2\n", "malformed YAML"), ("- 1\n- 2\n", "not a YAML mapping"),
                        ("", "empty"), ("a: &a [*a]\n", "recursive")):
        store.config_path.write_text(text)
        with pytest.raises(StoreError, match=words) as err:
            store.config()
        assert str(store.config_path) in err.value.one_line()


def test_metrics_reader_says_which_rows_it_dropped(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 0, "val/loss": 4.0}\n{"step": "five", "train/loss": 3}\nnot json\n[1]\n'
                    '{"train/loss": 1}\n{"step": 10, "train/loss": 2.5}\n{"step": 10, "train/loss": 2.4}\n'
                    '{"step": 15, "train/lo')
    read = read_metrics(path)
    assert [r["step"] for r in read.rows] == [0, 10]
    assert read.rows[1]["train/loss"] == 2.4
    reasons = " | ".join(read.dropped)
    assert "line 2: non-numeric" in reasons and "line 3: not valid JSON" in reasons
    assert "line 4: not a JSON object" in reasons and "line 5: no step" in reasons
    assert "line 7: step 10 logged again" in reasons and "line 8: truncated last line" in reasons
    assert read.warning().startswith(f"{path}: left out 6 row(s)")
    path.write_text('{"step": 0}\n{"step": 5}\n')
    assert read_metrics(path).warning() is None and len(read_metrics(path).rows) == 2


def test_truncate_and_clear_metrics(tmp_path):
    store = RunStore(tmp_path / "r")
    with store.open_metrics() as f:
        for step in (0, 5, 10, 15):
            f.write(json.dumps({"step": step}) + "\n")
        f.write('{"step": 20, "tr')  # killed mid-append
    store.truncate_metrics(10)
    assert store.metrics_path.read_text() == '{"step": 0}\n{"step": 5}\n{"step": 10}\n'
    store.truncate_metrics(-1)
    assert store.metrics_path.read_text() == ""


def test_lock_is_exclusive_across_processes(tmp_path):
    from gptlab.store import RunLocked

    store = RunStore(tmp_path / "r")
    with store.locked():
        assert store.is_locked()
        code = f"from gptlab.store import RunStore; RunStore({str(store.dir)!r}).lock()"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.returncode != 0 and "RunLocked" in out.stderr
        with pytest.raises(RunLocked):
            store.lock()
    assert not store.is_locked()


def test_a_brief_probe_does_not_turn_a_run_away(tmp_path):
    """is_locked() and a job pool's bookkeeping hold a run's lock for moments; a trainer starting then must
    wait them out, not report the run as taken (it would then be trained by nobody)."""
    import threading

    from gptlab.store import RunLocked

    store = RunStore(tmp_path / "r")
    probe = store.lock()
    threading.Timer(0.1, probe.close).start()
    RunStore(store.dir).lock().close()  # waited ~0.1 s, then got it
    held = store.lock()
    try:
        with pytest.raises(RunLocked):
            RunStore(store.dir).lock(patience_s=0.2)
        assert RunStore(store.dir).is_locked(patience_s=0.1)
    finally:
        held.close()
