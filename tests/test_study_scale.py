"""A real scale study end to end: 2 variants x 3 sizes x 2 seeds trained, then reported. The report has the
Scale section with a verdict in one of the five words (or no effect / unclear), both figures, per-size rows
in effects.csv and size / n_params in summary.csv, whose parameter counts are the ones the runs stored."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SPEC = """\
name: sc
base: {n_head: 2, block_size: 16, batch_size: 4, max_steps: 12, eval_interval: 6, eval_steps: 2, dropout: 0.0,
       warmup_steps: 2, log_interval: 6, lr: 3.0e-3, wandb: disabled, dtype: float32}
variants:
  pre: {norm_placement: pre}
  post: {norm_placement: post}
scale:
  l: {n_layer: 2, n_embd: 32}
  s: {n_layer: 1, n_embd: 16}
  m: {n_layer: 1, n_embd: 32}
seeds: [0, 1]
compare: {baseline: pre}
"""
VERDICT_WORDS = ("holds", "grows", "shrinks", "vanishes", "reverses", "no effect", "unclear")


def _gptlab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gptlab", *args], capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def reported(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scale")
    (root / "sc.yaml").write_text(SPEC)
    dry = _gptlab("run", str(root / "sc.yaml"), "--runs", str(root / "runs"), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    sizes = [line.split(":")[0].strip() for line in dry.stdout.splitlines() if " params | " in line]
    assert sizes == ["s", "m", "l"], dry.stdout  # ordered by the parameter count, not as declared
    run = _gptlab("run", str(root / "sc.yaml"), "--runs", str(root / "runs"), "--pack", "seeds")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = _gptlab("report", "sc", "--runs", str(root / "runs"), "--out", str(root / "reports"))
    assert report.returncode == 0 and "Warning" not in report.stderr, report.stderr
    return root


def test_scale_section_verdict_and_figures(reported):
    text = (reported / "reports" / "sc" / "report.md").read_text()
    assert "## Scale" in text
    scale = text.split("## Scale", 1)[1].split("\n## ", 1)[0]
    assert any(f"post vs pre: {word}" in scale or f"the effect {word}" in scale for word in VERDICT_WORDS), scale
    assert "slope per e-fold of N" in scale and "Kendall's tau" in scale
    for name in ("scale_effect", "scale_loss"):
        assert (reported / "reports" / "sc" / "figures" / f"{name}.png").stat().st_size > 1000
        assert f"figures/{name}.png" in scale
    assert "scale_effect" in (reported / "reports" / "sc" / "report.html").read_text() or \
        scale.count("data:image") == 0  # the HTML embeds figures as data URIs


def test_effects_and_summary_carry_sizes_and_parameter_counts(reported):
    folder = reported / "reports" / "sc"
    effects = list(csv.DictReader((folder / "effects.csv").open()))
    per_size = {r["at"] for r in effects if r["term"] == "post vs pre"}
    assert per_size == {"s", "m", "l", "slope/log(N)"}, per_size
    summary = list(csv.DictReader((folder / "summary.csv").open()))
    stored = {}
    for run_dir in (reported / "runs" / "sc").iterdir():
        if run_dir.is_dir():
            stored[run_dir.name.rsplit("-seed", 1)[0]] = json.loads((run_dir / "summary.json").read_text())["n_params"]
    for row in summary:
        assert row["size"] in ("s", "m", "l")
        assert int(float(row["n_params"])) == stored[row["variant"]], row
