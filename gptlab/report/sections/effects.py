"""Main effects, interactions and one-factor comparisons (several factors only; the rows of effects.csv)."""
from __future__ import annotations

import math

from gptlab.report.blocks import Block, Heading, Paragraph, Table
from gptlab.report.findings import decimals, fmt
from gptlab.report.sections.context import ReportContext
from gptlab.report.sections.results import p_cell


def section(ctx: ReportContext) -> list[Block]:
    if not len(ctx.effects):
        return []
    return [Heading("Effects"), Paragraph("Estimates are level - reference in metric units (also in effects.csv)."),
            Table(*effects_rows(ctx))]


def effects_rows(ctx: ReportContext) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the effects table."""
    header = ["term", "contrast", "estimate (95% CI)", "p", "p adj."]
    rows = []
    for _, r in ctx.effects.iterrows():
        places = decimals(r["estimate"], r["ci_low"], r["ci_high"])
        est = f"{r['estimate']:+.{places}f}"
        if math.isfinite(r["ci_low"]):
            est += f" [{fmt(r['ci_low'], places)}, {fmt(r['ci_high'], places)}]" + (" *" if r["significant"] else "")
        rows.append([str(r["term"]), str(r["contrast"]), est, p_cell(r["p_value"]), p_cell(r["p_adjusted"])])
    return header, rows
