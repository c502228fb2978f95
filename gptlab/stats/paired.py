"""Comparisons made within a seed: seed s of every variant sees the same batches in the same order and starts
from the same initial values of every parameter both variants have, so two variants' losses at one seed are
correlated, and the difference of the pair carries less noise than either loss.

With n pairs (seeds present on both sides; a seed on one side only is left out and counted), the per-seed
differences d_i = a_i - b_i are one sample: the difference is mean(d), its interval the t interval with n - 1
degrees of freedom, the p-value the paired t-test (computed here, equal to scipy's `ttest_rel`), the
equivalence test two one-sided tests on d (equal to statsmodels' `ttost_paired`), the detectable difference and
the seeds needed the one-sample noncentral-t ones. Miller (2024), "Adding Error Bars to Evals", sec. 4,
recommends exactly this for two models scored on the same questions; here the "questions" are the seeds'
shared data order and weights.

The price of pairing is nothing when the pairs are uncorrelated (the variance of d is the sum of the two
variances, as for Welch) except n - 1 instead of about 2n - 2 degrees of freedom; its gain is the factor
`seeds_factor` = (var(a) + var(b)) / var(d): how many times more seeds an unpaired comparison of the same
precision needs.

When every pair differs by exactly the same amount (two variants that train identically, a twin), there is
no noise left: the verdict is defined, not a division by zero: the difference is that amount with a
zero-width interval, p = 0 when it is not zero (else 1), and equivalence holds when it lies inside the
margin (p_tost = 0, else 1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from gptlab.stats.inference import ALPHA, MAX_SEEDS, POWER

from gptlab.stats.corrections import PAIRINGS  # noqa: F401 - the spec's names, re-exported
MIN_PAIRS = 2  # a paired interval needs two pairs


@dataclass(frozen=True)
class Pairs:
    """Two seed samples matched by seed: `a[i]` and `b[i]` come from seed `seeds[i]`."""
    a: np.ndarray
    b: np.ndarray
    seeds: tuple
    only_a: int  # seeds on one side only, left out of the pairs
    only_b: int

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def d(self) -> np.ndarray:
        return self.a - self.b


def pair_up(a: pd.Series, b: pd.Series) -> Pairs:
    """Match two samples indexed by seed (NaN values dropped first); seeds in ascending order."""
    a, b = a.dropna(), b.dropna()
    a, b = a[~a.index.duplicated()], b[~b.index.duplicated()]  # a run merged from two sources counts once
    common = sorted(set(a.index) & set(b.index), key=lambda s: (str(type(s)), s))
    return Pairs(a.loc[common].to_numpy(dtype=float), b.loc[common].to_numpy(dtype=float), tuple(common),
                 len(set(a.index) - set(common)), len(set(b.index) - set(common)))


def uses_pairs(pairing: str, pairs: Pairs) -> bool:
    """Whether a comparison is paired: `seed` always (too few pairs then leaves it untested), `auto` when
    there are at least two pairs, `none` never."""
    if pairing == "none":
        return False
    return pairing == "seed" or pairs.n >= MIN_PAIRS


def paired_t(d: np.ndarray) -> tuple[float, float, float, float]:
    """mean(d), its 95% t interval (n - 1 df) and the paired t-test's two-sided p; NaN below two pairs."""
    n = len(d)
    if n == 0:
        return (math.nan,) * 4
    diff = float(np.mean(d))
    if n < MIN_PAIRS:
        return diff, math.nan, math.nan, math.nan
    se = float(np.std(d, ddof=1)) / math.sqrt(n)
    if se == 0.0 or _exact(d):
        return diff, diff, diff, 0.0 if diff != 0.0 else 1.0
    half = float(sps.t.ppf(1 - ALPHA / 2, n - 1)) * se
    p = float(2 * sps.t.sf(abs(diff) / se, n - 1))
    return diff, diff - half, diff + half, p


def paired_tost(d: np.ndarray, margin: float) -> float:
    """Two one-sided t-tests of |mean(d)| < margin on the per-seed differences; the larger p (NaN: untestable)."""
    n = len(d)
    if n < MIN_PAIRS or margin <= 0:
        return math.nan
    diff = float(np.mean(d))
    se = float(np.std(d, ddof=1)) / math.sqrt(n)
    if se == 0.0 or _exact(d):
        return 0.0 if abs(diff) < margin else 1.0
    p_low = float(sps.t.sf((diff + margin) / se, n - 1))   # H0: diff <= -margin
    p_high = float(sps.t.cdf((diff - margin) / se, n - 1))  # H0: diff >= +margin
    return max(p_low, p_high)


