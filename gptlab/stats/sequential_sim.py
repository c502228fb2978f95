"""Simulated studies for the adaptive-seed design: its error rates, power and expected seeds, next to
the fixed-n design and the naive "stop at the first p < 0.05" rule. Numpy only, no training.

One study: a baseline and K variants whose per-seed metric is true_diff + noise. The adaptive, fixed and
naive rules see the same draws when given the same `seed` (common random numbers), so their
differences are not sampling noise between them.

The noise can be made harder than the design assumes (`Noise`): the variants' spread `sd_ratio` times the
baseline's, the variants skewed (standardised lognormal), heavy tails (t3), correlated with the
baseline's at the same seed (`corr`: the paired design's gain), and seeds that fail at random (`fail`: a NaN on
either side). `mutant` breaks the design on purpose, so a test can show its bound catches a broken procedure:
"no_split" (alpha not split over the K comparisons), "welch" (Welch's unpaired test where the design pairs),
"no_skew" (the paired t alone, without Hall's skewness correction, gptlab.stats.skew); joined by "+", several.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gptlab.stats import skew as sk
from gptlab.stats.sequential import SequentialDesign, decide_batch, rejects

NOISES = ("gaussian", "t3")
MUTANTS = ("no_split", "welch", "no_skew")


@dataclass(frozen=True)
class Noise:
    """Per-seed noise of a simulated study: `kind` (gaussian | t3) for the baseline and, unless `skew`, the
    variants; the variants' sd is `sd_ratio` times the baseline's; `corr`: correlation of a variant's noise with the
    baseline's at the same seed (exact for Gaussian and t3 noise; for skew the lognormal of the correlated normal);
    `fail`: chance that any one run has no value (failed or diverged), independently on every side; `skew`: the
    lognormal's sigma (0: no skew; 0.5 gives skewness 1.75, 1 gives 6.2); `skew_in`: the variants skewed (None:
    every one; the others keep Gaussian noise: comparisons whose differences do not share a shape)."""

    kind: str = "gaussian"
    sd_ratio: float = 1.0
    skew: float = 0.0
    corr: float = 0.0
    fail: float = 0.0
    skew_in: tuple[int, ...] | None = None


def _lognormal(g: np.ndarray, sigma: float) -> np.ndarray:
    """exp(sigma g) standardised to mean 0 and sd 1."""
    return (np.exp(sigma * g) - np.exp(sigma ** 2 / 2)) / np.sqrt((np.exp(sigma ** 2) - 1) * np.exp(sigma ** 2))


def draw(rng: np.random.Generator, shape: tuple[int, ...], sd: float, noise: str) -> np.ndarray:
    """Seed noise with standard deviation sd: Gaussian, or Student t with 3 df scaled to that sd."""
    if noise == "gaussian":
        return rng.normal(0.0, sd, shape)
    if noise == "t3":  # var(t_3) = 3
        return rng.standard_t(3, shape) * sd / np.sqrt(3.0)
    raise ValueError(f"unknown noise {noise!r}; valid: {', '.join(NOISES)}")


@dataclass(frozen=True)
class SimOutcome:
    """S studies of K comparisons each."""

    diffs: tuple[float, ...]  # true diff of each comparison
    margin: float
    verdict: np.ndarray  # (S, K) str
    estimate: np.ndarray  # (S, K) the diff estimated when the comparison stopped
    seeds: np.ndarray  # (S, K) seeds the variant ran
    baseline_seeds: np.ndarray  # (S,)

    @property
    def n_studies(self) -> int:
        return self.verdict.shape[0]

    def rate(self, verdict: str) -> np.ndarray:
        """Per comparison: the share of studies ending with `verdict`."""
        return (self.verdict == verdict).mean(0)

    def family_rate(self, verdict: str) -> float:
        """The share of studies in which at least one comparison ended with `verdict`."""
        return float((self.verdict == verdict).any(1).mean())

    def power(self) -> np.ndarray:
        """Per comparison: the share of correct verdicts, "different" in the right direction when
        |diff| >= margin, else "equivalent"."""
        right = np.empty(self.verdict.shape, bool)
        for k, d in enumerate(self.diffs):
            if abs(d) >= self.margin:
                right[:, k] = (self.verdict[:, k] == "different") & (np.sign(self.estimate[:, k]) == np.sign(d))
            else:
                right[:, k] = self.verdict[:, k] == "equivalent"
        return right.mean(0)

    def expected_seeds(self) -> np.ndarray:
        """Per variant, then the baseline last."""
        return np.append(self.seeds.mean(0), self.baseline_seeds.mean())

    def expected_runs(self) -> float:
        return float(self.seeds.sum(1).mean() + self.baseline_seeds.mean())


def _data(diffs, sd, n_max, n_studies, noise, seed):
    """(baseline (S, n_max), variants (S, K, n_max)); `noise` a kind (independent arms, equal spreads) or a Noise."""
    case = noise if isinstance(noise, Noise) else Noise(noise)
    rng = np.random.default_rng(seed)
    baseline = draw(rng, (n_studies, n_max), sd, case.kind)
    if case == Noise(case.kind):  # 0.3's draws, value for value
        return baseline, np.asarray(diffs, float)[None, :, None] + draw(rng, (n_studies, len(diffs), n_max), sd,
                                                                           case.kind)
    own = draw(rng, (n_studies, len(diffs), n_max), 1.0, "gaussian" if case.skew else case.kind)
    mixed = case.corr * baseline[:, None, :] / sd + np.sqrt(1 - case.corr ** 2) * own
    if case.skew:
        which = slice(None) if case.skew_in is None else list(case.skew_in)
        mixed[:, which] = _lognormal(mixed[:, which], case.skew)
    variants = np.asarray(diffs, float)[None, :, None] + case.sd_ratio * sd * mixed
    if case.fail > 0:
        lost = np.random.default_rng([seed, 1])  # its own stream: the values do not change with the failure rate
        baseline[lost.random(baseline.shape) < case.fail] = np.nan
        variants[lost.random(variants.shape) < case.fail] = np.nan
    return baseline, variants


def _family_look(designs, ns, variants, baseline, open_, dd, de, *, paired=False, history=None, mutant=None):
    """One look of the family in S studies at once, with decide_family's Holm-type passing of alpha:
    comparison k of study s (open_[s, k]) uses designs[k] at ns[k] seeds; dd[s], de[s] comparisons stopped
    earlier having rejected diff = 0, |diff| >= margin; `history` (S, K, j): each comparison's information
    fractions at its earlier looks (NaN: untested), None when no seed fails. Returns (verdict, rejected 0,
    rejected margin, diff, fraction tested at this look (NaN: untested)). Paired, Hall's T takes the skewness of
    the differences pooled over each study's open comparisons, as decide_family does."""
    S, K = open_.shape
    rd, re_ = dd.copy(), de.copy()
    broken = set(mutant.split("+")) if mutant else set()
    paired = paired and "welch" not in broken
    g = np.zeros(S)
    if paired and "no_skew" not in broken:
        own = np.stack([sk.adjusted_skewness(variants[:, k, :ns[k]] - baseline[:, :ns[k]]) for k in range(K)], 1)
        g = sk.pooled(np.where(open_, own, np.nan))
    while True:
        kd, ke = K - np.minimum(rd, K - 1), K - np.minimum(re_, K - 1)
        if "no_split" in broken:  # alpha not split over the comparisons
            kd, ke = np.ones_like(kd), np.ones_like(ke)
        fd, fe, diff = np.zeros((S, K), bool), np.zeros((S, K), bool), np.full((S, K), np.nan)
        frac = np.full((S, K), np.nan)
        for shares in {(int(x), int(y)) for x, y in zip(kd, ke)}:
            rows = (kd == shares[0]) & (ke == shares[1])
            for k in range(K):
                idx = np.flatnonzero(rows & open_[:, k])
                if not idx.size:
                    continue
                b = decide_batch(designs[k], variants[idx, k, :ns[k]], baseline[idx, :ns[k]], shares,
                                 paired=paired, history=None if history is None else history[idx, k],
                                 skew=g[idx] if paired else None)
                fd[idx, k], fe[idx, k] = rejects(designs[k], b)
                diff[idx, k] = b.diff
                frac[idx, k] = np.where(b.tested, b.fraction, np.nan)
        nd, ne = dd + fd.sum(1), de + fe.sum(1)
        if "no_split" in broken or (np.array_equal(K - np.minimum(nd, K - 1), kd)
                                    and np.array_equal(K - np.minimum(ne, K - 1), ke)):
            verdict = np.where(fe, "equivalent", np.where(fd, "different", "open"))
            return np.where(open_, verdict, "open"), fd, fe, diff, frac
        rd, re_ = nd, ne


