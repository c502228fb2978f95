"""Design: adaptive seeds: the rounds, each comparison's seeds and why it stopped, and the seeds saved against
the fixed design of the same power (adaptive studies only: `ctx.extras["adaptive"]`)."""
from __future__ import annotations

import math

import numpy as np

from gptlab.report.blocks import Block, Bullets, Heading, Paragraph, Table
from gptlab.report.sections.context import ReportContext


def section(ctx: ReportContext) -> list[Block]:
    state = ctx.extras.get("adaptive")
    if state is None:
        return []
    d = state.design
    looks = ", ".join(map(str, d.looks))
    if state.paired:
        return _paired_blocks(ctx, state)
    blocks: list[Block] = [
        Heading("Design: adaptive seeds"),
        Paragraph(f"Seeds were added in rounds: {d.start} per variant, then {d.step} more only to the comparisons "
                  f"still open, up to {d.max} (looks at {looks} seeds). At each look a comparison is *different* "
                  f"when its repeated {1 - d.comparison_alpha:.1%} interval excludes 0, *equivalent* when its "
                  f"repeated {1 - 2 * d.comparison_alpha:.1%} interval lies within ±{d.margin:g}, else open. "
                  f"The boundaries spend alpha = {d.alpha:g} over the planned looks ({d.spending.replace('_', '-')}"
                  f"-type Lan-DeMets spending, t-corrected for few seeds), split over the {d.n_comparisons} "
                  "comparison(s) and passed on to the open ones as comparisons are decided (group-sequential "
                  "Holm: the levels above widen to alpha / the hypotheses not yet rejected), so both error rates "
                  "hold for the whole family however the comparisons stop. The results table shows these "
                  "sequential intervals; its adjusted p is scaled so that it falls below 0.05 exactly when the "
                  "boundary was crossed."),
        Table(*_rows(state))]
    return blocks + _closing(ctx, state)


def skew_sentence(k: int) -> str:
    """What the skewness correction assumes and guarantees, for a design of k comparisons (simulated in
    benchmarks/sequential_sim.md: with one comparison nothing is pooled and the skewed, wider case is not held)."""
    if k == 1:
        return ("with the comparison's own skewness (a single comparison has none to pool with); a boundary counts "
                "as crossed only where both tests cross it. With one comparison a skewed variant with a much wider "
                "spread can still raise the false *equivalent* rate (0.083 at alpha 0.05 in simulation).")
    return ("with the skewness pooled over the comparisons still open at that look (one left open uses its own); a "
            "boundary counts as crossed only "
            "where both tests cross it, so a skewed, wider variant does not raise the error rates (simulated). The "
            "pooling assumes the comparisons' differences share a shape: a symmetric comparison beside a skewed one "
            "borrows its caution and may need more seeds.")


def _paired_blocks(ctx: ReportContext, state) -> list[Block]:  # noqa: ANN001
    """The same section for a paired design (`compare: {pairing: auto | seed}`): what each column holds."""
    d = state.design
    looks = ", ".join(map(str, d.looks))
    dropped = sum(o.missing for o in state.outcomes.values())
    blocks: list[Block] = [
        Heading("Design: adaptive seeds"),
        Paragraph(f"Seeds were added in rounds: {d.start} per variant, then {d.step} more only to the comparisons "
                  f"still open, up to {d.max} (looks at {looks} seeds). **Pairing: by seed.** Every variant and the "
                  "baseline train the same seeds, and each look tests the per-seed differences (n - 1 degrees of "
                  "freedom) twice: by the paired t, and by Hall's (1992) skewness-corrected t, "
                  f"{skew_sentence(d.n_comparisons)} A seed that failed or diverged on either side drops "
                  f"its pair ({dropped} dropped here), and the boundary is that of the pairs actually present. At "
                  f"each look a comparison is *different* when its repeated interval at level 1 - {d.alpha:g}/k "
                  f"excludes 0, *equivalent* when its repeated 1 - 2·{d.alpha:g}/k interval lies within "
                  f"±{d.margin:g}, else open; k starts at the {d.n_comparisons} comparison(s) and falls as "
                  "comparisons are decided (group-sequential Holm), and the table gives the level each interval "
                  f"was computed at. The boundaries spend alpha = {d.alpha:g} over the information observed "
                  f"({d.spending.replace('_', '-')}-type Lan-DeMets spending, t-corrected for few seeds)."),
        Paragraph("In the results table and summary.csv: the difference is the estimate at the look that stopped "
                  "the comparison. **An estimate at an early stop is biased**: a comparison stops when its "
                  "difference looks large (or small) enough, so stopped estimates overstate large differences on "
                  "average; the repeated interval keeps its coverage. `p_value` is the sequential p of no "
                  "difference (stagewise ordering: earlier looks' crossings count as more extreme), 1 when the "
                  "comparison stopped equivalent before its test of no difference could reject; `p_nominal` is "
                  "the fixed-sample p of that look's test, the paired t and Hall's T together (not valid under "
                  "the stopping); `p_adjusted` is k × p_value, below 0.05 exactly when the boundary for "
                  "*different* was crossed, as `significant` says; `ci_level` is the interval's level. "
                  "effects.csv rows marked `sequential` carry these "
                  "numbers; rows marked `fixed-sample` are fixed-sample tests not valid under the stopping."),
        Table(*_rows(state, paired=True))]
    return blocks + _closing(ctx, state)


