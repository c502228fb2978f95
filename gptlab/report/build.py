"""Orchestration: load runs, compute the table, draw figures, write report.md/html, summary.csv, index.

`write_reports` is what `gptlab report` calls; `analyze` gives the same numbers without writing
files (for notebooks and tests).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from gptlab.stats.compute import label_params, matched_pairs, matched_rows
from gptlab.frames.design import Design, design_of
from gptlab.stats.effects import (Factors, describe_design, effects_frame, factors_of, fit_effects,
                                     simple_effects)
from gptlab.stats.family import Family, adjust_family
from gptlab.report.findings import findings
from gptlab.report.headline import headline
from gptlab.report.health import variant_health
from gptlab.frames.load import LoadedRuns, load
from gptlab.stats.summary import Criterion, label_samples, metric_values, summary_table
from gptlab.errors import UserError, closest
from gptlab.yamlio import atomic_write_text


@dataclass
class Analysis:
    """The numbers behind one experiment's report."""

    experiment: str
    store: LoadedRuns  # this experiment only; runs carry a `value` column (the compared metric)
    spec: dict[str, Any] | None
    compare: Criterion
    design: Design
    table: pd.DataFrame
    note: str | None
    factors: Factors | None = None  # None: fewer than two factors (each level vs the baseline)
    effects: pd.DataFrame = field(default_factory=pd.DataFrame)  # effects.csv rows (several factors)
    design_notes: list[str] = field(default_factory=list)
    family: Family | None = None
    extras: dict[str, Any] = field(default_factory=dict)  # study designs: tuning, shared, adaptive, scale

    @property
    def headline(self) -> str:
        scale = self.extras.get("scale")
        if scale is not None and scale.comparisons:  # a scale study asks how the effect changes with size
            from gptlab.report.scale_text import scale_findings

            return scale_findings(scale)[0] + " (Scale)"
        best = self.compare.baseline is None or self.note is not None
        return headline(self.table, self.compare, self.effects, baseline_is_best=best)

    @property
    def baseline(self) -> str:
        if self.compare.baseline and self.note is None:
            return self.compare.baseline
        bases = sorted(set(self.table["baseline"].dropna()))
        return f"{', '.join(bases)} (best variant)" if bases else "none"


def load_all(runs: Path, wandb_project: str | None = None, wandb_dir: Path | None = None) -> LoadedRuns:
    """The local store plus any W&B sources, merged: the same frames `gptlab.load_runs` and
    `gptlab.load_history` return."""
    return load(runs, wandb_dir=wandb_dir, wandb=wandb_project)


def analyze(store: LoadedRuns, experiment: str) -> Analysis:
    """Statistics of one experiment of a loaded store: table, effects, health, adjusted tests; for a study
    design also the tuning choice, the comparison at the shared value, the adaptive rounds and the scale trend
    (`Analysis.extras`, read by the report's study sections)."""
    from gptlab.report.stages import split_study, tuned_keys

    sub = store.select(experiment)
    spec = store.specs.get(experiment)
    parts = split_study(sub)
    nuisance = tuned_keys(spec)
    analysis = _analyze_runs(parts.main if len(parts.main.runs) else sub, experiment, spec, nuisance)
    shared = _analyze_runs(parts.shared, experiment, spec, nuisance) if len(parts.shared.runs) else None
    from gptlab.report.study_extras import study_extras

    study_extras(analysis, parts, shared)
    return analysis


def _analyze_runs(sub: LoadedRuns, experiment: str, spec: dict[str, Any] | None, nuisance: list[str]) -> Analysis:
    """The statistics of one set of compared runs; `nuisance`: tuned keys, which differ per variant by design
    and are not factors of the study."""
    compare = Criterion.from_spec(spec)
    design = design_of(sub, spec)
    if nuisance:
        design = dataclasses.replace(design, varying=[k for k in design.varying if k not in nuisance],
                                     label_config=design.label_config.drop(columns=[k for k in nuisance if k in
                                                                                    design.label_config]))
    values = metric_values(sub.runs, sub.history, compare)
    sub.runs = sub.runs.assign(value=values)
    baseline = _baseline_label(sub.runs, compare, design)
    factors = factors_of(design.label_config, baseline) if design.varying else None
    factors = factors if factors is not None and factors.crossed() else None
    # a label is compared with the baseline variant's label at the same grid point and the same model size
    match = [*design.grid_keys, *(["size"] if "size" in sub.runs else [])]
    table, note = summary_table(sub.runs, values, design.labels, compare, match,
                                comparable=factors.one_apart if factors else None)
    margin = compare.margin_for(float(table.set_index("variant")["mean"].get(baseline, float("nan")))
                                if baseline else float("nan"))
    health = variant_health(sub.runs, sub.history, design.labels, margin)
    table = table.join(health.drop(columns="variant"), on="variant")
    rows, notes = [], []
    samples = label_samples(sub.runs, values, design.labels)
    if factors is not None:
        model = fit_effects(factors, sub.runs, values, blocks=compare.pairing != "none")
        rows = model.rows + simple_effects(factors, samples, margin, compare.pairing)
        notes = describe_design(factors, sub.runs, design.labels, model, compare.metric)
    params = label_params(sub.runs, design.labels)
    tested = {(r["variant"], r["baseline"]) for _, r in table.iterrows() if r["tested"]}
    tested |= {tuple(r["pair"]) for r in rows if r.get("pair")}
    pairs = matched_pairs(params, design.varying, design.label_config)
    rows += matched_rows(pairs, params, samples, tested, margin, compare.pairing)
    effects = effects_frame(rows)
    family = adjust_family(table, effects, compare.correction)
    return Analysis(experiment, sub, spec, compare, design, table, note, factors, effects, notes, family)


