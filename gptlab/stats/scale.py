"""Does an effect survive scale? One comparison (variant - baseline) studied at several model sizes.

Input: one row per finished run with `variant`, `size` (a name), `n_params`, `tokens` (training tokens),
`seed` and `value` (the compared metric; `sign` -1 when lower is better). Sizes are ordered by the
median parameter count of their runs; a size's N is the baseline's median parameter count there
(all runs' when the baseline has none), so "the effect at N" is what the variant changes in a model of N.

Per size, each variant against the baseline: Welch difference with its 95% interval and p-value,
and TOST at the margin (`gptlab.stats.summary.welch`, `gptlab.stats.inference.tost`); with `pairing` auto
(two pairs at every size) or seed, the paired ones and a slope fitted on per-seed differences (`scale_fits`).

The trend, with 3 or more sizes: ONE OLS model of the per-run metric (statsmodels formula API, seeds as
replicates, one residual variance for all runs):
    value ~ C(size) + C(variant) + C(variant):log(N)      the baseline's slope left out
C(size) is the baseline's level at each size, free (so the loss curve's bend costs nothing); each variant's
effect is a line in log N, effect(N) = b_v + g_v log N, and `g_v`, the effect's slope per e-fold of N, is
the test of whether the effect changes with size. Variants run at fewer than 3 sizes stay out of it.

The family: every per-size difference test, every per-size TOST and every slope test of the study,
adjusted together (`inference.adjust`, holm | bh | none); significant / equivalent mean an adjusted
p below alpha. The verdict of a comparison (sizes s_1 < ... < s_K, `scale_text.VERDICTS`) is the first that applies:
    reverses   significant at two sizes with opposite signs
    vanishes   significant at some size below s_K and equivalent within the margin at s_K
    grows      slope significant (3+ sizes) and |fitted effect at s_K| > |fitted effect at s_1|
    shrinks    slope significant (3+ sizes) and |fitted effect at s_K| <= |fitted effect at s_1|
    holds      significant at every size (so with one sign), slope not significant or not fitted (2 sizes)
    no effect  equivalent within the margin at every size
    unclear    none of the above: significant at some sizes only, or too little data to say
"Fitted effect" is the model's line at the size's N. Intervals are 95% whatever `alpha` (the decision level).
Also: the variants ranked by mean per size with Kendall's tau between the smallest and largest size;
power laws of the metric in N and C (`scale_fits`, when lower is better); and, given `predict_n_params`
and 3+ sizes, the model's effect there with a 95% prediction interval, an extrapolation, never a finding.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from gptlab.stats.inference import ALPHA, CORRECTION_NAMES, adjust, tost
from gptlab.stats.paired import MIN_PAIRS
from gptlab.stats.scale_fits import (PAIRED_FORMULA, paired_fit, paired_prediction, paired_size_effects,
                                       paired_slope)
from gptlab.stats.scale_fits import PowerLaw, power_laws
from gptlab.stats.summary import welch

COLUMNS = ("variant", "size", "n_params", "tokens", "seed", "value")
TREND_SIZES = 3  # the slope, grows / shrinks and extrapolation need this many sizes
SLOPE_AT = "slope/log(N)"  # effects.csv `at` of a slope row
MODEL_FORMULA = "value ~ C(size) + C(variant) + C(variant):log(N), without the baseline's slope"


@dataclass(frozen=True)
class SizeEffect:
    """variant - baseline at one size (Welch), with the family-adjusted decisions."""

    variant: str
    size: str
    n_params: float  # the size's N
    n: int  # finished seeds of the variant / of the baseline
    n_baseline: int
    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    p_adjusted: float
    p_tost: float
    p_tost_adjusted: float
    significant: bool
    equivalent: bool


@dataclass(frozen=True)
class Slope:
    """The effect's change per e-fold of N in the OLS model: effect(N) = intercept + estimate * ln N."""

    variant: str
    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    p_adjusted: float
    significant: bool
    intercept: float

    def effect_at(self, n_params: np.ndarray | float) -> np.ndarray:
        return self.intercept + self.estimate * np.log(np.asarray(n_params, dtype=float))


@dataclass(frozen=True)
class Prediction:
    """The model's effect at an N not run: the expected effect with its 95% confidence interval, and a
    95% prediction interval for the difference of one new run of each (variance c'Vc + 2 sigma^2)."""

    variant: str
    n_params: float
    estimate: float
    ci_low: float
    ci_high: float
    pi_low: float
    pi_high: float
    extrapolated: bool  # outside the sizes run


