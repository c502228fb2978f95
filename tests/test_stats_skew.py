"""gptlab.stats.skew's pieces on their own, each against an independent computation: the adjusted skewness row by
row against scipy's skew(bias=False), its pooling against a plain mean, the inverse of Hall's (1992) T against a
root finder on every branch of its cube root, and the two-sided p where the t and Hall's T disagree in sign.
(The look that uses them is tested in tests/test_sequential_paired_sim.py; these close the survivors a mutmut run
of skew.py left with those tests alone: rows of several studies at once, n = 3, g = 1, the cube root's branches.)"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats

from gptlab.stats import skew as sk


def test_adjusted_skewness_is_scipys_per_row_with_nan_dropped_and_undefined_rows_nan():
    rng = np.random.default_rng(0)
    rows = np.full((9, 7), np.nan)
    rows[0] = rng.lognormal(0, 1, 7)  # right-skewed
    rows[1] = -rng.lognormal(0, 1, 7) * 1000  # left-skewed, another scale
    rows[2, :3] = [0.1, 0.12, 0.5]  # n = 3: the smallest n with a skewness
    rows[3, :5] = rng.normal(0, 1, 5)
    rows[3, 1] = np.nan  # a failed seed inside a row
    rows[4, :2] = [1.0, 2.0]  # n = 2: none
    rows[5] = 3.0  # no spread: none
    rows[6] = 0.1  # no spread, but its mean leaves a rounding residue of 1e-17 in every value: none, not +-2.05
    assert np.all(rows[6] - rows[6].mean() != 0)
    rows[7] = 1e-10 * rng.lognormal(0, 1, 7)  # a real spread of 1e-10 beside rows of 1000s: defined
    rows[8] = 1e5 + 0.1  # no spread, a residue of 1.5e-11: below 1e-12 of its scale, none
    assert np.all(rows[8] - rows[8].mean() != 0)
    got = sk.adjusted_skewness(rows)
    for i in (0, 1, 2, 3, 7):
        want = stats.skew(rows[i][~np.isnan(rows[i])], bias=False)
        assert got[i] == pytest.approx(want, rel=1e-12), i
    assert np.isnan(got[4]) and np.isnan(got[5]) and np.isnan(got[6]) and np.isnan(got[8])
    assert got[0] > 0 > got[1]
    assert sk.adjusted_skewness(rows[2])[0] == pytest.approx(got[2], rel=1e-15)  # a 1-D sample is one row


def test_pooled_is_the_mean_of_each_studys_defined_skewness_and_zero_where_none_is():
    g = np.array([[0.5, np.nan, 1.5], [np.nan, np.nan, np.nan], [-2.0, 1.0, 4.0], [3.0, np.nan, np.nan]])
    assert sk.pooled(g).tolist() == [1.0, 0.0, 1.0, 3.0]
    assert sk.pooled(np.array([0.5, 2.5])).tolist() == [1.5]  # one study's comparisons


def _root(y: float, n: int, g: float) -> float:
    """S with hall_t(S) / sqrt(n) = y, by bisection on the monotone cubic (independent of skew._inverse)."""
    f = lambda s: sk.hall_t(s, 1.0, n, g) / math.sqrt(n) - y  # noqa: E731
    return optimize.brentq(f, -1e6, 1e6, xtol=1e-15, rtol=1e-15, maxiter=500)


@pytest.mark.parametrize("g", [1.0, 2.0, -0.7, 1e-9])
def test_the_inverse_of_halls_t_is_a_root_on_both_branches_of_the_cube_root(g):
    n = 5
    # y such that x = g (y - g / 6n) takes values below -1 (the real cube root of a negative number), in (-1, 0),
    # in (0, 1) and above 1 (the log1p branch, exact near 0)
    for x in (-11.0, -1.5, -0.5, -1e-7, 1e-7, 0.5, 1.5, 11.0):
        y = x / g + g / (6 * n)
        if abs(y) > 1e4:
            continue
        got = float(sk._inverse(np.array(y), n, np.array(g)))
        assert got == pytest.approx(_root(y, n, g), rel=1e-9, abs=1e-12), x
    assert float(sk._inverse(np.array(0.7), n, np.array(0.0))) == 0.7  # g = 0: T is the t


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_hull_bounds_solve_halls_t_at_the_quantile_where_it_is_the_wider_side(sign):
    """Right skew widens the upper side (Hall's root sets it), left skew the lower one."""
    rng = np.random.default_rng(3)
    d = sign * 0.01 * (rng.lognormal(0.0, 1.2, 5) - 1.0)
    n, mean, sd = 5, d.mean(), d.std(ddof=1)
    se, g = sd / math.sqrt(n), stats.skew(d, bias=False)
    assert np.sign(g) == sign
    hall_binds = []
    for q in (2.0, 6.0, 20.0):
        lo, hi = sk.hull(mean, se, n, g, q)
        hall = lambda mu: sk.hall_t(mean - mu, sd, n, g)  # noqa: E731 - falls with mu
        h_lo = optimize.brentq(lambda mu: hall(mu) - q, mean - 100, mean + 100, xtol=1e-15)
        h_hi = optimize.brentq(lambda mu: hall(mu) + q, mean - 100, mean + 100, xtol=1e-15)
        assert (lo, hi) == pytest.approx((min(mean - q * se, h_lo), max(mean + q * se, h_hi)), rel=1e-9)
        hall_binds.append((h_hi > mean + q * se) if sign > 0 else (h_lo < mean - q * se))
    assert any(hall_binds)  # Hall's root sets the side the skew points to at some level


def test_two_sided_p_is_capped_at_1_when_the_t_and_halls_t_point_opposite_ways():
    # mean just above 0 with strong left skew: the t is positive, Hall's T at mu = 0 negative (its g / 6n term)
    d, n = 0.001, 5
    se, g = 0.01, -2.0
    t0, h0 = d / se, sk.hall_t(d, se * math.sqrt(n), n, g)
    assert t0 > 0 > h0
    p = float(sk.p_two_sided(d, se, n, g, n - 1))
    upper = max(stats.t.sf(t0, n - 1), stats.t.sf(h0, n - 1))
    lower = max(stats.t.cdf(t0, n - 1), stats.t.cdf(h0, n - 1))
    assert 2 * min(upper, lower) > 1 and p == 1.0


def test_degenerate_input_gives_nan_or_a_bound_without_a_numpy_warning():
    """No warning reaches a user's terminal from a row with no spread, one value, a zero skewness or a far quantile."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(sk.adjusted_skewness(np.array([[1.0, 1.0, 1.0], [2.0, np.nan, np.nan]]))).all()
        assert sk.pooled(np.array([[np.nan, np.nan]])).tolist() == [0.0]
        lo, hi = sk.hull(np.array([0.0, 0.1]), np.array([0.0, 0.01]), 5, np.array([0.0, 50.0]), 40.0)
        assert np.isfinite(hi).all() and lo[0] == hi[0] == 0.0
        assert np.isfinite(sk._inverse(np.array([-1e6, 1e6]), 5, np.array([3.0, 3.0]))).all()
