"""A report is its sections, in the order of `SECTIONS`; each is written once, as blocks.

A section is a function `section(ctx: ReportContext) -> list[Block]` in its own module here: it
reads the analysis from `ctx` (study designs put their own data in `ctx.extras`) and returns
headings, paragraphs, tables and figures from `gptlab.report.blocks`, or [] when it has nothing to
say. `gptlab.report.blocks` renders every block to Markdown and HTML; a section never formats.

To add one: write `gptlab/report/sections/<name>.py` with `section(ctx)`, import it below and put
`<name>.section` into `SECTIONS` where it belongs in the report. This list is the only place that
decides the order.
"""
from __future__ import annotations

from typing import Callable

from gptlab.report.blocks import Block
from gptlab.report.sections import (adaptive, effects, figures, findings, pairing, question, results, samples, scale,
                                   setup, tuning)
from gptlab.report.sections.context import ReportContext

Section = Callable[[ReportContext], "list[Block]"]

SECTIONS: list[Section] = [
    question.section,  # title, question, answer, method
    setup.section,
    adaptive.section,  # adaptive seeds only: the rounds and why each comparison stopped
    tuning.section,  # tuned studies only: the value each variant is compared at
    results.section,
    pairing.section,  # paired comparisons only: pairs, correlation, seeds saved
    effects.section,  # several factors only
    scale.section,  # scale studies only: the effect against model size
    figures.section,
    findings.section,
    samples.section,
]


def report_blocks(ctx: ReportContext) -> list[Block]:
    """The whole report: every section's blocks, in `SECTIONS` order."""
    return [block for section in SECTIONS for block in section(ctx)]


__all__ = ["SECTIONS", "ReportContext", "Section", "report_blocks"]
