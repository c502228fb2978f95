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
        assert f"![" in scale and f"(figures/{name}.png)" in scale and f"(figures/{name}.svg)" in scale


def test_the_figures_show_the_effects_the_report_states(reported, tmp_path):
    """The effect figure's points and bars are effects.csv's per-size rows at the stored parameter counts; the
    report's files are that figure (redrawn from the store: the same SVG bytes); the HTML embeds those PNGs."""
    import base64
    import re

    import matplotlib

    from gptlab.report.build import analyze, load_all
    from gptlab.report.figures.base import _RC, label_colors, save_figure
    from gptlab.report.figures.scale import effect_figure, scale_figures

    folder = reported / "reports" / "sc"
    rows = {r["at"]: r for r in csv.DictReader((folder / "effects.csv").open()) if r["term"] == "post vs pre"}
    n_params = {r["size"]: int(float(r["n_params"])) for r in csv.DictReader((folder / "summary.csv").open())
                if r["variant"] == f"pre-size={r['size']}"}  # a size's N is the baseline's
    result = analyze(load_all(reported / "runs"), "sc").extras["scale"]
    with matplotlib.rc_context(_RC):  # as the report draws it
        fig, _ = effect_figure(result, label_colors([result.baseline, *(c.variant for c in result.comparisons)]))
        (bars,) = fig.axes[0].containers  # one comparison: one errorbar set
        points, _caps, (vertical,) = bars.lines
        drawn = save_figure(fig, tmp_path, "checked", "")
    sizes = sorted(n_params, key=n_params.get)
    assert sizes == ["s", "m", "l"], n_params
    assert list(points.get_xdata()) == [n_params[s] for s in sizes]
    assert list(points.get_ydata()) == pytest.approx([float(rows[s]["estimate"]) for s in sizes], rel=1e-5)
    assert [y for seg in vertical.get_segments() for y in (seg[0][1], seg[1][1])] == pytest.approx(
        [float(rows[s][k]) for s in sizes for k in ("ci_low", "ci_high")], rel=1e-5)  # CSV: 6 digits
    # the report's scale_effect files are this figure, and its HTML embeds them (and the loss figure redrawn)
    assert (folder / "figures" / "scale_effect.svg").read_bytes() == drawn.svg.read_bytes()
    html = (folder / "report.html").read_text()
    embedded = [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]
    assert drawn.png.read_bytes() in embedded and (folder / "figures" / "scale_effect.png").read_bytes() in embedded
    (loss,) = [f for f in scale_figures(result, tmp_path / "again") if f.name == "scale_loss"]
    assert (folder / "figures" / "scale_loss.svg").read_bytes() == loss.svg.read_bytes()
    assert (folder / "figures" / "scale_loss.png").read_bytes() in embedded


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


def test_results_rows_compare_each_size_with_the_baseline_at_that_size(reported):
    """summary.csv: post at size X against pre at size X (never 'differs in several factors' across sizes), the
    diff the paired per-seed difference of the stored runs of that size."""
    from gptlab import load_runs

    runs = load_runs(reported / "runs")
    rows = {r["variant"]: r for r in csv.DictReader((reported / "reports" / "sc" / "summary.csv").open())}
    md = (reported / "reports" / "sc" / "report.md").read_text()
    assert "differs in several factors" not in md
    for size in ("s", "m", "l"):
        here = runs[(runs["size"] == size) & (runs["stage"] == "compare")]
        post = here[here["variant"] == "post"].set_index("seed")["best_val_loss"].sort_index()
        pre = here[here["variant"] == "pre"].set_index("seed")["best_val_loss"].sort_index()
        assert float(rows[f"post-size={size}"]["diff"]) == pytest.approx(float((post - pre).mean()), rel=1e-4)
        assert rows[f"post-size={size}"]["pairing"] == "paired" and rows[f"pre-size={size}"]["diff"] == ""
