"""The title, the question, its one-sentence answer and how the numbers were made."""
from __future__ import annotations

from gptlab.report.blocks import Block, Heading, Paragraph
from gptlab.report.sections.context import ReportContext


def section(ctx: ReportContext) -> list[Block]:
    return [Heading(ctx.experiment, 1), Heading("Question"), Paragraph(ctx.question or "No description given."),
            Paragraph(f"**Answer:** {ctx.headline}"), Paragraph(_method(ctx))]


def _method(ctx: ReportContext) -> str:
    """How the numbers were made, in one paragraph."""
    c = ctx.compare
    margin = ctx.table["margin"].dropna()
    margin_text = f"±{margin.iloc[0]:g}" if len(margin) else (
        f"±{c.margin:g}" if c.margin is not None else "±0.02" if c.is_loss else "±2% of the baseline")
    how = (" Seeds were added adaptively: the comparisons with the baseline were decided by the sequential design "
           "below, and their differences, intervals and p-values are its sequential ones, valid under that stopping "
           "(false *different* and false *equivalent* each at most 0.05 for the family)."
           if "adaptive" in ctx.extras else f" {ctx.tests}")
    intervals = ("the means' intervals are 95% t-intervals, the differences' at the level each comparison was "
                 "judged at (results table)" if "adaptive" in ctx.extras and "ci_level" in ctx.table
                 else "intervals are 95% t-intervals (unadjusted)")
    return (f"Compared: **{c.metric}** ({c.goal}, best value over each run), baseline: **{ctx.baseline}**. "
            f"Only finished runs enter the statistics; {intervals}, differences use "
            f"{_test(ctx)}, equivalence two one-sided tests (TOST) at the margin {margin_text}.{how}").strip()


def _test(ctx: ReportContext) -> str:
    """Which two-sample test the comparisons used."""
    used = set(ctx.table["pairing"].dropna()) if "pairing" in ctx.table else set()
    if "paired" not in used:
        return "Welch's t-test"
    if "unpaired" in used:
        return "the paired t-test on per-seed differences where both sides hold at least two seeds in common (section Pairing), else Welch's"
    return "the paired t-test on per-seed differences (section Pairing)"