def simulate(design: SequentialDesign, diffs, sd: float, *, n_studies: int = 2000, noise: str | Noise = "gaussian",
             seed: int = 0, rule: str = "adaptive", paired: bool = False, mutant: str | None = None) -> SimOutcome:
    """The adaptive design (rule="adaptive"), or the naive rule that calls a comparison "different" at
    the first look with a Welch p < design.alpha and never calls it equivalent (rule="naive").
    `paired`: each look tests the per-seed differences (the design of `compare: {pairing: auto}`);
    `noise`: a kind or a Noise; `mutant`: one of MUTANTS, a broken design (see the module's docstring)."""
    if rule not in ("adaptive", "naive"):
        raise ValueError(f"unknown rule {rule!r}; valid: adaptive, naive")
    if mutant is not None and not set(mutant.split("+")) <= set(MUTANTS):
        raise ValueError(f"unknown mutant {mutant!r}; valid: {', '.join(MUTANTS)}, joined by '+'")
    baseline, variants = _data(diffs, sd, design.max, n_studies, noise, seed)
    failing = isinstance(noise, Noise) and noise.fail > 0
    history = np.zeros((n_studies, len(diffs), 0)) if failing else None
    K = len(diffs)
    shape = (n_studies, K)
    verdict, estimate = np.full(shape, "open", dtype="<U10"), np.full(shape, np.nan)
    seeds = np.full(shape, design.max)
    dd, de = np.zeros(n_studies, int), np.zeros(n_studies, int)
    for n in design.looks:
        open_ = verdict == "open"
        if rule == "adaptive":
            says, fd, fe, diff, frac = _family_look([design] * K, [n] * K, variants, baseline, open_, dd, de,
                                                    paired=paired, history=history, mutant=mutant)
            if history is not None:
                history = np.concatenate([history, frac[:, :, None]], axis=2)
            stop = open_ & (says != "open")
            dd, de = dd + (fd & stop).sum(1), de + (fe & stop).sum(1)
        else:
            diff, says = np.full(shape, np.nan), np.full(shape, "open", dtype="<U10")
            for k in range(K):
                rows = np.flatnonzero(open_[:, k])
                b = decide_batch(design, variants[rows, k, :n], baseline[rows, :n])
                diff[rows, k] = b.diff
                says[rows, k] = np.where(b.p_value < design.alpha, "different", "open")
            stop = open_ & (says != "open")
        verdict[stop], seeds[stop] = says[stop], n
        estimate[open_] = diff[open_]
    # the baseline runs as long as its longest-running comparison
    return SimOutcome(tuple(diffs), design.margin, verdict, estimate, seeds, seeds.max(1))


