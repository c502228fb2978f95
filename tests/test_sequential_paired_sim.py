"""The adaptive design on pairs (issue 30): its look statistics (the paired t and Hall's skewness-corrected T,
gptlab.stats.skew) against scipy/statsmodels, the defined verdict of a twin, a failed seed dropped (not freezing the
comparison), the stagewise p, and its error rates by simulation where the unpaired design was shown to fail (unequal
spreads, skew, both together, heavy tails, paired noise, a partial null, failed seeds), each case with a broken
design (`mutant`) the same bound catches.

2000 studies per case here, 4000 in benchmarks/sequential_sim.py; the bound is alpha + 3 standard errors at the
studies run."""
from __future__ import annotations

import math

import numpy as np
import pytest

from gptlab.stats.sequential import SequentialDesign, _z_boundaries, decide, spent, stagewise_p
from gptlab.stats.sequential_sim import Noise, simulate

SD, MARGIN, ALPHA = 0.008, 0.02, 0.05
DESIGN = SequentialDesign(start=3, max=12, step=2, alpha=ALPHA, margin=MARGIN, n_comparisons=3)
NULL, AT_MARGIN = (0.0, 0.0, 0.0), (MARGIN, MARGIN, -MARGIN)


def bound(studies: int, rate: float = ALPHA) -> float:
    return rate + 3 * math.sqrt(rate * (1 - rate) / studies)


def test_a_paired_look_is_the_t_and_halls_skew_corrected_t_and_on_symmetric_pairs_scipys():
    """A paired look (gptlab.stats.skew): a boundary is crossed where both the paired t (scipy's ttest_rel) and Hall's
    (1992) T, with the adjusted sample skewness (scipy's skew(bias=False)), cross it; the repeated interval is the
    hull of the t interval and Hall's, found here by root finding. On symmetric differences that is scipy's paired t
    and statsmodels' paired TOST."""
    from scipy import optimize, stats
    from statsmodels.stats.weightstats import ttost_paired

    rng = np.random.default_rng(4)
    base = rng.normal(3.0, SD, 12)
    skewed = base + 0.5 * SD * (rng.lognormal(0.0, 1.0, 12) - 1.6)  # right-skewed per-seed differences
    for shift, binding in ((0.004, "t"), (-0.016, "hall")):  # the lower side's p is Hall's once the mean is below 0
        var = skewed + shift
        r = decide(DESIGN, var[:5], base, paired=True)
        assert r.paired and r.used == 5
        d, n = var[:5] - base[:5], 5
        g, s = stats.skew(d, bias=False), d.std(ddof=1)
        assert g > 0.5

        def hall(mu: float, d=d, g=g, s=s, n=n) -> float:
            x = (d.mean() - mu) / s
            return math.sqrt(n) * (x + g * x ** 2 / 3 + g ** 2 * x ** 3 / 27 + g / (6 * n))

        t0 = stats.ttest_rel(var[:5], base[:5]).statistic
        upper, lower = (max(stats.t.sf(t0, 4), stats.t.sf(hall(0.0), 4)),
                        max(stats.t.cdf(t0, 4), stats.t.cdf(hall(0.0), 4)))
        assert r.p_value == pytest.approx(2 * min(upper, lower), rel=1e-9)
        assert (stats.t.cdf(hall(0.0), 4) > stats.t.cdf(t0, 4) and t0 < 0) == (binding == "hall")
        q = stats.t.isf(r.p_boundary / 2, 4)
        half = q * s / math.sqrt(n)
        lo, hi = (optimize.brentq(lambda mu, c=c: hall(mu) - c, d.mean() - 1.0, d.mean() + 1.0, xtol=1e-16)
                  for c in (q, -q))  # T falls with mu
        assert (r.ci_low, r.ci_high) == pytest.approx((min(d.mean() - half, lo), max(d.mean() + half, hi)),
                                                      rel=1e-7)
        assert r.ci_high > d.mean() + 1.2 * half and r.ci_low == pytest.approx(d.mean() - half)  # one side widened
    # symmetric differences: the paired t interval and p, and "equivalent" iff statsmodels' paired TOST rejects
    var = base[:5] + 0.004 + 0.5 * SD * np.array([-1.3, -0.4, 0.0, 0.4, 1.3])
    r = decide(DESIGN, var, base, paired=True)
    assert r.p_value == pytest.approx(stats.ttest_rel(var, base[:5]).pvalue, rel=1e-9)
    d = var - base[:5]
    half = stats.t.isf(r.p_boundary / 2, 4) * d.std(ddof=1) / math.sqrt(5)
    assert (r.ci_low, r.ci_high) == pytest.approx((d.mean() - half, d.mean() + half), rel=1e-9)
    p_eq, verdicts = DESIGN.thresholds()[1][1], set()
    for margin in (0.004, 0.006, 0.008, 0.02):
        design = SequentialDesign(start=3, max=12, step=2, alpha=ALPHA, margin=margin, n_comparisons=3)
        p_tost = ttost_paired(var, base[:5], -margin, margin)[0]
        verdicts.add(decide(design, var, base, paired=True).verdict)
        assert (decide(design, var, base, paired=True).verdict == "equivalent") == (p_tost < p_eq), margin
    assert verdicts == {"equivalent", "open"}


