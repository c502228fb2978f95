"""Every figure drawn for the experiment, with its caption."""
from __future__ import annotations

from gptlab.report.blocks import Block, Figure, Heading
from gptlab.report.sections.context import ReportContext


def section(ctx: ReportContext) -> list[Block]:
    if not ctx.figures:
        return []
    return [Heading("Figures"), *(Figure(f.png, f.svg, f.caption) for f in ctx.figures)]
