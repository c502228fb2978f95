"""The results table against numbers computed independently with scipy, and the findings' wording."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from test_analysis_store import LEARNED, ROPE, SINUSOIDAL, make_ablation_store, write_run, write_spec

from gptlab.analysis.findings import findings, headline
from gptlab.analysis.load import load_store
from gptlab.analysis.report import analyze
from gptlab.analysis.stats import CSV_COLUMNS


def expected_group(values: list[float]) -> tuple[float, float, float, float]:
    a = np.array(values)
    lo, hi = stats.t.interval(0.95, len(a) - 1, loc=a.mean(), scale=stats.sem(a))
    return a.mean(), a.std(ddof=1), lo, hi


def expected_welch(x: list[float], y: list[float]) -> tuple[float, float, float, float]:
    a, b = np.array(x), np.array(y)
    res = stats.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(0.95)  # scipy's own Welch interval
    return a.mean() - b.mean(), ci.low, ci.high, res.pvalue


@pytest.fixture(scope="module")
def analysis(tmp_path_factory: pytest.TempPathFactory):
    root = make_ablation_store(tmp_path_factory.mktemp("runs"))
    return analyze(load_store(root), "pos")


def test_table_numbers_match_scipy(analysis) -> None:
    table = analysis.table.set_index("variant")
    assert list(analysis.table["variant"]) == ["learned", "sinusoidal", "rope", "alibi", "post_ln", "none"]
    for label, values in [("learned", LEARNED), ("sinusoidal", SINUSOIDAL), ("rope", ROPE)]:
        row = table.loc[label]
        assert row["n"] == 3
        np.testing.assert_allclose([row["mean"], row["std"], row["ci_low"], row["ci_high"]],
                                   expected_group(values), rtol=1e-9)
    for label, values in [("sinusoidal", SINUSOIDAL), ("rope", ROPE)]:
        row = table.loc[label]
        assert row["baseline"] == "learned"
        np.testing.assert_allclose([row["diff"], row["diff_ci_low"], row["diff_ci_high"], row["p_value"]],
                                   expected_welch(values, LEARNED), rtol=1e-7)


def test_planted_effects_and_statuses(analysis) -> None:
    table = analysis.table.set_index("variant")
    assert table.loc["sinusoidal", "significant"] is True and table.loc["sinusoidal", "diff"] > 0.25
    assert table.loc["rope", "significant"] is False
    assert table.loc["alibi", "n"] == 1 and math.isnan(table.loc["alibi", "ci_low"])
    assert math.isnan(table.loc["alibi", "diff_ci_low"]) and table.loc["alibi", "significant"] is None
    assert table.loc["post_ln", "n"] == 0 and table.loc["post_ln", "n_diverged"] == 3
    assert table.loc["none", "n_failed"] == 1
    text = findings(analysis.table, analysis.compare)
    sin = next(t for t in text if t.startswith("sinusoidal has"))
    assert "higher val/loss than learned" in sin and "a significant difference" in sin and "worse" in sin
    assert "3 vs 3 seeds" in sin and "95% CI 0.27" in sin
    rope = next(t for t in text if t.startswith("rope has"))
    assert rope.endswith("no detectable difference.")
    alibi = next(t for t in text if t.startswith("alibi has"))
    assert "no uncertainty can be given" in alibi and "95% CI" not in alibi
    assert "post_ln diverged in 3 of 3 seeds." in text
    assert "none failed in 1 of 1 seeds (first error: RuntimeError: boom)." in text
    assert headline(analysis.table, analysis.compare).startswith("No variant beats learned")


def test_grid_baseline_matching_and_best_default(tmp_path: Path) -> None:
    """A spec baseline naming a variant is matched at the same grid values; no spec -> best label."""
    write_spec(tmp_path, "g", {"grid": {"lr": [1e-3, 1e-2]}, "variants": {"pre": {}, "post": {}},
                               "seeds": [0, 1], "compare": {"baseline": "pre"}})
    values = {("pre", 1e-3): [1.50, 1.52], ("post", 1e-3): [1.60, 1.61],
              ("pre", 1e-2): [1.70, 1.71], ("post", 1e-2): [1.40, 1.42]}
    for (variant, lr), vals in values.items():
        for seed, v in enumerate(vals):
            write_run(tmp_path, "g", f"{variant}-lr={lr:g}-seed{seed}", best=v, variant=variant, seed=seed,
                      overrides={"lr": lr})
    for seed, v in enumerate([2.0, 2.1]):
        write_run(tmp_path, "adhoc", f"lr=0.1-seed{seed}", best=v, seed=seed, overrides={"lr": 0.1})
        write_run(tmp_path, "adhoc", f"lr=0.01-seed{seed}", best=v - 0.5, seed=seed, overrides={"lr": 0.01})
    store = load_store(tmp_path)
    table = analyze(store, "g").table.set_index("variant")
    assert table.loc["post-lr=0.001", "baseline"] == "pre-lr=0.001"
    assert table.loc["post-lr=0.01", "baseline"] == "pre-lr=0.01"
    assert table.loc["post-lr=0.01", "diff"] == pytest.approx(1.41 - 1.705)
    adhoc = analyze(store, "adhoc")
    assert list(adhoc.table["variant"]) == ["lr=0.01", "lr=0.1"]  # numeric grid order
    assert adhoc.design.grid_keys == ["lr"]
    assert set(adhoc.table["baseline"]) == {"lr=0.01"}  # the best label


def test_summary_csv_columns_and_format(analysis, tmp_path: Path) -> None:
    from gptlab.analysis.stats import write_summary_csv

    text = write_summary_csv(analysis.table, tmp_path / "summary.csv")
    frame = pd.read_csv(tmp_path / "summary.csv")
    assert list(frame.columns) == CSV_COLUMNS
    assert text.splitlines()[1].startswith("learned,3,val/loss,1.51,")
    assert frame.set_index("variant").loc["sinusoidal", "significant"] == True  # noqa: E712