@dataclass(frozen=True)
class Comparison:
    variant: str
    baseline: str
    effects: tuple[SizeEffect, ...]  # in size order, sizes where both sides have finished runs
    slope: Slope | None
    verdict: str
    prediction: Prediction | None = None


@dataclass(frozen=True)
class Ranking:
    order: dict[str, tuple[str, ...]]  # size -> variants, best mean first
    smallest: str
    largest: str
    tau: float  # Kendall's tau between the means at the smallest and the largest size
    p_value: float
    best_smallest: str  # the best at each end among the variants run at both
    best_largest: str

    @property
    def same_best(self) -> bool:
        return self.best_smallest == self.best_largest


@dataclass(frozen=True)
class ScaleResult:
    metric: str
    baseline: str
    sign: int
    margin: float
    alpha: float
    correction: str
    sizes: tuple[str, ...]  # ordered by parameter count
    size_params: dict[str, float]  # size -> N
    comparisons: tuple[Comparison, ...]
    ranking: Ranking | None
    power_laws: tuple[PowerLaw, ...]
    predict_n_params: float | None
    model_formula: str | None  # None below 3 sizes
    model_df_resid: float
    runs: pd.DataFrame = field(repr=False, compare=False)  # the input runs used (COLUMNS)
    figures: tuple = field(default=(), compare=False)  # FigureFiles, set by scale_figures.with_figures
    pairing: str = "unpaired"  # paired: per-size paired tests, slopes fitted on per-seed differences

    @property
    def verdicts(self) -> dict[str, str]:
        return {c.variant: c.verdict for c in self.comparisons}

    def effects_rows(self) -> list[dict[str, Any]]:
        """effects.csv rows: per comparison one row per size (`at` = size) and its slope (`at` = SLOPE_AT)."""
        rows = []
        for comp in self.comparisons:
            term = f"{comp.variant} vs {comp.baseline}"
            for e in comp.effects:
                rows.append({"term": term, "contrast": f"{comp.variant} - {comp.baseline} at {e.size}", "at": e.size,
                             "estimate": e.estimate, "ci_low": e.ci_low, "ci_high": e.ci_high, "p_value": e.p_value,
                             "p_adjusted": e.p_adjusted, "significant": e.significant, "kind": "scale", "order": 1,
                             "pair": None, "n_params": e.n_params, "p_tost": e.p_tost, "equivalent": e.equivalent})
            if comp.slope:
                s = comp.slope
                rows.append({"term": term, "contrast": f"{comp.variant} - {comp.baseline} per e-fold of parameters",
                             "at": SLOPE_AT, "estimate": s.estimate, "ci_low": s.ci_low, "ci_high": s.ci_high,
                             "p_value": s.p_value, "p_adjusted": s.p_adjusted, "significant": s.significant,
                             "kind": "slope", "order": 1, "pair": None, "n_params": math.nan, "p_tost": math.nan,
                             "equivalent": None})
        return rows