def one_sample_power(d: float, n: float) -> float:
    """Power of the two-sided one-sample (paired) t-test at ALPHA for a standardized difference d, n pairs."""
    dof = n - 1
    crit = sps.t.ppf(1 - ALPHA / 2, dof)
    nc = d * math.sqrt(n)
    upper, lower = sps.nct.sf(crit, dof, nc), sps.nct.cdf(-crit, dof, nc)
    if not math.isfinite(upper):
        upper = 1.0 if nc > crit else 0.0
    return float(upper + (lower if math.isfinite(lower) else 0.0))


def paired_mde(d: np.ndarray) -> float:
    """Smallest true difference the paired t-test at ALPHA detects with POWER with these pairs."""
    if len(d) < MIN_PAIRS:
        return math.nan
    sd = float(np.std(d, ddof=1))
    if sd == 0.0 or _exact(d):
        return 0.0
    from scipy.optimize import brentq

    return float(brentq(lambda x: one_sample_power(x, len(d)) - POWER, 1e-9, 60.0, xtol=1e-10)) * sd


def paired_seeds_needed(diff: float, sd_d: float, margin: float) -> float:
    """About how many seed pairs would resolve `diff`: detect it (|diff| >= margin) or show equivalence."""
    if not all(map(math.isfinite, (diff, sd_d))) or sd_d <= 0:
        return math.nan
    if abs(diff) >= margin or margin <= 0:
        if diff == 0:
            return math.nan
        for n in range(MIN_PAIRS, MAX_SEEDS + 1):
            if one_sample_power(abs(diff) / sd_d, n) >= POWER:
                return float(n)
        return float(MAX_SEEDS + 1)
    z = sps.norm.ppf(1 - ALPHA) + sps.norm.ppf(1 - (1 - POWER) / 2)
    n = (z * sd_d / (margin - abs(diff))) ** 2
    return float(min(max(MIN_PAIRS, math.ceil(n)), MAX_SEEDS + 1))


def correlation(pairs: Pairs) -> float:
    """Pearson correlation of the two sides across seeds (NaN below 3 pairs or with a constant side)."""
    if pairs.n < 3 or np.std(pairs.a) == 0 or np.std(pairs.b) == 0:
        return math.nan
    return float(np.corrcoef(pairs.a, pairs.b)[0, 1])


def seeds_factor(pairs: Pairs) -> float:
    """(var(a) + var(b)) / var(d): how many times the seeds an unpaired test needs for the same precision."""
    if pairs.n < MIN_PAIRS:
        return math.nan
    var_d = float(np.var(pairs.d, ddof=1))
    total = float(np.var(pairs.a, ddof=1) + np.var(pairs.b, ddof=1))
    if var_d == 0.0:
        return math.inf if total > 0 else math.nan
    return total / var_d


def paired_stats(pairs: Pairs, margin: float) -> dict:
    """Everything one paired comparison reports, in the keys of an unpaired one (`summary.pair_stats`)."""
    d = pairs.d
    diff, lo, hi, p = paired_t(d)
    sd_d = float(np.std(d, ddof=1)) if len(d) >= MIN_PAIRS else math.nan
    return {"diff": diff, "diff_ci_low": lo, "diff_ci_high": hi, "p_value": p, "p_tost": paired_tost(d, margin),
            "mde": paired_mde(d), "seeds_needed": paired_seeds_needed(diff, sd_d, margin), "margin": margin,
            "exact": bool(len(d) >= MIN_PAIRS and _exact(d)), "pairing": "paired", "pairs": pairs.n,
            "pair_corr": correlation(pairs), "seeds_factor": seeds_factor(pairs), "only_a": pairs.only_a,
            "only_b": pairs.only_b}


def _exact(d: np.ndarray) -> bool:
    """Every pair differs by the same amount (up to float rounding of that amount)."""
    return bool(np.ptp(d) <= 1e-12 * max(1.0, float(np.max(np.abs(d)))))
