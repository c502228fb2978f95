"""The `scaling` figure: the compared metric against parameters and training FLOPs (registered on import)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from gptlab.stats.compute import FIG_SCALING, compute_frame, differs_in_size, label_params, power_law
from gptlab.report.figures.base import FigureContext, register_figure


@register_figure(FIG_SCALING)
def scaling(ctx: FigureContext) -> tuple[Figure, str] | None:
    """Metric against parameters and against training FLOPs (log x), with the power-law fit."""
    params = label_params(ctx.runs, ctx.design.labels)
    if not differs_in_size(params, ctx.design.varying):
        return None
    frame = compute_frame(ctx.runs)
    done = frame[frame["status"] == "finished"].dropna(subset=["value"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, x, xlabel in ((axes[0], "n_params", "parameters"), (axes[1], "flops", "training FLOPs (6ND)")):
        for label in ctx.design.labels:
            mine = done[done["label"] == label]
            if len(mine):
                ax.scatter(mine[x], mine["value"], color=ctx.colors[label], s=18, label=label, zorder=3)
        fit = power_law(frame, x)
        if fit:
            xs = np.geomspace(done[x].min(), done[x].max(), 50)
            ax.plot(xs, fit["a"] * xs ** fit["b"], color="black", lw=1, ls="--",
                    label=f"fit: exponent {fit['b']:.3f}")
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ctx.compare.metric)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig, (f"{ctx.compare.metric} against parameters and against training FLOPs (6 x N x tokens); "
                 "seeds as points, dashed: power-law fit (3 or more sizes).")