def test_a_family_pools_the_skewness_of_its_open_comparisons():
    """decide_family gives each comparison Hall's T at the mean of the open comparisons' adjusted skewness."""
    from scipy import stats

    from gptlab.stats.sequential import decide_family, skew_of

    rng = np.random.default_rng(5)
    base = rng.normal(3.0, SD, 12)
    family = {f"v{k}": (base[:7] + 3 * SD * rng.lognormal(0.0, 0.5, 7) - 3.4 * SD, base) for k in range(3)}
    pooled = np.mean([stats.skew(v - base[:7], bias=False) for v, _ in family.values()])
    assert skew_of(family) == pytest.approx(pooled, rel=1e-12)
    out = decide_family(DESIGN, family, paired=True)
    for name, (values, b) in family.items():
        alone = decide(DESIGN, values, b, paired=True, skew=pooled, shares=out[name].shares)
        assert (out[name].ci_low, out[name].ci_high, out[name].p_value) == pytest.approx(
            (alone.ci_low, alone.ci_high, alone.p_value), rel=1e-12)
        assert out[name].ci_high != pytest.approx(decide(DESIGN, values, b, paired=True).ci_high, rel=1e-6)


# a real study's first 11 seeds (benchmarks/pairing.md, part 2e: 250 steps, float32, val loss to 5 decimals):
# rmsnorm's per-seed differences are right-skewed, relu's are not, and the pooled skewness holds relu open
RR = {"base": [2.44811, 2.45626, 2.45353, 2.46348, 2.44767, 2.46944, 2.44794, 2.44602, 2.46413, 2.44418, 2.48345],
      "rmsnorm": [2.44691, 2.45433, 2.46366, 2.45892, 2.44425, 2.46491, 2.44525, 2.4455, 2.46697, 2.44548, 2.48023],
      "relu": [2.4343, 2.43334, 2.43396, 2.44032, 2.43523, 2.45105, 2.42216, 2.42802, 2.45101, 2.41877, 2.44245]}


