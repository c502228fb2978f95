"""Markdown and self-contained HTML from one `ReportDoc`; both render the same cells.

No timestamps and fixed number formats, so re-running a report gives byte-identical markdown.
The HTML embeds every figure as a base64 data URI and references nothing outside the file.
"""
from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from gptlab.analysis.compute import count
from gptlab.analysis.figures import FigureFile
from gptlab.analysis.findings import decimals, fmt, fmt_p
from gptlab.analysis.samples import Sample
from gptlab.analysis.stats import Criterion
from gptlab.store import STATUS_ORDER

_STATUS_ORDER = STATUS_ORDER
_CSS = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;"
        "text-align:left}img{max-width:100%}code{background:#f4f4f4}")


@dataclass
class ReportDoc:
    """What one experiment's report says, independent of the output format."""

    experiment: str
    question: str | None
    compare: Criterion
    baseline: str
    shared: dict[str, dict[str, Any]]
    varying: pd.DataFrame  # label -> varying config keys
    provenance: list[str]
    table: pd.DataFrame
    figures: list[FigureFile]
    findings: list[str]
    headline: str
    design_notes: list[str] = field(default_factory=list)
    tests: str = ""  # how many tests, how corrected
    effects: pd.DataFrame = field(default_factory=pd.DataFrame)
    params: dict[str, float] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    sample_settings: str = ""


def results_rows(doc: ReportDoc) -> tuple[list[str], list[list[str]]]:
    """Header and text cells of the results table (shared by markdown and HTML)."""
    table, metric = doc.table, doc.compare.metric
    mp = decimals(*table["mean"].tolist())
    dp = decimals(*table["diff"].tolist())
    header = ["variant", "seeds", f"{metric} (mean ± 95% CI)", "diff vs baseline (95% CI)", "p", "p adj.",
              "verdict", "health", "status", "params", "tokens/s"]
    rows = []
    for _, r in table.iterrows():
        if r["n"] == 0:
            mean = "—"
        elif math.isnan(r["ci_low"]):
            mean = f"{fmt(r['mean'], mp)} (1 seed, no CI)"
        else:
            mean = f"{fmt(r['mean'], mp)} ± {fmt((r['ci_high'] - r['ci_low']) / 2, mp)}"
        diff, verdict = _diff_cells(r, dp, doc.compare.sign)
        p = "" if math.isnan(r["p_value"]) else fmt_p(r["p_value"]).removeprefix("p=")
        p_adj = "" if math.isnan(r["p_adjusted"]) else fmt_p(r["p_adjusted"]).removeprefix("p=")
        status = ", ".join(f"{int(r[f'n_{s}'])} {s}" for s in _STATUS_ORDER if r[f"n_{s}"])
        params = "" if math.isnan(r["n_params"]) else count(r["n_params"])
        speed = "" if math.isnan(r["tokens_per_s"]) else f"{r['tokens_per_s']:,.0f}"
        rows.append([str(r["variant"]), f"{r['n']}/{r['n_runs']}", mean, diff, p, p_adj, verdict,
                     str(r.get("health", "")), status, params, speed])
    return header, rows


def _diff_cells(r: Any, dp: int, sign: int) -> tuple[str, str]:
    """The 'diff vs baseline' and 'verdict' cells of one row."""
    if r["baseline"] is None or r["baseline"] != r["baseline"] or r["baseline"] == r["variant"]:
        return ("baseline" if r["baseline"] == r["variant"] else "—"), ""
    if r["several"]:
        return "— (differs in several factors)", ""
    if math.isnan(r["diff"]):
        return "—", ""
    if math.isnan(r["diff_ci_low"]):
        return f"{r['diff']:+.{dp}f} (no CI)", "no uncertainty"
    diff = f"{r['diff']:+.{dp}f} [{fmt(r['diff_ci_low'], dp)}, {fmt(r['diff_ci_high'], dp)}]"
    if r["significant"]:
        return diff + " *", "better" if r["diff"] * sign > 0 else "worse"
    if r["equivalent"]:
        return diff, f"equivalent ±{r['margin']:g}"
    return diff, "inconclusive"


