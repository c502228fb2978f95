"""The neutral vocabulary of a report, and its two renderings: Markdown and self-contained HTML.

A report section returns a list of blocks (`gptlab.report.sections`); this module is the one place
that knows how each block looks in each format. Text in headings, paragraphs, bullets and table
cells is inline Markdown: `**bold**`, `` `code` `` and `[text](target)` become <strong>, <code>
and <a> in HTML (a small converter here, no Markdown library); everything else is escaped.

Markdown is deterministic (no timestamps, blocks separated by one blank line), so re-running a
report gives byte-identical report.md. The HTML embeds every figure as a base64 data URI and
references nothing outside the file.
"""
from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

_CSS = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;"
        "text-align:left}img{max-width:100%}code{background:#f4f4f4}")


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2  # 1: the page title


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: Sequence[str]  # stored as a tuple

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(self.items))


@dataclass(frozen=True)
class Table:
    header: Sequence[str]  # stored as tuples
    rows: Sequence[Sequence[str]]

    def __post_init__(self) -> None:
        object.__setattr__(self, "header", tuple(self.header))
        object.__setattr__(self, "rows", tuple(map(tuple, self.rows)))


@dataclass(frozen=True)
class Figure:
    """A drawn figure; Markdown links it as `<png's folder>/<name>` (the report sits beside figures/)."""

    png: Path
    svg: Path
    caption: str


@dataclass(frozen=True)
class Code:
    text: str  # verbatim, never interpreted
    lang: str = "text"


Block = Union[Heading, Paragraph, Bullets, Table, Figure, Code]


# ---- markdown -----------------------------------------------------------------------------------

def _md(block: Block) -> list[str]:
    """The lines of one block (no surrounding blank lines)."""
    if isinstance(block, Heading):
        return [f"{'#' * block.level} {block.text}"]
    if isinstance(block, Paragraph):
        return [block.text]
    if isinstance(block, Bullets):
        return [f"- {item}" for item in block.items]
    if isinstance(block, Table):
        esc = lambda s: s.replace("|", "\\|")  # noqa: E731
        lines = ["| " + " | ".join(map(esc, block.header)) + " |", "|" + "---|" * len(block.header)]
        return lines + ["| " + " | ".join(map(esc, row)) + " |" for row in block.rows]
    if isinstance(block, Figure):
        png, svg = (f"{p.parent.name}/{p.name}" for p in (block.png, block.svg))
        return [f"![{block.caption}]({png})", "", f"*{block.caption}* ([SVG]({svg}))"]
    if isinstance(block, Code):  # a ``` inside the text would end the fence early
        return [f"```{block.lang}", *block.text.replace("```", "` ` `").splitlines(), "```"]
    raise TypeError(f"not a report block: {block!r}")


def render_markdown(blocks: list[Block]) -> str:
    """Blocks separated by one blank line; a block with nothing in it (no bullets) leaves nothing."""
    parts = ["\n".join(lines) for lines in map(_md, blocks) if lines]
    return "\n\n".join(parts) + "\n"


# ---- html ---------------------------------------------------------------------------------------

_INLINE = re.compile(r"`([^`]+)`|\*\*(.+?)\*\*|\[([^\]]+)\]\(([^)\s]+)\)")


def inline_html(text: str) -> str:
    """Inline Markdown to HTML: `code`, **bold** and [links](target); everything else escaped."""
    out, last = [], 0
    for m in _INLINE.finditer(text):
        out.append(html.escape(text[last:m.start()]))
        if m[1] is not None:
            out.append(f"<code>{html.escape(m[1])}</code>")
        elif m[2] is not None:
            out.append(f"<strong>{inline_html(m[2])}</strong>")
        else:
            out.append(f"<a href=\"{html.escape(m[4])}\">{inline_html(m[3])}</a>")
        last = m.end()
    return "".join(out) + html.escape(text[last:])


def _html(block: Block) -> str:
    e, il = html.escape, inline_html
    if isinstance(block, Heading):
        return f"<h{block.level}>{il(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{il(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{il(item)}</li>" for item in block.items) + "</ul>" if block.items else ""
    if isinstance(block, Table):
        head = "".join(f"<th>{il(h)}</th>" for h in block.header)
        body = "".join("<tr>" + "".join(f"<td>{il(c)}</td>" for c in row) + "</tr>" for row in block.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if isinstance(block, Figure):
        data = base64.b64encode(block.png.read_bytes()).decode("ascii")
        return (f"<figure><img alt=\"{e(block.caption)}\" src=\"data:image/png;base64,{data}\">"
                f"<figcaption>{il(block.caption)}</figcaption></figure>")
    if isinstance(block, Code):
        return f"<pre><code class=\"language-{e(block.lang)}\">{e(block.text)}</code></pre>"
    raise TypeError(f"not a report block: {block!r}")


def render_html(blocks: list[Block], title: str) -> str:
    """A self-contained page: figures as data: URIs, CSS inline, no links out."""
    body = [part for part in map(_html, blocks) if part]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")