def test_a_look_says_what_the_paired_t_alone_would_decide_and_the_report_names_the_looks_the_skew_held():
    """LookResult.t_verdict is the paired t's verdict at the look's own levels (scipy's t interval), `skew` the g
    Hall's T took (the mean of scipy's adjusted skewness over the open comparisons); a look where the t alone would
    stop a comparison and the design did not is recorded (Outcome.held) and named in the report's design table."""
    from scipy import stats

    from gptlab.report.sections.adaptive import held_clause
    from gptlab.stats.adaptive import Pair, replay
    from gptlab.stats.sequential import decide_family

    design = SequentialDesign(start=3, max=33, step=2, alpha=ALPHA, margin=0.01, n_comparisons=2)
    v = {k: np.array(x) for k, x in RR.items()}
    verdicts = {}
    for n in (5, 7):
        looked = {c: (v[c][:n], v["base"][:n]) for c in ("rmsnorm", "relu")}
        out = decide_family(design, looked, paired=True)
        g = np.mean([stats.skew(v[c][:n] - v["base"][:n], bias=False) for c in looked])
        for c, r in out.items():
            d = v[c][:n] - v["base"][:n]
            se = d.std(ddof=1) / math.sqrt(n)
            p_diff, p_eq = (levels[design.look_index(n)] for levels in design.thresholds(r.shares))
            lo, hi = d.mean() - stats.t.isf(p_diff, n - 1) * se, d.mean() + stats.t.isf(p_diff, n - 1) * se
            elo, ehi = d.mean() - stats.t.isf(p_eq, n - 1) * se, d.mean() + stats.t.isf(p_eq, n - 1) * se
            want = "equivalent" if -0.01 < elo and ehi < 0.01 else "different" if lo > 0 or hi < 0 else "open"
            assert r.t_verdict == want and r.skew == pytest.approx(g, rel=1e-9), (c, n)
            verdicts[c, n] = (r.t_verdict, r.verdict)
    assert verdicts["rmsnorm", 7] == ("equivalent", "open")
    g = np.mean([stats.skew(v[c][:5] - v["base"][:5], bias=False) for c in ("rmsnorm", "relu")])
    assert verdicts["relu", 5] == ("different", "open")  # the t crosses, Hall's T does not
    # each side of the t's intervals: relu mirrored (a positive difference), and a difference whose equivalence
    # interval reaches past +margin only
    lone = SequentialDesign(start=3, max=33, step=2, alpha=ALPHA, margin=0.01, n_comparisons=1)
    up = decide(lone, 2 * v["base"][:5] - v["relu"][:5], v["base"][:5], paired=True)
    near = decide(lone, v["base"][:5] + np.array([0.004, 0.012, 0.002, 0.009, 0.006]), v["base"][:5], paired=True)
    for r, d in ((up, v["base"][:5] - v["relu"][:5]), (near, np.array([0.004, 0.012, 0.002, 0.009, 0.006]))):
        half = [stats.t.isf(p, 4) * d.std(ddof=1) / math.sqrt(5) for p in
                (x[lone.look_index(5)] for x in lone.thresholds(r.shares))]
        want = ("equivalent" if -0.01 < d.mean() - half[1] and d.mean() + half[1] < 0.01 else
                "different" if d.mean() - half[0] > 0 or d.mean() + half[0] < 0 else "open")
        assert r.t_verdict == want
    assert (up.t_verdict, near.t_verdict) == ("different", "open")
    state = replay(design, [Pair("rmsnorm", "base"), Pair("relu", "base")], lambda c, s: s < 11,
                   lambda c, s: float(v[c][s]), paired=True)
    relu = state.outcomes["relu"]
    assert relu.stopped == "different" and relu.result.used == 11
    assert relu.held[0][0] == 5 and relu.held[0][2:] == ("different", 2)
    assert relu.held[0][1] == pytest.approx(g, rel=1e-9)
    assert held_clause(relu) == (f"; the paired t alone would have called it different at 5 pairs, the skew "
                                 f"correction (skewness {g:.2g}, pooled over the 2 comparisons open there) "
                                 "held it open")
    assert all(h[2] != "open" for o in state.outcomes.values() for h in o.held)
    # a comparison left alone (the other decided) uses its own skewness: a twin stops at the first look
    lone = replay(design, [Pair("twin", "base"), Pair("rmsnorm", "base")], lambda c, s: s < 11,
                  lambda c, s: float(v["base" if c == "twin" else c][s]), paired=True)
    own = stats.skew(v["rmsnorm"][:7] - v["base"][:7], bias=False)
    assert lone.outcomes["twin"].stopped == "equivalent" and lone.outcomes["twin"].round == 1
    assert lone.outcomes["rmsnorm"].held[0] == (7, pytest.approx(own, rel=1e-9), "equivalent", 1)
    assert f"(skewness {own:.2g}, its own)" in held_clause(lone.outcomes["rmsnorm"])
    welch = replay(design, [Pair("rmsnorm", "base"), Pair("relu", "base")], lambda c, s: s < 11,
                   lambda c, s: float(v[c][s]), paired=False)
    assert not any(o.held for o in welch.outcomes.values())  # pairing: none has no skew correction to hold


