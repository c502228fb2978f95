"""Packed members log every diagnostic their unpacked runs log, and the report draws them.

The unpacked side is the real trainer (run_training), the packed side the real pack loop or
`gptlab run --pack`; the report is `gptlab report` in a subprocess, so its stderr is what a user sees.
"""
from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import yaml

from conftest import TINY, cli
from gptlab.config import build_config
from gptlab.dataset import default_data_path
from gptlab.pack.loop import run_pack
from gptlab.store import RunStore
from gptlab.train.trainer import RunMeta, run_training

# full: every basic key plus per-head and per-tensor ones; learned positions: a stacked leaf whose
# weight is named differently from the member's (pos_emb.weight vs pos_emb.wpe.weight)
BASE = {**TINY, "n_layer": 2, "batch_size": 4, "max_steps": 20, "warmup_steps": 5, "wandb": "disabled",
        "diagnostics": "full", "pos_encoding": "learned"}
# relative tolerance per dtype. float32: summation order only (measured <= 4e-6, full level).
# bf16: the stacked bmm and the unpacked mm round differently, and the gap compounds over 20 steps
# (measured <= 6e-3, on update ratios late in the run).
REL = {"float32": 1e-4, "bfloat16": 3e-2}
PROCESS_WIDE = {"diag/peak_mem_mb"}  # the process's peak: the pack's, not the member's alone
SEEDS = (0, 1)


@pytest.fixture(scope="module")
def small_text(tmp_path_factory) -> str:
    """The first 40k characters of the shipped text: tokenizing 1 MB per run is slow."""
    path = tmp_path_factory.mktemp("data") / "small.txt"
    path.write_text(default_data_path().read_text(encoding="utf-8")[:40_000], encoding="utf-8")
    return str(path)


@contextmanager
def one_thread():
    """Packed and unpacked runs on one thread (their sums in the same order); the caller's count given back, so
    the tests after these in the same process keep theirs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def test_one_thread_gives_back_the_thread_count():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with one_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_packed_member_logs_its_unpacked_runs_diagnostics(tmp_path: Path, small_text: str, dtype: str):
    with one_thread():
        _packed_member_logs_its_unpacked_runs_diagnostics(tmp_path, small_text, dtype)


def _packed_member_logs_its_unpacked_runs_diagnostics(tmp_path: Path, small_text: str, dtype: str) -> None:
    cfgs = [build_config({**BASE, "path": small_text, "dtype": dtype, "seed": s}) for s in SEEDS]
    metas = [RunMeta("diag", f"seed{s}", overrides={"seed": s}) for s in SEEDS]
    for cfg, meta in zip(cfgs, metas):
        run_training(cfg, tmp_path / "unpacked", meta)
    run_pack(cfgs, metas, tmp_path / "packed")
    for meta in metas:
        assert RunStore(tmp_path / "packed" / "diag" / meta.name).config()["provenance"]["dtype"] == dtype
        urows = RunStore(tmp_path / "unpacked" / "diag" / meta.name).metrics()
        prows = RunStore(tmp_path / "packed" / "diag" / meta.name).metrics()
        assert [r["step"] for r in prows] == [r["step"] for r in urows]
        measured = [r["step"] for r in urows if any(k.startswith("diag/") for k in r)]
        assert measured == [5, 10, 15, 20]  # log steps only (log_interval 5)
        for u, p in zip(urows, prows):
            ukeys = {k for k in u if k.startswith("diag/")}
            assert {k for k in p if k.startswith("diag/")} == ukeys, (meta.name, u["step"])
            for key in ukeys - PROCESS_WIDE:
                assert p[key] == pytest.approx(u[key], rel=REL[dtype], abs=1e-7), (meta.name, u["step"], key)
        keys = {k for r in prows for k in r}
        assert {"diag/grad_norm/block_1", "diag/update_ratio/head", "diag/attn_entropy/block_0/head_1",
                "diag/act_rms/block_1", "diag/grad_norm/param/pos_emb.wpe.weight", "diag/peak_mem_mb"} <= keys
    # members differ: the per-member numbers are each member's own, not the pack's
    first = [RunStore(tmp_path / "packed" / "diag" / m.name).metrics()[1]["diag/grad_norm"] for m in metas]
    assert first[0] != pytest.approx(first[1], rel=1e-3)


@pytest.fixture(scope="module")
def packed_study(tmp_path_factory, small_text: str) -> Path:
    """A 2x2 study (norm_placement x lr, one seed) run the documented way: `gptlab run --pack auto`,
    two packs of two learning rates."""
    work = tmp_path_factory.mktemp("study")
    base = {k: v for k, v in BASE.items() if k not in ("wandb", "diagnostics", "pos_encoding")}
    spec = {"name": "placement", "base": {**base, "path": small_text, "dtype": "float32", "max_steps": 10},
            "grid": {"norm_placement": ["pre", "post"], "lr": [1e-3, 3e-3]}, "seeds": [0]}
    (work / "placement.yaml").write_text(yaml.safe_dump(spec))
    out = cli("run", str(work / "placement.yaml"), "--runs", str(work / "runs"), "--pack", "auto",
              "--wandb", "disabled")
    assert out.returncode == 0, out.stdout + out.stderr
    logs = [(d / "train.log").read_text() for d in (work / "runs" / "placement").iterdir() if d.is_dir()]
    assert len(logs) == 4 and len({line for log in logs for line in log.splitlines() if "(pid" in line}) == 2
    return work


def test_packed_study_report_draws_per_layer_panels_without_warnings(packed_study: Path):
    out = cli("report", "placement", "--runs", str(packed_study / "runs"), "--out", str(packed_study / "reports"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Warning" not in out.stderr, out.stderr
    folder = packed_study / "reports" / "placement"
    for name in ("grad_norm_by_layer", "early_training"):  # norm_placement and lr vary: both apply
        assert (folder / "figures" / f"{name}.png").stat().st_size > 1000
        assert f"figures/{name}.png" in (folder / "report.md").read_text()
    assert "left out" not in (folder / "report.md").read_text()


def test_figure_without_data_is_left_out_with_a_reason(packed_study: Path, tmp_path: Path):
    """A store whose packed members logged only diag/grad_norm (as packs did before they kept their
    diagnostics): the per-layer figure is not drawn, and the report says why in one line."""
    runs = tmp_path / "runs"
    shutil.copytree(packed_study / "runs", runs, ignore=shutil.ignore_patterns("checkpoint.pt"))  # no samples: faster
    for metrics in runs.glob("placement/*/metrics.jsonl"):
        rows = [json.loads(line) for line in metrics.read_text().splitlines()]
        rows = [{k: v for k, v in r.items() if not k.startswith("diag/") or k == "diag/grad_norm"} for r in rows]
        metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = cli("report", "placement", "--runs", str(runs), "--out", str(tmp_path / "reports"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Warning" not in out.stderr, out.stderr
    folder = tmp_path / "reports" / "placement"
    assert not (folder / "figures" / "grad_norm_by_layer.png").exists()
    assert (folder / "figures" / "early_training.png").exists()  # diag/grad_norm is still there
    report = (folder / "report.md").read_text()
    reason = [line for line in report.splitlines() if "grad_norm_by_layer" in line]
    assert len(reason) == 1, reason
    assert "Figure grad_norm_by_layer is left out: no finished or running run logged per-layer gradient norms" \
        in reason[0]
