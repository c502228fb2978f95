"""The index of all experiments, as blocks: reports/index.md and index.html.

An experiment's own report is assembled in `gptlab.report.sections` and rendered by
`gptlab.report.blocks`; this page uses the same blocks and renderers.
"""
from __future__ import annotations

from gptlab.report.blocks import Block, Bullets, Heading, render_html, render_markdown


def render_index(entries: list[tuple[str, str, bool]]) -> tuple[str, str]:
    """(markdown, html) of reports/index: (experiment, headline, has_report) per line."""
    def page(ext: str) -> list[Block]:  # each format links the report in its own format
        return [Heading("Experiments", 1),
                Bullets([f"[{name}]({name}/report.{ext}): {line}" if linked else f"{name}: {line}"
                         for name, line, linked in entries])]

    return render_markdown(page("md")), render_html(page("html"), "gptlab experiments")