def test_a_twin_is_equivalent_at_the_first_look_with_defined_numbers():
    base = np.random.default_rng(1).normal(3.0, SD, 12)
    r = decide(DESIGN, base[:3].copy(), base, paired=True)
    assert (r.verdict, r.look, r.diff, r.ci_low, r.ci_high, r.p_value) == ("equivalent", 0, 0.0, 0.0, 0.0, 1.0)
    assert r.p_sequential == 1.0
    shifted = decide(DESIGN, base[:3] + 0.03, base, paired=True)  # every pair differs by exactly 0.03
    assert shifted.verdict == "different" and shifted.p_value == 0.0 and shifted.ci_low == pytest.approx(0.03)


def test_a_failed_seed_drops_its_pair_and_spends_alpha_by_the_pairs_present():
    from gptlab.stats.adaptive import Pair, replay

    rng = np.random.default_rng(2)
    base = rng.normal(3.0, SD, 12)
    table = {"base": base.copy(), "v": base + 0.05 + 0.1 * rng.normal(0, SD, 12),
             "w": base + 0.3 * rng.normal(0, SD, 12)}
    design = SequentialDesign(start=3, max=9, step=2, alpha=ALPHA, margin=MARGIN, n_comparisons=2)
    for side in ("base", "v"):
        values = {k: v.copy() for k, v in table.items()}
        values[side][1] = np.nan  # seed 1 failed on this side
        state = replay(design, [Pair("v", "base"), Pair("w", "base")], lambda c, s: True,
                       lambda c, s, t=values: float(t[c][s]), paired=True)
        o = state.outcomes["v"]
        assert (o.stopped, o.round, o.missing, o.result.used) == ("different", 1, 1, 2.0), side
        # the boundary is the one at 2 of the 9 planned pairs, not at the 3 planned for this look
        level = 2 * design.thresholds(o.result.shares, (2 / 9,))[0][0]
        assert o.result.p_boundary == pytest.approx(level) and level < 2 * design.thresholds(o.result.shares)[0][0]
        assert state.outcomes["w"].stopped == "equivalent"


def test_stagewise_p_is_the_spent_alpha_at_the_boundary_and_agrees_with_the_verdict():
    t, a = (3 / 12, 5 / 12, 7 / 12), ALPHA / 3
    c = _z_boundaries(t, a, True, "pocock")
    for j in range(3):
        assert stagewise_p(t[:j + 1], a, "pocock", c[j]) == pytest.approx(float(spent(t[j], a, "pocock")), rel=1e-5)
        assert stagewise_p(t[:j + 1], a, "pocock", c[j] + 0.1) < float(spent(t[j], a, "pocock"))
    full = tuple(n / 12 for n in DESIGN.looks)
    assert stagewise_p(full, a, "pocock", _z_boundaries(full, a, True, "pocock")[-1] - 0.05) > a  # not crossed


# case -> (noise, studies, the broken design the bound must catch). Paired noise: the seed sd is SD / sqrt(1 - corr),
# so the per-seed differences have the same spread in every case and the mutant's failure is not hidden by a tiny sd
# of d. Heavy tails: the skew correction, on noisy t3 skewness estimates, keeps the false "equivalent" rate so far
# below alpha (0.02) that the unsplit design stays just inside the bound (0.058 at 2000 studies, 0.063 at 4000
# against 0.060); the unsplit plain paired t is caught there (0.070).
CASES = {
    "unequal spreads (variant sd 3x)": (Noise(sd_ratio=3.0), 2000, "no_split"),
    "skewed variant (lognormal sigma 0.5)": (Noise(skew=0.5), 2000, "no_split"),
    "unequal spreads and skew together (sd 3x, sigma 0.5)": (Noise(sd_ratio=3.0, skew=0.5), 2000, "no_split"),
    "one skewed variant among symmetric ones (sd 3x, sigma 0.5 in the first)":
        (Noise(sd_ratio=3.0, skew=0.5, skew_in=(0,)), 2000, "no_split"),
    "heavy tails (t3)": (Noise("t3"), 2000, "no_split+no_skew"),
    "paired noise, corr 0": (Noise(corr=0.0), 2000, "no_split"),
    "paired noise, corr 0.6": (Noise(corr=0.6), 2000, "no_split"),
    "paired noise, corr 0.99": (Noise(corr=0.99), 2000, "no_split"),
    "failed seeds (5% of runs, either side)": (Noise(fail=0.05), 2000, "no_split"),
}


