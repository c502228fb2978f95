"""What every run shared, what differed per variant, and where the runs came from."""
from __future__ import annotations

from typing import Any

from gptlab.report.blocks import Block, Bullets, Heading, Paragraph, Table
from gptlab.report.sections.context import ReportContext


def section(ctx: ReportContext) -> list[Block]:
    out: list[Block] = [Heading("Setup"), Paragraph("Shared by every run:"),
                        Bullets([f"`{name}: " + ", ".join(f"{k}={_value(v)}" for k, v in values.items()) + "`"
                                 for name, values in ctx.shared.items()])]
    if ctx.varying.shape[1]:
        cols = list(ctx.varying.columns)
        out += [Paragraph("Differs per variant:"),
                Table(["variant", *cols], [[str(lab), *(_value(ctx.varying.at[lab, c]) for c in cols)]
                                           for lab in ctx.varying.index])]
    out.append(Bullets(ctx.design_notes))
    if ctx.provenance:
        out.append(Paragraph("Provenance: " + "; ".join(ctx.provenance)))
    return out


def _value(v: Any) -> str:
    """A config value as the YAML spec would write it (true, none, 3 rather than 3.0)."""
    v = v.item() if hasattr(v, "item") else v  # numpy scalar from a DataFrame cell
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15 and not isinstance(v, bool):
        return f"{v:g}"
    return "none" if v is None else str(v).lower() if isinstance(v, bool) else f"{v}"