def _closing(ctx: ReportContext, state) -> list[Block]:  # noqa: ANN001
    """The runs-saved sentence and, while rounds remain, how to finish the study."""
    out: list[Block] = []
    saved = _saved(ctx, state)
    if saved:
        out.append(Paragraph(saved))
    if not state.complete:
        out.append(Bullets([f"The study is not finished: round {state.round} is still to run "
                            "(rerun the same `gptlab run` command)."]))
    return out


def _rows(state, paired: bool = False) -> tuple[list[str], list[list[str]]]:  # noqa: ANN001
    from gptlab.stats.adaptive import reported_p

    header = ["comparison", "stopped", "round", "seeds", "diff (repeated CI)", "why"]
    if paired:
        header = ["comparison", "stopped", "round", "pairs", "diff (repeated CI)", "level", "sequential p", "why"]
    rows = []
    for name, o in state.outcomes.items():
        r = o.result
        if o.stopped is None:
            why = "still open"
        elif o.stopped == "budget":
            why = "budget reached" + (f"; {o.missing} planned seed(s) without a value" if o.missing else "")
        else:
            why = f"decided {o.stopped} at the {r.n}-seed look" if r else o.stopped
        diff = "—" if r is None else f"{r.diff:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}]"
        if paired:
            k = (r.shares or (state.design.n_comparisons,) * 2)[0] if r else None
            level = "—" if r is None else f"{1 - state.design.alpha / k:.1%}"
            p = reported_p(o, state.design)
            p = "—" if p != p else f"{p:.3g}"
            dropped = (f"; {o.missing} pair(s) with a failed seed, dropped" if o.missing and o.stopped != "budget"
                       else "")
            if o.stopped == "equivalent" and r is not None:  # the interval that decided it, not the one shown
                ke = (r.shares or (state.design.n_comparisons,) * 2)[1]
                why += (f": its {1 - 2 * state.design.alpha / ke:.1%} interval [{r.eq_low:+.4f}, {r.eq_high:+.4f}] "
                        f"lies within ±{state.design.margin:g}")
            rows.append([f"{name} vs {o.pair.baseline}", o.stopped or "open", str(o.round or "—"),
                         "—" if r is None or r.used is None else f"{r.used:g}", diff, level, p,
                         why + dropped + held_clause(o)])
            continue
        rows.append([f"{name} vs {o.pair.baseline}", o.stopped or "open", str(o.round or "—"),
                     str(r.n if r else "—"), diff, why])
    return header, rows


def held_clause(o) -> str:  # noqa: ANN001 - Outcome
    """Where the skew correction kept a comparison open that the paired t alone would have stopped: the first
    such look, its verdict by the t, and the skewness that held it (pooled where several comparisons were open)."""
    if not o.held:
        return ""
    pairs, g, t_verdict, k = o.held[0]
    source = f"pooled over the {k} comparisons open there" if k > 1 else "its own"
    return (f"; the paired t alone would have called it {t_verdict} at {pairs:g} pairs, the skew correction "
            f"(skewness {g:.2g}, {source}) held it open")


