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
benchmarks/sequential_sim.md and tests/test_sequential_sim.py check the error rates by simulation. On pairs
(`paired=True`) each look's test is Student's t on the per-seed differences made skew-robust by Hall's (1992)
transformation, with the skewness pooled over the family's comparisons (gptlab.stats.skew).

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

from gptlab.stats import skew as sk
from gptlab.stats.boundaries import SPENDING, _z_boundaries, spent, stagewise_p  # noqa: F401 - re-exported

VERDICTS = ("different", "equivalent", "open")


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

    def thresholds(self, shares: tuple[int, int] | None = None, fractions: tuple[float, ...] | None = None,
                   final: bool = False) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Nominal one-sided levels per look: (for "different", two-sided test split in halves;
        for each one-sided equivalence test). A look's boundary is crossed when the one-sided p-value
        falls below its level (Welch's; paired, both the paired t's and Hall's T's, gptlab.stats.skew).
        `shares` = (kd, ke): alpha is split over kd comparisons for "different" and ke for "equivalent"
        (default: all K; fewer once some are decided, see decide_family).
        `fractions`: the information fractions actually observed at the looks so far (pairs present / max, see
        `fractions_of`), in place of the planned n / max; `final`: the last of them is the last planned look, which
        spends all that is left of alpha whatever information it holds (Lan & DeMets 1983, sec. 3)."""
        return _levels(self, shares, fractions, final)


@lru_cache(maxsize=4096)
def _levels(design: SequentialDesign, shares, fractions, final: bool):  # noqa: ANN001, ANN202
    """SequentialDesign.thresholds, memoised: a simulation asks the same few levels thousands of times."""
    t = fractions if fractions is not None else tuple(n / design.max for n in design.looks)
    kd, ke = shares or (design.n_comparisons, design.n_comparisons)
    diff_z = _z_boundaries(t, design.alpha / kd, True, design.spending, spend_all_last=final)
    eq_z = _z_boundaries(t, design.alpha / ke, False, design.spending, spend_all_last=final)
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
    p_value: float  # nominal two-sided p at this look (Welch's; paired: t and Hall's T, see skew.p_two_sided)
    p_boundary: float  # two-sided level this look's "different" boundary stands at: crossed iff p_value < it
    look: int  # index into design.looks
    n: int  # seeds per arm used at this look
    final: bool  # the last planned look: an "open" verdict here means "inconclusive within the budget"
    direction: str | None  # "better" | "worse" for a "different" verdict (by the metric's sign), else None
    shares: tuple[int, int] | None = None  # (kd, ke): the intervals are at 1 - alpha/kd and 1 - 2 alpha/ke
    paired: bool = False  # one-sample t and Hall's T on per-seed differences (n - 1 df), else Welch
    used: float | None = None  # pairs (paired) or seeds per arm (Welch: harmonic mean) with a value at this look
    p_sequential: float = math.nan  # stagewise-ordering p of diff = 0 at level alpha/kd (see `sequential_p_of`)
    skew: float | None = None  # paired: the skewness g Hall's T took (pooled over the family's open comparisons)
    t_verdict: str | None = None  # paired: the verdict of the paired t alone at the same levels (skew ignored)


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
    p_boundary: float | np.ndarray  # an array when each study's information differs (failed seeds)
    look: int
    n: int
    used: np.ndarray | None = None  # pairs (or Welch's harmonic seeds per arm) with a value
    fraction: np.ndarray | None = None  # information fraction of this look: used / design.max
    tested: np.ndarray | None = None  # False: too few values, or no information since the last tested look
    skew: np.ndarray | None = None  # paired: the g Hall's T took per row (0 where se is 0)
    t_verdict: np.ndarray | None = None  # paired: the paired t alone's verdict at the same levels


def _stats(variant: np.ndarray, baseline: np.ndarray, paired: bool):
    """(diff, se, dof, used) per row; NaN values dropped (a pair with one, or the seed alone for Welch)."""
    if paired:  # one-sample t on per-seed differences (Student 1908; scipy's ttest_rel)
        d = variant - baseline
        used = np.sum(~np.isnan(d), 1)
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            diff = np.nanmean(d, 1)
            se = np.nanstd(d, 1, ddof=1) / np.sqrt(used)
            spread = np.nanmax(d, 1) - np.nanmin(d, 1)
            exact = spread <= 1e-12 * np.maximum(1.0, np.nanmax(np.abs(d), 1))  # a twin: every pair differs alike
        return diff, np.where(exact & (used >= 2), 0.0, se), (used - 1).astype(float), used.astype(float)
    na, nb = np.sum(~np.isnan(variant), 1), np.sum(~np.isnan(baseline), 1)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        diff = np.nanmean(variant, 1) - np.nanmean(baseline, 1)
        va, vb = np.nanvar(variant, 1, ddof=1) / na, np.nanvar(baseline, 1, ddof=1) / nb
        dof = (va + vb) ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))
        used = 2.0 / (1.0 / na + 1.0 / nb)  # seeds per arm of the equal-n design with the same information
    return diff, np.sqrt(va + vb), np.where(np.isfinite(dof), dof, na + nb - 2.0), used


def decide_batch(design: SequentialDesign, variant: np.ndarray, baseline: np.ndarray,
                 shares: tuple[int, int] | None = None, *, paired: bool = False,
                 history: np.ndarray | None = None, skew: np.ndarray | float | None = None) -> LookBatch:
    """Verdicts for S studies at once: `variant` is (S, n) with n a planned look, `baseline` is (S, m >= n),
    of which the first n seeds are used (so each look sees the information the design planned for).
    Seeds that agree exactly (standard error 0) give a zero-width interval: the diff is known exactly.
    `shares`: see SequentialDesign.thresholds.

    `paired`: the statistic is the one-sample t of the per-seed differences variant[:, i] - baseline[:, i]
    (n - 1 df) and Hall's skewness-corrected T of them, a bound crossed only where both cross it (gptlab.stats.skew),
    else Welch's; `skew`: the skewness g of T per row (decide_family's pooled one; None: each row's own). A NaN
    is a seed that failed or diverged: its pair (paired) or the seed (Welch) is dropped, and the look's boundary
    is that of the information actually observed (Lan & DeMets 1983: the spending function is evaluated at the
    observed information fraction, `fraction` = used / max); `history`
    (S, j): each study's fractions at this comparison's earlier tested looks (NaN: a look not tested; None: the
    planned n / max). A look with fewer than two values, or no more information than the last tested one,
    tests nothing: the comparison stays open and spends no alpha there."""
    variant, baseline = np.atleast_2d(np.asarray(variant, float)), np.atleast_2d(np.asarray(baseline, float))
    n = variant.shape[1]
    look = design.look_index(n)
    if baseline.shape[1] < n:
        raise ValueError(f"the baseline has {baseline.shape[1]} seeds, fewer than the variant's {n}")
    baseline = baseline[:, :n]
    planned = np.array([m / design.max for m in design.looks[:look]])
    if history is not None and np.shape(history)[1:] == planned.shape and np.array_equal(history, np.broadcast_to(
            planned, np.shape(history))):
        history = None  # every earlier look held its planned information
    complete = history is None and not (np.isnan(variant).any() or np.isnan(baseline).any())
    if complete and not paired:  # 0.3's Welch path, kept operation for operation (pairing: none)
        diff = variant.mean(1) - baseline.mean(1)
        va, vb = variant.var(1, ddof=1) / n, baseline.var(1, ddof=1) / n  # Welch, as inference.welch_se
        se = np.sqrt(va + vb)
        with np.errstate(divide="ignore", invalid="ignore"):
            dof = (va + vb) ** 2 / ((va ** 2 + vb ** 2) / (n - 1))
            dof = np.where(np.isfinite(dof), dof, 2 * n - 2)
        used = np.full(len(diff), float(n))
    else:
        diff, se, dof, used = _stats(variant, baseline, paired)
    fraction = used / design.max
    if complete:
        p_diff, p_eq = (levels[look] for levels in design.thresholds(shares))
        tested = np.ones(len(diff), bool)
    else:
        p_diff, p_eq, tested = _observed_levels(design, look, shares, fraction, history)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_diff, t_eq = sps.t.isf(p_diff, dof), sps.t.isf(p_eq, dof)
        if paired:  # Hall's T beside the t (gptlab.stats.skew); where se is 0 the diff is known exactly
            g = sk.adjusted_skewness(variant - baseline) if skew is None else np.broadcast_to(skew, diff.shape)
            g = np.where(np.isfinite(g) & (se > 0), g, 0.0)
            (ci_low, ci_high), (eq_low, eq_high) = (sk.hull(diff, se, used, g, q) for q in (t_diff, t_eq))
            p_value = sk.p_two_sided(diff, se, used, g, dof)
            t_alone = _verdicts(design, diff - t_diff * se, diff + t_diff * se, diff - t_eq * se, diff + t_eq * se)
        else:
            p_value = 2 * sps.t.sf(np.abs(diff) / se, dof)
            ci_low, ci_high = diff - t_diff * se, diff + t_diff * se
            eq_low, eq_high = diff - t_eq * se, diff + t_eq * se
    verdict = _verdicts(design, ci_low, ci_high, eq_low, eq_high)
    if paired:  # zero spread: the diff is known exactly (gptlab.stats.paired.paired_t)
        p_value = np.where(se > 0, p_value, np.where(diff != 0, 0.0, 1.0))
    else:
        p_value = np.where(se > 0, p_value, np.nan)
    return LookBatch(verdict, diff, ci_low, ci_high, eq_low, eq_high, np.where(tested, p_value, np.nan),
                     2 * p_diff if np.ndim(p_diff) else float(2 * p_diff), look, n, used, fraction, tested,
                     g if paired else None, t_alone if paired else None)


def _verdicts(design: SequentialDesign, ci_low, ci_high, eq_low, eq_high) -> np.ndarray:  # noqa: ANN001
    """"equivalent" where the equivalence interval lies within the margin, else "different" where the other
    interval excludes 0, else "open"."""
    different, equivalent = _rejects(design, ci_low, ci_high, eq_low, eq_high)
    return np.where(equivalent, "equivalent", np.where(different, "different", "open"))


def _rejects(design: SequentialDesign, ci_low, ci_high, eq_low, eq_high):  # noqa: ANN001, ANN202
    return (ci_low > 0) | (ci_high < 0), (eq_low > -design.margin) & (eq_high < design.margin)


def _observed_levels(design: SequentialDesign, look: int, shares, fraction, history):  # noqa: ANN001, ANN202
    """Per study: this look's nominal one-sided levels at the observed information (NaN where untested)."""
    planned = np.array([m / design.max for m in design.looks[:look]])
    hist = np.broadcast_to(planned, (len(fraction), look)) if history is None else np.asarray(history, float)
    p_diff, p_eq = np.full(len(fraction), np.nan), np.full(len(fraction), np.nan)
    final = look == len(design.looks) - 1
    keys: dict[tuple, list[int]] = {}
    for i in range(len(fraction)):
        keys.setdefault((tuple(x for x in hist[i] if x == x), float(fraction[i])), []).append(i)
    for (before, now), rows in keys.items():
        if now * design.max < 2 - 1e-9 or (before and now <= before[-1]):
            continue
        levels = design.thresholds(shares, before + (now,), final)
        p_diff[rows], p_eq[rows] = levels[0][-1], levels[1][-1]
    return p_diff, p_eq, np.isfinite(p_diff)


