"""Paired statistics (gptlab.stats.paired), checked against scipy's `ttest_rel` and statsmodels' `ttost_paired`,
on arrays and on a real tiny store (tests/data/golden/runs/adaptive_cpu_v2, trained by gptlab: base, big, nowd at
seeds 0-2 except nowd and twin at seeds 0-1), analysed as a fixed-seed study by `gptlab report`."""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats
from statsmodels.stats.weightstats import ttost_paired

from gptlab.report.build import write_reports
from gptlab.stats.paired import (pair_up, paired_mde, paired_seeds_needed, paired_stats, paired_t, paired_tost,
                                 seeds_factor, one_sample_power)
from gptlab.stats.summary import pair_stats

GOLDEN = Path(__file__).resolve().parent / "data" / "golden" / "runs" / "adaptive_cpu_v2"
MARGIN = 0.025


def _values(run_dir: Path) -> float:
    return float(yaml.safe_load((run_dir / "summary.json").read_text())["best_val_loss"])


def test_paired_t_and_tost_equal_scipy_and_statsmodels() -> None:
    rng = np.random.default_rng(0)
    shared = rng.normal(3.0, 0.05, 7)
    a, b = shared + rng.normal(0.01, 0.004, 7), shared + rng.normal(0.0, 0.004, 7)
    diff, lo, hi, p = paired_t(a - b)
    ref = stats.ttest_rel(a, b)
    ci = ref.confidence_interval(0.95)
    assert diff == pytest.approx(np.mean(a - b)) and p == pytest.approx(ref.pvalue, rel=1e-10)
    assert (lo, hi) == (pytest.approx(ci.low, rel=1e-10), pytest.approx(ci.high, rel=1e-10))
    for margin in (0.005, 0.02):
        assert paired_tost(a - b, margin) == pytest.approx(ttost_paired(a, b, -margin, margin)[0], rel=1e-9)


def test_pairs_match_by_seed_and_count_the_unmatched() -> None:
    a = pd.Series([1.0, 2.0, 3.0, np.nan], index=[0, 1, 2, 3])
    b = pd.Series([1.5, 2.5, 9.0], index=[2, 1, 5])
    pairs = pair_up(a, b)
    assert pairs.seeds == (1, 2) and list(pairs.a) == [2.0, 3.0] and list(pairs.b) == [2.5, 1.5]
    assert (pairs.only_a, pairs.only_b) == (1, 1)  # seed 0 on a's side, seed 5 on b's; seed 3 has no value


def test_power_and_seeds_needed_match_statsmodels() -> None:
    from statsmodels.stats.power import TTestPower

    for d, n in ((0.5, 10), (1.2, 4), (2.0, 3)):
        assert one_sample_power(d, n) == pytest.approx(TTestPower().power(d, n, 0.05), rel=1e-6)
    n = paired_seeds_needed(0.01, 0.008, margin=0.005)
    assert one_sample_power(0.01 / 0.008, n) >= 0.8 > one_sample_power(0.01 / 0.008, n - 1)
    d = np.array([0.01, 0.02, 0.0, 0.015])
    mde = paired_mde(d)
    assert one_sample_power(mde / np.std(d, ddof=1), 4) == pytest.approx(0.8, abs=1e-6)


def test_zero_spread_gives_a_defined_verdict() -> None:
    twin = paired_stats(pair_up(pd.Series([3.1, 3.2, 3.0]), pd.Series([3.1, 3.2, 3.0])), MARGIN)
    assert (twin["diff"], twin["p_value"], twin["p_tost"]) == (0.0, 1.0, 0.0) and twin["exact"]
    shifted = paired_stats(pair_up(pd.Series([3.2, 3.3, 3.1]), pd.Series([3.1, 3.2, 3.0])), MARGIN)
    assert shifted["p_value"] == 0.0 and shifted["p_tost"] == 1.0
    assert shifted["diff_ci_low"] == pytest.approx(0.1) and shifted["diff_ci_high"] == pytest.approx(0.1)


def test_seeds_factor_is_the_variance_ratio() -> None:
    rng = np.random.default_rng(1)
    shared = rng.normal(0, 1.0, 50)
    pairs = pair_up(pd.Series(shared + rng.normal(0, 0.1, 50)), pd.Series(shared + rng.normal(0, 0.1, 50)))
    want = (np.var(pairs.a, ddof=1) + np.var(pairs.b, ddof=1)) / np.var(pairs.a - pairs.b, ddof=1)
    assert seeds_factor(pairs) == pytest.approx(want) and want > 20


