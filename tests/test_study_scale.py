"""A real scale study end to end: 2 variants x 3 sizes x 2 seeds trained, then reported. The report has the
Scale section with a verdict in one of the five words (or no effect / unclear), both figures, per-size rows
in effects.csv and size / n_params in summary.csv, whose parameter counts are the ones the runs stored; and the
spec's `scale.predict`: the effect extrapolated to N = 1e6 in the report's words and figure, its numbers those
of an OLS refitted here from the stored runs. (A predict with 2 sizes is refused: tests/test_study_spec.py.)"""
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
  predict: {n_params: 1.0e6}
seeds: [0, 1]
compare: {baseline: pre}
"""
PREDICT = 1.0e6  # the spec's scale.predict: beyond the sizes run (about 5k to 30k parameters)
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
        fig, caption = effect_figure(result, label_colors([result.baseline, *(c.variant for c in result.comparisons)]))
        bars, diamond = fig.axes[0].containers  # one comparison: its per-size bars, then the extrapolation
        points, _caps, (vertical,) = bars.lines
        predicted, _caps, (pi_bar,) = diamond.lines
        drawn = save_figure(fig, tmp_path, "checked", "")
    pred = result.comparisons[0].prediction
    # the caption names the estimate the bars show: this study is paired by seed, so not Welch's
    assert result.pairing == "paired" and "paired estimate (per-seed differences)" in caption, caption
    assert "Welch" not in caption
    assert list(predicted.get_xdata()) == [PREDICT] and list(predicted.get_ydata()) == [pred.estimate]
    assert [y for seg in pi_bar.get_segments() for y in (seg[0][1], seg[1][1])] == pytest.approx(
        [pred.pi_low, pred.pi_high], rel=1e-9)  # the diamond's bar is the 95% prediction interval
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


def _numbers(text: str) -> list[tuple[float, float]]:
    """Each signed decimal in text with half a unit of its last printed digit (what rounding can move)."""
    import re

    return [(float(x), 0.5 * 10.0 ** -len(x.split(".")[1])) for x in re.findall(r"[-+]?\d+\.\d+", text)]


def test_scale_predict_is_the_refitted_models_prediction(reported):
    """`scale: {predict: {n_params: 1.0e6}}`: the report's extrapolation sentence states the effect at N = 1e6
    with its 95% CI and 95% prediction interval, and they are those of the model the report names (the study is
    paired: an OLS of the per-seed differences post - pre on ln N, N a size's baseline parameter count) refitted
    here with statsmodels from the stored runs, get_prediction at ln(1e6): mean, mean_ci and obs_ci (the
    prediction interval of one new pair's difference: variance c'Vc + sigma^2)."""
    import re

    import numpy as np
    import statsmodels.api as sm

    from gptlab import load_runs
    from gptlab.report.build import analyze, load_all

    runs = load_runs(reported / "runs")
    runs = runs[runs["stage"] == "compare"]
    n_of = runs[runs["variant"] == "pre"].groupby("size")["n_params"].median()
    wide = runs.pivot_table(index=["size", "seed"], columns="variant", values="best_val_loss").reset_index()
    # val/loss, the compared metric, is its best value: each run's best_val_loss
    assert len(wide) == 6 and n_of.max() < PREDICT, (wide, n_of)  # 3 sizes x 2 seeds, and an extrapolation
    x = sm.add_constant(np.log(wide["size"].map(n_of).to_numpy(float)))
    ref = sm.OLS((wide["post"] - wide["pre"]).to_numpy(float), x).fit()
    want = ref.get_prediction(np.array([[1.0, np.log(PREDICT)]])).summary_frame(alpha=0.05).iloc[0]
    want = [want["mean"], want["mean_ci_lower"], want["mean_ci_upper"], want["obs_ci_lower"], want["obs_ci_upper"]]

    result = analyze(load_all(reported / "runs"), "sc").extras["scale"]
    assert result.pairing == "paired" and result.predict_n_params == PREDICT
    pred = result.comparisons[0].prediction
    assert pred.n_params == PREDICT and pred.extrapolated
    assert [pred.estimate, pred.ci_low, pred.ci_high, pred.pi_low, pred.pi_high] == pytest.approx(want, rel=1e-9)

    scale = (reported / "reports" / "sc" / "report.md").read_text().split("## Scale", 1)[1].split("\n## ", 1)[0]
    assert "OLS of its per-seed differences on ln N" in scale  # the model refitted above is the one it names
    assert "### Extrapolation (not a finding)" in scale
    (line,) = [ln for ln in scale.splitlines() if "at N = 1.00M parameters" in ln]
    assert "beyond the sizes run" in line and "predicts post - pre = " in line, line
    stated = re.search(r"predicts post - pre = (\S+) \(95% CI of the mean \[(\S+), (\S+)\]; 95% prediction "
                       r"interval for one new run of each \[(\S+), (\S+)\]\)", line)
    assert stated, line
    got = _numbers(" ".join(stated.groups()))
    assert len(got) == 5, line
    for (value, half), ref_value in zip(got, want):
        assert abs(value - ref_value) <= half + 1e-12, (line, want)