def _sd(noise: Noise) -> float:
    return SD / math.sqrt(1 - noise.corr) if noise.corr else SD


def _rates(noise: Noise, studies: int, mutant: str | None = None, diffs=(NULL, AT_MARGIN), nulls=(0, 1, 2),
           margins=(0, 1, 2), design: SequentialDesign = DESIGN) -> tuple[float, float]:
    sd = _sd(noise)
    a = simulate(design, diffs[0], sd, n_studies=studies, noise=noise, seed=1, paired=True, mutant=mutant)
    b = simulate(design, diffs[1], sd, n_studies=studies, noise=noise, seed=2, paired=True, mutant=mutant)
    return (float((a.verdict[:, list(nulls)] == "different").any(1).mean()),
            float((b.verdict[:, list(margins)] == "equivalent").any(1).mean()))


@pytest.mark.parametrize("case", list(CASES))
def test_error_rates_hold_and_the_unsplit_mutant_breaks_them(case):
    noise, studies, mutant = CASES[case]
    different, equivalent = _rates(noise, studies)
    assert different <= bound(studies) and equivalent <= bound(studies), (different, equivalent)
    broken = _rates(noise, studies, mutant=mutant)
    assert max(broken) > bound(studies), broken  # the bound catches a design that does not split alpha


def test_partial_null_error_rates_hold_and_the_unsplit_mutant_breaks_them():
    """Some comparisons null (or at the margin), one a real effect (or truly equivalent) decided early, whose
    alpha Holm passes on to the others: the family rates over the null (margin) comparisons only."""
    four = SequentialDesign(start=3, max=12, step=2, alpha=ALPHA, margin=MARGIN, n_comparisons=4)
    kw = dict(diffs=((0.0, 0.0, 0.0, 0.06), (MARGIN, MARGIN, -MARGIN, 0.0)), nulls=(0, 1, 2), margins=(0, 1, 2),
              design=four)
    different, equivalent = _rates(Noise(), 2000, **kw)
    assert different <= bound(2000) and equivalent <= bound(2000), (different, equivalent)
    assert max(_rates(Noise(), 2000, mutant="no_split", **kw)) > bound(2000)


def test_skew_with_unequal_spreads_breaks_the_plain_paired_t():
    """What the skew correction is for: a skewed variant with 3x the spread makes the paired t alone err on the
    bulk's side at 3-12 pairs (false "different" ~0.10, "equivalent" ~0.11), beyond the bound the design holds."""
    different, equivalent = _rates(Noise(sd_ratio=3.0, skew=0.5), 2000, mutant="no_skew")
    assert different > bound(2000) and equivalent > bound(2000), (different, equivalent)


def test_one_skewed_variant_among_symmetric_ones_still_needs_the_pooled_correction():
    """The pooling's assumption broken on purpose: one variant skewed, two Gaussian (part 2b of benchmarks/pairing.md
    saw such a study). The design holds (above); the plain paired t fails it: the diluted pooled skewness still
    guards the skewed comparison (false "equivalent" 0.085 without it, at 2000 studies)."""
    different, equivalent = _rates(Noise(sd_ratio=3.0, skew=0.5, skew_in=(0,)), 2000, mutant="no_skew")
    assert equivalent > bound(2000), (different, equivalent)


def test_pairs_decide_a_correlated_equivalence_that_welch_leaves_open():
    """The paired design's point: at corr 0.99 a small true diff is shown equivalent within a few seeds, where
    the Welch mutant (the pairs thrown away) rarely can."""
    paired = simulate(DESIGN, (0.005, 0.0, -0.005), 0.03, n_studies=500, noise=Noise(corr=0.99), seed=3,
                      paired=True)
    welch = simulate(DESIGN, (0.005, 0.0, -0.005), 0.03, n_studies=500, noise=Noise(corr=0.99), seed=3,
                     paired=True, mutant="welch")
    assert paired.rate("equivalent").min() > 0.95 and welch.rate("equivalent").max() < 0.2
    assert paired.expected_runs() < 0.5 * welch.expected_runs()


