"""Adaptive seeds by simulation: error rates, power and expected seeds of the group-sequential design
(gptlab.stats.sequential) next to the fixed design of equal power and the naive peeking rule.

    python benchmarks/sequential_sim.py [--studies 4000] > benchmarks/results/...   (see sequential_sim.md)

Scenarios (K = 3 comparisons, seed sd 0.008 nats, margin 0.02, alpha 0.05, seeds 3..12 step 2):
  (a) every true diff 0: the family's false "different" rate;
  (b) true diffs +margin, +margin, -margin: the family's false "equivalent" rate;
  (c) diffs 0.03 (large), 0 (null), 0.003 (an equivalent pair): power and expected seeds, against the
      fixed design whose power calculation (statsmodels) asks for the adaptive design's simulated power.
  (d) the paired design (issue 30) where the unpaired one was shown to fail: unequal spreads, skew, both together,
      heavy tails, paired noise (corr 0, 0.6, 0.99), a partial null, failed seeds: (a) and (b) per case, beside the
      unpaired (Welch) design, the paired t without the skew correction (gptlab.stats.skew) and the mutant that does
      not split alpha (`--paired-only` runs this part alone);
  (e) what the skew correction costs where there is no skew: (c)'s diffs on Gaussian pairs (corr 0), power and
      expected runs with and without it.
"""
from __future__ import annotations

import argparse
import math

import numpy as np

from gptlab.stats.sequential import SequentialDesign, fixed_design_seeds
from gptlab.stats.sequential_sim import NOISES, Noise, equal_power_fixed, simulate, simulate_fixed

SD, MARGIN, ALPHA = 0.008, 0.02, 0.05
EFFICIENCY_DIFFS = (0.03, 0.0, 0.003)
# the "one effect near the margin": inside it (equivalence is hard to show) and just outside it
NEAR_MARGIN = ((0.03, 0.0, 0.015), (0.03, 0.0, 0.025))


def se(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 1e-12) / n)


def fmt(xs) -> str:
    return ", ".join(f"{x:.3f}" for x in xs)


