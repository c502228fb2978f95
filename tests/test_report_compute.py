"""Compute-aware views: power law of the metric in parameters and FLOPs (against numpy's own log-log
fit), matched-parameter comparisons, the size warning, and curves against tokens seen."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from test_analysis_store import write_run, write_spec

from gptlab.report.compute_text import compute_findings
from gptlab.frames.load import load_store
from gptlab.report.build import analyze, write_reports

# (n_layer, n_embd) -> n_params; "wide" and "deep" are matched in parameters (within 5%)
SIZES = {"small": (2, 64, 100_000), "deep": (8, 64, 400_000), "wide": (2, 128, 410_000), "big": (8, 128, 1_600_000)}


def law(n_params: float) -> float:
    return 20.0 * n_params ** -0.15


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    write_spec(root, "size", {"description": "How does loss fall with size?", "seeds": [0, 1, 2],
                              "variants": {v: {"n_layer": nl, "n_embd": ne} for v, (nl, ne, _) in SIZES.items()},
                              "compare": {"baseline": "small", "pairing": "none"}})  # Welch numbers
    for variant, (n_layer, n_embd, n_params) in SIZES.items():
        for seed, noise in enumerate((-0.004, 0.001, 0.003)):
            write_run(root, "size", f"{variant}-seed{seed}", best=law(n_params) + noise, variant=variant, seed=seed,
                      overrides={"n_layer": n_layer, "n_embd": n_embd, "n_head": 2, "batch_size": 8,
                                 "block_size": 32}, n_params=n_params)
    write_spec(root, "act", {"variants": {"gelu": {"activation": "gelu"}, "swiglu": {"activation": "swiglu"}},
                             "seeds": [0, 1]})
    for variant, n_params in (("gelu", 100_000), ("swiglu", 110_000)):
        for seed in range(2):
            write_run(root, "act", f"{variant}-seed{seed}", best=2.0 + 0.01 * seed, variant=variant, seed=seed,
                      overrides={"activation": variant}, n_params=n_params)
    write_spec(root, "shape", {"variants": {"deep": {"n_layer": 8, "n_embd": 64}, "wide": {"n_layer": 2, "n_embd": 128}},
                               "seeds": [0, 1]})
    for variant, (n_layer, n_embd, n_params) in (("deep", (8, 64, 1_000_000)), ("wide", (2, 128, 1_030_000))):
        for seed in range(2):
            write_run(root, "shape", f"{variant}-seed{seed}", best=2.0 + 0.01 * seed, variant=variant, seed=seed,
                      overrides={"n_layer": n_layer, "n_embd": n_embd, "n_head": 2}, n_params=n_params)
    return root


def test_a_shape_study_at_matched_parameters_says_so(store: Path) -> None:
    analysis = analyze(load_store(store), "shape")
    lines = compute_findings(analysis.store.runs, analysis.design.labels, "val/loss", analysis.design.varying,
                             analysis.design.label_config)
    assert lines == ["All variants are matched in parameters (1.00M to 1.03M, within 3.0%) although their shapes "
                     "differ: every comparison here is at matched parameters (results table, params column)."]


def test_power_law_matches_numpy_log_log_fit(store: Path) -> None:
    analysis = analyze(load_store(store), "size")
    runs = analysis.store.runs
    done = runs[runs["status"] == "finished"]
    slope, intercept = np.polyfit(np.log(done["n_params"]), np.log(done["value"]), 1)
    lines = compute_findings(runs, analysis.design.labels, "val/loss", analysis.design.varying,
                             analysis.design.label_config)
    params_line = next(line for line in lines if "parameters N" in line)
    assert f"{math.exp(intercept):.3g} x N^{slope:.3f} over 4 sizes" in params_line
    assert slope == pytest.approx(-0.15, abs=0.01) and params_line.endswith("(figure scaling).")
    flops = 6 * done["n_params"] * 100 * 8 * 32  # 6 N D, D = steps x batch_size x block_size
    slope_c = np.polyfit(np.log(flops), np.log(done["value"]), 1)[0]
    assert f"C^{slope_c:.3f}" in next(line for line in lines if "training FLOPs" in line)


def test_matched_parameters_compared_with_welch(store: Path) -> None:
    analysis = analyze(load_store(store), "size")
    matched = analysis.effects[analysis.effects["kind"] == "matched"]
    assert len(matched) == 1 and tuple(matched["pair"].iloc[0]) == ("deep", "wide")
    values = analysis.store.runs.set_index("run")["value"]
    a = values[[f"deep-seed{s}" for s in range(3)]].to_numpy()
    b = values[[f"wide-seed{s}" for s in range(3)]].to_numpy()
    row = matched.iloc[0]
    assert row["estimate"] == pytest.approx(a.mean() - b.mean())
    assert row["p_value"] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-7)
    assert "deep - wide at matched parameters (0.40M vs 0.41M)" == row["contrast"]


def test_size_warning_only_where_size_is_not_studied(store: Path, tmp_path: Path) -> None:
    write_reports(store, tmp_path)
    act = (tmp_path / "act" / "report.md").read_text()
    assert "Warning: swiglu has 10% more parameters than gelu (0.11M vs 0.10M)" in act
    size = (tmp_path / "size" / "report.md").read_text()
    assert "Warning:" not in size and "figures/scaling.png" in size and "figures/scaling.png" not in act
    assert "figures/learning_curves_tokens.png" in size
    csv = pd.read_csv(tmp_path / "size" / "effects.csv")
    assert csv["contrast"].str.contains("at matched parameters").any()
