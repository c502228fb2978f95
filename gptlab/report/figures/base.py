"""Report figures, one function each, drawn with matplotlib's Agg backend into PNG and SVG.

Figures are registered in `FIGURES` (use `@register_figure(name)`), so later features (e.g.
per-layer gradient norms from `diag/` metrics) add plots through this module without touching the
report code. A figure function returns `(figure, caption)`, None when it does not apply to the
experiment, or `Skipped(reason)` when it applies but the runs hold no data for it: it is then never
drawn empty, and `make_figures` keeps the one-line reason in `ctx.skipped` for the report to say.
Colours are fixed per label for a whole experiment. Diverged runs are drawn as an x at the top of
the axis, never as their (huge or infinite) losses, so they cannot wreck the axis range.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from gptlab.stats.compute import tokens_per_step  # noqa: E402
from gptlab.frames.design import Design  # noqa: E402
from gptlab.stats.summary import Criterion  # noqa: E402
from gptlab.store import UNSUCCESSFUL  # noqa: E402

BROKEN = UNSUCCESSFUL  # drawn apart, in this order
_LOG_KEYS = {"lr", "min_lr", "weight_decay"}
_RC = {"svg.hashsalt": "gptlab", "svg.fonttype": "path", "figure.dpi": 100, "font.size": 9}


@dataclass
class FigureContext:
    """Everything a figure function may read about one experiment."""

    experiment: str
    runs: pd.DataFrame  # one row per run, with a `value` column (the compared metric)
    history: pd.DataFrame
    table: pd.DataFrame  # stats.summary_table
    compare: Criterion
    design: Design
    colors: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)  # e.g. log_x for learning curves
    effects: pd.DataFrame = field(default_factory=pd.DataFrame)  # effects.csv rows (several factors)
    skipped: dict[str, str] = field(default_factory=dict)  # figure name -> why it was left out (make_figures)


@dataclass(frozen=True)
class FigureFile:
    name: str
    caption: str
    png: Path
    svg: Path


@dataclass(frozen=True)
class Skipped:
    """A figure that applies but has nothing to draw; `reason` completes "left out: ..."."""
    reason: str


FigureFn = Callable[[FigureContext], "tuple[Figure, str] | Skipped | None"]
FIGURES: list[tuple[str, FigureFn]] = []


def register_figure(name: str) -> Callable[[FigureFn], FigureFn]:
    """Add a figure to every report; `name` becomes the file stem under figures/."""
    def add(fn: FigureFn) -> FigureFn:
        if any(existing == name for existing, _ in FIGURES):
            raise ValueError(f"figure '{name}' registered twice")
        FIGURES.append((name, fn))
        return fn
    return add


def label_colors(labels: list[str]) -> dict[str, Any]:
    """One colour per label, by position in the experiment's label order."""
    n = len(labels)
    if n <= 20:
        palette = list(plt.get_cmap("tab10" if n <= 10 else "tab20").colors)
    else:
        palette = [plt.get_cmap("turbo")(i / (n - 1)) for i in range(n)]
    return {label: matplotlib.colors.to_hex(palette[i]) for i, label in enumerate(labels)}