def efficiency(design: SequentialDesign, diffs: tuple[float, ...], S: int) -> None:
    print(f"\n(c) diffs {diffs}: power = share of correct verdicts per comparison; seeds per "
          "variant, then the baseline\n")
    print("| noise | design | power | expected seeds | runs per study | runs ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    for noise in NOISES:
        ad = simulate(design, diffs, SD, n_studies=S, noise=noise, seed=3)
        power = ad.power()
        print(f"| {noise} | adaptive | {fmt(power)} | {fmt(ad.expected_seeds())} | {ad.expected_runs():.2f} | |")
        eq = equal_power_fixed(design, diffs, SD, n_studies=S, noise=noise, seed=3)
        print(f"| {noise} | **fixed, equal power, one seed list (n = {eq.n} for every variant)** | "
              f"{fmt(eq.fixed_power)} | {fmt([eq.n] * 4)} | {eq.fixed_runs} | "
              f"**{eq.adaptive_runs / eq.fixed_runs:.3f}** |")
        for label, target in (("equal power", power), ("power 0.9", np.full(3, 0.9))):
            ns = [fixed_design_seeds(d, SD, margin=MARGIN, n_comparisons=3, power=float(np.clip(p, 0.5, 0.999)))
                  for d, p in zip(diffs, target)]
            fx = simulate_fixed(ns, diffs, SD, alpha=ALPHA, margin=MARGIN, n_studies=S, noise=noise, seed=3)
            print(f"| {noise} | fixed, {label} by statsmodels per comparison (n = {ns}) | {fmt(fx.power())} | "
                  f"{fmt(fx.expected_seeds())} | {fx.expected_runs():.0f} | "
                  f"{ad.expected_runs() / fx.expected_runs():.3f} |")


# (d): the cases of tests/test_sequential_paired_sim.py; paired noise at seed sd SD / sqrt(1 - corr), so the
# per-seed differences keep one spread; the partial null has K = 4: three null (at the margin), one not
PAIRED_CASES = {
    "unequal spreads (variant sd 3x)": Noise(sd_ratio=3.0),
    "skewed variant (lognormal sigma 0.5)": Noise(skew=0.5),
    "unequal spreads and skew (3x, sigma 0.5)": Noise(sd_ratio=3.0, skew=0.5),
    "one skewed variant of three (3x, sigma 0.5 in one)": Noise(sd_ratio=3.0, skew=0.5, skew_in=(0,)),
    "heavy tails (t3)": Noise("t3"),
    "paired noise, corr 0": Noise(corr=0.0),
    "paired noise, corr 0.6": Noise(corr=0.6),
    "paired noise, corr 0.99": Noise(corr=0.99),
    "partial null (K = 4)": Noise(),
    "failed seeds (5% of runs)": Noise(fail=0.05),
}


def paired_cases(S: int) -> None:
    limit = ALPHA + 3 * se(ALPHA, S)
    print(f"\n(d) paired design, {S} studies per case; family rates over the null (at-margin) comparisons; "
          f"limit {limit:.4f}\n")
    print("| case | paired: false different | paired: false equivalent | unpaired (Welch) | paired t alone (no_skew) "
          "| mutant no_split |")
    print("| --- | --- | --- | --- | --- | --- |")
    for case, noise in PAIRED_CASES.items():
        sd = SD / math.sqrt(1 - noise.corr) if noise.corr else SD
        k = 4 if case.startswith("partial") else 3
        design = SequentialDesign(start=3, max=12, step=2, alpha=ALPHA, margin=MARGIN, n_comparisons=k)
        null, at = ((0.0, 0.0, 0.0, 0.06), (MARGIN, MARGIN, -MARGIN, 0.0)) if k == 4 else \
            ((0.0,) * 3, (MARGIN, MARGIN, -MARGIN))

        def rates(**kw) -> tuple[float, float]:
            a = simulate(design, null, sd, n_studies=S, noise=noise, seed=1, **kw)
            b = simulate(design, at, sd, n_studies=S, noise=noise, seed=2, **kw)
            return (float((a.verdict[:, :3] == "different").any(1).mean()),
                    float((b.verdict[:, :3] == "equivalent").any(1).mean()))

        d, e = rates(paired=True)
        welch = "—" if noise.fail else "{:.4f} / {:.4f}".format(*rates())  # with failures 0.3 froze the look
        td, te = rates(paired=True, mutant="no_skew")
        # heavy tails: the skew correction keeps the rates so low that the unsplit design stays near the bound, so
        # the unsplit plain paired t is the mutant there (as in tests/test_sequential_paired_sim.py)
        mutant = "no_split+no_skew" if noise.kind == "t3" else "no_split"
        md, me = rates(paired=True, mutant=mutant)
        ok = lambda x: f"{x:.4f} ± {se(x, S):.4f} {'ok' if x <= limit else 'FAIL'}"  # noqa: E731
        print(f"| {case} | {ok(d)} | {ok(e)} | {welch} | {td:.4f} / {te:.4f} | {md:.4f} / {me:.4f}"
              f"{' (' + mutant + ')' if mutant != 'no_split' else ''} "
              f"{'fails, as it must' if max(md, me) > limit else 'PASSES?'} |", flush=True)
    skew_cost(S)


def skew_cost(S: int) -> None:
    design = SequentialDesign(start=3, max=12, step=2, alpha=ALPHA, margin=MARGIN, n_comparisons=3)
    print(f"\n(e) the skew correction on Gaussian pairs (corr 0, sd {SD}), {S} studies: power per comparison and "
          "expected runs per study\n")
    print("| diffs | paired, skew-corrected (the design) | paired t alone (no_skew) |")
    print("| --- | --- | --- |")
    for diffs in (EFFICIENCY_DIFFS, *NEAR_MARGIN):
        cells = []
        for mutant in (None, "no_skew"):
            out = simulate(design, diffs, SD, n_studies=S, noise=Noise(corr=0.0), seed=3, paired=True, mutant=mutant)
            cells.append(f"{fmt(out.power())}; {out.expected_runs():.2f} runs")
        print(f"| {diffs} | {cells[0]} | {cells[1]} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--studies", type=int, default=4000)
    ap.add_argument("--spending", nargs="+", default=["pocock", "obrien_fleming"])
    ap.add_argument("--paired-only", action="store_true", help="only (d), the paired design's cases")
    args = ap.parse_args()
    S = args.studies
    limit = ALPHA + 3 * se(ALPHA, S)
    print(f"studies per scenario: {S}; pass limit for an error rate: alpha + 3 SE = {limit:.4f}\n")
    if args.paired_only:
        paired_cases(S)
        return
    for spending in args.spending:
        design = SequentialDesign(start=3, max=12, step=2, alpha=ALPHA, margin=MARGIN, n_comparisons=3,
                                  spending=spending)
        print(f"## spending: {spending}; looks {list(design.looks)}")
        print("nominal one-sided levels per look: different "
              f"[{', '.join(f'{x:.4f}' for x in design.thresholds()[0])}], "
              f"equivalent [{', '.join(f'{x:.4f}' for x in design.thresholds()[1])}]\n")
        print("| noise | (a) false different, family | naive rule (a) | (b) false equivalent, family |")
        print("| --- | --- | --- | --- |")
        for noise in NOISES:
            a = simulate(design, (0.0,) * 3, SD, n_studies=S, noise=noise, seed=1).family_rate("different")
            naive = simulate(design, (0.0,) * 3, SD, n_studies=S, noise=noise, seed=1, rule="naive")
            b = simulate(design, (MARGIN, MARGIN, -MARGIN), SD, n_studies=S, noise=noise, seed=2)
            nv, bv = naive.family_rate("different"), b.family_rate("equivalent")
            print(f"| {noise} | {a:.4f} ± {se(a, S):.4f} {'ok' if a <= limit else 'FAIL'} | {nv:.4f} "
                  f"{'fails, as it must' if nv > limit else 'PASSES?'} | {bv:.4f} ± {se(bv, S):.4f} "
                  f"{'ok' if bv <= limit else 'FAIL'} |")
        for diffs in (EFFICIENCY_DIFFS, *NEAR_MARGIN):
            efficiency(design, diffs, S)
        print()
    paired_cases(S)


if __name__ == "__main__":
    main()