def sequential_p_of(design: SequentialDesign, b: LookBatch, row: int, history, shares) -> float:  # noqa: ANN001
    """The stagewise p (`stagewise_p`) of diff = 0 for row `row` of a look, at its level alpha / kd, from the
    nominal t-test p carried to the z scale (as the boundaries are): NaN where the look tested nothing."""
    if b.tested is not None and not b.tested[row]:
        return math.nan
    p = float(b.p_value[row])
    z = math.inf if p == 0 else float(sps.norm.isf(p / 2)) if p == p else (math.inf if b.diff[row] != 0 else 0.0)
    planned = tuple(m / design.max for m in design.looks[:b.look])
    before = planned if history is None else tuple(x for x in history if x == x)
    kd = (shares or (design.n_comparisons,) * 2)[0]
    return stagewise_p(before + (float(b.fraction[row]),), design.alpha / kd, design.spending, z,
                       b.look == len(design.looks) - 1)


def decide(design: SequentialDesign, variant, baseline, *, sign: int = -1, shares: tuple[int, int] | None = None,
           paired: bool = False, history=None, skew: float | None = None) -> LookResult:  # noqa: ANN001
    """One comparison at one look. `sign` is -1 when lower is better (a loss), +1 when higher is. `paired`,
    `history` (this comparison's earlier fractions, 1-D), `skew`: see decide_batch."""
    if sign not in (-1, 1):
        raise ValueError(f"sign must be -1 (lower is better) or +1 (higher is better), got {sign}")
    hist = None if history is None else np.asarray(history, float)[None, :]
    b = decide_batch(design, np.asarray(variant, float)[None, :], np.asarray(baseline, float)[None, :], shares,
                     paired=paired, history=hist, skew=skew)
    verdict, diff = str(b.verdict[0]), float(b.diff[0])
    direction = ("better" if sign * diff > 0 else "worse") if verdict == "different" else None
    return LookResult(verdict, diff, float(b.ci_low[0]), float(b.ci_high[0]), float(b.eq_low[0]),
                      float(b.eq_high[0]), float(b.p_value[0]), float(np.ravel(b.p_boundary)[0]), b.look, b.n,
                      b.look == len(design.looks) - 1, direction,
                      shares or (design.n_comparisons, design.n_comparisons), paired, float(b.used[0]),
                      sequential_p_of(design, b, 0, history, shares),
                      None if b.skew is None else float(b.skew[0]),
                      None if b.t_verdict is None else str(b.t_verdict[0]))


