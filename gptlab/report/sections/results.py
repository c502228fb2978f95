"""The results table: each variant's metric with its CI, its difference from the baseline, verdict and health."""
from __future__ import annotations

import math
from typing import Any

from gptlab.report.blocks import Block, Heading, Paragraph, Table
from gptlab.stats.compute import count
from gptlab.report.findings import decimals, fmt, fmt_p
from gptlab.report.sections.context import ReportContext
from gptlab.store import STATUS_ORDER


def section(ctx: ReportContext) -> list[Block]:
    note = ""
    if "packed" in ctx.table and (ctx.table["packed"].astype(float) > 1).any():
        note = (" tokens/s is per run: a run trained in a pack of k shares the pack's time with k - 1 others, so "
                "compare it only with runs of the same pack size.")
    return [Heading("Results"), Table(*results_rows(ctx)),
            Paragraph("`*`: significant after adjustment (adjusted p < 0.05)." + note)]


def results_rows(ctx: ReportContext) -> tuple[list[str], list[list[str]]]:
    """Header and text cells of the results table."""
    table, metric = ctx.table, ctx.compare.metric
    mp = decimals(*table["mean"].tolist())
    dp = decimals(*table["diff"].tolist())
    levels = "ci_level" in table and table["ci_level"].astype(float).notna().any()  # an adaptive study's own levels
    header = ["variant", "seeds", f"{metric} (mean ± 95% CI)",
              "diff vs baseline (CI at its level)" if levels else "diff vs baseline (95% CI)", "p", "p adj.",
              "verdict", "health", "status", "params", "tokens/s"]
    rows = []
    for _, r in table.iterrows():
        if r["n"] == 0:
            mean = "—"
        elif math.isnan(r["ci_low"]):
            mean = f"{fmt(r['mean'], mp)} (1 seed, no CI)"
        else:
            mean = f"{fmt(r['mean'], mp)} ± {fmt((r['ci_high'] - r['ci_low']) / 2, mp)}"
        diff, verdict = _diff_cells(r, dp, ctx.compare.sign)
        level = float(r["ci_level"]) if levels and r["ci_level"] == r["ci_level"] else None
        if level is not None and "[" in diff:
            diff = diff.replace("]", f"] ({level:.1%})", 1)
        status = ", ".join(f"{int(r[f'n_{s}'])} {s}" for s in STATUS_ORDER if r[f"n_{s}"])
        params = "" if math.isnan(r["n_params"]) else count(r["n_params"])
        speed = "" if math.isnan(r["tokens_per_s"]) else f"{r['tokens_per_s']:,.0f}" + _packed(r.get("packed"))
        rows.append([str(r["variant"]), f"{r['n']}/{r['n_runs']}", mean, diff, p_cell(r["p_value"]),
                     p_cell(r["p_adjusted"]), verdict, str(r.get("health", "")), status, params, speed])
    return header, rows


def _packed(size: object) -> str:
    """' (pack of 4)': a packed run's tokens/s is its share of the pack's time, lower than when trained alone."""
    return f" (pack of {int(size)})" if isinstance(size, float) and math.isfinite(size) and size > 1 else ""


def p_cell(p: float) -> str:
    """A p-value cell: empty when there was no test."""
    return "" if not math.isfinite(p) else fmt_p(p).removeprefix("p=")


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
