"""Text generated from each variant's best seed (or why there is none)."""
from __future__ import annotations

from gptlab.report.blocks import Block, Code, Heading, Paragraph
from gptlab.report.sections.context import ReportContext


def section(ctx: ReportContext) -> list[Block]:
    if not ctx.samples:
        return []
    out: list[Block] = [Heading("Samples"),
                        Paragraph(f"Generated from each variant's best seed ({ctx.sample_settings}).")]
    for smp in ctx.samples:
        source = f" (run {smp.run})" if smp.run else ""
        out.append(Paragraph(f"**{smp.variant}**{source}:"))
        out.append(Code(smp.text) if smp.text is not None else Paragraph(f"{smp.why[0].upper()}{smp.why[1:]}."))
    return out
