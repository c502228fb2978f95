"""Orchestration: load runs, compute the table, draw figures, write report.md/html, summary.csv, index.

`write_reports` is what `gptlab report` calls; `analyze` gives the same numbers without writing
files (for notebooks and tests).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from gptlab.analysis.design import Design, design_of
from gptlab.analysis.findings import findings, headline
from gptlab.analysis.load import Store, load
from gptlab.analysis.stats import Compare, metric_values, summary_table, write_summary_csv
from gptlab.errors import UserError, closest
from gptlab.yamlio import atomic_write_text


@dataclass
class Analysis:
    """The numbers behind one experiment's report."""

    experiment: str
    store: Store  # this experiment only; runs carry a `value` column (the compared metric)
    spec: dict[str, Any] | None
    compare: Compare
    design: Design
    table: pd.DataFrame
    note: str | None

    @property
    def headline(self) -> str:
        best = self.compare.baseline is None or self.note is not None
        return headline(self.table, self.compare, baseline_is_best=best)

    @property
    def baseline(self) -> str:
        if self.compare.baseline and self.note is None:
            return self.compare.baseline
        bases = sorted(set(self.table["baseline"].dropna()))
        return f"{', '.join(bases)} (best variant)" if bases else "none"


def load_all(runs: Path, wandb_project: str | None = None, wandb_dir: Path | None = None) -> Store:
    """The local store plus any W&B sources, merged: the same frames `gptlab.load_runs` and
    `gptlab.load_history` return."""
    return load(runs, wandb_dir=wandb_dir, wandb=wandb_project)


def analyze(store: Store, experiment: str) -> Analysis:
    """Statistics of one experiment of a loaded store."""
    sub = store.select(experiment)
    spec = store.specs.get(experiment)
    compare = Compare.from_spec(spec)
    design = design_of(sub, spec)
    values = metric_values(sub.runs, sub.history, compare)
    sub.runs = sub.runs.assign(value=values)
    table, note = summary_table(sub.runs, values, design.labels, compare, design.grid_keys)
    return Analysis(experiment, sub, spec, compare, design, table, note)


# modules that add figures through `register_figure` when imported, and may define
# `diag_findings(ctx) -> list[str]` sentences citing them; absent modules are skipped
FIGURE_PLUGINS = ("gptlab.analysis.diag_figures",)


def _plugins() -> list[Any]:
    import importlib

    loaded = []
    for name in FIGURE_PLUGINS:
        try:
            loaded.append(importlib.import_module(name))
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
    return loaded


def write_report(analysis: Analysis, out: Path, log_x: bool = False, runs_root: Path | None = None) -> Path:
    """reports/<experiment>/: summary.csv, figures/, report.md, report.html."""
    from gptlab.analysis.figures import FigureContext, label_colors, make_figures
    from gptlab.analysis.render import ReportDoc, render_html, render_markdown

    a, folder = analysis, Path(out) / analysis.experiment
    write_summary_csv(a.table, folder / "summary.csv")
    plugins = _plugins()
    ctx = FigureContext(a.experiment, a.store.runs, a.store.history, a.table, a.compare, a.design,
                        label_colors(a.design.labels), {"log_x": log_x, "runs_root": runs_root})
    figures = make_figures(ctx, folder / "figures")
    extra = [line for p in plugins if hasattr(p, "diag_findings") for line in p.diag_findings(ctx)]
    doc = ReportDoc(
        experiment=a.experiment, question=(a.spec or {}).get("description"), compare=a.compare,
        baseline=a.baseline, shared=a.design.shared, varying=a.design.label_config,
        provenance=_provenance(a.store.runs), table=a.table, figures=figures,
        findings=findings(a.table, a.compare, a.note) + extra, headline=a.headline)
    atomic_write_text(folder / "report.md", render_markdown(doc))
    atomic_write_text(folder / "report.html", render_html(doc))
    return folder


def _provenance(runs: pd.DataFrame) -> list[str]:
    """Distinct versions, commits and devices the runs came from (sorted: deterministic)."""
    lines = []
    for key in ("gptlab_version", "git_commit", "torch_version", "device"):
        col = f"provenance.{key}"
        if col in runs:
            values = sorted({str(v) for v in runs[col].dropna()})
            if values:
                lines.append(f"{key} {', '.join(values)}")
    return lines


def write_reports(runs: Path = Path("runs"), out: Path = Path("reports"),
                  experiments: list[str] | None = None, wandb_project: str | None = None,
                  wandb_dir: Path | None = None, log_x: bool = False) -> list[Path]:
    """Report the named experiments (all when none are named) and rewrite the index.

    Raises UserError for an empty store or an unknown experiment name.
    """
    store = load_all(Path(runs), wandb_project, wandb_dir)
    known = store.experiments()
    if not known:
        raise UserError("no runs found", source=str(runs),
                        fix="train first (gptlab run SPEC.yaml) or point --runs / --wandb-dir at a run store")
    for name in experiments or []:
        if name not in known:
            raise UserError(f"unknown experiment '{name}'", source=str(runs), fix=closest(name, known))
    chosen = list(dict.fromkeys(experiments or known))
    analyses = {name: analyze(store, name) for name in known}
    folders = [write_report(analyses[name], Path(out), log_x, Path(runs)) for name in chosen]
    write_index(Path(out), [(name, analyses[name].headline) for name in known])
    return folders


def write_index(out: Path, entries: list[tuple[str, str]]) -> None:
    """reports/index.md and index.html: every experiment, linked where its report exists."""
    from gptlab.analysis.render import render_index

    md, page = render_index([(n, line, (out / n / "report.md").is_file()) for n, line in entries])
    atomic_write_text(out / "index.md", md)
    atomic_write_text(out / "index.html", page)
