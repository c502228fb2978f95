"""The findings: the headline first, then one sentence per result worth saying."""
from __future__ import annotations

from gptlab.report.blocks import Block, Bullets, Heading
from gptlab.report.sections.context import ReportContext


def section(ctx: ReportContext) -> list[Block]:
    return [Heading("Findings"), Bullets(ctx.findings)] if ctx.findings else []
