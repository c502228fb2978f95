"""The tuning stage's choice and what it says about a variant: which candidate value is best, compared within
seed (each tuning seed trains at every candidate, so candidates are paired by seed like variants are), and how
sensitive the variant is to the tuned value.

Paired choice: with `pairing` auto or seed, the candidates are compared on the seeds that finished at every
candidate still in the running (a seed that failed at one candidate leaves the comparison, rather than letting
the candidates' means run over different seeds); the best mean over those seeds wins, which is the candidate
with the best mean per-seed difference against any other. Without such a common seed (or `pairing: none`), each
candidate's mean over its own finished seeds.

Sensitivity (Wortsman et al. 2023, "Small-scale proxies for large-scale Transformer training instabilities",
sec. 3.1, "LR sensitivity"): the mean over the grid of the metric at each candidate minus the best one, so 0
means every candidate is as good as the best; a diverged candidate (no finished seed) enters at the worst
finished value, as Wortsman et al. cap a diverged run's loss at that of the initialisation.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def common_seeds(values: Sequence[Mapping[int, float]]) -> list[int]:
    """The seeds with a finite value at every candidate that has any."""
    scored = [v for v in values if any(math.isfinite(x) for x in v.values())]
    if not scored:
        return []
    seeds = set.intersection(*({s for s, x in v.items() if math.isfinite(x)} for v in scored))
    return sorted(seeds)


def candidate_means(values: Sequence[Mapping[int, float]], pairing: str = "auto") -> tuple[list[float], list[int]]:
    """Each candidate's mean (NaN: nothing finished), over the common seeds when paired, and those seeds."""
    seeds = common_seeds(values) if pairing != "none" else []
    out = []
    for v in values:
        use = [v[s] for s in seeds] if seeds else [x for x in v.values() if math.isfinite(x)]
        out.append(sum(use) / len(use) if use and all(math.isfinite(x) for x in use) else math.nan)
    return out, seeds


def choose(values: Sequence[Mapping[int, float]], sign: int, pairing: str = "auto") -> int | None:
    """Index of the best candidate (`sign` +1: larger is better; ties: the first), None when nothing finished."""
    means, _ = candidate_means(values, pairing)
    scored = [(i, m) for i, m in enumerate(means) if math.isfinite(m)]
    if not scored:
        return None
    return max(scored, key=lambda im: (sign * im[1], -im[0]))[0]


def sensitivity(means: Sequence[float], sign: int) -> float:
    """Mean over the grid minus the best (in the 'worse' direction, so >= 0); a candidate without a value counts
    as the worst finished one; NaN when nothing finished."""
    finite = [m for m in means if math.isfinite(m)]
    if not finite:
        return math.nan
    worst = min(finite) if sign > 0 else max(finite)
    filled = [m if math.isfinite(m) else worst for m in means]
    best = max(finite) if sign > 0 else min(finite)
    return float(sign * (best - sum(filled) / len(filled)))
