"""An adaptive-seeds study replayed from its stored runs: which look each comparison reached, its verdict,
and how many seeds each cell needs next.

The replay is a pure function of the design and the stored values, so the planner (what to train next) and
the report (what was decided, when, and why it stopped) agree, and a study killed at any point resumes with
the verdicts an uninterrupted one would reach: look k uses exactly the first n_k seeds of each side.

Paired (`compare: {pairing: auto | seed}`, the planner gives both sides the same seeds): each look's statistic is
the one-sample t of the per-seed differences (n - 1 df) together with Hall's skewness-corrected T of them
(gptlab.stats.skew); `pairing: none`: Welch's, as 0.3 did.

A seed that failed or diverged has no value: its pair is dropped (Welch: the seed) and the comparison goes on
with the others, its boundary at the information actually observed (pairs present / max; Lan & DeMets 1983) so
the alpha spent follows the information, not the calendar. `Outcome.missing` counts the dropped pairs (Welch:
seeds); a look with fewer than two pairs, or no more than the comparison's last tested look, tests nothing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from gptlab.stats.sequential import LookResult, SequentialDesign, decide_family, rejects

STOPPED = ("different", "equivalent", "budget")  # summary.csv's `stopped`


@dataclass(frozen=True)
class Pair:
    variant: str  # cell names
    baseline: str


@dataclass
class Outcome:
    pair: Pair
    result: LookResult | None = None  # the last look it was judged at
    round: int | None = None  # 1-based round it was decided in (or ended at the budget)
    stopped: str | None = None  # one of STOPPED; None: still open
    missing: int = 0  # paired: pairs with a seed without a value (failed or diverged) at its last look; else seeds
    fractions: list[float] = field(default_factory=list)  # information fraction at each look it was tested
    held: list[tuple[float, float, str, int]] = field(default_factory=list)  # paired: (pairs, skewness, the t's
    # verdict, comparisons open) at each look where the paired t alone would have stopped it and Hall's T did not


@dataclass
class Replay:
    design: SequentialDesign
    outcomes: dict[str, Outcome]  # variant cell -> its comparison
    seeds: dict[str, int]  # cell -> seeds planned so far
    round: int  # the round to train next (or the last one, when complete)
    complete: bool
    rounds: list[dict[str, int]] = field(default_factory=list)  # seeds per cell planned at each round
    paired: bool = False  # each look's statistic was on per-seed differences

    def open(self) -> list[str]:
        return [name for name, o in self.outcomes.items() if o.stopped is None]


def reported_p(o: Outcome, design: SequentialDesign) -> float:
    """The p of diff = 0 a paired adaptive report gives for a comparison: its stagewise sequential p at the look
    that stopped it (`sequential.stagewise_p`), or 1 when it stopped equivalent at an earlier look than the last
    without its test of no difference crossing (that test was abandoned, never rejecting: a p below the level
    there would contradict the verdict, and any continuation that never crosses has p above the level)."""
    r = o.result
    if r is None:
        return math.nan
    crossed = bool(rejects(design, r)[0])
    return 1.0 if o.stopped == "equivalent" and not crossed and not r.final else r.p_sequential


def pairs(cells: list[tuple[str, str | None]], baseline: str) -> list[Pair]:
    """Each non-baseline cell (name, variant) against the baseline's cell at the same size and grid point
    (the cell whose name has the baseline's name in place of the variant's)."""
    names = {name for name, _ in cells}
    out = []
    for name, variant in cells:
        if variant is not None and variant != baseline:
            twin = baseline + name[len(variant):]
            if twin in names:
                out.append(Pair(name, twin))
    return out


def design_of(seeds: dict, margin: float, n_comparisons: int) -> SequentialDesign:
    """The sequential design of a spec's `seeds: {start, max, step}`."""
    return SequentialDesign(int(seeds["start"]), int(seeds["max"]), int(seeds["step"]), margin=margin,
                            n_comparisons=max(1, n_comparisons))


def replay(design: SequentialDesign, pairs: list[Pair], ended, values, *, sign: int = -1,
           paired: bool = False) -> Replay:
    """`ended(cell, seed) -> bool` (the run finished, failed or diverged); `values(cell, seed) -> float` (nan
    unless finished). Seeds of a cell are 0, 1, ... in order. `paired`: compare within each seed."""
    cells = list(dict.fromkeys([c for p in pairs for c in (p.variant, p.baseline)]))
    looks = design.looks
    seeds = {c: looks[0] for c in cells}
    outcomes = {p.variant: Outcome(p) for p in pairs}
    rounds: list[dict[str, int]] = []
    for k, n in enumerate(looks):
        rounds.append(dict(seeds))
        if not all(ended(c, s) for c in cells for s in range(seeds[c])):
            return Replay(design, outcomes, seeds, k + 1, False, rounds, paired)
        looked = {}
        for name, out in outcomes.items():
            if out.stopped is not None:
                continue
            a = [values(name, s) for s in range(n)]
            b = [values(out.pair.baseline, s) for s in range(n)]
            out.missing = sum(math.isnan(x) or math.isnan(y) for x, y in zip(a, b)) if paired else \
                sum(math.isnan(x) for x in a + b)
            out.result, out.round = None, k + 1
            looked[name] = (a, b)
        flags = [rejects(design, o.result) for o in outcomes.values() if o.stopped is not None and o.result]
        decided = (sum(f[0] for f in flags), sum(f[1] for f in flags))
        history = {name: tuple(outcomes[name].fractions) for name in looked}
        for name, result in decide_family(design, looked, sign=sign, decided=decided, paired=paired,
                                          history=history).items():
            outcomes[name].result = result
            if math.isfinite(result.p_boundary):  # the look tested it: its information is spent
                outcomes[name].fractions.append(result.used / design.max)
            if result.verdict != "open":
                outcomes[name].stopped = result.verdict
            elif result.t_verdict not in (None, "open"):
                outcomes[name].held.append((result.used, result.skew, result.t_verdict, len(looked)))
        still = [o for o in outcomes.values() if o.stopped is None]
        if not still or k == len(looks) - 1:
            for o in still:
                o.stopped = "budget"
            return Replay(design, outcomes, seeds, k + 1, True, rounds, paired)
        for o in still:  # the next look: more seeds only where the verdict is still open
            seeds[o.pair.variant] = looks[k + 1]
            seeds[o.pair.baseline] = looks[k + 1]
    raise AssertionError("unreachable: the last look ends the replay")
