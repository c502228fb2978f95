"""The scale study's two figures, drawn from a `ScaleResult` and saved like every report figure
(Agg backend, PNG + deterministic SVG, `gptlab.report.figures.base`' style):
    scale_effect  each variant's effect against parameters (log x): per-size Welch estimate with its 95%
                  interval, the model's line effect(N) = b + g ln N, zero line, the +-margin band, and the
                  extrapolated effect with its prediction interval when one was asked for
    scale_loss    the metric against parameters per variant (log-log): one point per seed, the fitted
                  power laws (solid: (N_c/N)^alpha, dashed: E + (N_c/N)^alpha)
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from gptlab.report.figures.base import _RC, FigureFile, label_colors, save_figure  # noqa: E402
from gptlab.stats.scale import ScaleResult  # noqa: E402

FIG_SCALE_EFFECT = "scale_effect"
FIG_SCALE_LOSS = "scale_loss"


def scale_figures(result: ScaleResult, out_dir: Path, colors: dict[str, Any] | None = None) -> list[FigureFile]:
    """Draw both figures that apply into out_dir (PNG + SVG); the files in drawing order."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    colors = colors or label_colors([result.baseline, *(c.variant for c in result.comparisons)])
    made = []
    with matplotlib.rc_context(_RC):
        for name, draw in ((FIG_SCALE_EFFECT, effect_figure), (FIG_SCALE_LOSS, loss_figure)):
            drawn = draw(result, colors)
            if drawn is None:
                continue
            fig, caption = drawn
            made.append(save_figure(fig, out_dir, name, caption))
    return made


def with_figures(result: ScaleResult, out_dir: Path, colors: dict[str, Any] | None = None) -> ScaleResult:
    """The result carrying its drawn figures (what the report's Scale section shows)."""
    return dataclasses.replace(result, figures=tuple(scale_figures(result, out_dir, colors)))


def effect_figure(result: ScaleResult, colors: dict[str, Any]) -> tuple[Figure, str] | None:
    comps = [c for c in result.comparisons if c.effects]
    if not comps:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    ax.axhspan(-result.margin, result.margin, color="grey", alpha=0.15, lw=0, label=f"±margin {result.margin:g}")
    ax.axhline(0.0, color="black", lw=0.8)
    n_all = list(result.size_params.values())
    # nudge the variants apart along x (multiplicatively, the axis is log) so their bars do not overlap
    nudges = np.exp(0.04 * (np.arange(len(comps)) - (len(comps) - 1) / 2))
    for comp, nudge in zip(comps, nudges):
        color = colors[comp.variant]
        x = np.array([e.n_params for e in comp.effects]) * nudge
        y = np.array([e.estimate for e in comp.effects])
        lo = np.array([e.ci_low for e in comp.effects])
        hi = np.array([e.ci_high for e in comp.effects])
        has_ci = np.isfinite(lo) & np.isfinite(hi)
        ax.errorbar(x[has_ci], y[has_ci], yerr=[y[has_ci] - lo[has_ci], hi[has_ci] - y[has_ci]], fmt="o",
                    color=color, capsize=3, ms=5, label=f"{comp.variant} - {comp.baseline}")
        if (~has_ci).any():
            ax.scatter(x[~has_ci], y[~has_ci], marker="o", facecolors="none", edgecolors=color, zorder=3)
        if comp.slope:
            xs = np.geomspace(min(n_all), max(n_all), 50)
            ax.plot(xs, comp.slope.effect_at(xs), color=color, lw=1.2)
        pred = comp.prediction
        if pred:
            xs = np.geomspace(max(n_all), pred.n_params, 20) if pred.extrapolated else np.array([pred.n_params])
            if comp.slope and len(xs) > 1:
                ax.plot(xs, comp.slope.effect_at(xs), color=color, lw=1.0, ls=":")
            ax.errorbar([pred.n_params * nudge], [pred.estimate],
                        yerr=[[pred.estimate - pred.pi_low], [pred.pi_high - pred.estimate]], fmt="D",
                        mfc="white", color=color, capsize=3, ms=5)
    ax.set_xscale("log")
    ax.set_xlabel("parameters N")
    ax.set_ylabel(f"effect on {result.metric} (variant - {result.baseline})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    estimate = "paired estimate (per-seed differences)" if result.pairing == "paired" else "Welch estimate"
    caption = (f"Effect on {result.metric} against parameters: {estimate} and 95% interval per size "
               "(hollow: no interval), line: the OLS model's effect in log N, grey band: ±margin (equivalent)")
    if any(c.prediction for c in comps):
        caption += "; white diamond: extrapolation with its 95% prediction interval (not a finding)"
    return fig, caption + "."


def loss_figure(result: ScaleResult, colors: dict[str, Any]) -> tuple[Figure, str] | None:
    runs = result.runs
    runs = runs[(runs["value"] > 0) & (runs["n_params"] > 0)]
    if runs.empty:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    variants = [result.baseline, *(c.variant for c in result.comparisons)]
    xs = np.geomspace(runs["n_params"].min(), runs["n_params"].max(), 50)
    for variant in variants:
        mine = runs[runs["variant"] == variant]
        if mine.empty:
            continue
        ax.scatter(mine["n_params"], mine["value"], color=colors[variant], s=14, label=variant, zorder=3)
        for fit in result.power_laws:
            if fit.variant == variant and fit.x == "N":
                ax.plot(xs, fit.predict(xs), color=colors[variant], lw=1.0, ls="-" if fit.form == "kaplan" else "--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain = matplotlib.ticker.FormatStrFormatter("%.3g")  # a narrow log range: 2.6, not 2.6 x 10^0
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.set_xlabel("parameters N")
    ax.set_ylabel(result.metric)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, (f"{result.metric} against parameters per variant (log-log), one point per seed; solid: "
                 "(N_c/N)^alpha (3+ sizes), dashed: E + (N_c/N)^alpha (4+ sizes).")