def simulate_fixed(ns, diffs, sd: float, *, alpha: float, margin: float, n_studies: int = 2000,
                   noise: str | Noise = "gaussian", seed: int = 0, paired: bool = False) -> SimOutcome:
    """The fixed design: comparison k runs ns[k] seeds per arm, one look (Welch test and TOST, or paired ones,
    Holm over the K comparisons as decide_family does at a single look), the baseline runs max(ns). Same draws
    as `simulate` with the same seed when max(ns) <= the adaptive design's max."""
    K, n_max = len(diffs), max(ns)
    baseline, variants = _data(diffs, sd, n_max, n_studies, noise, seed)
    designs = [SequentialDesign(start=n, max=n, step=1, alpha=alpha, margin=margin, n_comparisons=K) for n in ns]
    zero = np.zeros(n_studies, int)
    verdict, _, _, estimate, _ = _family_look(designs, list(ns), variants, baseline,
                                              np.ones((n_studies, K), bool), zero, zero, paired=paired)
    seeds = np.broadcast_to(np.asarray(ns), (n_studies, K))
    return SimOutcome(tuple(diffs), margin, verdict.astype("<U10"), estimate, seeds, np.full(n_studies, n_max))


@dataclass(frozen=True)
class EqualPower:
    """The adaptive design next to the fixed design of equal power: one seed list for every variant and the
    baseline (a spec's `seeds: [0, ..., n-1]`), n the smallest at which the fixed design, analysed with the
    same Welch test and TOST with Holm over the K comparisons and simulated on the same draws, reaches the
    adaptive design's power on every comparison (within one simulation standard error). `reached` is False
    when no n up to the search's cap did (n is then the cap, a lower bound)."""

    power: np.ndarray  # the adaptive design's, per comparison
    fixed_power: np.ndarray  # the fixed design's at n
    n: int  # seeds per variant (and the baseline) of the fixed design
    adaptive_runs: float  # expected runs of the adaptive design
    n_arms: int  # K variants and the baseline
    reached: bool = True

    @property
    def fixed_runs(self) -> int:
        return self.n * self.n_arms


def equal_power_fixed(design: SequentialDesign, diffs, sd: float, *, n_studies: int = 2000,
                      noise: str | Noise = "gaussian", seed: int = 0, n_cap: int = 200,
                      paired: bool = False) -> EqualPower:
    """The fixed design of equal power for true `diffs` and seed spread `sd` (see EqualPower); `paired`: both
    designs compare within each seed (then `noise` should carry the pairs' correlation)."""
    adaptive = simulate(design, diffs, sd, n_studies=n_studies, noise=noise, seed=seed, paired=paired)
    power = adaptive.power()
    need = power - np.sqrt(power * (1 - power) / n_studies)
    for n in range(2, n_cap + 1):
        fixed = simulate_fixed([n] * len(diffs), diffs, sd, alpha=design.alpha, margin=design.margin,
                               n_studies=n_studies, noise=noise, seed=seed, paired=paired)
        if np.all(fixed.power() >= need):
            break
    reached = bool(np.all(fixed.power() >= need))
    return EqualPower(power, fixed.power(), n, adaptive.expected_runs(), len(diffs) + 1, reached)
