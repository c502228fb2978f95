"""Adaptive seeds: the group-sequential boundaries, the verdict API, and the error rates proved by
simulation (K = 3 comparisons, seed sd 0.008 nats, Gaussian and scaled-t3 noise, 2000 studies each)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from gptlab.stats.sequential import (VERDICTS, SequentialDesign, _z_boundaries, decide, decide_batch, decide_family,
                                        fixed_design_seeds, mde_at)
from gptlab.stats.sequential_sim import equal_power_fixed, simulate, simulate_fixed

SD, MARGIN, ALPHA, S = 0.008, 0.02, 0.05, 2000
DESIGN = SequentialDesign(start=3, max=12, step=2, alpha=ALPHA, margin=MARGIN, n_comparisons=3)
NOISES = ("gaussian", "t3")


def bound(rate: float = ALPHA) -> float:
    return rate + 3 * math.sqrt(rate * (1 - rate) / S)


def test_boundaries_match_published_values():
    # five equally spaced looks; Jennison & Turnbull (2000) tables 7.6 / gsDesign sfLDPocock, sfLDOF
    five = tuple(i / 5 for i in range(1, 6))
    assert np.allclose(_z_boundaries(five, 0.05, True, "pocock"), [2.438, 2.427, 2.410, 2.397, 2.386], atol=2e-3)
    assert np.allclose(_z_boundaries(five, 0.025, False, "obrien_fleming"), [4.877, 3.357, 2.680, 2.290, 2.031],
                       atol=2e-3)
    assert np.allclose(_z_boundaries(five, 0.05, True, "obrien_fleming"), [4.877, 3.357, 2.680, 2.290, 2.031],
                       atol=2e-3)


def test_design_looks_and_validation():
    assert DESIGN.looks == (3, 5, 7, 9, 11, 12)
    assert SequentialDesign(start=4, max=12, step=4).looks == (4, 8, 12)
    with pytest.raises(ValueError, match="obrien_fleming"):
        SequentialDesign(spending="bogus")
    with pytest.raises(ValueError, match="seeds.max"):
        SequentialDesign(start=5, max=4)
    with pytest.raises(ValueError, match="not a planned look"):
        decide(DESIGN, np.zeros(4), np.zeros(4))


def test_decide_verdicts_and_fields():
    rng = np.random.default_rng(0)
    base = rng.normal(3.0, SD, 12)
    far = decide(DESIGN, base[:5] + 0.05, base)  # a loss 0.05 higher: worse
    assert far.verdict == "different" and far.direction == "worse" and far.ci_low > 0
    assert far.n == 5 and far.look == 1 and not far.final and far.p_value < far.p_boundary
    same = decide(DESIGN, rng.normal(3.0, SD, 12), base)
    assert same.verdict == "equivalent" and -MARGIN < same.eq_low < same.eq_high < MARGIN and same.final
    unclear = decide(DESIGN, base[:3] + 0.015 + rng.normal(0, SD, 3), base)
    assert unclear.verdict in VERDICTS and (unclear.direction is None) == (unclear.verdict != "different")
    family = decide_family(DESIGN, {"a": (base[:5] - 0.05, base), "b": (base[:5], base)}, sign=-1)
    assert family["a"].direction == "better"
    with pytest.raises(ValueError, match="splits alpha over 3"):
        decide_family(DESIGN, {str(i): (base[:3], base) for i in range(4)})


def test_power_solvers():
    assert fixed_design_seeds(0.03, SD, margin=MARGIN, n_comparisons=3, power=0.9) == 4
    assert fixed_design_seeds(0.003, SD, margin=MARGIN, n_comparisons=3, power=0.9) == 7
    assert mde_at(12, SD, n_comparisons=3) < mde_at(5, SD, n_comparisons=3)


def bonferroni_rate(diffs, noise: str, seed: int, family: str) -> float:
    """On the simulation's own draws: the share of studies in which some comparison, run alone as a
    one-comparison sequential design at alpha/K (stopping when it rejects either null), falsely rejects
    (family "different": diff = 0; "equivalent": |diff| >= margin). In the design a family's first false
    rejection happens at the split level (Holm passes alpha on only after a rejection of that family), and a
    comparison is open no longer than alone (the other family's rejections only raise its other level), so the
    design's family-wise rate is at most this on the same draws: the alpha split's bound, with no sampling error."""
    from gptlab.stats.sequential import decide_batch, rejects
    from gptlab.stats.sequential_sim import _data

    alone = SequentialDesign(start=DESIGN.start, max=DESIGN.max, step=DESIGN.step, alpha=ALPHA / len(diffs),
                             margin=MARGIN, n_comparisons=1)
    baseline, variants = _data(diffs, SD, DESIGN.max, S, noise, seed)
    # before anything is rejected, the design's levels are alone's at every look (under t3 noise Welch is so
    # conservative that 2000 studies cannot tell a design without the split from one with it: 0.006 vs 0.001)
    for n in alone.looks:
        ours, solo = (decide(d, variants[0, 0, :n], baseline[0]) for d in (DESIGN, alone))
        assert (ours.p_boundary, ours.eq_low, ours.eq_high) == pytest.approx(
            (solo.p_boundary, solo.eq_low, solo.eq_high), rel=1e-12), n
    crossed, open_ = np.zeros(S, bool), np.ones((S, len(diffs)), bool)
    for n in alone.looks:
        for k in range(len(diffs)):
            idx = np.flatnonzero(open_[:, k])
            no_diff, no_margin = rejects(alone, decide_batch(alone, variants[idx, k, :n], baseline[idx, :n]))
            crossed[idx] |= no_margin if family == "equivalent" else no_diff
            open_[idx, k] = ~(no_diff | no_margin)
    return float(crossed.mean())


@pytest.mark.parametrize("noise", NOISES)
def test_no_false_difference_family_wise_and_naive_rule_fails(noise):
    adaptive = simulate(DESIGN, (0.0, 0.0, 0.0), SD, n_studies=S, noise=noise, seed=1)
    split = bonferroni_rate((0.0, 0.0, 0.0), noise, 1, "different")
    assert adaptive.family_rate("different") <= split <= bound()  # 0.013 <= 0.026 (Gaussian; without the split 0.035)
    naive = simulate(DESIGN, (0.0, 0.0, 0.0), SD, n_studies=S, noise=noise, seed=1, rule="naive")
    assert naive.family_rate("different") > bound()  # peeking at p < 0.05: the test can fail


@pytest.mark.parametrize("noise", NOISES)
def test_no_false_equivalence_at_the_margin(noise):
    at_margin = simulate(DESIGN, (MARGIN, MARGIN, -MARGIN), SD, n_studies=S, noise=noise, seed=2)
    split = bonferroni_rate((MARGIN, MARGIN, -MARGIN), noise, 2, "equivalent")
    assert at_margin.family_rate("equivalent") <= split <= bound()  # 0.026 <= 0.033 (Gaussian; without: 0.081)


@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("diffs, most", [((0.03, 0.0, 0.003), 0.75),  # a large effect, a null, an equivalent pair
                                         ((0.03, 0.0, 0.015), 0.8)])  # ... and an effect near the margin
def test_adaptive_matches_fixed_power_with_fewer_runs(noise, diffs, most):
    adaptive = simulate(DESIGN, diffs, SD, n_studies=S, noise=noise, seed=3)
    power = adaptive.power()
    # the fixed design of equal power with one seed list for every variant (what a spec's list runs)
    eq = equal_power_fixed(DESIGN, diffs, SD, n_studies=S, noise=noise, seed=3)
    assert eq.adaptive_runs == pytest.approx(adaptive.expected_runs())
    assert np.all(eq.fixed_power >= power - np.sqrt(power * (1 - power) / S))
    shorter = simulate_fixed([eq.n - 1] * 3, diffs, SD, alpha=ALPHA, margin=MARGIN, n_studies=S, noise=noise, seed=3)
    assert np.any(shorter.power() < power - np.sqrt(power * (1 - power) / S))  # n is the smallest that does
    assert eq.fixed_runs == 4 * eq.n and np.all(adaptive.expected_seeds() < eq.n)
    assert eq.adaptive_runs < most * eq.fixed_runs  # 0.67 / 0.42 and 0.72 / 0.45 (Gaussian / t3) here


def test_fixed_design_verdicts_match_scipy_welch_tost_and_statsmodels_holm(monkeypatch):
    """The fixed design's verdicts (the equal-power comparator) recomputed per study with scipy's Welch tests
    and statsmodels' Holm over the three comparisons, for each family."""
    import gc

    from scipy import stats
    from statsmodels.stats.multitest import multipletests

    # statsmodels' Holm runs gc.collect() on every call: 0.1-0.9 s each in a loaded test worker, 300 calls here
    monkeypatch.setattr(gc, "collect", lambda *args: 0)

    from gptlab.stats.sequential_sim import _data

    n, diffs, studies = 6, (0.03, 0.0, 0.012), 150
    fixed = simulate_fixed([n] * 3, diffs, SD, alpha=ALPHA, margin=MARGIN, n_studies=studies, seed=5)
    baseline, variants = _data(diffs, SD, n, studies, "gaussian", 5)
    kinds, holm_only = set(), 0
    for s in range(studies):
        p_diff, p_eq = [], []
        for k in range(3):
            v, b = variants[s, k, :n], baseline[s, :n]
            p_diff.append(stats.ttest_ind(v, b, equal_var=False).pvalue)
            lower = stats.ttest_ind(v + MARGIN, b, equal_var=False, alternative="greater").pvalue
            upper = stats.ttest_ind(v - MARGIN, b, equal_var=False, alternative="less").pvalue
            p_eq.append(max(lower, upper))
        different = multipletests(p_diff, ALPHA, method="holm")[0]
        equivalent = multipletests(p_eq, ALPHA, method="holm")[0]
        holm_only += int(np.sum(different != multipletests(p_diff, ALPHA, method="bonferroni")[0])
                         + np.sum(equivalent != multipletests(p_eq, ALPHA, method="bonferroni")[0]))
        for k in range(3):
            want = "equivalent" if equivalent[k] else "different" if different[k] else "open"
            assert fixed.verdict[s, k] == want, (s, k)
            kinds.add(want)
    assert kinds == {"equivalent", "different", "open"}
    assert holm_only > 0  # studies where Holm and Bonferroni disagree are among them


@pytest.mark.parametrize("paired", [False, True])
def test_the_store_replay_decides_as_the_simulation_does(paired):
    """The planner's and report's replay (one study, scalar, with Holm's passing of alpha between looks and
    within one) and the simulation that proves the error rates (many studies, arrays) are separate code: on the
    same draws they must reach the same verdicts at the same looks. Paired: on skewed differences, so each look's
    Hall T takes the skewness pooled over the comparisons still open, in both."""
    from gptlab.stats.adaptive import Pair, replay
    from gptlab.stats.sequential_sim import Noise, _data

    design = SequentialDesign(start=3, max=9, step=2, alpha=ALPHA, margin=MARGIN, n_comparisons=3)
    diffs, studies = (0.025, 0.004, 0.012), 200
    noise = Noise(sd_ratio=2.0, skew=0.5) if paired else "gaussian"
    sim = simulate(design, diffs, SD, n_studies=studies, seed=11, noise=noise, paired=paired)
    baseline, variants = _data(diffs, SD, design.max, studies, noise, 11)
    pairs = [Pair(f"v{k}", "base") for k in range(3)]
    passed_on = 0
    for s in range(studies):
        table = {"base": baseline[s], **{f"v{k}": variants[s, k] for k in range(3)}}
        state = replay(design, pairs, lambda c, i: True, lambda c, i, t=table: float(t[c][i]), paired=paired)
        for k in range(3):
            o = state.outcomes[f"v{k}"]
            want = sim.verdict[s, k] if sim.verdict[s, k] != "open" else "budget"
            assert (o.stopped, o.result.n) == (want, sim.seeds[s, k]), (s, k)
        passed_on += any(o.result.p_boundary > 2 * design.thresholds()[0][o.result.look] + 1e-12
                         for o in state.outcomes.values())
    assert passed_on > 0  # some comparisons were decided at levels widened by Holm's passing on
    assert set(sim.verdict.ravel()) == {"different", "equivalent", "open"}


def test_mde_at_reaches_its_power_by_scipys_noncentral_t_unpaired_and_paired():
    """The difference mde_at returns is detected with power 0.8 by a two-sided t-test at alpha / K: the two-sample
    t (2n - 2 df) unpaired, the one-sample t on n per-seed differences (n - 1 df) paired."""
    from scipy import stats

    for n, k in ((5, 1), (9, 3)):
        for paired in (False, True):
            d = mde_at(n, SD, n_comparisons=k, paired=paired)
            dof, nc = (n - 1, d / SD * math.sqrt(n)) if paired else (2 * n - 2, d / SD * math.sqrt(n / 2))
            q = stats.t.isf(0.05 / k / 2, dof)
            power = stats.nct.sf(q, dof, nc) + stats.nct.cdf(-q, dof, nc)
            assert power == pytest.approx(0.8, abs=1e-4), (n, k, paired)
        assert mde_at(n, SD, paired=True) < mde_at(n, SD)  # one sample of n differences vs two of n seeds


@pytest.mark.parametrize("paired", [False, True])
def test_a_look_with_failed_seeds_equals_scipy_on_the_values_present(paired):
    """decide_batch on several studies at once whose failed seeds (NaN) sit in different places: each row's
    difference, p-value and information are scipy's on the values it has: Welch on each arm's present seeds
    (pairing: none), the paired t on the complete pairs (paired, at skewness 0 so Hall's T is the t)."""
    from scipy import stats

    rng = np.random.default_rng(11)
    design = SequentialDesign(start=3, max=12, step=2, alpha=0.05, margin=0.02, n_comparisons=3)
    base = rng.normal(3.0, SD, (4, 7))
    var = base * (0.5 if paired else 0.0) + rng.normal(3.0 * (0.5 if paired else 1.0) + 0.006, SD, (4, 7))
    var[0, 2] = np.nan            # a variant seed failed
    base[1, 5] = np.nan           # a baseline seed failed
    var[2, 6], base[2, 6] = np.nan, np.nan  # both sides of one seed
    b = decide_batch(design, var, base, paired=paired, skew=0.0 if paired else None)  # row 3: nothing failed
    assert b.tested.all()  # every row has more information than the 5-seed look before it
    for s in range(4):
        v, w = var[s], base[s]
        if paired:
            keep = ~np.isnan(v) & ~np.isnan(w)
            want = stats.ttest_rel(v[keep], w[keep])
            assert b.used[s] == keep.sum() and b.diff[s] == pytest.approx(np.mean(v[keep] - w[keep]), rel=1e-12)
        else:
            vv, ww = v[~np.isnan(v)], w[~np.isnan(w)]
            want = stats.ttest_ind(vv, ww, equal_var=False)
            assert b.used[s] == pytest.approx(2 / (1 / len(vv) + 1 / len(ww)))
            assert b.diff[s] == pytest.approx(vv.mean() - ww.mean(), rel=1e-12)
        assert b.p_value[s] == pytest.approx(want.pvalue, rel=1e-9), s
        # the boundaries are those at the information observed: the looks before at their planned fractions,
        # this one at used / max (Lan & DeMets); "different" at its level, "equivalent" at its own
        levels = design.thresholds(None, (3 / 12, 5 / 12, float(b.used[s]) / 12))
        se = abs(b.diff[s] / want.statistic)
        dof = want.df
        assert b.ci_low[s] == pytest.approx(b.diff[s] - stats.t.isf(levels[0][-1], dof) * se, rel=1e-9)
        assert b.eq_high[s] == pytest.approx(b.diff[s] + stats.t.isf(levels[1][-1], dof) * se, rel=1e-9)
    assert len(set(np.round(b.p_value, 12))) == 4  # the rows really differ


def test_a_look_after_an_untested_one_spends_by_the_looks_tested_and_tests_nothing_without_new_information():
    """`history` per study (Lan & DeMets 1983: alpha is spent at the looks that tested something): an earlier look
    that tested nothing (NaN) spends nothing, so this look's boundary is the one over the tested looks only; a look
    with no more pairs than the last tested one, or fewer than two, tests nothing (open, p NaN, no stagewise p)."""
    from scipy import stats

    from gptlab.stats.sequential import sequential_p_of

    rng = np.random.default_rng(5)
    design = SequentialDesign(start=3, max=12, step=2, alpha=0.05, margin=0.02, n_comparisons=3)
    base = rng.normal(3.0, SD, (4, 7))
    var = base + rng.normal(0.004, SD / 2, (4, 7))
    var[2, 1:] = np.nan  # row 2: a single pair left
    history = np.array([[3 / 12, np.nan],     # the 5-seed look tested nothing (a failed seed, say)
                        [3 / 12, 5 / 12],     # as planned
                        [np.nan, np.nan],     # nothing tested yet, and too few pairs now
                        [3 / 12, 7 / 12]])    # the last tested look already held 7 pairs: nothing new now
    b = decide_batch(design, var, base, paired=True, history=history, skew=0.0)
    assert b.tested.tolist() == [True, True, False, False]
    for s in (2, 3):
        assert b.verdict[s] == "open" and math.isnan(b.p_value[s])
        assert math.isnan(sequential_p_of(design, b, s, history[s], None))
    for s, before in ((0, (3 / 12,)), (1, (3 / 12, 5 / 12))):
        levels = design.thresholds(None, before + (7 / 12,))
        d = var[s] - base[s]
        want = stats.ttest_1samp(d, 0.0)
        se = abs(np.mean(d) / want.statistic)
        assert b.p_value[s] == pytest.approx(want.pvalue, rel=1e-9)
        assert b.ci_low[s] == pytest.approx(np.mean(d) - stats.t.isf(levels[0][-1], 6) * se, rel=1e-9)
        assert b.eq_low[s] == pytest.approx(np.mean(d) - stats.t.isf(levels[1][-1], 6) * se, rel=1e-9)
    # skipping the untested look leaves more alpha for this one than the planned three looks would
    assert b.p_boundary[0] > b.p_boundary[1] > 0
    # the stagewise p is that of the tested schedule (3, 7 of 12), not of the planned one (3, 5, 7 of 12)
    from gptlab.stats.boundaries import stagewise_p

    z = float(stats.norm.isf(b.p_value[0] / 2))
    p0 = sequential_p_of(design, b, 0, history[0], None)
    assert p0 == pytest.approx(stagewise_p((3 / 12, 7 / 12), 0.05 / 3, design.spending, z), rel=1e-12)
    assert p0 != pytest.approx(stagewise_p((3 / 12, 5 / 12, 7 / 12), 0.05 / 3, design.spending, z), rel=1e-6)


def test_the_last_look_spends_all_that_is_left_whatever_information_it_holds():
    """At the last planned look a study whose failed seeds left less information than planned still spends all
    of alpha that is left (Lan & DeMets 1983, sec. 3): its boundary is the final one at the observed fraction.
    Rows are grouped by their information: a row that tests nothing before others must not stop the others."""
    rng = np.random.default_rng(8)
    design = SequentialDesign(start=3, max=7, step=2, alpha=0.05, margin=0.02, n_comparisons=2)
    base = rng.normal(3.0, SD, (3, 7))
    var = base + rng.normal(0.004, SD, (3, 7))
    var[0, 1:] = np.nan   # one pair left: tests nothing
    var[1, 3] = np.nan    # 6 of the 7 planned pairs
    b = decide_batch(design, var, base, paired=True, skew=0.0)
    assert b.tested.tolist() == [False, True, True]
    for row, now in ((1, 6 / 7), (2, 1.0)):
        final = design.thresholds(None, (3 / 7, 5 / 7, now), True)
        assert b.p_boundary[row] == pytest.approx(2 * final[0][-1], rel=1e-12)
    not_final = design.thresholds(None, (3 / 7, 5 / 7, 6 / 7), False)
    assert b.p_boundary[1] > 2 * not_final[0][-1]  # spending all that is left is a looser boundary
    with pytest.raises(ValueError, match="splits alpha over 2"):  # two open and one decided: three, not two
        decide_family(design, {"a": (var[2], base[2]), "b": (var[2], base[2])}, decided=(1, 0), paired=True)