def _baseline_label(runs: pd.DataFrame, compare: Criterion, design: Design) -> str | None:
    """The label of the spec's baseline (its first label when a grid multiplies it), else None."""
    if compare.baseline is None:
        return None
    if compare.baseline in design.labels:
        return compare.baseline
    labels = runs.loc[runs["variant"].astype(str) == compare.baseline, "label"]
    ordered = [lab for lab in design.labels if lab in set(labels)]
    return ordered[0] if ordered else None


# modules that add figures through `register_figure` when imported, and may define
# `diag_findings(ctx) -> list[str]` sentences citing them; absent modules are skipped
FIGURE_PLUGINS = ("gptlab.report.figures.compute", "gptlab.report.figures.diagnostics",
                  "gptlab.report.figures.transfer")


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
    """reports/<experiment>/: summary.csv, effects.csv (several factors), figures/, report.md, report.html."""
    from gptlab.report.compute_text import compute_findings
    from gptlab.report.figures.base import FigureContext, label_colors, make_figures
    from gptlab.report.blocks import render_html, render_markdown
    from gptlab.report.samples import generate_samples, settings
    from gptlab.report.sections import ReportContext, report_blocks
    from gptlab.report.csv_files import write_effects_csv, write_summary_csv
    from gptlab.report.study_extras import csv_columns, effects_frame_of, summary_frame
    from gptlab.report.figures.study import draw_study_figures, study_findings

    a, folder = analysis, Path(out) / analysis.experiment
    write_summary_csv(summary_frame(a), folder / "summary.csv", extra=csv_columns(a))
    effects_path = folder / "effects.csv"
    effects = effects_frame_of(a)
    if len(effects):
        write_effects_csv(effects, effects_path, extra=[c for c in ("at",) if c in effects])
    elif effects_path.is_file():  # left from an earlier report of this experiment
        effects_path.unlink()
    extras = draw_study_figures(a, folder / "figures")
    plugins = _plugins()
    ctx = FigureContext(a.experiment, a.store.runs, a.store.history, a.table, a.compare, a.design,
                        label_colors(a.design.labels), {"log_x": log_x, "runs_root": runs_root}, a.effects)
    figures = make_figures(ctx, folder / "figures")
    drawn = {f.name for f in figures}
    extra = [line for p in plugins if hasattr(p, "diag_findings") for line in p.diag_findings(ctx)]
    extra += compute_findings(a.store.runs, a.design.labels, a.compare.metric, a.design.varying,
                              a.design.label_config)
    lines = [a.headline] + [line for line in findings(a.table, a.compare, a.note, a.effects) + extra
                            if line not in a.headline]  # the headline's own sentence is not repeated
    lines = study_findings(a) + lines
    context = ReportContext(
        experiment=a.experiment, question=(a.spec or {}).get("description"), compare=a.compare,
        baseline=a.baseline, shared=a.design.shared, varying=a.design.label_config,
        provenance=_provenance(a.store.runs), table=a.table, figures=figures,
        findings=[_cite_drawn(line, drawn) for line in lines], headline=a.headline,
        design_notes=a.design_notes, tests=a.family.sentence() if a.family else "",
        effects=a.effects, params=label_params(a.store.runs, a.design.labels),
        samples=generate_samples(a.store.runs, a.design.labels, a.compare.sign, runs_root, a.experiment),
        sample_settings=settings(), extras=extras)
    blocks = report_blocks(context)
    atomic_write_text(folder / "report.md", render_markdown(blocks))
    atomic_write_text(folder / "report.html", render_html(blocks, f"{a.experiment} report"))
    return folder


def _cite_drawn(line: str, drawn: set[str]) -> str:
    """A finding citing a figure that was not drawn (no data for it) cites the results table instead."""
    import re

    match = re.search(r" \(figure (\w+)\)\.$", line)
    if match and match.group(1) not in drawn:
        return line[:match.start()] + " (results table)."
    return line


def _provenance(runs: pd.DataFrame) -> list[str]:
    """Distinct versions, commits, devices and dtypes the runs came from (sorted: deterministic)."""
    lines = []
    for key in ("gptlab_version", "git_commit", "torch_version", "device", "dtype"):
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
    from gptlab.report.render import render_index

    md, page = render_index([(n, line, (out / n / "report.md").is_file()) for n, line in entries])
    atomic_write_text(out / "index.md", md)
    atomic_write_text(out / "index.html", page)
