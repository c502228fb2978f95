"""A scale study compared within seed (`compare: {pairing: auto|seed}`): at each size, seed s of the variant and
seed s of the baseline share data order and initial weights, so each size's effect is the paired one
(`gptlab.stats.paired`), and the trend is fitted on the per-seed differences themselves:

    d ~ 1 + log(N)          per variant, d = value(variant, seed s, size) - value(baseline, seed s, size)

an OLS whose slope is the effect's change per e-fold of N (the unpaired model's `C(variant):log(N)`), its
residual the pairs' own noise rather than the sum of both arms'. A prediction at an N not run has the 95%
prediction interval of one new pair's difference (variance c'Vc + sigma_d^2).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from gptlab.stats.paired import MIN_PAIRS, pair_up, paired_t, paired_tost

PAIRED_FORMULA = "d ~ log(N) per variant, d = the per-seed difference from the baseline at each size"


def pair_frame(data: pd.DataFrame, variant: str, baseline: str, sizes: list[str]) -> pd.DataFrame:
    """One row per (size, seed) held by both sides: size, seed, d."""
    rows = []
    for size in sizes:
        here = data[data["size"] == size]
        side = lambda v: here[here["variant"] == v].set_index("seed")["value"]  # noqa: E731
        pairs = pair_up(side(variant), side(baseline))
        rows += [{"size": size, "seed": s, "d": d} for s, d in zip(pairs.seeds, pairs.d)]
    return pd.DataFrame(rows, columns=["size", "seed", "d"])


def paired_size_effects(data: pd.DataFrame, variant: str, baseline: str, sizes: list[str],
                        size_params: dict[str, float], margin: float) -> list[dict[str, Any]]:
    """Per size with at least two pairs: the paired difference, its interval and p, and the paired TOST."""
    out = []
    for size in sizes:
        here = data[data["size"] == size]
        pairs = pair_up(here[here["variant"] == variant].set_index("seed")["value"],
                        here[here["variant"] == baseline].set_index("seed")["value"])
        if pairs.n < MIN_PAIRS:
            continue
        diff, lo, hi, p = paired_t(pairs.d)
        out.append({"variant": variant, "size": size, "n_params": size_params[size], "n": pairs.n,
                    "n_baseline": pairs.n, "estimate": diff, "ci_low": lo, "ci_high": hi, "p_value": p,
                    "p_tost": paired_tost(pairs.d, margin)})
    return out


def paired_fit(data: pd.DataFrame, variant: str, baseline: str, sizes: list[str],
               size_params: dict[str, float]) -> Any:
    """The OLS of the variant's per-seed differences on ln N (None below 3 sizes with pairs)."""
    import statsmodels.api as sm

    frame = pair_frame(data, variant, baseline, sizes)
    if frame["size"].nunique() < 3:
        return None
    X = sm.add_constant(np.log(frame["size"].map(size_params).astype(float).to_numpy()))
    return sm.OLS(frame["d"].to_numpy(float), X).fit()


def paired_slope(fit: Any) -> dict[str, float]:
    usable = fit.df_resid > 0 and math.isfinite(fit.scale) and fit.scale > 0
    ci = np.asarray(fit.conf_int(0.05))
    return {"estimate": float(fit.params[1]), "intercept": float(fit.params[0]),
            "ci_low": float(ci[1, 0]) if usable else math.nan, "ci_high": float(ci[1, 1]) if usable else math.nan,
            "p_value": float(fit.pvalues[1]) if usable else math.nan}


def paired_prediction(fit: Any, n_params: float) -> tuple[float, float, float, float, float]:
    """(estimate, CI low, CI high, PI low, PI high) of the effect at n_params."""
    row = np.array([[1.0, math.log(n_params)]])
    pred = fit.get_prediction(exog=row).summary_frame(alpha=0.05).iloc[0]
    mean, se_mean = float(pred["mean"]), float(pred["mean_se"])
    half = float(sps.t.ppf(0.975, fit.df_resid)) * math.sqrt(se_mean ** 2 + fit.scale)
    return mean, float(pred["mean_ci_lower"]), float(pred["mean_ci_upper"]), mean - half, mean + half
