"""Tuning: the value each variant was compared at, from which tuning runs, edge warnings, and whether the
verdicts at the shared value differ (tuned studies only: `ctx.extras["tuning"]`)."""
from __future__ import annotations

import math
from typing import Any

from gptlab.report.blocks import Block, Bullets, Figure, Heading, Paragraph, Table
from gptlab.report.sections.context import ReportContext
from gptlab.stats.tuning import sensitivity


def section(ctx: ReportContext) -> list[Block]:
    tuning = ctx.extras.get("tuning")
    if tuning is None:
        return []
    keys = ", ".join(tuning.keys)
    lists = "; ".join(f"{k} ∈ {{{', '.join(_v(v) for v in vals)}}}" for k, vals in tuning.candidates.items())
    blocks: list[Block] = [
        Heading("Tuning"),
        Paragraph(f"Each variant was first trained at every value of {lists} on tuning seed(s) "
                  f"{', '.join(map(str, tuning.seeds))}, and compared at the value with the best mean "
                  f"**{tuning.metric}** over those seeds. The tuning seeds are not among the compared seeds, so "
                  "no comparison is tested on the runs its value was chosen from. The choice is kept in "
                  "`tuning.json` of the run store and reused when the study is rerun."),
        Table(*_table(tuning, ctx.compare.sign)),
        Paragraph(f"Sensitivity: the mean {tuning.metric} over the grid minus the best one (Wortsman et al. 2023, "
                  "LR sensitivity; a value with no finished run counts as the worst finished one): 0 means every "
                  "value tried is as good as the best, a larger number that the variant needs its value tuned.")]
    blocks += _transfer(tuning)
    warnings = [w for c in tuning.cells for w in c.edges]
    if warnings:
        blocks.append(Bullets([f"Warning: {w}." for w in warnings]))
    figure = ctx.extras.get("tuning_figure")
    if figure is not None:
        blocks.append(Figure(figure.png, figure.svg, figure.caption))
    flips = ctx.extras.get("flips")
    if flips:
        blocks += [Paragraph(f"Verdicts at the shared value (the base config's {keys}) against the verdicts at "
                             "the tuned values, comparison by comparison:"), Bullets(flips)]
    elif tuning.compare_shared:
        blocks.append(Paragraph("The comparison seeds also ran at the shared value; no comparison with the "
                                "baseline could be made at both."))
    return blocks


def _transfer(tuning) -> list[Block]:  # noqa: ANN001
    """`tune.at: smallest`: where the choice was made and reused; μP's transfer said, standard's warned."""
    if tuning.at != "smallest":
        return []
    keys = ", ".join(tuning.keys)
    larger = ", ".join(tuning.transferred_to) or "the larger sizes"
    out: list[Block] = [Paragraph(f"Tuned at the smallest size only (`tune.at: smallest`): the rows above are its "
                                  f"cells, and every larger size ({larger}) ran its comparison seeds at the {keys} "
                                  "its variant chose there.")]
    mup = [c.variant or c.cell for c in tuning.cells if _transfers(c.parametrization)]
    standard = [c.variant or c.cell for c in tuning.cells if not _transfers(c.parametrization)]
    if mup:
        out.append(Paragraph(f"Under μP (parametrization mup: {', '.join(dict.fromkeys(mup))}) the {keys} was "
                             "transferred from the smallest size as μP intends: its lr and init are scaled with "
                             "width so that the best lr does not move (Yang et al. 2022, Tensor Programs V)."))
    if standard:
        out.append(Bullets([f"Warning: {v} (parametrization standard) ran every size at the {keys} chosen at the "
                            f"smallest size; under the standard parametrization the best lr moves with width, so "
                            f"the transferred {keys} is untested at {larger}: drop tune.at to tune at every size, "
                            "or use parametrization: mup." for v in dict.fromkeys(standard)]))
    return out


def _table(tuning, sign: int) -> tuple[list[str], list[list[str]]]:  # noqa: ANN001
    """One row per variant: the chosen value, the shared value, its sensitivity and the mean metric at each
    candidate."""
    key_cols = [f"chosen {k}" for k in tuning.keys]
    shared_cols = [f"shared {k}" for k in tuning.keys] if tuning.compare_shared else []
    candidates = []
    for cell in tuning.cells:
        for _, row in cell.means.iterrows():
            label = ", ".join(_v(row[k]) for k in tuning.keys)
            if label not in candidates:
                candidates.append(label)
    header = ["variant", *key_cols, *shared_cols, f"{', '.join(tuning.keys)} sensitivity",
              *(f"{tuning.metric} at {c}" for c in candidates)]
    rows = []
    for cell in tuning.cells:
        means = {", ".join(_v(r[k]) for k in tuning.keys): r for _, r in cell.means.iterrows()}
        grid = [float(means[c]["mean"]) if c in means else math.nan for c in candidates]
        cells = [cell.cell, *(_v(cell.chosen.get(k)) for k in tuning.keys),
                 *(_v(cell.base.get(k)) for k in tuning.keys if tuning.compare_shared),
                 _sensitivity(sensitivity(grid, sign))]
        for c in candidates:
            r = means.get(c)
            if r is None or r["mean"] != r["mean"]:
                cells.append("no finished run")
            else:
                cells.append(f"{r['mean']:.4f}" + (f" (n={int(r['count'])})" if len(tuning.seeds) > 1 else ""))
        rows.append(cells)
    return header, rows


def _v(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else "—" if value is None else str(value)


def _sensitivity(value: float) -> str:
    return "—" if not math.isfinite(value) else f"{value:.4f}"


def _transfers(parametrization: str | None) -> bool:
    """Whether a parametrization is μP's, whose lr transfers across widths (the axis's `mup` trait)."""
    from gptlab.axes import AXES

    axis = AXES["parametrization"]
    return parametrization is not None and parametrization in axis.names() and bool(axis.trait(parametrization, "mup"))
