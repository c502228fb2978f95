"""The results table against numbers computed independently with scipy / statsmodels, and the findings' wording:
Welch, TOST equivalence vs inconclusive, the detectable effect, Holm over all tests, identical seeds."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from test_analysis_store import LEARNED, ROPE, SINUSOIDAL, make_ablation_store, write_run, write_spec

from gptlab.report.findings import findings
from gptlab.report.headline import headline
from gptlab.frames.load import load_store
from gptlab.report.build import analyze
from gptlab.stats.summary import CSV_COLUMNS, Criterion


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
    assert "higher val/loss than learned" in sin and "significantly worse" in sin
    assert "3 vs 3 seeds" in sin and "95% CI 0.27" in sin and "adjusted p" in sin
    assert sin.endswith("(figure metric_by_variant).")
    rope = next(t for t in text if t.startswith("rope has"))
    assert ": inconclusive: these seeds detect a difference of" in rope
    alibi = next(t for t in text if t.startswith("alibi has"))
    assert "no uncertainty can be given" in alibi and "95% CI" not in alibi
    assert "Status (results table): post_ln diverged in 3 of 3 seeds." in text
    assert "Status (results table): none failed in 1 of 1 seeds (first error: RuntimeError: boom)." in text
    assert text[0].startswith("Health: post_ln diverged")  # health problems lead
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
    from gptlab.report.csv_files import write_summary_csv

    text = write_summary_csv(analysis.table, tmp_path / "summary.csv")
    frame = pd.read_csv(tmp_path / "summary.csv")
    assert list(frame.columns) == CSV_COLUMNS
    for column in ("p_adjusted", "equivalent", "mde", "health"):
        assert column in frame
    assert text.splitlines()[1].startswith("learned,3,val/loss,1.51,")
    rows = frame.set_index("variant")
    assert rows.loc["sinusoidal", "significant"] == True  # noqa: E712
    assert rows.loc["post_ln", "health"] == "diverged" and rows.loc["learned", "health"] == "ok"


def one_factor_store(root: Path, experiment: str, groups: dict[str, list[float]], **compare) -> Path:
    """A spec with one variant per group (the first is the baseline), one finished run per value."""
    names = list(groups)
    write_spec(root, experiment, {"variants": {n: {"lr": 1e-3 * (i + 1)} for i, n in enumerate(names)},
                                  "seeds": list(range(max(map(len, groups.values())))),
                                  "compare": {"metric": "val/loss", "baseline": names[0], "pairing": "none",
                                              **compare}})
    for i, (name, values) in enumerate(groups.items()):
        for seed, value in enumerate(values):
            write_run(root, experiment, f"{name}-seed{seed}", best=value, variant=name, seed=seed,
                      overrides={"lr": 1e-3 * (i + 1)})
    return root


def test_equivalent_and_inconclusive_with_the_same_difference(tmp_path: Path) -> None:
    """Both studies differ by +0.005; tight seeds show equivalence within 0.02, noisy ones cannot."""
    from statsmodels.stats.multitest import multipletests
    from statsmodels.stats.power import TTestIndPower
    from statsmodels.stats.weightstats import ttost_ind

    z6 = np.array([-1.5, -0.9, -0.3, 0.3, 0.9, 1.5])
    z6 = z6 / z6.std(ddof=1)
    z3 = np.array([-1.0, 0.0, 1.0])
    tight = {"base": list(2.0 + 0.006 * z6), "other": list(2.005 + 0.006 * z6[::-1])}
    noisy = {"base": list(2.0 + 0.03 * z3), "other": list(2.005 + 0.03 * z3)}
    one_factor_store(tmp_path, "tight", tight, margin=0.02)
    one_factor_store(tmp_path, "noisy", noisy)  # default margin for a loss: 0.02
    store = load_store(tmp_path)
    for name, groups, equivalent in (("tight", tight, True), ("noisy", noisy, False)):
        a, b = np.array(groups["other"]), np.array(groups["base"])
        row = analyze(store, name).table.set_index("variant").loc["other"]
        p_welch = stats.ttest_ind(a, b, equal_var=False).pvalue
        p_tost = ttost_ind(a, b, -0.02, 0.02, usevar="unequal")[0]
        adj = multipletests([p_welch, p_tost], method="holm")[1]
        assert row["diff"] == pytest.approx(0.005, abs=1e-12)
        np.testing.assert_allclose([row["p_value"], row["p_tost"], row["p_adjusted"], row["p_tost_adjusted"]],
                                   [p_welch, p_tost, adj[0], adj[1]], rtol=1e-7)
        assert row["significant"] is False and row["equivalent"] is equivalent
        sd = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
        assert TTestIndPower().power(row["mde"] / sd, len(a), 0.05) == pytest.approx(0.8, abs=1e-6)
        sentence = next(t for t in findings(analyze(store, name).table, Criterion()) if t.startswith("other has"))
        if equivalent:
            assert f": equivalent within ±0.02 (TOST, adjusted p={adj[1]:.2g}) (figure" in sentence
        else:
            assert ": inconclusive: these seeds detect a difference of" in sentence
            assert f"about {int(row['seeds_needed'])} seeds per variant would show equivalence" in sentence
            assert row["seeds_needed"] > 3


def test_holm_removes_the_one_chance_finding(tmp_path: Path) -> None:
    """Nine null variants against a baseline: one raw p < 0.05, none after Holm over all 18 tests."""
    from statsmodels.stats.multitest import multipletests
    from statsmodels.stats.weightstats import ttost_ind

    rng = np.random.default_rng(0)
    for _ in range(1000):  # the first draw with exactly one chance "discovery"
        groups = {f"v{i}": list(np.round(2.0 + 0.02 * rng.standard_normal(4), 6)) for i in range(10)}
        raw = [stats.ttest_ind(groups[k], groups["v0"], equal_var=False).pvalue for k in list(groups)[1:]]
        if sum(p < 0.05 for p in raw) == 1:
            break
    one_factor_store(tmp_path, "nulls", groups, margin=0.005)
    analysis = analyze(load_store(tmp_path), "nulls")
    table = analysis.table.set_index("variant")
    others = list(groups)[1:]
    tost_p = [ttost_ind(np.array(groups[k]), np.array(groups["v0"]), -0.005, 0.005, usevar="unequal")[0]
              for k in others]
    adjusted = multipletests(raw + tost_p, method="holm")[1][:len(raw)]
    np.testing.assert_allclose(table.loc[others, "p_value"].to_numpy(float), raw, rtol=1e-7)
    np.testing.assert_allclose(table.loc[others, "p_adjusted"].to_numpy(float), adjusted, rtol=1e-7)
    assert (table.loc[others, "p_value"] < 0.05).sum() == 1
    assert not table.loc[others, "significant"].any()
    assert analysis.family.total == 18 and "adjusted together by Holm" in analysis.family.sentence()
    none = one_factor_store(tmp_path / "none", "nulls", groups, margin=0.005, correction="none")
    table = analyze(load_store(none), "nulls").table.set_index("variant")
    assert table.loc[others, "significant"].sum() == 1  # uncorrected, the chance finding stands


def test_identical_seeds_give_no_uncertainty_and_no_significance(tmp_path: Path) -> None:
    one_factor_store(tmp_path, "same", {"base": [2.0, 2.0, 2.0], "other": [2.1, 2.1, 2.1]})
    analysis = analyze(load_store(tmp_path), "same")
    row = analysis.table.set_index("variant").loc["other"]
    assert row["diff"] == pytest.approx(0.1) and math.isnan(row["p_value"]) and math.isnan(row["diff_ci_low"])
    assert row["significant"] is None and row["equivalent"] is None
    sentence = next(t for t in findings(analysis.table, analysis.compare) if t.startswith("other has"))
    assert "no uncertainty can be given" in sentence and "significant" not in sentence
    assert "No uncertainty can be given" in analysis.headline


def expected_seeds(a: np.ndarray, b: np.ndarray, margin: float) -> float:
    """Seeds per variant from statsmodels' power solvers: the pooled t-test's (80% power) to detect a
    difference at least the margin; else TOST's, the nearer bound dominating (normal approximation,
    each one-sided test at 5% with 90% power)."""
    from statsmodels.stats.power import NormalIndPower, TTestIndPower

    diff = a.mean() - b.mean()
    sd = math.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
    if abs(diff) >= margin:
        n = TTestIndPower().solve_power(abs(diff) / sd, alpha=0.05, power=0.8, ratio=1.0)
    else:
        n = NormalIndPower().solve_power((margin - abs(diff)) / sd, alpha=0.05, power=0.9, ratio=1.0,
                                         alternative="larger")
    return float(min(max(2, math.ceil(n - 1e-9)), 1001))


def test_seeds_needed_match_statsmodels_power_solvers(tmp_path: Path) -> None:
    """Both branches: a difference to detect (|diff| >= margin) and equivalence to show (|diff| < margin)."""
    groups = {"base": [2.00, 2.03, 1.98, 2.01], "far": [2.05, 2.02, 2.09, 2.04], "near": [2.01, 1.97, 2.04, 2.00],
              "wide": [2.10, 1.90, 2.06, 1.95]}
    one_factor_store(tmp_path, "power", groups, margin=0.02)
    table = analyze(load_store(tmp_path), "power").table.set_index("variant")
    branches = set()
    for name in ("far", "near", "wide"):
        a, b = np.array(groups[name]), np.array(groups["base"])
        branches.add(abs(a.mean() - b.mean()) >= 0.02)
        assert table.loc[name, "seeds_needed"] == expected_seeds(a, b, 0.02), name
    assert branches == {True, False}