def _saved(ctx: ReportContext, state) -> str:  # noqa: ANN001
    """Runs used against the fixed design of the same power: one seed list for every variant (a spec's
    `seeds: [...]`), as short as lets it reach, analysed the same way and simulated at the observed differences
    and pooled seed spread, this design's simulated power on every comparison (sequential_sim.equal_power_fixed)."""
    from gptlab.stats.sequential_sim import equal_power_fixed

    table = ctx.table.set_index("variant")
    outcomes = [o for o in state.outcomes.values() if o.result is not None]
    if len(outcomes) != len(state.outcomes):
        return ""
    sds = [np.nanmean([table["std"].get(o.pair.variant, math.nan), table["std"].get(o.pair.baseline, math.nan)])
           for o in outcomes]
    sd = float(np.nanmean(sds)) if sds else math.nan
    if not math.isfinite(sd) or sd <= 0:
        return ""
    d = state.design
    if state.paired:  # both designs paired, the seeds' noise correlated as the pairs were (mean over comparisons)
        from gptlab.stats.sequential_sim import Noise

        corr = float(np.nanmean([table["pair_corr"].get(o.pair.variant, math.nan) for o in outcomes]))
        noise = Noise(corr=float(np.clip(corr if math.isfinite(corr) else 0.0, -0.99, 0.99)))
        fixed = equal_power_fixed(d, [o.result.diff for o in outcomes], sd, noise=noise, paired=True)
    else:
        fixed = equal_power_fixed(d, [o.result.diff for o in outcomes], sd)
    used = sum(state.seeds.values())
    per_variant = ", ".join(f"{c} {n}" for c, n in state.seeds.items())
    change = f"saved {fixed.fixed_runs - used}" if fixed.fixed_runs >= used else f"used {used - fixed.fixed_runs} more"
    powers = ", ".join(f"{o.pair.variant} {p:.0%}" for o, p in zip(outcomes, fixed.power))
    text = (f"Runs trained: {used} (seeds per variant: {per_variant}). This design's power at the observed "
            f"differences and seed spread (sd {sd:.3g}; simulated): {powers}. ")
    if fixed.reached:
        kind = f"paired, seed correlation {noise.corr:.2f}, " if state.paired else ""
        text += (f"A fixed design ({kind}one seed list for every variant) with at least that power on every comparison "
                 f"needs {fixed.n} seeds per variant, {fixed.fixed_runs} runs: this study {change} "
                 f"({used / fixed.fixed_runs:.2f}x its runs)")
    else:
        text += (f"A fixed design (one seed list for every variant) does not reach that power on every comparison "
                 f"with {fixed.n} seeds per variant ({fixed.fixed_runs} runs)")
    budget = [budget_mde(table, o, d.n_comparisons, state.paired, sd) for o in outcomes if o.stopped == "budget"]
    return text + ("; " + "; ".join(budget) if budget else "") + "."


def budget_mde(table, o, n_comparisons: int, paired: bool, sd: float) -> str:  # noqa: ANN001 - frame, outcome
    """What a comparison that ran to the budget could have detected: paired, at its pairs and the sd of its per-seed
    differences (sd_a² + sd_b² - 2 r sd_a sd_b from the results table); else at its seeds and the pooled sd."""
    from gptlab.stats.sequential import mde_at

    n = o.result.n
    if paired:  # the pairs present at the last look (a failed seed drops its pair)
        pairs = int(o.result.used) if o.result.used else n
        sa, sb = (float(table["std"].get(v, math.nan)) for v in (o.pair.variant, o.pair.baseline))
        r = float(table["pair_corr"].get(o.pair.variant, math.nan))
        sd_d = math.sqrt(max(sa ** 2 + sb ** 2 - 2 * r * sa * sb, 0.0))
        if math.isfinite(sd_d):
            mde = mde_at(pairs, sd_d, n_comparisons=n_comparisons, paired=True)
            return f"{o.pair.variant}: at {pairs} pairs the smallest detectable difference is {mde:.3g}"
    return (f"{o.pair.variant}: at {n} seeds the smallest detectable difference is "
            f"{mde_at(n, sd, n_comparisons=n_comparisons):.3g}")