def make_figures(ctx: FigureContext, out_dir: Path) -> list[FigureFile]:
    """Draw every registered figure that applies and has data; write PNG + deterministic SVG.
    Figures left out for want of data are named in `ctx.skipped`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    made = []
    with matplotlib.rc_context(_RC):
        for name, fn in FIGURES:
            result = fn(ctx)
            if isinstance(result, Skipped):
                ctx.skipped[name] = result.reason
                continue
            if result is None:
                continue
            fig, caption = result
            made.append(save_figure(fig, out_dir, name, caption))
    return made


# ---- helpers ------------------------------------------------------------------------------------

def finite_limits(values: Any, pad: float = 0.05) -> tuple[float, float] | None:
    """Axis range covering the finite values, padded; None when there are none."""
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return None
    lo, hi = float(arr.min()), float(arr.max())
    span = (hi - lo) or max(abs(hi), 1.0) * 0.1
    return lo - pad * span, hi + pad * span


def mark_broken(ax: Any, xs: list[float], color: Any, status: str, labelled: set[str]) -> None:
    """An x (diverged) or + (failed) at the top of the axis at each x, with one legend entry."""
    if not xs:
        return
    label = status if status not in labelled else None
    labelled.add(status)
    ax.scatter(xs, [0.97] * len(xs), marker="x" if status == "diverged" else "+", s=60, color=color,
               transform=ax.get_xaxis_transform(), clip_on=False, zorder=5, label=label)


def _label_values(ctx: FigureContext, key: str) -> dict[str, Any]:
    first = ctx.runs.drop_duplicates("label").set_index("label")
    return {lab: first.at[lab, key] for lab in ctx.design.labels}


# ---- figures ------------------------------------------------------------------------------------

@register_figure("learning_curves")
def learning_curves(ctx: FigureContext) -> tuple[Figure, str] | None:
    """Train and val loss per variant against steps: mean over seeds, shaded min-max band."""
    return _curves(ctx, "step")


@register_figure("learning_curves_tokens")
def learning_curves_tokens(ctx: FigureContext) -> tuple[Figure, str] | None:
    """The same curves against training tokens seen (steps x tokens per step)."""
    if tokens_per_step(ctx.runs).isna().all():
        return None
    return _curves(ctx, "tokens")


def _curves(ctx: FigureContext, x: str) -> tuple[Figure, str] | None:
    metrics = [m for m in ("train/loss", "val/loss") if m in ctx.history and ctx.history[m].notna().any()]
    if not metrics:
        return None
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 3.8), squeeze=False)
    by_run = ctx.runs.set_index("run")
    status = by_run["status"]
    per_step = tokens_per_step(ctx.runs).set_axis(ctx.runs["run"])
    for ax, metric in zip(axes[0], metrics):
        data = ctx.history[["run", "step", metric]].dropna()
        data = data.assign(label=data["run"].map(by_run["label"]), status=data["run"].map(status))
        if x == "tokens":  # same column name, so the drawing below is shared
            data = data.assign(step=data["step"] * data["run"].map(per_step))
        ok = data[~data["status"].isin(BROKEN)]
        labelled: set[str] = set()
        for label in ctx.design.labels:
            color = ctx.colors[label]
            mine = ok[ok["label"] == label]
            if len(mine):
                wide = mine.pivot_table(index="step", columns="run", values=metric)
                ax.plot(wide.index, wide.mean(axis=1), color=color, label=label, lw=1.5)
                if wide.shape[1] > 1:
                    ax.fill_between(wide.index, wide.min(axis=1), wide.max(axis=1), color=color,
                                    alpha=0.2, lw=0)
            for st in BROKEN:
                broken = data[(data["label"] == label) & (data["status"] == st)]
                ends = broken.groupby("run")["step"].max().tolist()
                for _, run_rows in broken.groupby("run"):
                    ax.plot(run_rows["step"], run_rows[metric], color=color, lw=0.8, ls=":")
                mark_broken(ax, ends, color, st, labelled)
        limits = finite_limits(ok[metric]) or _broken_limits(data, metric)
        if limits:
            ax.set_ylim(*limits)
            _no_learning_levels(ax, ctx.runs, limits)
        if ctx.options.get("log_x"):
            ax.set_xscale("symlog", linthresh=10 if x == "step" else 1e4)
        ax.set_xlabel("step" if x == "step" else "training tokens seen")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    if x == "tokens":
        return fig, ("Learning curves against training tokens seen (steps x batch_size x block_size x "
                     "grad_accum): mean over seeds, shaded min-max band; dotted runs broke; grey dotted: no learning.")
    return fig, ("Learning curves: mean over seeds, shaded min-max band; dotted runs broke; grey dotted: "
                 "ln(vocab) and the unigram entropy of the data (no learning).")


def _no_learning_levels(ax: Any, runs: pd.DataFrame, limits: tuple[float, float]) -> None:
    """Dotted lines at ln(vocab) and the data's unigram entropy: a curve stuck there learned nothing."""
    from gptlab.report.health import floors

    if not len(runs):
        return
    for name, level in floors(runs.iloc[0]).items():
        if limits[0] <= level <= limits[1]:
            ax.axhline(level, color="grey", lw=0.8, ls=":", zorder=1)
            ax.annotate(name, (1.0, level), xycoords=("axes fraction", "data"), ha="right", va="bottom",
                        fontsize=6, color="grey")


