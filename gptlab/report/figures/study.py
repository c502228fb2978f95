"""A study design's figures and leading findings: the tuning curve per variant and the scale study's two
figures (gptlab.report.figures.scale), drawn into the report's figures/ and handed to its sections."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from gptlab.report.figures.base import _RC, FigureFile, label_colors, save_figure  # noqa: E402

FIG_TUNING = "tuning"


def draw_study_figures(a, out_dir: Path) -> dict[str, Any]:  # noqa: ANN001 - an Analysis
    """The analysis' extras, with each study figure drawn (a figure with no data is left out)."""
    extras = dict(a.extras)
    tuning = extras.get("tuning")
    if tuning is not None:
        extras["tuning_figure"] = tuning_figure(tuning, Path(out_dir), label_colors([c.cell for c in tuning.cells]))
    if extras.get("scale") is not None:
        from gptlab.report.figures.scale import with_figures

        extras["scale"] = with_figures(extras["scale"], Path(out_dir))
    return extras


def study_findings(a) -> list[str]:  # noqa: ANN001
    """Findings that lead the list: where tuning changed a verdict, say so before anything else."""
    return list(a.extras.get("flips", [])) if a.extras.get("flipped") else []


def tuning_figure(tuning, out_dir: Path, colors: dict[str, Any]) -> FigureFile | None:  # noqa: ANN001
    """The compared metric against the first tuned key per variant: each tuning seed a point, the mean per
    value a line, the chosen value ringed; log x when the values span 10x or more (a learning rate)."""
    key = tuning.keys[0]
    drawn = [c for c in tuning.cells if len(c.points) and c.points["value"].notna().any()]
    if not drawn:
        return None
    with matplotlib.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.5, 4.0))
        for cell in drawn:
            color = colors[cell.cell]
            pts = cell.points.dropna(subset=["value"])
            ax.scatter(pts[key], pts["value"], color=color, s=18, alpha=0.7)
            means = cell.means.dropna(subset=["mean"]).sort_values(key)
            ax.plot(means[key], means["mean"], color=color, lw=1.4, label=f"{cell.cell} (chosen {key}="
                    f"{cell.chosen.get(key):g})" if isinstance(cell.chosen.get(key), float) else cell.cell)
            best = means[means[key] == cell.chosen.get(key)]
            ax.scatter(best[key], best["mean"], s=110, facecolors="none", edgecolors=color, lw=1.6)
        values = [v for v in tuning.candidates.get(key, []) if isinstance(v, (int, float))]
        if values and min(values) > 0 and max(values) / min(values) >= 10:
            ax.set_xscale("log")
        ax.set_xlabel(key)
        ax.set_ylabel(f"{tuning.metric} (tuning seeds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title(f"Tuning: {tuning.metric} against {key} per variant (ring: chosen)")
        fig.tight_layout()
        caption = (f"{tuning.metric} of each tuning run against {key} (points: tuning seeds "
                   f"{', '.join(map(str, tuning.seeds))}; line: mean per value; ring: the value the variant was "
                   "compared at)")
        return save_figure(fig, out_dir, FIG_TUNING, caption)
