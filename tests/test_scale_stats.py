"""Scale studies on fabricated runs with planted effects: per-size Welch tests, the slope of the effect
in log N, the verdicts, rankings, power laws and the extrapolation, each checked against scipy or
statsmodels computed here independently; and the two figures written without a warning."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats
from scipy.optimize import curve_fit
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_ind

from gptlab.stats.effects import EFFECT_COLUMNS
from gptlab.stats.scale import SLOPE_AT, scale_study
from gptlab.report.scale_text import EXTRAPOLATION, VERDICTS, scale_extrapolation, scale_findings

SIZES = {"s": 1.0e5, "m": 4.0e5, "l": 1.6e6}
NOISE = 0.004


def runs(effects: dict[str, object], sizes: dict[str, float] = SIZES, seeds: int = 4, noise: float = NOISE,
         seed: int = 0) -> pd.DataFrame:
    """Baseline 'pre' on a power-law loss; each variant adds effects[v](N) (or a constant) to it."""
    rng = np.random.default_rng(seed)
    rows = []
    for size, n in sizes.items():
        for variant, effect in {"pre": 0.0, **effects}.items():
            shift = effect(n) if callable(effect) else effect
            for s in range(seeds):
                value = 1.5 + (1e7 / n) ** 0.1 + shift + rng.normal(0.0, noise)
                rows.append({"variant": variant, "size": size, "n_params": int(n), "tokens": 2e7, "seed": s,
                             "value": value})
    return pd.DataFrame(rows)


def independent_model(frame: pd.DataFrame, variants: list[str]):
    """The same model from a hand-built design: size dummies, then per variant an indicator and indicator x ln N."""
    sizes = list(dict.fromkeys(frame["size"]))
    base_n = frame[frame["variant"] == "pre"].groupby("size")["n_params"].median()
    log_n = np.log(frame["size"].map(base_n).to_numpy(float))
    cols = [(frame["size"] == s).to_numpy(float) for s in sizes]
    for v in variants:
        ind = (frame["variant"] == v).to_numpy(float)
        cols += [ind, ind * log_n]
    return sm.OLS(frame["value"].to_numpy(float), np.column_stack(cols)).fit(), len(sizes)


def test_constant_effect_holds_and_matches_welch_tost_and_holm():
    frame = runs({"post": -0.05})
    result = scale_study(frame, "pre", margin=0.02)
    (comp,) = result.comparisons
    assert result.sizes == ("s", "m", "l")
    assert comp.verdict == "holds"
    fit, k = independent_model(frame, ["post"])
    p_diff, p_tost = [], []
    for e in comp.effects:
        a = frame[(frame["size"] == e.size) & (frame["variant"] == "post")]["value"].to_numpy()
        b = frame[(frame["size"] == e.size) & (frame["variant"] == "pre")]["value"].to_numpy()
        t = stats.ttest_ind(a, b, equal_var=False)
        ci = t.confidence_interval(0.95)
        assert e.estimate == pytest.approx(a.mean() - b.mean())
        assert (e.ci_low, e.ci_high) == pytest.approx((ci.low, ci.high))
        assert e.p_value == pytest.approx(t.pvalue)
        assert e.p_tost == pytest.approx(ttost_ind(a, b, -0.02, 0.02, usevar="unequal")[0])
        p_diff.append(t.pvalue)
        p_tost.append(e.p_tost)
    slope_p = fit.pvalues[k + 1]
    holm = multipletests([x for pair in zip(p_diff, p_tost) for x in pair] + [slope_p], method="holm")[1]
    assert [e.p_adjusted for e in comp.effects] == pytest.approx(list(holm[0:6:2]))
    assert [e.p_tost_adjusted for e in comp.effects] == pytest.approx(list(holm[1:6:2]))
    assert comp.slope.p_adjusted == pytest.approx(holm[6])
    assert comp.slope.estimate == pytest.approx(fit.params[k + 1])
    assert (comp.slope.ci_low, comp.slope.ci_high) == pytest.approx(tuple(fit.conf_int(0.05)[k + 1]))
    assert not comp.slope.significant
    assert "holds at every size" in scale_findings(result)[0]


def test_effect_linear_in_log_n_grows_and_its_mirror_shrinks():
    grows = scale_study(runs({"post": lambda n: -0.02 * math.log(n / 1e5) - 0.01}), "pre", margin=0.02)
    slope = grows.comparisons[0].slope
    assert grows.comparisons[0].verdict == "grows"
    assert slope.ci_high < 0 and slope.ci_low <= -0.02 <= slope.ci_high
    fit, k = independent_model(grows.runs, ["post"])
    assert slope.estimate == pytest.approx(fit.params[k + 1])
    assert slope.p_value == pytest.approx(fit.pvalues[k + 1])
    sentence = scale_findings(grows)[0]
    assert sentence.startswith("post vs pre: the effect grows with size: slope -0.02")
    assert "per e-fold of N [" in sentence
    shrinks = scale_study(runs({"post": lambda n: -0.15 + 0.02 * math.log(n / 1e5)}), "pre", margin=0.02)
    assert shrinks.comparisons[0].verdict == "shrinks"
    assert shrinks.comparisons[0].slope.ci_low > 0


def test_significant_small_equivalent_largest_vanishes():
    frame = runs({"post": lambda n: {1e5: -0.1, 4e5: -0.05, 1.6e6: 0.0}[n]}, noise=0.002)
    comp = scale_study(frame, "pre", margin=0.02).comparisons[0]
    assert [e.significant for e in comp.effects] == [True, True, False]
    assert comp.effects[-1].equivalent
    assert comp.verdict == "vanishes"  # before shrinks, though the slope is significant too
    assert comp.slope.significant


def test_sign_change_reverses():
    frame = runs({"post": lambda n: {1e5: -0.08, 4e5: 0.0, 1.6e6: 0.08}[n]})
    comp = scale_study(frame, "pre", margin=0.02).comparisons[0]
    assert comp.verdict == "reverses"
    assert comp.effects[0].estimate < 0 < comp.effects[-1].estimate


def test_no_effect_unclear_and_two_sizes():
    assert scale_study(runs({"post": 0.0}, noise=0.002), "pre", margin=0.02).comparisons[0].verdict == "no effect"
    # significant only at the middle size, no trend: nothing to say
    frame = runs({"post": lambda n: {1e5: 0.0, 4e5: -0.1, 1.6e6: 0.0}[n]}, noise=0.02, seeds=3)
    assert scale_study(frame, "pre", margin=0.001).comparisons[0].verdict == "unclear"
    two = scale_study(runs({"post": -0.05}, sizes={"s": 1e5, "l": 1e6}), "pre", margin=0.02, predict_n_params=1e8)
    comp = two.comparisons[0]
    assert comp.verdict == "holds" and comp.slope is None and comp.prediction is None
    assert two.model_formula is None and scale_extrapolation(two) == []
    assert {c.verdict for c in two.comparisons} <= set(VERDICTS)


def test_variant_missing_at_largest_size():
    frame = runs({"post": -0.05, "worse": 0.05}, noise=0.002)
    frame = frame[~((frame["variant"] == "post") & (frame["size"] == "l"))]
    result = scale_study(frame, "pre", margin=0.02)
    post = result.comparisons[0]
    assert [e.size for e in post.effects] == ["s", "m"] and post.verdict == "unclear"
    assert "no finished runs on both sides at l" in scale_findings(result)[0]
    assert post.slope is None and result.comparisons[1].slope is not None  # run at 2 sizes: not in the model
    assert result.ranking.best_smallest == result.ranking.best_largest == "pre"  # post was not run at l


def test_effects_rows_match_effects_csv_columns():
    result = scale_study(runs({"post": -0.05, "swiglu": 0.01}), "pre", margin=0.02)
    rows = pd.DataFrame(result.effects_rows())
    assert set(EFFECT_COLUMNS) | {"at"} <= set(rows.columns)
    assert list(rows["at"]) == ["s", "m", "l", SLOPE_AT] * 2
    assert list(rows["term"]) == ["post vs pre"] * 4 + ["swiglu vs pre"] * 4


def test_power_law_exponents_recovered_kaplan_and_irreducible():
    rng = np.random.default_rng(3)
    sizes = {f"z{i}": n for i, n in enumerate([1e5, 4e5, 1.6e6, 6.4e6, 2.56e7])}
    rows = []
    for size, n in sizes.items():
        tokens = 1e3 * n ** 0.8  # D grows with N, so C is not proportional to N
        for s in range(3):
            rows.append({"variant": "pre", "size": size, "n_params": n, "tokens": tokens, "seed": s,
                         "value": (8.8e13 / n) ** 0.076 * math.exp(rng.normal(0, 0.002))})
            rows.append({"variant": "irr", "size": size, "n_params": n, "tokens": tokens, "seed": s,
                         "value": 1.7 + (1e8 / n) ** 0.3 + rng.normal(0, 0.003)})
            c = 6 * n * tokens
            rows.append({"variant": "flops", "size": size, "n_params": n, "tokens": tokens, "seed": s,
                         "value": (1e20 / c) ** 0.05 * math.exp(rng.normal(0, 0.002))})
    frame = pd.DataFrame(rows)
    fits = {(f.variant, f.x, f.form): f for f in scale_study(frame, "pre", margin=0.02).power_laws}
    kaplan = fits[("pre", "N", "kaplan")]
    pre = frame[frame["variant"] == "pre"]
    ols = sm.OLS(np.log(pre["value"]), sm.add_constant(np.log(pre["n_params"]))).fit()
    assert kaplan.alpha == pytest.approx(-ols.params.iloc[1])
    assert (kaplan.alpha_low, kaplan.alpha_high) == pytest.approx(tuple(-ols.conf_int().iloc[1][::-1]))
    assert kaplan.alpha == pytest.approx(0.076, abs=0.003) and kaplan.alpha_low < 0.076 < kaplan.alpha_high
    assert kaplan.x_c == pytest.approx(8.8e13, rel=0.5)
    irr = fits[("irr", "N", "irreducible")]
    mine = frame[frame["variant"] == "irr"]
    (e, alpha, nc), _ = curve_fit(lambda n, e, a, c: e + (c / n) ** a, mine["n_params"], mine["value"],
                                  p0=(1.5, 0.25, 5e7), maxfev=20000)
    assert (irr.e, irr.alpha, irr.x_c) == pytest.approx((e, alpha, nc), rel=1e-3)
    assert irr.alpha == pytest.approx(0.3, abs=0.03) and irr.e == pytest.approx(1.7, abs=0.05)
    assert irr.alpha_low < 0.3 < irr.alpha_high
    assert fits[("flops", "C", "kaplan")].alpha == pytest.approx(0.05, abs=0.002)
    assert ("pre", "N", "irreducible") in fits  # 5 sizes: both forms
    three = scale_study(runs({"post": -0.05}), "pre", margin=0.02).power_laws
    assert {f.form for f in three} == {"kaplan"}  # 3 sizes: no irreducible term


def test_ranking_swap_kendall_tau():
    # at s: a < b < pre < c (lower is better); at l a and b swap places
    frame = runs({"a": lambda n: -0.10 if n < 1e6 else -0.05, "b": lambda n: -0.05 if n < 1e6 else -0.10,
                  "c": 0.05}, noise=0.001)
    ranking = scale_study(frame, "pre", margin=0.02).ranking
    assert ranking.order["s"] == ("a", "b", "pre", "c") and ranking.order["l"] == ("b", "a", "pre", "c")
    means = frame.groupby(["size", "variant"])["value"].mean()
    expected = stats.kendalltau(means["s"].sort_index(), means["l"].sort_index())
    assert ranking.tau == pytest.approx(expected.statistic) == pytest.approx(2 / 3)
    assert ranking.p_value == pytest.approx(expected.pvalue)
    assert not ranking.same_best
    result = scale_study(frame, "pre", margin=0.02)
    assert "The best variant at s (a) is not best at l (b is)" in scale_findings(result)[-1]


def test_extrapolation_interval_against_statsmodels():
    result = scale_study(runs({"post": lambda n: -0.02 * math.log(n / 1e5) - 0.01}), "pre", margin=0.02,
                         predict_n_params=1e8)
    pred = result.comparisons[0].prediction
    fit, k = independent_model(result.runs, ["post"])
    row = np.zeros((1, k + 2))
    row[0, k], row[0, k + 1] = 1.0, math.log(1e8)
    frame = fit.get_prediction(row).summary_frame(alpha=0.05).iloc[0]
    assert pred.estimate == pytest.approx(frame["mean"])
    assert (pred.ci_low, pred.ci_high) == pytest.approx((frame["mean_ci_lower"], frame["mean_ci_upper"]))
    half = stats.t.ppf(0.975, fit.df_resid) * math.sqrt(frame["mean_se"] ** 2 + 2 * fit.scale)
    assert (pred.pi_low, pred.pi_high) == pytest.approx((frame["mean"] - half, frame["mean"] + half))
    assert pred.extrapolated and pred.estimate == pytest.approx(-0.02 * math.log(1e3) - 0.01, abs=0.01)
    (sentence,) = scale_extrapolation(result)
    assert sentence.startswith(EXTRAPOLATION + ": at N = 100.00M parameters, beyond the sizes run")
    assert not any(EXTRAPOLATION in f for f in scale_findings(result))


@pytest.mark.filterwarnings("error")
def test_figures_written_deterministic_and_quiet(tmp_path):
    from gptlab.report.figures.scale import FIG_SCALE_EFFECT, FIG_SCALE_LOSS, scale_figures

    result = scale_study(runs({"post": lambda n: -0.02 * math.log(n / 1e5), "swiglu": -0.03}), "pre",
                         margin=0.02, predict_n_params=1e7)
    made = scale_figures(result, tmp_path / "a")
    assert [f.name for f in made] == [FIG_SCALE_EFFECT, FIG_SCALE_LOSS]
    for f in made:
        assert f.png.stat().st_size > 1000 and f.svg.stat().st_size > 1000 and f.caption
    again = scale_figures(result, tmp_path / "b")
    assert [f.svg.read_bytes() for f in made] == [f.svg.read_bytes() for f in again]


def test_report_section_blocks(tmp_path):
    from types import SimpleNamespace

    from gptlab.report.blocks import Figure, Heading, render_html, render_markdown
    from gptlab.report.figures.scale import with_figures
    from gptlab.report.sections.scale import section

    assert section(SimpleNamespace(extras={})) == []
    result = with_figures(scale_study(runs({"post": lambda n: -0.02 * math.log(n / 1e5)}), "pre", margin=0.02,
                                      predict_n_params=1e8), tmp_path / "figures")
    blocks = section(SimpleNamespace(extras={"scale": result}))
    assert blocks[0] == Heading("Scale")
    assert Heading(EXTRAPOLATION, 3) in blocks
    assert sum(isinstance(b, Figure) for b in blocks) == 2
    md = render_markdown(blocks)
    assert "| post vs pre | slope per e-fold of N |" in md and "the effect grows with size" in md
    assert "(N_c/N)^alpha" in md and "figures/scale_effect.png" in md
    import base64
    import re

    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', render_html(blocks, "t"))
    assert [base64.b64decode(b) for b in embedded] == [f.png.read_bytes() for f in result.figures]
    assert [f.png.name for f in result.figures] == ["scale_effect.png", "scale_loss.png"]


def test_paired_scale_study_pairs_within_size_and_fits_the_slope_on_differences():
    """pairing auto: seed s shares a seed effect across variants (as shared batches and weights do); each size's
    effect is scipy's ttest_rel, the slope statsmodels' OLS of the per-seed differences on ln N, and the shared
    noise no longer widens the slope's interval."""
    rng = np.random.default_rng(3)
    shared = {s: rng.normal(0.0, 0.03) for s in range(5)}  # per seed, common to both variants and every size
    frame = runs({"post": lambda n: -0.02 * math.log(n / 1e5) - 0.01}, seeds=5, noise=0.002)
    frame["value"] += frame["seed"].map(shared)
    paired = scale_study(frame, "pre", margin=0.02, pairing="auto", predict_n_params=1e8)
    unpaired = scale_study(frame, "pre", margin=0.02, pairing="none")
    assert paired.pairing == "paired" and unpaired.pairing == "unpaired"
    (comp,) = paired.comparisons
    rows = []
    for e in comp.effects:
        here = frame[frame["size"] == e.size].sort_values("seed")
        a, b = (here.loc[here["variant"] == v, "value"].to_numpy() for v in ("post", "pre"))
        assert e.p_value == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-9)
        assert e.estimate == pytest.approx(np.mean(a - b), rel=1e-12)
        rows += [{"d": x, "logn": math.log(SIZES[e.size])} for x in a - b]
    ref = sm.OLS(pd.DataFrame(rows)["d"], sm.add_constant(pd.DataFrame(rows)["logn"])).fit()
    assert comp.slope.estimate == pytest.approx(ref.params["logn"], rel=1e-9)
    assert comp.slope.p_value == pytest.approx(ref.pvalues["logn"], rel=1e-9)
    u = unpaired.comparisons[0].slope
    assert comp.slope.ci_high - comp.slope.ci_low < (u.ci_high - u.ci_low) / 3
    assert comp.verdict == "grows" and comp.prediction is not None
    assert comp.prediction.estimate == pytest.approx(ref.params["const"] + ref.params["logn"] * math.log(1e8))
    obs = ref.get_prediction(np.array([[1.0, math.log(1e8)]])).summary_frame(alpha=0.05).iloc[0]
    assert (comp.prediction.pi_low, comp.prediction.pi_high) == (pytest.approx(obs["obs_ci_lower"], rel=1e-9),
                                                                 pytest.approx(obs["obs_ci_upper"], rel=1e-9))
    assert comp.prediction.extrapolated
    # a seed missing on one side at one size: auto falls back to Welch only where fewer than two pairs remain
    thin = frame[~((frame["variant"] == "post") & (frame["size"] == "s") & (frame["seed"] > 0))]
    assert scale_study(thin, "pre", margin=0.02, pairing="auto").pairing == "unpaired"


@pytest.mark.parametrize("correction", ["holm", "bh"])
def test_the_scale_rows_are_one_family_of_their_own(correction):
    """README's Scale section: every per-size test, per-size TOST and slope test of the study adjusted together,
    as one family apart from the report's other tests; recomputed here with statsmodels' multipletests."""
    result = scale_study(runs({"post": lambda n: -0.02 * math.log(n / 1e5), "swiglu": -0.03}), "pre", margin=0.02,
                         correction=correction)
    raw, got = [], []
    for comp in result.comparisons:
        for e in comp.effects:
            raw += [e.p_value, e.p_tost]
            got += [e.p_adjusted, e.p_tost_adjusted]
    for comp in result.comparisons:
        raw.append(comp.slope.p_value)
        got.append(comp.slope.p_adjusted)
    assert len(raw) == 2 * (2 * len(SIZES) + 1)
    want = multipletests(raw, method={"holm": "holm", "bh": "fdr_bh"}[correction])[1]
    assert got == pytest.approx(list(want), rel=1e-9)
