"""`gptlab memory`: estimate and measured peak memory per batch size, largest batch that fits."""
from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from gptlab.cli.app import app
from gptlab.config import build_config
from gptlab.diagnostics.memory import estimate_mb
from gptlab.train.device import Runtime

SMALL = ["n_layer=1", "n_embd=32", "block_size=32", "batch_size=4", "dropout=0"]


def test_memory_measures_each_batch_and_writes_json(tmp_path):
    out = tmp_path / "mem.json"
    result = CliRunner().invoke(app, ["memory", *SMALL, "--batch-sizes", "1,4", "--steps", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert [r["batch_size"] for r in data["rows"]] == [1, 4]
    assert all(r["status"] == "ok" and r["measured_mb"] is not None and r["step_s"] > 0 for r in data["rows"])
    assert data["largest_fitting_batch"] == 4
    assert data["rows"][1]["estimate_mb"] > data["rows"][0]["estimate_mb"]
    assert "largest batch that fits" in result.output


def test_limit_skips_batches_over_the_estimate_on_cpu(tmp_path):
    cfg = build_config({k: v for k, v in (a.split("=") for a in SMALL)} | {"vocab_size": 65})
    cpu = Runtime(torch.device("cpu"), torch.float32, False)
    limit = (estimate_mb(cfg, 20_000, 64, cpu) + estimate_mb(cfg, 20_000, 2048, cpu)) / 2
    out = CliRunner().invoke(app, ["memory", *SMALL, "--batch-sizes", "2048,2", "--steps", "1",
                                   "--limit-mb", f"{limit:.1f}", "--out", str(tmp_path / "m.json")])
    assert out.exit_code == 0, out.output
    rows = json.loads((tmp_path / "m.json").read_text())["rows"]
    assert [(r["batch_size"], r["status"]) for r in rows] == [(2, "ok"), (2048, "skipped")]


def test_estimate_grows_linearly_with_batch():
    cfg = build_config({"n_layer": 2, "n_embd": 64, "block_size": 64, "vocab_size": 65})
    cpu = Runtime(torch.device("cpu"), torch.float32, False)
    e1, e2, e3 = (estimate_mb(cfg, 100_000, b, cpu) for b in (1, 2, 3))
    assert e3 - e2 == pytest.approx(e2 - e1)
    assert e1 > 16 * 100_000 / 2**20  # weights, grads and AdamW states at least


def test_bad_input_exits_2():
    runner = CliRunner()
    assert runner.invoke(app, ["memory", "--batch-sizes", "0,1"]).exit_code == 2
    result = runner.invoke(app, ["memory", "n_layr=2"])
    assert result.exit_code == 2 and "did you mean 'n_layer'" in result.output


def test_manual_attention_adds_the_kept_probabilities():
    """The manual path (bf16 on a CPU) keeps each layer's (B, nh, T, T) softmax output for backward, in the
    autocast dtype; with dropout, CPU SDPA falls back to the same math, so both paths keep the same."""
    L, nh, T, B = 2, 4, 64, 8
    cfg = build_config({"n_layer": L, "n_head": nh, "n_embd": 64, "block_size": T, "vocab_size": 65,
                        "dropout": 0.0})
    for dtype, e in ((torch.float32, 4), (torch.bfloat16, 2)):
        fused = Runtime(torch.device("cpu"), dtype, False, attn_backend="fused")
        manual = Runtime(torch.device("cpu"), dtype, False, attn_backend="manual")
        extra = (estimate_mb(cfg, 100_000, B, manual) - estimate_mb(cfg, 100_000, B, fused)) * 2**20
        assert extra == pytest.approx(L * B * nh * T * T * e)
    cfg = cfg.replace(dropout=0.1)
    fused, manual = (Runtime(torch.device("cpu"), torch.bfloat16, False, attn_backend=a) for a in ("fused", "manual"))
    assert estimate_mb(cfg, 100_000, B, manual) == estimate_mb(cfg, 100_000, B, fused)
