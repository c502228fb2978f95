"""The skewness correction of the paired adaptive look (gptlab.stats.sequential, `paired=True`).

A t statistic on a few skewed per-seed differences errs on one side far more often than its level says: with
right-skewed differences the sample mean and sd rise together, so a sample from the bulk (the tail not yet seen)
has a small sd and a mean below the true one. Hall's (1992) monotone cubic transformation of the studentised mean
removes the n^(-1/2) skewness term of its Edgeworth expansion (the term Johnson's 1978 modified t removes) and,
being monotone, still inverts to an interval:

    T(mu) = sqrt(n) (S + g S^2 / 3 + g^2 S^3 / 27 + g / (6 n)),   S = (mean - mu) / sd,

here referred to Student's t with n - 1 df, as the t statistic it corrects (Hall 1992, JRSS B 54:221; Johnson
1978, JASA 73:536).

Two choices keep it honest at 3-12 pairs (benchmarks/sequential_sim.md measures them):

* g is the adjusted sample skewness G1 (scipy.stats.skew(bias=False)) pooled over the comparisons still open at the
  look (`pooled`): one comparison's 3-12 differences rarely show the tail that makes its t err, a family of them
  more often. The pooling assumes the comparisons' differences share a shape; a lone comparison uses its own.
* the look rejects only where both Student's t and Hall's T reject (the interval is the hull of the two): the
  correction may only make a side more cautious, never bolder, since a plug-in g is noisy and, where the tail
  was seen, correlated with the mean. On symmetric differences (g = 0) T is the t statistic.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy import special


def adjusted_skewness(d: np.ndarray) -> np.ndarray:
    """Per row of d (S, n): the adjusted Fisher-Pearson skewness G1 = sqrt(n (n - 1)) / (n - 2) m3 / m2^1.5 of its
    values, NaN dropped; NaN where fewer than three values or no spread."""
    d = np.atleast_2d(np.asarray(d, float))
    n = np.sum(~np.isnan(d), 1).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        c = d - np.nanmean(d, 1, keepdims=True)
        m2, m3 = np.nansum(c ** 2, 1) / n, np.nansum(c ** 3, 1) / n
        g = np.sqrt(n * (n - 1)) / (n - 2) * m3 / m2 ** 1.5
        spread = np.nanmax(np.abs(c), 1) > 1e-12 * np.maximum(1.0, np.nanmax(np.abs(d), 1))
    return np.where((n >= 3) & spread & np.isfinite(g), g, np.nan)


def pooled(g: np.ndarray) -> np.ndarray:
    """Per row of g (S, K): the mean of the comparisons' skewness (NaN skipped), 0 where none has one."""
    g = np.atleast_2d(np.asarray(g, float))
    some = np.isfinite(g).any(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.where(some, np.nanmean(np.where(some[:, None], g, 0.0), 1), 0.0)


def hall_t(diff, sd, n, g):  # noqa: ANN001, ANN201 - arrays or floats
    """Hall's T at mu = 0 for differences with this mean, sd, count n and skewness g."""
    s = diff / sd
    return np.sqrt(n) * (s + g * s ** 2 / 3 + g ** 2 * s ** 3 / 27 + g / (6 * n))


def _inverse(y, n, g):  # noqa: ANN001, ANN202
    """The S at which T / sqrt(n) = y: S = ((1 + g (y - g / 6n))^(1/3) - 1) / (g / 3), without cancellation."""
    x = g * (y - g / (6 * n))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(x > -1, np.expm1(np.log1p(np.maximum(x, -1 + 1e-300)) / 3), np.cbrt(1 + x) - 1)
        return np.where(g != 0, 3 * r / np.where(g != 0, g, 1.0), y)


def hull(diff, se, n, g, q):  # noqa: ANN001, ANN201
    """The interval of mu where the level-q (one-sided quantile) t test or Hall's test accepts: the hull of
    diff -+ q se and of {mu: -q <= T(mu) <= q}."""
    sd = se * np.sqrt(n)
    root = np.sqrt(n)
    low = np.minimum(diff - q * se, diff - sd * _inverse(q / root, n, g))
    high = np.maximum(diff + q * se, diff - sd * _inverse(-q / root, n, g))
    return low, high


def p_two_sided(diff, se, n, g, dof):  # noqa: ANN001, ANN201
    """Two-sided p of diff = 0 that agrees with `hull`: a side rejects when both t and T do, so its p is the larger
    of the two one-sided p's; twice the smaller side's."""
    t0, h0 = diff / se, hall_t(diff, se * np.sqrt(n), n, g)
    sf_t, sf_h, cdf_t, cdf_h = special.stdtr(dof, np.stack(np.broadcast_arrays(-t0, -h0, t0, h0)))  # Student's t cdf
    return np.minimum(1.0, 2 * np.minimum(np.maximum(sf_t, sf_h), np.maximum(cdf_t, cdf_h)))
