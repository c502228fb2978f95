"""Adaptive seeds: decide each variant-vs-baseline comparison as soon as its question is answered.

A study looks at its seeds at n = start, start + step, ..., max. At each look every still-open
comparison gets one verdict from `VERDICTS`; a decided comparison stops (its seeds are frozen).

The procedure is a group-sequential design with Lan-DeMets alpha spending (Lan & DeMets 1983,
Biometrika 70:659, eq. 2; Pocock-type spending of Kim & DeMets 1987, Biometrics 43:857, and the
O'Brien-Fleming-type one of Lan & DeMets), applied to two things at once:

* "different": the two-sided test of diff = 0 at alpha / k (k = K, the comparisons, at first); equivalently
  the repeated confidence interval (Jennison & Turnbull 1989, JRSS-B 51:305; book 2000, ch. 9) at level
  1 - alpha / k excludes 0.
* "equivalent": the sequential TOST, two one-sided group-sequential tests of diff <= -margin and of
  diff >= +margin, each at alpha / k; equivalently the repeated 1 - 2 alpha / k interval lies inside
  (-margin, +margin) (Jennison & Turnbull 2000, ch. 6.3).

k starts at K (Bonferroni) and falls as comparisons are decided: the group-sequential Holm procedure
(Ye et al. 2013; Maurer & Bretz 2013), one family for each error (see decide_family).

Both boundaries are non-binding: stopping for the other verdict only removes paths that could have
crossed later, so each error stays below its spent alpha whatever else stops a comparison. Boundaries
are computed on the z scale by recursive numerical integration (Armitage, McPherson & Rowe 1969; Jennison
& Turnbull 2000, ch. 19) over information fractions n / max, then carried to the Welch t statistic by
keeping each look's nominal significance level (Jennison & Turnbull 2000, ch. 3.8: the "significance
level approach" for unknown variance). With 3-12 seeds that carry-over is an approximation, so
benchmarks/sequential_sim.md and tests/test_sequential_sim.py check the error rates by simulation.

When both verdicts hold (the interval excludes 0 yet lies inside the margin) the verdict is
"equivalent": a difference smaller than the margin is, by the study's own definition, none that matters.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import stats as sps
from scipy.optimize import brentq

VERDICTS = ("different", "equivalent", "open")
SPENDING = ("pocock", "obrien_fleming")


@dataclass(frozen=True)
class SequentialDesign:
    """The planned looks and the error budget of one study's family of K comparisons."""

    start: int = 3
    max: int = 12
    step: int = 2
    alpha: float = 0.05  # family-wise, for each of the two errors (false "different", false "equivalent")
    margin: float = 0.02  # equivalence margin, in the metric's units
    n_comparisons: int = 1  # K: every variant compared with the baseline
    spending: str = "pocock"

    def __post_init__(self) -> None:
        if self.start < 2:
            raise ValueError(f"seeds.start must be at least 2 (a t statistic needs two seeds), got {self.start}")
        if self.max < self.start:
            raise ValueError(f"seeds.max ({self.max}) must be at least seeds.start ({self.start})")
        if self.step < 1:
            raise ValueError(f"seeds.step must be at least 1, got {self.step}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must lie in (0, 1), got {self.alpha}")
        if not self.margin > 0:
            raise ValueError(f"compare.margin must be positive, got {self.margin}")
        if self.n_comparisons < 1:
            raise ValueError(f"n_comparisons must be at least 1, got {self.n_comparisons}")
        if self.spending not in SPENDING:
            raise ValueError(f"unknown spending {self.spending!r}; valid: {', '.join(SPENDING)}")

    @property
    def looks(self) -> tuple[int, ...]:
        """Seeds per arm at each look: start, start + step, ..., and max as the last look."""
        ns = list(range(self.start, self.max + 1, self.step))
        return tuple(ns if ns[-1] == self.max else ns + [self.max])

    @property
    def comparison_alpha(self) -> float:
        return self.alpha / self.n_comparisons

    def look_index(self, n: int) -> int:
        if n not in self.looks:
            raise ValueError(f"{n} seeds is not a planned look; looks: {list(self.looks)}")
        return self.looks.index(n)

    def thresholds(self, shares: tuple[int, int] | None = None) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Nominal one-sided levels per look: (for "different", two-sided test split in halves;
        for each one-sided equivalence test). A look's boundary is crossed when the one-sided Welch
        p-value falls below its level. `shares` = (kd, ke): alpha is split over kd comparisons for
        "different" and ke for "equivalent" (default: all K; fewer once some are decided, see decide_family)."""
        t = tuple(n / self.max for n in self.looks)
        kd, ke = shares or (self.n_comparisons, self.n_comparisons)
        diff_z = _z_boundaries(t, self.alpha / kd, True, self.spending)
        eq_z = _z_boundaries(t, self.alpha / ke, False, self.spending)
        return tuple(float(sps.norm.sf(z)) for z in diff_z), tuple(float(sps.norm.sf(z)) for z in eq_z)


@dataclass(frozen=True)
class LookResult:
    """One comparison at one look. diff = mean(variant) - mean(baseline)."""

    verdict: str  # one of VERDICTS
    diff: float
    ci_low: float  # repeated 1 - alpha/K interval: "different" when it excludes 0
    ci_high: float
    eq_low: float  # repeated 1 - 2 alpha/K interval: "equivalent" when inside (-margin, margin)
    eq_high: float
    p_value: float  # nominal two-sided Welch p-value at this look (not adjusted for looks or K)
    p_boundary: float  # two-sided level this look's "different" boundary stands at: crossed iff p_value < it
    look: int  # index into design.looks
    n: int  # seeds per arm used at this look
    final: bool  # the last planned look: an "open" verdict here means "inconclusive within the budget"
    direction: str | None  # "better" | "worse" for a "different" verdict (by the metric's sign), else None


def spent(t: np.ndarray | float, alpha: float, spending: str) -> np.ndarray:
    """Lan-DeMets cumulative alpha spent by information fraction t (Pocock-type or O'Brien-Fleming-type)."""
    t = np.asarray(t, dtype=float)
    if spending == "pocock":  # Kim & DeMets (1987)
        return alpha * np.log1p((math.e - 1) * t)
    return 2 * sps.norm.sf(sps.norm.isf(alpha / 2) / np.sqrt(t))  # Lan & DeMets (1983)


@lru_cache(maxsize=64)
def _z_boundaries(t: tuple[float, ...], alpha: float, two_sided: bool, spending: str,
                  grid: int = 401) -> tuple[float, ...]:
    """z boundaries c_j with P(first crossing at look j | H0) = alpha(t_j) - alpha(t_{j-1}).

    The score S_j = Z_j sqrt(t_j) has independent N(0, t_j - t_{j-1}) increments; its sub-density on
    the continuation region is carried from look to look on a Simpson grid (Jennison & Turnbull ch. 19).
    A one-sided test rejects for large Z; a two-sided one for large |Z|.
    """
    # two-sided: alpha / 2 spent on each side, as gsDesign and Jennison & Turnbull do
    cum = 2 * spent(np.asarray(t), alpha / 2, spending) if two_sided else spent(np.asarray(t), alpha, spending)
    bounds: list[float] = []
    u = w = f = None  # grid, Simpson weights, sub-density of S at the previous look
    for j, tj in enumerate(t):
        target = cum[j] - (cum[j - 1] if j else 0.0)
        if j == 0:
            c = sps.norm.isf(target / 2 if two_sided else target)
        else:
            sd = math.sqrt(tj - t[j - 1])
            mass = w * f

            def crossed(c: float) -> float:
                hi = sps.norm.sf((c * math.sqrt(tj) - u) / sd)
                lo = sps.norm.cdf((-c * math.sqrt(tj) - u) / sd) if two_sided else 0.0
                return float(np.sum(mass * (hi + lo))) - target

            c = math.inf if target <= 0 or crossed(40.0) > 0 else brentq(crossed, 0.0, 40.0, xtol=1e-10)
        bounds.append(float(c))
        if j + 1 == len(t):
            break
        top = c * math.sqrt(tj) if math.isfinite(c) else 10 * math.sqrt(tj)
        bottom = -top if two_sided else -10 * math.sqrt(tj)
        new_u = np.linspace(bottom, top, grid)
        new_w = np.full(grid, 2.0)
        new_w[1::2], new_w[0], new_w[-1] = 4.0, 1.0, 1.0
        new_w *= (top - bottom) / (grid - 1) / 3
        if j == 0:
            new_f = sps.norm.pdf(new_u, scale=math.sqrt(tj))
        else:
            kernel = sps.norm.pdf((new_u[:, None] - u[None, :]) / sd) / sd
            new_f = kernel @ (w * f)
        u, w, f = new_u, new_w, new_f
    return tuple(bounds)


@dataclass(frozen=True)
class LookBatch:
    """Many studies' same comparison at the same look, as arrays (the simulation's fast path)."""

    verdict: np.ndarray  # str, one of VERDICTS
    diff: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    eq_low: np.ndarray
    eq_high: np.ndarray
    p_value: np.ndarray
    p_boundary: float
    look: int
    n: int


def decide_batch(design: SequentialDesign, variant: np.ndarray, baseline: np.ndarray,
                 shares: tuple[int, int] | None = None) -> LookBatch:
    """Verdicts for S studies at once: `variant` is (S, n) with n a planned look, `baseline` is (S, m >= n),
    of which the first n seeds are used (so each look sees the information the design planned for).
    Seeds that agree exactly (standard error 0) give a zero-width interval: the diff is known exactly.
    `shares`: see SequentialDesign.thresholds."""
    variant, baseline = np.atleast_2d(np.asarray(variant, float)), np.atleast_2d(np.asarray(baseline, float))
    n = variant.shape[1]
    look = design.look_index(n)
    if baseline.shape[1] < n:
        raise ValueError(f"the baseline has {baseline.shape[1]} seeds, fewer than the variant's {n}")
    baseline = baseline[:, :n]
    diff = variant.mean(1) - baseline.mean(1)
    va, vb = variant.var(1, ddof=1) / n, baseline.var(1, ddof=1) / n  # Welch, as inference.welch_se
    se = np.sqrt(va + vb)
    with np.errstate(divide="ignore", invalid="ignore"):
        dof = (va + vb) ** 2 / ((va ** 2 + vb ** 2) / (n - 1))
        dof = np.where(np.isfinite(dof), dof, 2 * n - 2)
        p_diff, p_eq = (levels[look] for levels in design.thresholds(shares))
        t_diff, t_eq = sps.t.isf(p_diff, dof), sps.t.isf(p_eq, dof)
        p_value = 2 * sps.t.sf(np.abs(diff) / se, dof)
    ci_low, ci_high = diff - t_diff * se, diff + t_diff * se
    eq_low, eq_high = diff - t_eq * se, diff + t_eq * se
    equivalent = (eq_low > -design.margin) & (eq_high < design.margin)
    different = (ci_low > 0) | (ci_high < 0)
    verdict = np.where(equivalent, "equivalent", np.where(different, "different", "open"))
    return LookBatch(verdict, diff, ci_low, ci_high, eq_low, eq_high, np.where(se > 0, p_value, np.nan),
                     float(2 * p_diff), look, n)


def decide(design: SequentialDesign, variant, baseline, *, sign: int = -1,
           shares: tuple[int, int] | None = None) -> LookResult:
    """One comparison at one look. `sign` is -1 when lower is better (a loss), +1 when higher is."""
    if sign not in (-1, 1):
        raise ValueError(f"sign must be -1 (lower is better) or +1 (higher is better), got {sign}")
    b = decide_batch(design, np.asarray(variant, float)[None, :], np.asarray(baseline, float)[None, :], shares)
    verdict, diff = str(b.verdict[0]), float(b.diff[0])
    direction = ("better" if sign * diff > 0 else "worse") if verdict == "different" else None
    return LookResult(verdict, diff, float(b.ci_low[0]), float(b.ci_high[0]), float(b.eq_low[0]),
                      float(b.eq_high[0]), float(b.p_value[0]), b.p_boundary, b.look, b.n,
                      b.look == len(design.looks) - 1, direction)


def rejects(design: SequentialDesign, r: LookResult | LookBatch):
    """Which null hypotheses a look's result (or batch, elementwise) rejected: (diff = 0, |diff| >= margin).
    Both can hold; the verdict is then "equivalent"."""
    return (r.ci_low > 0) | (r.ci_high < 0), (r.eq_low > -design.margin) & (r.eq_high < design.margin)


def decide_family(design: SequentialDesign, comparisons: dict, *, sign: int = -1,
                  decided: tuple[int, int] = (0, 0)) -> dict[str, LookResult]:
    """Every still-open comparison of the family at one look: `comparisons` maps a name to (its seed values,
    its baseline's seed values) (pass only the open ones; decided comparisons keep their verdict);
    `decided` = how many comparisons stopped at earlier looks having rejected diff = 0, and |diff| >= margin
    (see `rejects`).

    Alpha starts split over the K = design.n_comparisons comparisons (Bonferroni) and is passed on as in
    Holm's procedure: each family (false "different", false "equivalent") splits alpha over its hypotheses
    not yet rejected, at this look or an earlier one, and a rejection at this look lets the others be
    tested again at the same look. This is the group-sequential Holm procedure (Ye, Li, Liu & Yao 2013,
    Stat Med 32:1112) and the graphical approach with equal weights (Maurer & Bretz 2013, Stat Biopharm
    Res 5:311): each hypothesis keeps its spending function and its boundaries are those at its current
    level, so both family-wise error rates stay below design.alpha however the comparisons stop."""
    K = design.n_comparisons
    if len(comparisons) + max(decided) > K:
        raise ValueError(f"{len(comparisons)} open comparisons and {max(decided)} decided ones given, but the design "
                         f"splits alpha over {K}")
    rd, re_ = decided
    while True:
        shares = (K - min(rd, K - 1), K - min(re_, K - 1))
        out = {name: decide(design, values, baseline, sign=sign, shares=shares)
               for name, (values, baseline) in comparisons.items()}
        flags = [rejects(design, r) for r in out.values()]
        nd, ne = decided[0] + sum(f[0] for f in flags), decided[1] + sum(f[1] for f in flags)
        if (K - min(nd, K - 1), K - min(ne, K - 1)) == shares:
            return out
        rd, re_ = nd, ne


def fixed_design_seeds(diff: float, sd: float, *, margin: float, alpha: float = 0.05, power: float = 0.8,
                       n_comparisons: int = 1) -> int:
    """Seeds per arm a fixed-n design needs to reach the right verdict on a true `diff` with `power`:
    "different" (two-sided t-test at alpha / K) when |diff| >= margin, else "equivalent" (TOST at
    alpha / K per side). statsmodels' TTestIndPower; the TOST is solved as its nearer one-sided test
    with effect (margin - |diff|) / sd, that side's miss rate taking all of 1 - power, or half of it when
    diff = 0 and both sides can miss (Chow, Shao & Wang, Sample Size Calculations in Clinical Research,
    2008, sec. 3.2)."""
    from statsmodels.stats.power import TTestIndPower

    a = alpha / n_comparisons
    if abs(diff) >= margin:
        effect, side_power, alternative = abs(diff) / sd, power, "two-sided"
    else:
        effect, alternative = (margin - abs(diff)) / sd, "larger"
        side_power = 1 - (1 - power) / 2 if diff == 0 else power
    solver = TTestIndPower()
    if solver.power(effect_size=effect, nobs1=2, alpha=a, alternative=alternative) >= side_power:
        return 2  # a huge effect: 2 seeds do (and the solver would not converge below them)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        n = float(np.squeeze(solver.solve_power(effect_size=effect, alpha=a, power=side_power, alternative=alternative)))
    if not math.isfinite(n):
        raise ValueError(f"no seed count reaches power {power:g} for diff {diff:g} at sd {sd:g}")
    return max(2, math.ceil(n - 1e-9))


def mde_at(n: int, sd: float, *, alpha: float = 0.05, power: float = 0.8, n_comparisons: int = 1) -> float:
    """Smallest true difference a fixed design with n seeds per arm detects ("different", two-sided
    t-test at alpha / K) with `power`, for seed standard deviation sd (statsmodels' TTestIndPower)."""
    from statsmodels.stats.power import TTestIndPower

    with warnings.catch_warnings():  # tiny n: the solver may not converge; the nan is returned as it is
        warnings.simplefilter("ignore")
        d = TTestIndPower().solve_power(nobs1=n, alpha=alpha / n_comparisons, power=power)
    return float(np.squeeze(d)) * sd
