"""How each comparison used its seeds: paired by seed or not, the pairs used and left out, the correlation of
the two sides across seeds, and the seeds the pairing saved (only when some comparison was paired)."""
from __future__ import annotations

import math

from gptlab.report.blocks import Block, Heading, Paragraph, Table
from gptlab.report.sections.context import ReportContext


def section(ctx: ReportContext) -> list[Block]:
    table = ctx.table
    if "pairing" not in table or not (table["pairing"] == "paired").any():
        return []
    header = ["variant", "baseline", "pairing", "pairs", "left out", "correlation", "seeds factor",
              "unpaired seeds for this precision"]
    rows = []
    for _, r in table[table["tested"].astype(bool)].iterrows():
        if r["pairing"] != "paired":
            rows.append([str(r["variant"]), str(r["baseline"]), "unpaired (Welch)", "", "", "", "", ""])
            continue
        left = int(_num(r.get("only_a")) + _num(r.get("only_b")))
        factor = r.get("seeds_factor", math.nan)
        need = "" if not math.isfinite(factor) else f"about {max(int(r['pairs']), math.ceil(factor * r['pairs']))} per variant"
        rows.append([str(r["variant"]), str(r["baseline"]), "paired by seed", str(int(r["pairs"])), str(left),
                     _fmt(r.get("pair_corr"), 2), _factor(factor), need])
    return [Heading("Pairing"),
            Paragraph("Seed s of every variant trains on the same batches in the same order and starts from the same "
                      "initial values of every parameter both have, so each comparison is made within a seed: on the "
                      "per-seed differences (paired t-test and TOST, n - 1 degrees of freedom). A seed present on one "
                      "side only is left out of the pairs. The seeds factor (var(a) + var(b)) / var(a - b) is how many "
                      "times the seeds an unpaired (Welch) comparison of the same precision would need."),
            Table(header, rows)]


def _num(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else 0.0


def _fmt(value: object, places: int) -> str:
    return f"{value:.{places}f}" if isinstance(value, float) and math.isfinite(value) else "—"


def _factor(value: float) -> str:
    if not isinstance(value, float) or math.isnan(value):
        return "—"
    return "no noise left" if math.isinf(value) else f"{value:.1f}x"