def test_report_columns_agree_with_the_design():
    """summary.csv's cells of a paired adaptive comparison (report.study_extras): p_adjusted < 0.05 exactly when
    `significant` (the boundary for "different" crossed, also in an "equivalent" row), `ci_level` the level the
    interval was computed at after Holm's passing on, and effects.csv's row of the same pair carries the same
    sequential numbers, marked; a row of no decided pair is marked fixed-sample."""
    import pandas as pd

    from gptlab.report.study_extras import _sequential_row, sequential_effects
    from gptlab.stats.adaptive import Pair, replay

    rng = np.random.default_rng(6)
    base = rng.normal(3.0, SD, 12)
    table = {"base": base, "far": base + 0.05 + 0.1 * rng.normal(0, SD, 12), "near": base + 0.001,
             "null": base + rng.normal(0, SD, 12)}
    design = SequentialDesign(start=3, max=9, step=2, alpha=ALPHA, margin=MARGIN, n_comparisons=3)
    state = replay(design, [Pair(v, "base") for v in ("far", "near", "null")], lambda c, s: True,
                   lambda c, s: float(table[c][s]), paired=True)
    rows = {v: _sequential_row(state.outcomes[v], design) for v in ("far", "near", "null")}
    assert state.outcomes["near"].stopped == "equivalent" and rows["near"]["significant"]  # both rejected
    for v, row in rows.items():
        assert (row["p_adjusted"] < ALPHA) == row["significant"], (v, row)
        r = state.outcomes[v].result
        assert row["ci_level"] == pytest.approx(1 - ALPHA / r.shares[0])
        assert row["p_nominal"] == r.p_value and row["pairing"] == "paired"
    for study in range(40):  # the agreement, over studies stopping at every look
        rng = np.random.default_rng(100 + study)
        b = rng.normal(3.0, SD, 12)
        t = {"base": b, **{f"v{k}": b + d + rng.normal(0, SD, 12) for k, d in enumerate((0.012, 0.0, 0.02))}}
        s = replay(design, [Pair(f"v{k}", "base") for k in range(3)], lambda c, i: True,
                   lambda c, i, t=t: float(t[c][i]), paired=True)
        for o in s.outcomes.values():
            row = _sequential_row(o, design)
            assert (row["p_adjusted"] < ALPHA) == row["significant"], (study, o.pair.variant, row)
    # an early "equivalent" whose nominal p lies between the look's boundary and alpha/K: not significant, so its
    # adjusted p must not fall below alpha (0.3 showed 0.036 there beside significant = False)
    d = np.array([0.004 - 0.00077, 0.004, 0.004 + 0.00077] + [0.004] * 9)
    t = {"base": base, "v0": base + d, "v1": base + 0.05, "v2": base + rng.normal(0, SD, 12)}
    s = replay(design, [Pair(f"v{k}", "base") for k in range(3)], lambda c, i: True,
               lambda c, i, t=t: float(t[c][i]), paired=True)
    o = s.outcomes["v0"]
    assert o.stopped == "equivalent" and o.round == 1 and ALPHA / 3 > o.result.p_value > o.result.p_boundary
    row = _sequential_row(o, design)
    assert not row["significant"] and row["p_adjusted"] >= ALPHA
    # Holm passed alpha on: some interval was computed at a level other than 1 - alpha/K, and says so
    assert any(row["ci_level"] < 1 - ALPHA / 3 - 1e-9 for row in rows.values())
    effects = pd.DataFrame([{"term": "variant", "contrast": "far - base", "estimate": 9.0, "ci_low": 0.0,
                             "ci_high": 0.0, "p_value": 0.5, "p_adjusted": 0.5, "significant": False,
                             "pair": ("far", "base")},
                            {"term": "x", "contrast": "main", "estimate": 1.0, "ci_low": 0.0, "ci_high": 2.0,
                             "p_value": 0.01, "p_adjusted": 0.02, "significant": True, "pair": None}])
    out = sequential_effects(effects, state)
    assert list(out["at"]) == ["sequential", "fixed-sample"]
    assert out.loc[0, "estimate"] == rows["far"]["diff"] and out.loc[0, "p_adjusted"] == rows["far"]["p_adjusted"]
    assert bool(out.loc[0, "significant"]) == rows["far"]["significant"]
