"""Tests beyond "is there a difference": equivalence (TOST), detectable effects, seeds needed, and the
multiple-comparison adjustment that every report applies to all of its tests together.

Two seed samples `a` and `b` of one metric are compared; differences are always `mean(a) - mean(b)`.
The equivalence test and the Welch interval use the same unequal-variance standard error; the
detectable-effect calculations use the pooled seed standard deviation (a planning quantity).
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np
from scipy import stats as sps

ALPHA = 0.05
POWER = 0.8
MAX_SEEDS = 1000  # beyond this, "about how many seeds" is only said as "more than 1000"


def welch_se(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Standard error of mean(a) - mean(b) and Welch-Satterthwaite degrees of freedom (NaN if n < 2)."""
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0.0:
        return 0.0, math.nan
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return se, dof


def tost(a: np.ndarray, b: np.ndarray, margin: float) -> float:
    """Two one-sided Welch tests of |mean(a) - mean(b)| < margin; the larger one-sided p (NaN: untestable)."""
    se, dof = welch_se(a, b)
    if not se or math.isnan(se) or margin <= 0:
        return math.nan
    diff = float(np.mean(a) - np.mean(b))
    p_low = float(sps.t.sf((diff + margin) / se, dof))   # H0: diff <= -margin
    p_high = float(sps.t.cdf((diff - margin) / se, dof))  # H0: diff >= +margin
    return max(p_low, p_high)


def pooled_std(a: np.ndarray, b: np.ndarray) -> float:
    """Pooled seed standard deviation of two samples (NaN when neither has two seeds)."""
    dof = len(a) + len(b) - 2
    if dof < 1:
        return math.nan
    ss = (len(a) - 1) * np.var(a, ddof=1) if len(a) > 1 else 0.0
    ss += (len(b) - 1) * np.var(b, ddof=1) if len(b) > 1 else 0.0
    return math.sqrt(ss / dof)


def power(d: float, n1: float, n2: float) -> float:
    """Power of the two-sided pooled t-test at ALPHA for a standardized difference d (noncentral t)."""
    dof = n1 + n2 - 2
    crit = sps.t.ppf(1 - ALPHA / 2, dof)
    nc = d * math.sqrt(n1 * n2 / (n1 + n2))
    upper, lower = sps.nct.sf(crit, dof, nc), sps.nct.cdf(-crit, dof, nc)
    if not math.isfinite(upper):  # scipy's far tails: decided by which side of crit the centre lies
        upper = 1.0 if nc > crit else 0.0
    return float(upper + (lower if math.isfinite(lower) else 0.0))


def mde(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest true difference a two-sided t-test at ALPHA detects with POWER, with these seed counts
    and the pooled seed std (exact, from the noncentral t)."""
    sd = pooled_std(a, b)
    if math.isnan(sd) or len(a) < 2 or len(b) < 2:
        return math.nan
    if sd == 0.0:
        return 0.0
    from scipy.optimize import brentq

    d = brentq(lambda x: power(x, len(a), len(b)) - POWER, 1e-9, 40.0, xtol=1e-10)
    return float(d) * sd


def seeds_needed(diff: float, sd: float, margin: float) -> float:
    """About how many seeds per variant would resolve `diff`: to detect it (when |diff| >= margin) or to
    show equivalence within the margin (when smaller), at POWER; NaN when it cannot be said."""
    if not all(map(math.isfinite, (diff, sd))) or sd <= 0:
        return math.nan
    if abs(diff) >= margin or margin <= 0:
        if diff == 0:
            return math.nan
        d = abs(diff) / sd
        for n in range(2, MAX_SEEDS + 1):
            if power(d, n, n) >= POWER:
                return float(n)
        return float(MAX_SEEDS + 1)
    # equivalence: normal approximation of the TOST sample size, the nearer bound dominating
    z = sps.norm.ppf(1 - ALPHA) + sps.norm.ppf(1 - (1 - POWER) / 2)
    n = 2 * (z * sd / (margin - abs(diff))) ** 2
    return float(min(max(2, math.ceil(n)), MAX_SEEDS + 1))


def adjust(p_values: Iterable[float], method: str) -> np.ndarray:
    """Adjusted p-values (holm | bh | none) over the finite entries; NaN stays NaN."""
    p = np.asarray(list(p_values), dtype=float)
    out = np.full(p.shape, math.nan)
    finite = np.isfinite(p)
    if not finite.any():
        return out
    if method == "none":
        out[finite] = p[finite]
    elif method == "holm":
        out[finite] = holm(p[finite])
    else:
        from statsmodels.stats.multitest import multipletests

        out[finite] = multipletests(p[finite], alpha=ALPHA, method={"bh": "fdr_bh"}[method])[1]
    return out


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's (1979, Scand J Stat 6:65) step-down adjusted p-values: the k-th smallest of m times (m - k + 1),
    made non-decreasing by a running maximum, at most 1. The same operations, in the same order, as statsmodels'
    `multipletests(p, method="holm")`, whose values tests/test_stats_holm.py checks it equals bit for bit; not
    called here because that branch ends with `gc.collect()`: a full garbage collection on every call, 0.1-0.3 s
    each in a process holding many objects (a notebook, a test worker), for an array of a few numbers."""
    order = np.argsort(p)
    adjusted = np.maximum.accumulate(p[order] * np.arange(p.size, 0, -1))
    adjusted[adjusted > 1] = 1
    out = np.empty_like(adjusted)
    out[order] = adjusted
    return out


CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg (false discovery rate)", "none": "no correction"}