def test_pairing_none_and_unmatched_seeds_fall_back_to_welch() -> None:
    a, b = pd.Series([3.0, 3.1, 3.3], index=[0, 1, 2]), pd.Series([3.2, 3.0, 3.5], index=[0, 1, 2])
    welch = stats.ttest_ind(a, b, equal_var=False)
    assert pair_stats(a, b, MARGIN, "none")["p_value"] == pytest.approx(welch.pvalue)
    assert pair_stats(a, b, MARGIN, "auto")["p_value"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    disjoint = pd.Series([3.2, 3.0, 3.5], index=[7, 8, 9])
    assert pair_stats(a, disjoint, MARGIN, "auto")["pairing"] == "unpaired"  # auto: no pairs, Welch
    assert math.isnan(pair_stats(a, disjoint, MARGIN, "seed")["p_value"])   # seed: no pairs, no test


@pytest.fixture(scope="module")
def reported(tmp_path_factory) -> tuple[Path, dict[str, dict[int, float]]]:
    tmp = tmp_path_factory.mktemp("paired")
    runs = tmp / "runs"
    shutil.copytree(GOLDEN.parent, runs)
    spec_path = runs / GOLDEN.name / "spec.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    spec["seeds"] = [0, 1, 2]  # analysed as a fixed-seed study
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    write_reports(runs, tmp / "reports", experiments=[GOLDEN.name])
    values: dict[str, dict[int, float]] = {}
    for d in sorted((runs / GOLDEN.name).iterdir()):
        if d.is_dir():
            variant, seed = d.name.rsplit("-seed", 1)
            values.setdefault(variant, {})[int(seed)] = _values(d)
    return tmp / "reports" / GOLDEN.name, values


def test_summary_csv_is_paired_and_equals_scipy_on_the_stored_values(reported) -> None:
    folder, values = reported
    csv = pd.read_csv(folder / "summary.csv").set_index("variant")
    base = values["base"]
    for variant in ("big", "nowd", "twin"):
        seeds = sorted(set(values[variant]) & set(base))
        a = np.array([values[variant][s] for s in seeds])
        b = np.array([base[s] for s in seeds])
        row = csv.loc[variant]
        assert row["pairing"] == "paired" and row["pairs"] == len(seeds)
        assert row["diff"] == pytest.approx(np.mean(a - b), rel=1e-5, abs=1e-12)
        if np.array_equal(a, b):  # the twin trains exactly as base does: a defined verdict, where scipy gives NaN
            assert row["p_value"] == 1.0 and row["equivalent"] and not row["significant"]
            continue
        ref = stats.ttest_rel(a, b)
        assert row["p_value"] == pytest.approx(ref.pvalue, rel=1e-5)
        ci = ref.confidence_interval()
        assert row["diff_ci_low"] == pytest.approx(ci.low, rel=1e-5, abs=1e-7)
        if len(seeds) >= 3:
            assert row["pair_corr"] == pytest.approx(np.corrcoef(a, b)[0, 1], rel=1e-5)
        else:
            assert math.isnan(row["pair_corr"])
    assert csv.loc["twin", "pairs"] == 2 and csv.loc["nowd", "pairs"] == 2  # base's seed 2 is left out of both


def test_report_states_pairing_per_comparison(reported) -> None:
    folder, _ = reported
    md = (folder / "report.md").read_text()
    assert "differences use the paired t-test on per-seed differences" in md
    section = md[md.index("## Pairing"):]
    section = section[:section.index("\n## ", 3)]
    rows = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[1:-1]]
            for ln in section.splitlines() if ln.startswith("| ") and "paired by seed" in ln}
    assert set(rows) == {"big", "nowd", "twin"}
    assert rows["twin"][3:5] == ["2", "1"] and rows["big"][3:5] == ["3", "0"]  # pairs, seeds left out
    assert "2 seed pairs, 1 unpaired seed left out" in md


def test_tost_binds_on_either_side_and_at_two_pairs_like_statsmodels() -> None:
    rng = np.random.default_rng(5)
    shared = rng.normal(3.0, 0.05, 6)
    noise = rng.normal(0.0, 0.003, 6)
    for shift in (-0.004, 0.004, -0.012):  # the lower one-sided test sets the p at a negative shift
        a, b = shared + shift + noise, shared
        for n in (2, 6):
            want = ttost_paired(a[:n], b[:n], -0.005, 0.005)[0]
            assert paired_tost(a[:n] - b[:n], 0.005) == pytest.approx(want, rel=1e-9), (shift, n)
    assert math.isnan(paired_tost(np.array([0.1, 0.2, 0.3]), 0.0))  # no margin, no equivalence test
    assert math.isnan(paired_tost(np.array([0.1]), 0.5))


def test_paired_t_below_two_pairs_and_power_on_the_lower_side() -> None:
    from statsmodels.stats.power import TTestPower

    assert all(math.isnan(x) for x in paired_t(np.array([])))
    diff, *rest = paired_t(np.array([0.3]))
    assert diff == 0.3 and all(math.isnan(x) for x in rest)
    for d, n in ((-1.2, 4), (-0.3, 30)):
        assert one_sample_power(d, n) == pytest.approx(TTestPower().power(d, n, 0.05), rel=1e-6)


