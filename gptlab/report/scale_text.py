"""The scale study in words: one verdict sentence per comparison, the ranking sentence, and the
extrapolation sentences, which are labelled as such and never counted among the findings."""
from __future__ import annotations

import math

from gptlab.stats.compute import count


VERDICTS = ("holds", "grows", "shrinks", "vanishes", "reverses", "no effect", "unclear")
EXTRAPOLATION = "Extrapolation (not a finding)"


def num(x: float, signed: bool = False) -> str:
    """3 decimals, more for small numbers (two significant digits); 'n/a' for NaN."""
    if not math.isfinite(x):
        return "n/a"
    decimals = 3 if x == 0 or abs(x) >= 0.01 else min(6, 1 - math.floor(math.log10(abs(x))))
    return f"{x:+.{decimals}f}" if signed else f"{x:.{decimals}f}"


def interval(lo: float, hi: float) -> str:
    return f"[{num(lo)}, {num(hi)}]"


def verdict_sentence(result: "ScaleResult", comp: "Comparison") -> str:
    """'post vs pre: the effect shrinks with size: slope +0.031 per e-fold of N [0.012, 0.050] (...)'."""
    head = f"{comp.variant} vs {comp.baseline}"
    per_size = ", ".join(f"{e.size} {num(e.estimate, True)}{'*' if e.significant else ''}" for e in comp.effects)
    effects = f"effect {per_size} (* significant)" if per_size else "no size with runs on both sides"
    slope = comp.slope
    slope_text = ""
    if slope:
        slope_text = (f"slope {num(slope.estimate, True)} per e-fold of N {interval(slope.ci_low, slope.ci_high)}"
                      f"{'' if slope.significant else ', not significant'}")
    largest = result.sizes[-1]
    v = comp.verdict
    if v in ("grows", "shrinks"):
        return f"{head}: the effect {v} with size: {slope_text}; {effects}."
    if v == "holds":
        return f"{head}: the effect holds at every size: {effects}" + (f"; {slope_text}." if slope else ".")
    if v == "vanishes":
        return (f"{head}: the effect vanishes with size: significant below {largest}, equivalent within "
                f"±{num(result.margin)} at {largest}; {effects}" + (f"; {slope_text}." if slope else "."))
    if v == "reverses":
        return f"{head}: the effect reverses with size: {effects}" + (f"; {slope_text}." if slope else ".")
    if v == "no effect":
        return (f"{head}: no effect at any size (equivalent within ±{num(result.margin)} at every size); "
                f"{effects}" + (f"; {slope_text}." if slope else "."))
    missing = [s for s in result.sizes if s not in {e.size for e in comp.effects}]
    if missing:
        why = f"no finished runs on both sides at {', '.join(missing)}"
    elif not any(math.isfinite(e.p_value) for e in comp.effects):
        why = "no test possible: fewer than 2 seeds a side, or seeds that agree exactly"
    else:
        why = "neither a consistent effect nor its absence"
    return f"{head}: unclear ({why}); {effects}" + (f"; {slope_text}." if slope else ".")


def ranking_sentence(ranking: "Ranking") -> str:
    """Whether the best variant at the smallest size is also best at the largest, with Kendall's tau."""
    small, large = ranking.smallest, ranking.largest
    best_small, best_large = ranking.best_smallest, ranking.best_largest
    if ranking.same_best:
        head = f"The best variant at {small} ({best_small}) is also best at {large}"
    else:
        head = f"The best variant at {small} ({best_small}) is not best at {large} ({best_large} is)"
    n = len(set(ranking.order[small]) & set(ranking.order[large]))
    if math.isfinite(ranking.tau):
        tail = (f"; Kendall's tau between the rankings by mean at {small} and {large} is {ranking.tau:.2f} "
                f"(p = {ranking.p_value:.2g}, {n} variants)")
    else:
        tail = ""
    return head + tail + "."


def prediction_sentence(result: "ScaleResult", comp: "Comparison") -> str:
    pred = comp.prediction
    assert pred is not None
    where = (f"beyond the sizes run ({count(min(result.size_params.values()))} to "
             f"{count(max(result.size_params.values()))} parameters)" if pred.extrapolated
             else "within the sizes run (an interpolation)")
    return (f"{EXTRAPOLATION}: at N = {count(pred.n_params)} parameters, {where}, the model of the effect "
            f"against log N predicts {comp.variant} - {comp.baseline} = {num(pred.estimate, True)} "
            f"(95% CI of the mean {interval(pred.ci_low, pred.ci_high)}; 95% prediction interval for one new run "
            f"of each {interval(pred.pi_low, pred.pi_high)}); it assumes the effect stays linear in log N.")


def scale_findings(result: "ScaleResult") -> list[str]:
    """Verdict sentences, then the ranking sentence (findings, not the extrapolation)."""
    out = [verdict_sentence(result, c) for c in result.comparisons]
    if result.ranking:
        out.append(ranking_sentence(result.ranking))
    return out


def scale_extrapolation(result: "ScaleResult") -> list[str]:
    """'Extrapolation (not a finding): ...' sentences, one per comparison predicted."""
    return [prediction_sentence(result, c) for c in result.comparisons if c.prediction]
