"""Scale: does each effect survive model size? (scale studies only: `ctx.extras["scale"]` holds the
`gptlab.stats.scale.ScaleResult`, with its figures when drawn by `scale_figures.with_figures`)."""
from __future__ import annotations

import math

from gptlab.report.blocks import Block, Bullets, Figure, Heading, Paragraph, Table
from gptlab.stats.compute import count
from gptlab.report.findings import decimals, fmt
from gptlab.stats.inference import CORRECTION_NAMES
from gptlab.stats.scale import ScaleResult
from gptlab.report.scale_text import EXTRAPOLATION, scale_extrapolation, scale_findings
from gptlab.report.sections.context import ReportContext
from gptlab.report.sections.results import p_cell


def section(ctx: ReportContext) -> list[Block]:
    result = ctx.extras.get("scale")
    if not isinstance(result, ScaleResult):
        return []
    sizes = ", ".join(f"{s} ({count(result.size_params[s])} parameters)" for s in result.sizes)
    paired = result.pairing == "paired"
    test = "paired by seed: the per-seed differences' t" if paired else "Welch"
    method = (f"The study at {len(result.sizes)} sizes: {sizes}. Per size, each variant - {result.baseline} "
              f"in {result.metric} ({test}, 95% CI; equivalent: TOST within ±{result.margin:g}); ")
    if result.model_formula and paired:
        method += (f"the slope of each effect per e-fold of N from an OLS of its per-seed differences on ln N "
                   f"(`{result.model_formula}`, at least {result.model_df_resid:.0f} residual df); ")
    elif result.model_formula:
        method += (f"the slope of each effect per e-fold of N from one OLS model of the per-run metric "
                   f"(`{result.model_formula}`, seeds as replicates, {result.model_df_resid:.0f} residual df); ")
    method += (f"all tests adjusted together ({CORRECTION_NAMES[result.correction]}); * significant at "
               f"adjusted p < {result.alpha:g}.")
    budget = ctx.extras.get("scale_budget")
    blocks: list[Block] = [Heading("Scale"), Paragraph(method + (f" {budget}" if budget else "")),
                           Table(*effects_table(result)),
                           Bullets(scale_findings(result))]
    if result.power_laws:
        blocks += [Paragraph(f"Power laws of {result.metric} per variant (95% CIs), against parameters N and "
                             "training FLOPs C = 6 N D:"), Table(*power_law_table(result))]
    extrapolation = scale_extrapolation(result)
    if extrapolation:
        blocks += [Heading(EXTRAPOLATION, 3),
                   Bullets([s.removeprefix(f"{EXTRAPOLATION}: ") for s in extrapolation])]
    blocks += [Figure(f.png, f.svg, f.caption) for f in result.figures]
    return blocks


def effects_table(result: ScaleResult) -> tuple[list[str], list[list[str]]]:
    """One row per comparison and size, then its slope row."""
    header = ["comparison", "at", "N", "estimate (95% CI)", "p", "p adj.", "equivalent", "verdict"]
    rows = []
    for comp in result.comparisons:
        term = f"{comp.variant} vs {comp.baseline}"
        for e in comp.effects:
            rows.append([term, e.size, count(e.n_params), _estimate(e.estimate, e.ci_low, e.ci_high, e.significant),
                         p_cell(e.p_value), p_cell(e.p_adjusted), "yes" if e.equivalent else "", ""])
        if comp.slope:
            s = comp.slope
            rows.append([term, "slope per e-fold of N", "", _estimate(s.estimate, s.ci_low, s.ci_high, s.significant),
                         p_cell(s.p_value), p_cell(s.p_adjusted), "", comp.verdict])
        elif rows:
            rows[-1][-1] = comp.verdict
    return header, rows


def power_law_table(result: ScaleResult) -> tuple[list[str], list[list[str]]]:
    header = ["variant", "form", "alpha (95% CI)", "N_c or C_c", "E (95% CI)", "runs", "sizes"]
    rows = []
    for f in result.power_laws:
        irreducible = f.form == "irreducible"
        rows.append([f.variant, f.formula, _estimate(f.alpha, f.alpha_low, f.alpha_high, None),
                     f"{f.x_c:.3g}" if math.isfinite(f.x_c) else "",
                     _estimate(f.e, f.e_low, f.e_high, None) if irreducible else "", str(f.n_runs), str(f.n_sizes)])
    return header, rows


def _estimate(value: float, low: float, high: float, significant: bool | None) -> str:
    places = decimals(value, low, high)
    text = f"{value:+.{places}f}" if significant is not None else fmt(value, places)
    if math.isfinite(low) and math.isfinite(high):
        text += f" [{fmt(low, places)}, {fmt(high, places)}]" + (" *" if significant else "")
    return text