def test_mde_at_many_pairs_and_undefined_below_two() -> None:
    d = np.random.default_rng(2).normal(0.0, 0.01, 40)
    mde = paired_mde(d)
    assert mde < np.std(d, ddof=1)  # 40 pairs detect less than one sd
    assert one_sample_power(mde / np.std(d, ddof=1), 40) == pytest.approx(0.8, abs=1e-6)
    assert math.isnan(paired_mde(np.array([0.1]))) and paired_mde(np.array([0.1, 0.1, 0.1])) == 0.0


def test_seeds_needed_for_equivalence_is_the_normal_tost_size_and_is_clipped() -> None:
    """|diff| < margin: the smallest n at which two one-sided z-tests at ALPHA on a true difference of 0 reach
    power 0.8 (2 Phi(margin sqrt(n) / sd - z) - 1, computed here by scipy), clipped to [2, MAX_SEEDS + 1];
    |diff| >= margin beyond MAX_SEEDS: MAX_SEEDS + 1; no difference and no margin: undefined."""
    from gptlab.stats.inference import MAX_SEEDS

    def tost_power(n: int, sd: float, margin: float) -> float:
        return 2 * stats.norm.cdf(margin * math.sqrt(n) / sd - stats.norm.ppf(0.95)) - 1

    for sd, margin in ((0.01, 0.008), (0.02, 0.01)):
        n = int(paired_seeds_needed(0.0, sd, margin))
        assert tost_power(n, sd, margin) >= 0.8 > tost_power(n - 1, sd, margin), (sd, margin, n)
    # a true difference inside the margin: the size still reaches the TOST's power at that difference (normal)
    diff, sd, margin = 0.004, 0.01, 0.008
    n = int(paired_seeds_needed(diff, sd, margin))
    z = stats.norm.ppf(0.95)
    power = stats.norm.cdf((margin - diff) * math.sqrt(n) / sd - z) + stats.norm.cdf(
        (margin + diff) * math.sqrt(n) / sd - z) - 1
    assert power >= 0.8, (n, power)
    assert paired_seeds_needed(0.0, 1e-6, 0.01) == 2.0
    assert paired_seeds_needed(0.0, 1.0, 0.01) == MAX_SEEDS + 1
    assert paired_seeds_needed(0.003, 1.0, 0.001) == MAX_SEEDS + 1  # detectable only beyond the cap
    assert math.isnan(paired_seeds_needed(0.0, 0.01, 0.0)) and math.isnan(paired_seeds_needed(0.1, 0.0, 0.01))


def test_correlation_and_seeds_factor_degenerate_cases_without_warnings() -> None:
    import warnings

    from gptlab.stats.paired import correlation

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        const = pair_up(pd.Series([1.0, 1.0, 1.0, 1.0]), pd.Series([1.0, 2.0, 4.0, 3.0]))
        assert math.isnan(correlation(const))
        assert math.isnan(correlation(pair_up(pd.Series([1.0, 2.0]), pd.Series([2.0, 1.0]))))  # two pairs
        three = pair_up(pd.Series([1.0, 2.0, 4.0]), pd.Series([2.0, 1.0, 5.0]))
        assert correlation(three) == pytest.approx(stats.pearsonr(three.a, three.b).statistic)
        shifted = pair_up(pd.Series([2.0, 3.0, 5.0]), pd.Series([1.0, 2.0, 4.0]))  # d constant, sides vary
        assert seeds_factor(shifted) == math.inf
        assert math.isnan(seeds_factor(pair_up(pd.Series([1.0, 1.0]), pd.Series([1.0, 1.0]))))


def test_paired_stats_has_the_unpaired_keys_and_its_own_figures() -> None:
    from gptlab.stats.paired import Pairs, uses_pairs

    a = pd.Series([3.0, 3.1, 3.3, 3.25], index=[0, 1, 2, 5])
    b = pd.Series([3.05, 3.0, 3.2, 3.1, 3.4], index=[0, 1, 2, 3, 4])
    got = paired_stats(pair_up(a, b), MARGIN)
    assert set(pair_stats(a, b, MARGIN, "none")) <= set(got)  # a paired row fills every column a Welch row does
    d = np.array([3.0 - 3.05, 3.1 - 3.0, 3.3 - 3.2])
    assert (got["only_a"], got["only_b"], got["pairs"], got["margin"]) == (1, 2, 3, MARGIN)
    assert got["mde"] == pytest.approx(paired_mde(d))
    assert got["seeds_needed"] == paired_seeds_needed(float(d.mean()), float(np.std(d, ddof=1)), MARGIN)
    assert got["seeds_factor"] == pytest.approx((np.var([3.0, 3.1, 3.3], ddof=1) + np.var([3.05, 3.0, 3.2], ddof=1))
                                                / np.var(d, ddof=1))
    two, none_ = Pairs(np.array([1.0, 2.0]), np.array([1.5, 2.5]), (0, 1), 0, 0), \
        Pairs(np.array([]), np.array([]), (), 1, 1)
    assert not uses_pairs("none", two) and uses_pairs("auto", two) and uses_pairs("seed", none_)
    assert not uses_pairs("auto", none_)