def _broken_limits(data: pd.DataFrame, metric: str) -> tuple[float, float] | None:
    """When every run broke, show the range up to their starting losses, not their blow-up."""
    firsts = data.sort_values("step").groupby("run")[metric].first()
    top = finite_limits(firsts)
    low = finite_limits(data[metric])
    return None if top is None or low is None else (low[0], top[1])


@register_figure("metric_by_variant")
def metric_by_variant(ctx: FigureContext) -> tuple[Figure, str] | None:
    """The compared metric per variant, sorted, with 95% CI error bars and seeds as points."""
    table = ctx.table.set_index("variant")
    ranked = table.assign(key=table["mean"] * -ctx.compare.sign).sort_values("key", na_position="last",
                                                                           kind="stable")
    labels = list(ranked.index)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(labels) + 2), 3.8))
    finished = ctx.runs[ctx.runs["status"] == "finished"]
    labelled: set[str] = set()
    for x, label in enumerate(labels):
        color, row = ctx.colors[label], ranked.loc[label]
        seeds = finished.loc[finished["label"] == label, "value"].dropna()
        ax.scatter([x] * len(seeds), seeds, color=color, s=12, alpha=0.6, zorder=3)
        if not math.isnan(row["mean"]):
            err = None if math.isnan(row["ci_low"]) else [[row["mean"] - row["ci_low"]],
                                                          [row["ci_high"] - row["mean"]]]
            ax.errorbar([x], [row["mean"]], yerr=err, fmt="o", color=color, capsize=4, ms=6, zorder=4)
        for st in BROKEN:
            mark_broken(ax, [x] * int(row[f"n_{st}"] > 0), color, st, labelled)
    limits = finite_limits(np.concatenate([finished["value"].to_numpy(float),
                                           ranked["ci_low"].to_numpy(float), ranked["ci_high"].to_numpy(float)]))
    if limits:
        ax.set_ylim(*limits)
    ax.set_xlim(-0.5, len(labels) - 0.5)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_ylabel(ctx.compare.metric)
    ax.grid(axis="y", alpha=0.3)
    if labelled:
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig, f"{ctx.compare.metric} per variant (best first): mean with 95% CI, seeds as points."