def rejects(design: SequentialDesign, r: LookResult | LookBatch):
    """Which null hypotheses a look's result (or batch, elementwise) rejected: (diff = 0, |diff| >= margin).
    Both can hold; the verdict is then "equivalent"."""
    return _rejects(design, r.ci_low, r.ci_high, r.eq_low, r.eq_high)


def decide_family(design: SequentialDesign, comparisons: dict, *, sign: int = -1,
                  decided: tuple[int, int] = (0, 0), paired: bool = False,
                  history: dict | None = None) -> dict[str, LookResult]:
    """Every still-open comparison of the family at one look: `comparisons` maps a name to (its seed values,
    its baseline's seed values) (pass only the open ones; decided comparisons keep their verdict);
    `decided` = how many comparisons stopped at earlier looks having rejected diff = 0, and |diff| >= margin
    (see `rejects`); `paired`, `history` (name -> its earlier fractions): see decide_batch; paired, Hall's T takes
    the skewness of the differences pooled over the comparisons given (`skew_of`).

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
    history = history or {}
    g = skew_of(comparisons) if paired else None
    while True:
        shares = (K - min(rd, K - 1), K - min(re_, K - 1))
        out = {name: decide(design, values, baseline, sign=sign, shares=shares, paired=paired,
                            history=history.get(name), skew=g)
               for name, (values, baseline) in comparisons.items()}
        flags = [rejects(design, r) for r in out.values()]
        nd, ne = decided[0] + sum(f[0] for f in flags), decided[1] + sum(f[1] for f in flags)
        if (K - min(nd, K - 1), K - min(ne, K - 1)) == shares:
            return out
        rd, re_ = nd, ne


def skew_of(comparisons: dict) -> float:
    """The skewness of the per-seed differences pooled over a look's comparisons (name -> (values, baseline's
    values), the first len(values) of the baseline's used): the mean of each one's adjusted skewness G1."""
    rows = [np.asarray(v, float) - np.asarray(b, float)[:len(v)] for v, b in comparisons.values()]
    return float(sk.pooled(np.array([[sk.adjusted_skewness(d)[0] for d in rows]]))[0]) if rows else 0.0


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


def mde_at(n: int, sd: float, *, alpha: float = 0.05, power: float = 0.8, n_comparisons: int = 1,
           paired: bool = False) -> float:
    """Smallest true difference a fixed design with n seeds per arm detects ("different", two-sided
    t-test at alpha / K) with `power`, for seed standard deviation sd (statsmodels' TTestIndPower); `paired`:
    n pairs and sd the standard deviation of the per-seed differences, a one-sample t (TTestPower)."""
    from statsmodels.stats.power import TTestIndPower, TTestPower

    with warnings.catch_warnings():  # tiny n: the solver may not converge; the nan is returned as it is
        warnings.simplefilter("ignore")
        if paired:
            d = TTestPower().solve_power(nobs=n, alpha=alpha / n_comparisons, power=power)
        else:
            d = TTestIndPower().solve_power(nobs1=n, alpha=alpha / n_comparisons, power=power)
    return float(np.squeeze(d)) * sd
