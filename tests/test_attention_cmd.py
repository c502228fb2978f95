"""`gptlab attention`: a layers x heads figure of a trained run's attention, PNG and SVG."""
from __future__ import annotations

import torch
from typer.testing import CliRunner

from gptlab.cli.app import app
from gptlab.diagnostics.attention_maps import attention_maps
from gptlab.train.loading import load_run


def test_attention_writes_png_and_svg_into_the_run(trained_run):
    result = CliRunner().invoke(app, ["attention", str(trained_run), "--prompt", "To be, or not"])
    assert result.exit_code == 0, result.output
    png, svg = trained_run / "attention" / "attention.png", trained_run / "attention" / "attention.svg"
    assert png.stat().st_size > 1000 and svg.stat().st_size > 1000
    assert str(png) in result.output and str(svg) in result.output


def test_attention_with_out_dir_and_default_prompt(trained_run, tmp_path):
    out = CliRunner().invoke(app, ["attention", str(trained_run), "--out", str(tmp_path / "figs")])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "figs" / "attention.png").is_file() and (tmp_path / "figs" / "attention.svg").is_file()


def test_maps_are_causal_distributions_and_recording_is_switched_off(trained_run):
    run = load_run(trained_run)
    ids = torch.tensor([run.tokenizer.encode("hello there")])
    maps = attention_maps(run.model, ids)
    cfg = run.config.model
    assert maps.shape == (cfg.n_layer, cfg.n_head, 11, 11)
    assert torch.allclose(maps.sum(-1), torch.ones(cfg.n_layer, cfg.n_head, 11), atol=1e-5)
    assert torch.all(maps.triu(1) == 0)
    assert all(not b.attn.record_stats and b.attn.last_attn is None for b in run.model.blocks)


def test_bad_prompts_exit_2(trained_run):
    runner = CliRunner()
    result = runner.invoke(app, ["attention", str(trained_run), "--prompt", "\u00e9\u00e9"])
    assert result.exit_code == 2 and "not in the training vocabulary" in result.output
    result = runner.invoke(app, ["attention", str(trained_run), "--prompt", "a" * 40])  # learned, block 16
    assert result.exit_code == 2 and "block_size=16" in result.output