@register_figure("metric_vs_key")
def metric_vs_key(ctx: FigureContext) -> tuple[Figure, str] | None:
    """For a grid over one numeric key: the metric against that key, one line per variant."""
    if len(ctx.design.grid_keys) != 1:
        return None
    key = ctx.design.grid_keys[0]
    runs = ctx.runs.assign(x=ctx.runs[key].astype(float))
    groups = runs.groupby(runs["variant"].fillna("").astype(str), sort=False)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    labelled: set[str] = set()
    for variant, rows in groups:
        color = ctx.colors[rows["label"].iloc[0]]
        done = rows[rows["status"] == "finished"].dropna(subset=["value"])
        ax.scatter(done["x"], done["value"], color=color, s=14, alpha=0.6)
        means = done.groupby("x")["value"].mean().sort_index()
        ax.plot(means.index, means.values, "-o", color=color, ms=4, label=variant or ctx.compare.metric)
        for st in BROKEN:
            mark_broken(ax, rows.loc[rows["status"] == st, "x"].tolist(), color, st, labelled)
    lo, hi = float(runs["x"].min()), float(runs["x"].max())
    if lo > 0 and (key in _LOG_KEYS or hi / lo >= 20):
        ax.set_xscale("log")
        pad = (hi / lo) ** 0.05 if hi > lo else 1.5
        ax.set_xlim(lo / pad, hi * pad)  # broken runs' markers are not autoscaled: cover every x
    else:
        pad = 0.05 * (hi - lo) or 0.5
        ax.set_xlim(lo - pad, hi + pad)
    limits = finite_limits(runs.loc[runs["status"] == "finished", "value"])
    if limits:
        ax.set_ylim(*limits)
    ax.set_xlabel(key)
    ax.set_ylabel(ctx.compare.metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, f"{ctx.compare.metric} against {key}: seeds as points, line through the means."


@register_figure("heatmap")
def heatmap(ctx: FigureContext) -> tuple[Figure, str] | None:
    """For a grid over two numeric keys: mean metric per cell, annotated with parameter counts."""
    if len(ctx.design.grid_keys) != 2:
        return None
    kx, ky = ctx.design.grid_keys
    table = ctx.table.set_index("variant")
    first = ctx.runs.drop_duplicates("label").set_index("label")
    variants = list(dict.fromkeys(first["variant"].fillna("").astype(str)))
    xs, ys = sorted(first[kx].astype(float).unique()), sorted(first[ky].astype(float).unique())
    fig, axes = plt.subplots(1, len(variants), figsize=(4.2 * len(variants), 3.8), squeeze=False)
    finite = table["mean"].dropna()
    vmin, vmax = (finite.min(), finite.max()) if len(finite) else (0.0, 1.0)
    cmap = plt.get_cmap("viridis_r" if ctx.compare.goal == "minimize" else "viridis").with_extremes(bad="#dddddd")
    for ax, variant in zip(axes[0], variants):
        grid = np.full((len(ys), len(xs)), np.nan)
        notes = {}
        for label, row in first[first["variant"].fillna("").astype(str) == variant].iterrows():
            i, j = ys.index(float(row[ky])), xs.index(float(row[kx]))
            stats = table.loc[label]
            grid[i, j] = stats["mean"]
            value = "diverged" if math.isnan(stats["mean"]) and stats["n_diverged"] else (
                "-" if math.isnan(stats["mean"]) else f"{stats['mean']:.3f}")
            notes[(i, j)] = f"{value}\n{_params(stats['n_params'])}"
        image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=vmin, vmax=vmax, origin="lower",
                          aspect="auto")
        for (i, j), text in notes.items():
            dark = math.isfinite(grid[i, j]) and _luminance(cmap(image.norm(grid[i, j]))) < 0.5
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if dark else "black")
        ax.set_xticks(range(len(xs)), [f"{v:g}" for v in xs])
        ax.set_yticks(range(len(ys)), [f"{v:g}" for v in ys])
        ax.set_xlabel(kx)
        ax.set_ylabel(ky)
        ax.set_title(variant or ctx.compare.metric, fontsize=9)
    fig.colorbar(image, ax=axes[0].tolist(), label=ctx.compare.metric)
    return fig, f"Mean {ctx.compare.metric} over {kx} x {ky}, with parameter counts; grey: no finished run."


def _luminance(rgba: tuple[float, ...]) -> float:
    r, g, b = rgba[:3]
    return 0.299 * r + 0.587 * g + 0.114 * b


def _params(n: float) -> str:
    if n is None or math.isnan(n):
        return ""
    return f"{n / 1e6:.2f}M params" if n >= 1e5 else f"{n / 1e3:.1f}k params"


@register_figure("effects")
def effects_plot(ctx: FigureContext) -> tuple[Figure, str] | None:
    """Main effects and interactions (and the one-factor comparisons) with 95% CIs, in metric units."""
    rows = ctx.effects
    if rows is None or not len(rows):
        return None
    rows = rows[np.isfinite(rows["estimate"].to_numpy(float))].iloc[::-1]
    if not len(rows):
        return None
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(rows) + 1.4))
    colors = {"main": "#1f77b4", "interaction": "#d62728", "simple": "#7f7f7f", "matched": "#2ca02c"}
    y = np.arange(len(rows))
    for i, (_, r) in enumerate(rows.iterrows()):
        color = colors.get(r["kind"], "#7f7f7f")
        lo, hi = r["ci_low"], r["ci_high"]
        if math.isfinite(lo):
            ax.plot([lo, hi], [i, i], color=color, lw=2)
        ax.plot([r["estimate"]], [i], "o", color=color, ms=5, mfc="white" if not r["significant"] else color)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y, [f"{r['contrast']}" for _, r in rows.iterrows()], fontsize=7)
    ax.set_xlabel(f"effect on {ctx.compare.metric} (level - reference)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig, ("Effects with 95% CIs: main effects (blue), interactions (red), one-factor comparisons "
                 "(grey); filled: significant after adjustment.")


def save_figure(fig: Any, out_dir: Path, name: str, caption: str) -> FigureFile:
    """Write one drawn figure as PNG + deterministic SVG under out_dir, close it, and name it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png, svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
    fig.savefig(png, metadata={"Software": None})
    fig.savefig(svg, metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return FigureFile(name, caption, png, svg)