def scale_study(runs: pd.DataFrame, baseline: str, *, margin: float, sign: int = -1, alpha: float = ALPHA,
                correction: str = "holm", predict_n_params: float | None = None,
                metric: str = "value", pairing: str = "none") -> ScaleResult:
    """Everything above from the finished runs of a scale study (see the module docstring); `pairing` auto or
    seed compares within seed at each size and fits the slope on per-seed differences (`scale_fits`)."""
    if correction not in CORRECTION_NAMES:
        raise ValueError(f"correction must be one of {', '.join(CORRECTION_NAMES)}, not '{correction}'")
    missing = [c for c in COLUMNS if c not in runs]
    if missing:
        raise ValueError(f"scale study runs lack column(s) {', '.join(missing)}")
    data = runs.loc[:, list(COLUMNS)].dropna(subset=["value", "n_params"]).reset_index(drop=True)
    data = data.assign(size=data["size"].astype(str), variant=data["variant"].astype(str))
    if baseline not in set(data["variant"]):
        raise ValueError(f"scale study: baseline '{baseline}' has no finished runs")
    sizes = list(data.groupby("size")["n_params"].median().sort_values(kind="stable").index)
    if len(sizes) < 2:
        raise ValueError("a scale study needs finished runs at 2 or more sizes")
    base = data[data["variant"] == baseline]
    size_params = {s: float(base.loc[base["size"] == s, "n_params"].median()) if (base["size"] == s).any()
                   else float(data.loc[data["size"] == s, "n_params"].median()) for s in sizes}
    variants = [v for v in dict.fromkeys(data["variant"]) if v != baseline]

    paired = pairing != "none" and _pairs_everywhere(data, variants, baseline, sizes, pairing)
    if paired:
        raw = {v: paired_size_effects(data, v, baseline, sizes, size_params, margin) for v in variants}
        fits = {v: paired_fit(data, v, baseline, sizes, size_params) for v in variants}
        fits = {v: f for v, f in fits.items() if f is not None}
        slopes = {v: paired_slope(f) for v, f in fits.items()}
        fit = None
    else:
        raw = {v: _size_effects(data, v, baseline, sizes, size_params, margin) for v in variants}
        fit = _fit_model(data, baseline, variants, size_params) if len(sizes) >= TREND_SIZES else None
        slopes = _slopes(fit, variants) if fit else {}
        fits = {}

    # one family: per-size differences, per-size equivalences, slopes
    keys = [(v, i, kind) for v in variants for i in range(len(raw[v])) for kind in ("diff", "tost")]
    p = [raw[v][i]["p_value" if kind == "diff" else "p_tost"] for v, i, kind in keys]
    keys += [(v, -1, "slope") for v in variants if v in slopes]
    p += [slopes[v]["p_value"] for v in variants if v in slopes]
    adjusted = dict(zip(keys, adjust(p, correction)))
    decide = lambda q: bool(math.isfinite(q) and q < alpha)  # noqa: E731

    comparisons = []
    for v in variants:
        effects = tuple(SizeEffect(**r, p_adjusted=adjusted[(v, i, "diff")], p_tost_adjusted=adjusted[(v, i, "tost")],
                                   significant=decide(adjusted[(v, i, "diff")]),
                                   equivalent=decide(adjusted[(v, i, "tost")])) for i, r in enumerate(raw[v]))
        slope = None
        if v in slopes:
            q = adjusted[(v, -1, "slope")]
            slope = Slope(v, **slopes[v], p_adjusted=q, significant=decide(q))
        prediction = None
        if slope and paired:
            prediction = _paired_predict(fits[v], v, predict_n_params, size_params)
        elif slope:
            prediction = _predict(fit, variants.index(v), v, predict_n_params, size_params)
        comparisons.append(Comparison(v, baseline, effects, slope, verdict(effects, slope, sizes, size_params),
                                      prediction))
    return ScaleResult(metric, baseline, sign, margin, alpha, correction, tuple(sizes), size_params,
                       tuple(comparisons), _ranking(data, sizes, sign),
                       tuple(power_laws(data, [baseline, *variants])) if sign < 0 else (),
                       predict_n_params, (PAIRED_FORMULA if fits else None) if paired else
                       (MODEL_FORMULA if fit else None),
                       (min((f.df_resid for f in fits.values()), default=math.nan) if paired else
                        float(fit.df_resid) if fit else math.nan), data, pairing="paired" if paired else "unpaired")


def verdict(effects: tuple[SizeEffect, ...], slope: Slope | None, sizes: list[str],
            size_params: dict[str, float]) -> str:
    """The first verdict that applies, as defined in the module docstring."""
    sig = [e for e in effects if e.significant]
    if any(a.estimate * b.estimate < 0 for a in sig for b in sig):
        return "reverses"
    at_largest = [e for e in effects if e.size == sizes[-1]]
    if at_largest and at_largest[0].equivalent and any(e.significant for e in effects if e.size != sizes[-1]):
        return "vanishes"
    if slope and slope.significant:
        first, last = slope.effect_at([size_params[sizes[0]], size_params[sizes[-1]]])
        return "grows" if abs(last) > abs(first) else "shrinks"
    if len(effects) == len(sizes) and all(e.significant for e in effects):
        return "holds"
    if len(effects) == len(sizes) and all(e.equivalent for e in effects):
        return "no effect"
    return "unclear"


def _size_effects(data: pd.DataFrame, variant: str, baseline: str, sizes: list[str],
                  size_params: dict[str, float], margin: float) -> list[dict[str, Any]]:
    out = []
    for size in sizes:
        here = data[data["size"] == size]
        a = here.loc[here["variant"] == variant, "value"].to_numpy(float)
        b = here.loc[here["variant"] == baseline, "value"].to_numpy(float)
        if not len(a) or not len(b):
            continue
        diff, lo, hi, p = welch(a, b)
        out.append({"variant": variant, "size": size, "n_params": size_params[size], "n": len(a),
                    "n_baseline": len(b), "estimate": diff, "ci_low": lo, "ci_high": hi, "p_value": p,
                    "p_tost": tost(a, b, margin)})
    return out


