"""Report figures and findings from training-dynamics diagnostics (`diag/` metrics, length_eval.json).

Importing this module registers four figures with `gptlab.report.figures.base.register_figure`; each
returns None when the experiment does not vary what it shows, and the first three return
`Skipped(reason)` when it does but no usable run logged their data (e.g. `log.diagnostics: off`):
`diag_findings` then says, in one line, why the figure is left out. No figure is drawn empty.
    grad_norm_by_layer     pre-clip gradient norm per layer group at a few steps (residual / norm / depth)
    attention_stats        attention logit std and entropy over training (attention scale / heads)
    early_training         gradient norm and training loss over the first steps (warmup / placement / lr)
    length_generalisation  val loss against evaluation context, from each run's length_eval.json
                           (needs `ctx.options["runs_root"]`, the run store root)
`diag_findings(ctx)` gives the sentences that cite them. Lines are means over seeds (geometric for
norms); diverged and failed runs are left out of the means.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from gptlab.report.figures.base import BROKEN, FigureContext, Skipped, register_figure
from gptlab.axes import figure_axes

# the keys each figure is relevant to: the axes declared for it in gptlab/axes.py, plus plain keys
RELEVANT = {
    "grad_norm_by_layer": {"n_layer", *figure_axes("grad_norm_by_layer")},
    "attention_stats": {"n_head", *figure_axes("attention_stats")},
    "early_training": {"warmup_steps", "lr", *figure_axes("early_training")},
}
FIGURE_NAMES = (*RELEVANT, "length_generalisation")
CAPTIONS = {
    "grad_norm_by_layer": "Pre-clip gradient norm per layer group (embedding, blocks, head) at a few steps; "
                          "geometric mean over seeds.",
    "attention_stats": "Attention logit std and attention entropy (mean over layers and heads) over training.",
    "early_training": "Pre-clip global gradient norm and training loss over the first steps.",
    "length_generalisation": "Validation loss against evaluation context length (`gptlab eval --block-size`); "
                             "dashed: the trained block size.",
}


# ---- data helpers -------------------------------------------------------------------------------

def _applies(ctx: FigureContext, name: str) -> bool:
    return bool(RELEVANT[name] & set(ctx.design.varying))


def _ok_history(ctx: FigureContext, columns: list[str]) -> pd.DataFrame:
    """History rows of finished-or-running runs with a label column, restricted to `columns`."""
    runs = ctx.runs.set_index("run")
    hist = ctx.history[ctx.history["run"].map(runs["status"]).isin(BROKEN) == False]  # noqa: E712
    keep = [c for c in columns if c in hist]
    hist = hist[["run", "step", *keep]].dropna(subset=keep, how="all")
    return hist.assign(label=hist["run"].map(runs["label"]))


def _groups(history: pd.DataFrame) -> dict[str, list[str]]:
    """label-independent layer columns in order: embedding, block_0.., head."""
    cols = [c for c in history.columns if c.startswith("diag/grad_norm/") and "/param/" not in c]
    blocks = sorted((c for c in cols if "/block_" in c), key=lambda c: int(c.rsplit("_", 1)[1]))
    return {"embedding": [c for c in cols if c.endswith("/embedding")], "blocks": blocks,
            "head": [c for c in cols if c.endswith("/head")]}


def _layer_columns(history: pd.DataFrame) -> list[str]:
    return [c for cols in _groups(history).values() for c in cols]


def _no_data(ctx: FigureContext, what: str) -> Skipped:
    """Why a figure that applies has nothing to draw."""
    if not any(str(c).startswith("diag/") for c in ctx.history.columns):
        return Skipped(f"no run logged {what} (no run logged diagnostics: log.diagnostics was off)")
    return Skipped(f"no finished or running run logged {what}")


def _legend(ax) -> None:  # noqa: ANN001
    """A legend, when the axis has labelled artists (matplotlib warns on an empty one)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def _geo_mean(values: pd.Series) -> float:
    arr = values.to_numpy(float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return math.nan
    if (arr <= 0).any():
        return float(arr.mean())
    return float(np.exp(np.log(arr).mean()))


def _layer_profile(hist: pd.DataFrame, label: str, step: int) -> list[float]:
    """[embedding, block_0.., head] gradient norms of a label at a step (geometric mean over seeds)."""
    rows = hist[(hist["label"] == label) & (hist["step"] == step)]
    groups = _groups(hist)
    cols = groups["embedding"] + [c for c in groups["blocks"] if rows[c].notna().any()] + groups["head"]
    return [_geo_mean(rows[c]) for c in cols]


def _length_evals(ctx: FigureContext) -> pd.DataFrame:
    root = ctx.options.get("runs_root")
    rows = []
    if root is None:
        return pd.DataFrame(rows)
    for _, run in ctx.runs.iterrows():
        path = Path(root) / ctx.experiment / run["run"] / "length_eval.json"
        if run["status"] in BROKEN or not path.is_file():
            continue
        for item in json.loads(path.read_text(encoding="utf-8")):
            rows.append({"run": run["run"], "label": run["label"], "block_size": int(item["block_size"]),
                         "val_loss": float(item["val_loss"]), "trained": int(run.get("block_size", 0) or 0)})
    return pd.DataFrame(rows)


# ---- figures ------------------------------------------------------------------------------------

def _layer_steps(hist: pd.DataFrame) -> list[int]:
    """Steps at which some run logged per-layer gradient norms."""
    cols = _layer_columns(hist)
    return sorted(hist.loc[hist[cols].notna().any(axis=1), "step"].unique().tolist()) if cols else []


@register_figure("grad_norm_by_layer")
def grad_norm_by_layer(ctx: FigureContext) -> tuple[Figure, str] | Skipped | None:
    if not _applies(ctx, "grad_norm_by_layer"):
        return None
    hist = _ok_history(ctx, [c for c in ctx.history.columns if c.startswith("diag/grad_norm/")])
    steps = _layer_steps(hist)
    if not steps:
        return _no_data(ctx, "per-layer gradient norms (diag/grad_norm/<layer>)")
    picks = sorted({steps[0], steps[len(steps) // 2], steps[-1]})
    profiles = {(label, step): np.asarray(_layer_profile(hist, label, step), dtype=float)
                for step in picks for label in ctx.design.labels}
    fig, axes = plt.subplots(1, len(picks), figsize=(4.2 * len(picks), 3.6), squeeze=False, sharey=True)
    for ax, step in zip(axes[0], picks):
        zero_labelled = False
        for label in ctx.design.labels:
            profile = profiles[label, step]
            if not np.isfinite(profile).any():  # no record of this label at this step
                continue
            positive = np.where(profile > 0, profile, np.nan)
            ax.plot(range(len(profile)), positive, "-o", ms=3, color=ctx.colors[label], label=label)
            zeros = np.flatnonzero(profile == 0)  # vanished (underflowed): marked at the bottom edge
            if zeros.size:
                ax.scatter(zeros, [0.03] * zeros.size, marker="v", s=18, color=ctx.colors[label],
                           transform=ax.get_xaxis_transform(), clip_on=False,
                           label=None if zero_labelled else "exactly 0")
                zero_labelled = True
        ax.set_yscale("log")
        ax.set_title(f"step {step}", fontsize=9)
        ax.set_xlabel("layer (0 = embedding, last = head)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("gradient norm (pre-clip)")
    _legend(axes[0][-1])
    fig.tight_layout()
    return fig, CAPTIONS["grad_norm_by_layer"]


def _mean_over(hist: pd.DataFrame, prefix: str) -> pd.Series:
    cols = [c for c in hist.columns if c.startswith(prefix) and "/head_" not in c]
    return hist[cols].mean(axis=1) if cols else pd.Series(dtype=float)


@register_figure("attention_stats")
def attention_stats(ctx: FigureContext) -> tuple[Figure, str] | Skipped | None:
    if not _applies(ctx, "attention_stats"):
        return None
    cols = [c for c in ctx.history.columns if c.startswith(("diag/attn_logit_std/", "diag/attn_entropy/"))]
    hist = _ok_history(ctx, cols)
    if hist.empty or not set(cols) & set(hist.columns):
        return _no_data(ctx, "attention statistics (diag/attn_logit_std/<block>, diag/attn_entropy/<block>)")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, prefix in ((axes[0], "diag/attn_logit_std/"), (axes[1], "diag/attn_entropy/")):
        hist = hist.assign(value=_mean_over(hist, prefix))
        for label in ctx.design.labels:
            mine = hist[hist["label"] == label].dropna(subset=["value"])
            if len(mine):
                curve = mine.groupby("step")["value"].mean()
                ax.plot(curve.index, curve.values, color=ctx.colors[label], label=label, lw=1.5)
    _finish_pair(fig, axes, ("attention logit std", "attention entropy (nats)"))
    return fig, CAPTIONS["attention_stats"]


def _finish_pair(fig: Figure, axes, ylabels: tuple[str, str]) -> None:  # noqa: ANN001
    """Two panels over training steps: labels, grid, log-scale left panel with the legend."""
    for ax, ylabel in zip(axes, ylabels):
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    _legend(axes[0])
    fig.tight_layout()


def _early_window(ctx: FigureContext) -> int:
    last = int(ctx.history["step"].max()) if len(ctx.history) else 0
    warmup = pd.to_numeric(ctx.runs.get("warmup_steps", pd.Series(dtype=float)), errors="coerce").max()
    window = max(3 * (warmup if warmup == warmup else 0), 0.2 * last)
    return int(min(last, max(window, 1)))


@register_figure("early_training")
def early_training(ctx: FigureContext) -> tuple[Figure, str] | Skipped | None:
    if not _applies(ctx, "early_training"):
        return None
    if "diag/grad_norm" not in ctx.history or ctx.history["diag/grad_norm"].isna().all():
        return _no_data(ctx, "gradient norms (diag/grad_norm)")
    window = _early_window(ctx)
    runs = ctx.runs.set_index("run")
    hist = ctx.history[ctx.history["step"] <= window]
    hist = hist.assign(label=hist["run"].map(runs["label"]), status=hist["run"].map(runs["status"]))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, metric in ((axes[0], "diag/grad_norm"), (axes[1], "train/loss")):
        for label in ctx.design.labels:
            mine = hist[(hist["label"] == label)].dropna(subset=[metric])
            for run, rows in mine.groupby("run"):
                broken = rows["status"].iloc[0] in BROKEN
                ax.plot(rows["step"], rows[metric], color=ctx.colors[label], lw=0.8 if broken else 1.2,
                        ls=":" if broken else "-", alpha=0.8,
                        label=label if run == mine["run"].iloc[0] else None)
    _finish_pair(fig, axes, ("diag/grad_norm", "train/loss"))
    return fig, f"{CAPTIONS['early_training']} (first {window} steps; each seed a line, dotted: broke)."


@register_figure("length_generalisation")
def length_generalisation(ctx: FigureContext) -> tuple[Figure, str] | None:
    evals = _length_evals(ctx)
    if evals.empty:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for label in ctx.design.labels:
        mine = evals[evals["label"] == label]
        if len(mine):
            curve = mine.groupby("block_size")["val_loss"].mean()
            ax.plot(curve.index, curve.values, "-o", ms=4, color=ctx.colors[label], label=label)
    for trained in sorted(set(evals["trained"]) - {0}):
        ax.axvline(trained, color="grey", ls="--", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("evaluation context (tokens)")
    ax.set_ylabel("val/loss")
    ax.grid(alpha=0.3)
    _legend(ax)
    fig.tight_layout()
    return fig, CAPTIONS["length_generalisation"]


# ---- findings -----------------------------------------------------------------------------------

def _baseline(ctx: FigureContext) -> str:
    base = ctx.compare.baseline
    return base if base in ctx.design.labels else ctx.design.labels[0]


def _sci(x: float) -> str:
    return f"{x:.2g}" if 1e-2 <= abs(x) < 1e3 else f"{x:.1e}"


def diag_findings(ctx: FigureContext) -> list[str]:
    """Sentences citing the figures above, only for the figures that apply to this experiment; and
    for each of them left out for want of data (after make_figures), the reason."""
    out = [f"Figure {name} is left out: {reason}." for name, reason in ctx.skipped.items() if name in FIGURE_NAMES]
    base = _baseline(ctx)
    if _applies(ctx, "grad_norm_by_layer") and "diag/grad_norm" in ctx.history:
        hist = _ok_history(ctx, [c for c in ctx.history.columns if c.startswith("diag/grad_norm/")])
        steps = _layer_steps(hist)
        if steps:
            step = steps[0]
            ref = _layer_profile(hist, base, step)
            blocks = _groups(hist)["blocks"]
            for label in ctx.design.labels:
                prof = _layer_profile(hist, label, step)
                if label == base or not prof or not ref or not (ref[0] > 0) or not math.isfinite(prof[0]):
                    continue  # the baseline itself, or a label without gradient records at this step
                n_blocks = sum(hist.loc[hist["label"] == label, c].notna().any() for c in blocks)
                if prof[0] == 0:
                    head = f"no gradient reaches the embedding in {label} (exactly 0 in float32)"
                else:
                    head = f"the gradient reaching the embedding in {label} is {_sci(prof[0] / ref[0])} of that in {base}"
                first, last = prof[1], prof[n_blocks] if n_blocks else math.nan
                depth = (f", and its first block gets {_sci(first / last)} of its last block's"
                         if n_blocks > 1 and last > 0 else "")
                out.append(f"At step {step} ({n_blocks} layers), {head}{depth} (figure grad_norm_by_layer).")
    if _applies(ctx, "attention_stats") and any(c.startswith("diag/attn_logit_std/") for c in ctx.history):
        hist = _ok_history(ctx, [c for c in ctx.history.columns if c.startswith(("diag/attn_"))])
        hist = hist.assign(std=_mean_over(hist, "diag/attn_logit_std/"), ent=_mean_over(hist, "diag/attn_entropy/"))
        first, last = hist["step"].min(), hist["step"].max()

        def at(label: str, step: int, col: str) -> float:
            return float(hist.loc[(hist["label"] == label) & (hist["step"] == step), col].mean())
        for label in ctx.design.labels:
            if label == base:
                continue
            s0, b0 = at(label, first, "std"), at(base, first, "std")
            if s0 == s0 and b0 and b0 == b0:
                out.append(f"{label} has attention logits {s0 / b0:.2g}x as spread as {base} at step {first} "
                           f"(std {s0:.3g} vs {b0:.3g}); entropy at step {last}: {at(label, last, 'ent'):.2f} vs "
                           f"{at(base, last, 'ent'):.2f} nats (figure attention_stats).")
    if _applies(ctx, "early_training") and "diag/grad_norm" in ctx.history:
        window = _early_window(ctx)
        hist = _ok_history(ctx, ["diag/grad_norm"])
        hist = hist[hist["step"] <= window].dropna(subset=["diag/grad_norm"])
        peaks = {label: hist[hist["label"] == label].groupby("step")["diag/grad_norm"].mean()
                 for label in ctx.design.labels}
        parts = [f"{label} {curve.max():.3g} (step {int(curve.idxmax())})" for label, curve in peaks.items()
                 if len(curve)]
        if parts:
            out.append(f"Peak pre-clip gradient norm in the first {window} steps: {', '.join(parts)} "
                       f"(figure early_training).")
    evals = _length_evals(ctx)
    if not evals.empty:
        for label in ctx.design.labels:
            mine = evals[evals["label"] == label]
            if mine.empty:
                continue
            curve = mine.groupby("block_size")["val_loss"].mean()
            trained = int(mine["trained"].iloc[0])
            longest = int(curve.index.max())
            if trained in curve.index and longest != trained:
                out.append(f"{label}: val loss {curve[trained]:.3f} at its trained context {trained} and "
                           f"{curve[longest]:.3f} at {longest} ({_change(curve[longest], curve[trained])}; "
                           f"figure length_generalisation).")
    return out


def _change(new: float, old: float) -> str:
    rel = (new - old) / old if old else math.nan
    return f"{rel * 100:+.1f}%"


__all__: list[Any] = ["diag_findings", "grad_norm_by_layer", "attention_stats", "early_training",
                      "length_generalisation"]
