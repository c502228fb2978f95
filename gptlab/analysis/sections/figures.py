"""Every figure drawn for the experiment, with its caption."""
from __future__ import annotations

from gptlab.analysis.blocks import Block, Figure, Heading
from gptlab.analysis.sections.context import ReportContext


def section(ctx: ReportContext) -> list[Block]:
    if not ctx.figures:
        return []
    return [Heading("Figures"), *(Figure(f.png, f.svg, f.caption) for f in ctx.figures)]
