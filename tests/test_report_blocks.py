"""Report blocks: each renders in Markdown and HTML; sections come and go through one list."""
from __future__ import annotations

from pathlib import Path

import pytest
from test_analysis_store import make_ablation_store

from gptlab.report import sections
from gptlab.report.blocks import (Bullets, Code, Figure, Heading, Paragraph, Table, inline_html, render_html,
                                    render_markdown)
from gptlab.report.build import write_reports

PNG = b"\x89PNG\r\n\x1a\nfake"


@pytest.fixture()
def figure(tmp_path: Path) -> Figure:
    (tmp_path / "figures").mkdir()
    png, svg = tmp_path / "figures" / "curves.png", tmp_path / "figures" / "curves.svg"
    png.write_bytes(PNG)
    svg.write_text("<svg/>")
    return Figure(png, svg, "Loss <by> step")


def test_each_block_renders_in_both_formats(figure: Figure) -> None:
    cases = [
        (Heading("Results"), "## Results", "<h2>Results</h2>"),
        (Heading("exp", 1), "# exp", "<h1>exp</h1>"),
        (Paragraph("**Answer:** `a<b` wins"), "**Answer:** `a<b` wins",
         "<p><strong>Answer:</strong> <code>a&lt;b</code> wins</p>"),
        (Bullets(["one", "two & three"]), "- one\n- two & three", "<ul><li>one</li><li>two &amp; three</li></ul>"),
        (Table(["a", "b|c"], [["1", "x|y"]]), "| a | b\\|c |\n|---|---|\n| 1 | x\\|y |",
         "<table><thead><tr><th>a</th><th>b|c</th></tr></thead><tbody><tr><td>1</td><td>x|y</td></tr></tbody></table>"),
        (figure, "![Loss <by> step](figures/curves.png)\n\n*Loss <by> step* ([SVG](figures/curves.svg))",
         '<figcaption>Loss &lt;by&gt; step</figcaption>'),
        (Code("\nline ``` <one>\nline two"), "```text\n\nline ` ` ` <one>\nline two\n```",
         "<pre><code class=\"language-text\">\nline ``` &lt;one&gt;\nline two</code></pre>"),
    ]
    for block, md, html in cases:
        assert render_markdown([block]) == md + "\n"
        page = render_html([block], "t")
        assert html in page, page
        assert page.startswith("<!DOCTYPE html>") and "<title>t</title>" in page


def test_figure_html_embeds_the_png(figure: Figure) -> None:
    import base64

    assert f'src="data:image/png;base64,{base64.b64encode(PNG).decode()}"' in render_html([figure], "t")


def test_blocks_are_separated_by_one_blank_line_and_empty_ones_leave_nothing() -> None:
    blocks = [Heading("A"), Bullets([]), Paragraph("x"), Table(["h"], [])]
    assert render_markdown(blocks) == "## A\n\nx\n\n| h |\n|---|\n"
    assert "<ul>" not in render_html(blocks, "t")


def test_inline_markup_is_escaped_and_nested() -> None:
    assert inline_html("**`x`** < [b](b/report.html) *") == (
        '<strong><code>x</code></strong> &lt; <a href="b/report.html">b</a> *')


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_ablation_store(tmp_path_factory.mktemp("store") / "runs")


def _reports(store: Path, out: Path) -> tuple[str, str]:
    write_reports(store, out, ["pos"])
    return (out / "pos" / "report.md").read_text(), (out / "pos" / "report.html").read_text()


def test_a_section_added_to_the_list_appears_in_both_outputs(store: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def tuning(ctx: sections.ReportContext) -> list:
        return [Heading("Tuning"), Paragraph(f"Tuned `lr` for **{ctx.experiment}**.")]

    order = list(sections.SECTIONS)
    monkeypatch.setattr(sections, "SECTIONS", [*order[:2], tuning, *order[2:]])
    md, html = _reports(store, tmp_path)
    assert "## Setup" in md.split("## Tuning\n\nTuned `lr` for **pos**.\n\n## Results")[0]
    assert "<h2>Tuning</h2>\n<p>Tuned <code>lr</code> for <strong>pos</strong>.</p>\n<h2>Results</h2>" in html


def test_a_section_with_nothing_to_say_leaves_nothing(store: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    md, html = _reports(store, tmp_path / "plain")
    monkeypatch.setattr(sections, "SECTIONS", [*sections.SECTIONS, lambda ctx: []])
    assert _reports(store, tmp_path / "silent") == (md, html)