def _pairs_everywhere(data: pd.DataFrame, variants: list[str], baseline: str, sizes: list[str], pairing: str) -> bool:
    """`seed` always pairs; `auto` when every variant has two pairs at every size where both sides ran."""
    if pairing == "seed":
        return True
    for v in variants:
        for size in sizes:
            here = data[data["size"] == size]
            a, b = (set(here.loc[here["variant"] == x, "seed"]) for x in (v, baseline))
            if a and b and len(a & b) < MIN_PAIRS:
                return False
    return True


def _paired_predict(fit: Any, variant: str, n_params: float | None, size_params: dict[str, float]
                    ) -> Prediction | None:
    if n_params is None or not n_params > 0:
        return None
    mean, lo, hi, pi_lo, pi_hi = paired_prediction(fit, n_params)
    inside = min(size_params.values()) <= n_params <= max(size_params.values())
    return Prediction(variant, float(n_params), mean, lo, hi, pi_lo, pi_hi, not inside)


def _fit_model(data: pd.DataFrame, baseline: str, variants: list[str], size_params: dict[str, float]) -> Any:
    """The OLS model on the baseline and the variants run at 3+ sizes; `is_v{i}` / `slope_v{i}` are
    C(variant)'s treatment column and its product with ln N for variants[i] (index kept for lookup)."""
    import statsmodels.formula.api as smf

    keep = [v for v in variants if data.loc[data["variant"] == v, "size"].nunique() >= TREND_SIZES]
    if not keep:
        return None
    frame = data[data["variant"].isin([baseline, *keep])]
    log_n = np.log(frame["size"].map(size_params).astype(float))
    columns = {}
    for v in keep:
        i = variants.index(v)
        columns[f"is_v{i}"] = (frame["variant"] == v).astype(float)
        columns[f"slope_v{i}"] = columns[f"is_v{i}"] * log_n
    frame = frame.assign(**columns)
    terms = " + ".join(columns)
    return smf.ols(f"value ~ C(size) + {terms}", data=frame).fit()


def _slopes(fit: Any, variants: list[str]) -> dict[str, dict[str, float]]:
    out = {}
    usable = fit.df_resid > 0 and math.isfinite(fit.scale) and fit.scale > 0
    ci = fit.conf_int(0.05)
    for i, v in enumerate(variants):
        name = f"slope_v{i}"
        if name not in fit.params.index:
            continue
        out[v] = {"estimate": float(fit.params[name]), "intercept": float(fit.params[f"is_v{i}"]),
                  "ci_low": float(ci.loc[name, 0]) if usable else math.nan,
                  "ci_high": float(ci.loc[name, 1]) if usable else math.nan,
                  "p_value": float(fit.pvalues[name]) if usable else math.nan}
    return out


def _predict(fit: Any, i: int, variant: str, n_params: float | None,
             size_params: dict[str, float]) -> Prediction | None:
    """Effect at n_params from the model (get_prediction on the contrast row is_v + ln N * slope_v)."""
    if n_params is None or fit is None or not n_params > 0:
        return None
    row = np.zeros((1, len(fit.params)))
    names = list(fit.params.index)
    row[0, names.index(f"is_v{i}")] = 1.0
    row[0, names.index(f"slope_v{i}")] = math.log(n_params)
    pred = fit.get_prediction(exog=row, transform=False).summary_frame(alpha=0.05).iloc[0]
    se_mean = float(pred["mean_se"])
    half = float(sps.t.ppf(0.975, fit.df_resid)) * math.sqrt(se_mean ** 2 + 2.0 * fit.scale)
    mean = float(pred["mean"])
    inside = min(size_params.values()) <= n_params <= max(size_params.values())
    return Prediction(variant, float(n_params), mean, float(pred["mean_ci_lower"]), float(pred["mean_ci_upper"]),
                      mean - half, mean + half, not inside)


def _ranking(data: pd.DataFrame, sizes: list[str], sign: int) -> Ranking | None:
    """Variants per size by mean (best first, by `sign`); Kendall's tau of the means at s_1 vs s_K."""
    means = data.groupby(["size", "variant"])["value"].mean()
    order = {s: tuple(means[s].sort_values(ascending=sign < 0, kind="stable").index) for s in sizes if s in means}
    small, large = sizes[0], sizes[-1]
    if small not in order or large not in order:
        return None
    common = [v for v in order[small] if v in order[large]]
    tau = p = math.nan
    if len(common) >= 2:
        result = sps.kendalltau([means[small][v] for v in common], [means[large][v] for v in common])
        tau, p = float(result.statistic), float(result.pvalue)
    best_large = next(v for v in order[large] if v in common) if common else order[large][0]
    return Ranking(order, small, large, tau, p, common[0] if common else order[small][0], best_large)
