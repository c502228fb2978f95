"""Simulated studies for the adaptive-seed design: its error rates, power and expected seeds, next to
the fixed-n design and the naive "stop at the first p < 0.05" rule. Numpy only, no training.

One study: a baseline and K variants whose per-seed metric is true_diff + noise. The adaptive, fixed and
naive rules see the same draws when given the same `seed` (common random numbers), so their
differences are not sampling noise between them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gptlab.analysis.sequential import SequentialDesign, decide_batch

NOISES = ("gaussian", "t3")


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
    rng = np.random.default_rng(seed)
    baseline = draw(rng, (n_studies, n_max), sd, noise)
    variants = np.asarray(diffs, float)[None, :, None] + draw(rng, (n_studies, len(diffs), n_max), sd, noise)
    return baseline, variants


def simulate(design: SequentialDesign, diffs, sd: float, *, n_studies: int = 2000, noise: str = "gaussian",
             seed: int = 0, rule: str = "adaptive") -> SimOutcome:
    """The adaptive design (rule="adaptive"), or the naive rule that calls a comparison "different" at
    the first look with a Welch p < design.alpha and never calls it equivalent (rule="naive")."""
    if rule not in ("adaptive", "naive"):
        raise ValueError(f"unknown rule {rule!r}; valid: adaptive, naive")
    baseline, variants = _data(diffs, sd, design.max, n_studies, noise, seed)
    shape = (n_studies, len(diffs))
    verdict, estimate = np.full(shape, "open", dtype="<U10"), np.full(shape, np.nan)
    seeds = np.full(shape, design.max)
    for n in design.looks:
        for k in range(len(diffs)):
            rows = np.flatnonzero(verdict[:, k] == "open")
            if not rows.size:
                continue
            b = decide_batch(design, variants[rows, k, :n], baseline[rows, :n])
            says = b.verdict if rule == "adaptive" else np.where(b.p_value < design.alpha, "different", "open")
            stop = says != "open"
            verdict[rows[stop], k], seeds[rows[stop], k] = says[stop], n
            estimate[rows, k] = b.diff
    # the baseline runs as long as its longest-running comparison
    return SimOutcome(tuple(diffs), design.margin, verdict, estimate, seeds, seeds.max(1))


def simulate_fixed(ns, diffs, sd: float, *, alpha: float, margin: float, n_studies: int = 2000,
                   noise: str = "gaussian", seed: int = 0) -> SimOutcome:
    """The fixed design: comparison k runs ns[k] seeds per arm, one look (Welch test and TOST at
    alpha / K), the baseline runs max(ns). Same draws as `simulate` with the same seed when
    max(ns) <= the adaptive design's max."""
    K, n_max = len(diffs), max(ns)
    baseline, variants = _data(diffs, sd, n_max, n_studies, noise, seed)
    verdict, estimate = np.empty((n_studies, K), dtype="<U10"), np.empty((n_studies, K))
    for k, n in enumerate(ns):
        one_look = SequentialDesign(start=n, max=n, step=1, alpha=alpha, margin=margin, n_comparisons=K)
        b = decide_batch(one_look, variants[:, k, :n], baseline[:, :n])
        verdict[:, k], estimate[:, k] = b.verdict, b.diff
    seeds = np.broadcast_to(np.asarray(ns), (n_studies, K))
    return SimOutcome(tuple(diffs), margin, verdict, estimate, seeds, np.full(n_studies, n_max))
