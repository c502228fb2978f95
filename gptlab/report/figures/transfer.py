"""The learning-rate transfer figure: the compared metric against lr, one line per width, one panel per variant
(Yang et al. 2022, "Tensor Programs V", figure 1: under the standard parametrization the curves' minimum moves
as the model widens, under μP it stays). Drawn when a study's grid varies `lr` and a width key; each line is
the mean over the finished seeds of one (variant, width), its best lr ringed. Registered like every figure
(gptlab.report.figures.base.register_figure) and loaded through build.FIGURE_PLUGINS.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from gptlab.report.figures.base import BROKEN, FigureContext, Skipped, finite_limits, mark_broken, \
    register_figure  # noqa: E402

FIG_LR_TRANSFER = "lr_transfer"
WIDTH_KEYS = ("n_embd",)  # the keys that make a model wider (μP's width)


def transfer_means(runs: pd.DataFrame, width: str, sign: int = -1) -> dict[str, pd.DataFrame]:
    """variant ('' without variants) -> rows (width, lr, mean over finished seeds, n, best: the width's best
    lr by the compared metric)."""
    done = runs[(runs["status"] == "finished")].dropna(subset=["value"])
    out = {}
    for variant, rows in done.groupby(done["variant"].fillna("").astype(str), sort=False):
        means = rows.groupby([rows[width].astype(float), rows["lr"].astype(float)])["value"] \
            .agg(["mean", "count"]).reset_index().rename(columns={width: "width", "count": "n"})
        best = means.loc[(means["mean"] * sign).groupby(means["width"]).idxmax()]
        means["best"] = means.index.isin(best.index)
        out[variant] = means.sort_values(["width", "lr"]).reset_index(drop=True)
    return out


@register_figure(FIG_LR_TRANSFER)
def lr_transfer(ctx: FigureContext) -> tuple[Figure, str] | Skipped | None:
    """Metric against lr per width, a panel per variant (its parametrization in the title)."""
    width = next((k for k in WIDTH_KEYS if k in ctx.design.grid_keys), None)
    if "lr" not in ctx.design.grid_keys or width is None:
        return None
    by_variant = transfer_means(ctx.runs, width, ctx.compare.sign)
    if not by_variant:
        return Skipped(f"no finished run to draw {ctx.compare.metric} against lr per {width}")
    variant_of = ctx.runs.drop_duplicates("label").set_index("label")["variant"].fillna("").astype(str)
    variants = list(dict.fromkeys(variant_of[label] for label in ctx.design.labels))  # the spec's order
    widths = sorted({float(w) for w in ctx.runs[width].dropna()})
    cmap = plt.get_cmap("viridis")
    color = {w: cmap(i / max(1, len(widths) - 1) * 0.9) for i, w in enumerate(widths)}
    fig, axes = plt.subplots(1, len(variants), figsize=(4.6 * len(variants), 3.9), squeeze=False, sharey=True)
    every = pd.concat(list(by_variant.values()))
    limits = finite_limits(every["mean"])
    best_said = []
    for ax, variant in zip(axes[0], variants):
        means = by_variant.get(variant, pd.DataFrame(columns=["width", "lr", "mean", "n", "best"]))
        labelled: set[str] = set()
        for w in widths:
            line = means[means["width"] == w]
            if len(line):
                ax.plot(line["lr"], line["mean"], "-o", color=color[w], ms=3, lw=1.4, label=f"{width}={w:g}")
                best = line[line["best"]]
                ax.scatter(best["lr"], best["mean"], s=90, facecolors="none", edgecolors=color[w], lw=1.5, zorder=4)
                best_said.append(f"{variant + ' ' if variant else ''}{w:g}: {float(best['lr'].iloc[0]):g}")
            mine = ctx.runs[(ctx.runs["variant"].fillna("").astype(str) == variant)
                            & (ctx.runs[width].astype(float) == w)]
            for st in BROKEN:
                mark_broken(ax, mine.loc[mine["status"] == st, "lr"].astype(float).tolist(), color[w], st, labelled)
        ax.set_xscale("log")
        if limits:
            ax.set_ylim(*limits)
        param = _parametrization(ctx.runs, variant)
        ax.set_title(f"{variant or ctx.experiment}" + (f" (parametrization {param})" if param else ""), fontsize=9)
        ax.set_xlabel("lr")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel(f"{ctx.compare.metric} (mean over seeds)")
    fig.tight_layout()
    return fig, (f"{ctx.compare.metric} against lr, one line per {width} (mean over finished seeds; ring: each "
                 f"width's best lr), one panel per variant: under μP the best lr should not move with width "
                 f"(Tensor Programs V, figure 1). Best lr per {width}: " + "; ".join(best_said) + ".")


def _parametrization(runs: pd.DataFrame, variant: str) -> str | None:
    if "parametrization" not in runs:
        return None
    values = runs.loc[runs["variant"].fillna("").astype(str) == variant, "parametrization"].dropna().unique()
    return str(values[0]) if len(values) == 1 else None