def effects_rows(doc: ReportDoc) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the effects table (the rows of effects.csv)."""
    header = ["term", "contrast", "estimate (95% CI)", "p", "p adj."]
    rows = []
    for _, r in doc.effects.iterrows():
        places = decimals(r["estimate"], r["ci_low"], r["ci_high"])
        est = f"{r['estimate']:+.{places}f}"
        if math.isfinite(r["ci_low"]):
            est += f" [{fmt(r['ci_low'], places)}, {fmt(r['ci_high'], places)}]" + (" *" if r["significant"] else "")
        p = "" if not math.isfinite(r["p_value"]) else fmt_p(r["p_value"]).removeprefix("p=")
        p_adj = "" if not math.isfinite(r["p_adjusted"]) else fmt_p(r["p_adjusted"]).removeprefix("p=")
        rows.append([str(r["term"]), str(r["contrast"]), est, p, p_adj])
    return header, rows


def _method(doc: ReportDoc) -> str:
    """How the numbers were made, in one paragraph (markdown emphasis on metric and baseline)."""
    c = doc.compare
    margin = doc.table["margin"].dropna()
    margin_text = f"±{margin.iloc[0]:g}" if len(margin) else (
        f"±{c.margin:g}" if c.margin is not None else "±0.02" if c.is_loss else "±2% of the baseline")
    return (f"Compared: **{c.metric}** ({c.goal}, best value over each run), baseline: **{doc.baseline}**. "
            "Only finished runs enter the statistics; intervals are 95% t-intervals (unadjusted), differences use "
            f"Welch's t-test, equivalence two one-sided tests (TOST) at the margin {margin_text}. {doc.tests}").strip()


def _sample_block(text: str) -> list[str]:
    return ["```text", *text.replace("```", "` ` `").splitlines(), "```"]


def _value(v: Any) -> str:
    v = v.item() if hasattr(v, "item") else v  # numpy scalar from a DataFrame cell
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15 and not isinstance(v, bool):
        return f"{v:g}"
    return "none" if v is None else str(v).lower() if isinstance(v, bool) else f"{v}"


def _setup_lines(doc: ReportDoc) -> list[str]:
    return [f"{section}: " + ", ".join(f"{k}={_value(v)}" for k, v in values.items())
            for section, values in doc.shared.items()]


def _varying_rows(doc: ReportDoc) -> tuple[list[str], list[list[str]]]:
    cols = list(doc.varying.columns)
    return ["variant", *cols], [[str(lab), *(_value(doc.varying.at[lab, c]) for c in cols)]
                                for lab in doc.varying.index]


# ---- markdown -----------------------------------------------------------------------------------

def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    esc = lambda s: s.replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(map(esc, row)) + " |" for row in rows]


def render_markdown(doc: ReportDoc) -> str:
    out = [f"# {doc.experiment}", "", "## Question", "", doc.question or "No description given.", "",
           f"**Answer:** {doc.headline}", "", _method(doc), "", "## Setup", "", "Shared by every run:", ""]
    out += [f"- `{line}`" for line in _setup_lines(doc)] + [""]
    if doc.varying.shape[1]:
        out += ["Differs per variant:", ""] + _md_table(*_varying_rows(doc)) + [""]
    out += [f"- {line}" for line in doc.design_notes] + ([""] if doc.design_notes else [])
    if doc.provenance:
        out += ["Provenance: " + "; ".join(doc.provenance), ""]
    out += ["## Results", ""] + _md_table(*results_rows(doc))
    out += ["", "`*`: significant after adjustment (adjusted p < 0.05).", ""]
    if len(doc.effects):
        out += ["## Effects", "", "Estimates are level - reference in metric units (also in effects.csv).", ""]
        out += _md_table(*effects_rows(doc)) + [""]
    out += ["## Figures", ""]
    for f in doc.figures:
        out += [f"![{f.caption}](figures/{f.png.name})", "", f"*{f.caption}* ([SVG](figures/{f.svg.name}))", ""]
    out += ["## Findings", ""] + [f"- {line}" for line in doc.findings]
    if doc.samples:
        out += ["", "## Samples", "", f"Generated from each variant's best seed ({doc.sample_settings}).", ""]
        for smp in doc.samples:
            source = f" (run {smp.run})" if smp.run else ""
            out += [f"**{smp.variant}**{source}:", ""]
            out += _sample_block(smp.text) if smp.text is not None else [f"{smp.why[0].upper()}{smp.why[1:]}."]
            out += [""]
    return "\n".join(out).rstrip("\n") + "\n"


# ---- html ---------------------------------------------------------------------------------------

def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _page(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def render_html(doc: ReportDoc) -> str:
    """Self-contained page: figures as data: URIs, CSS inline, no links out."""
    e = html.escape
    body = [f"<h1>{e(doc.experiment)}</h1>", "<h2>Question</h2>", f"<p>{e(doc.question or 'No description given.')}</p>",
            f"<p><b>Answer:</b> {e(doc.headline)}</p>", f"<p>{e(_method(doc).replace('**', ''))}</p>",
            "<h2>Setup</h2><p>Shared by every run:</p><ul>"
            + "".join(f"<li><code>{e(line)}</code></li>" for line in _setup_lines(doc)) + "</ul>"]
    if doc.varying.shape[1]:
        body += ["<p>Differs per variant:</p>", _html_table(*_varying_rows(doc))]
    if doc.design_notes:
        body.append("<ul>" + "".join(f"<li>{e(x)}</li>" for x in doc.design_notes) + "</ul>")
    if doc.provenance:
        body.append(f"<p>Provenance: {e('; '.join(doc.provenance))}</p>")
    body += ["<h2>Results</h2>", _html_table(*results_rows(doc)),
             "<p>*: significant after adjustment (adjusted p &lt; 0.05).</p>"]
    if len(doc.effects):
        body += ["<h2>Effects</h2>", "<p>Estimates are level - reference in metric units.</p>",
                 _html_table(*effects_rows(doc))]
    body.append("<h2>Figures</h2>")
    for f in doc.figures:
        data = base64.b64encode(f.png.read_bytes()).decode("ascii")
        body.append(f"<figure><img alt=\"{e(f.caption)}\" src=\"data:image/png;base64,{data}\">"
                    f"<figcaption>{e(f.caption)}</figcaption></figure>")
    body += ["<h2>Findings</h2><ul>" + "".join(f"<li>{e(x)}</li>" for x in doc.findings) + "</ul>"]
    if doc.samples:
        body += ["<h2>Samples</h2>", f"<p>Generated from each variant's best seed ({e(doc.sample_settings)}).</p>"]
        for smp in doc.samples:
            source = f" (run {e(smp.run)})" if smp.run else ""
            text = f"<pre>{e(smp.text)}</pre>" if smp.text is not None else f"<p>{e(smp.why)}.</p>"
            body.append(f"<h3>{e(smp.variant)}{source}</h3>{text}")
    return _page(f"{doc.experiment} report", body)


def render_index(entries: list[tuple[str, str, bool]]) -> tuple[str, str]:
    """(markdown, html) of reports/index: (experiment, headline, has_report) per line."""
    md = ["# Experiments", ""]
    items = []
    for name, line, linked in entries:
        md.append(f"- [{name}]({name}/report.md): {line}" if linked else f"- {name}: {line}")
        link = f"<a href=\"{html.escape(name)}/report.html\">{html.escape(name)}</a>" if linked else html.escape(name)
        items.append(f"<li>{link}: {html.escape(line)}</li>")
    page = _page("gptlab experiments", ["<h1>Experiments</h1>", "<ul>" + "".join(items) + "</ul>"])
    return "\n".join(md) + "\n", page
