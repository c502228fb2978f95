"""What a report section may read: one experiment's analysis, ready to be said."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from gptlab.report.figures.base import FigureFile
from gptlab.report.samples import Sample
from gptlab.stats.summary import Criterion


@dataclass
class ReportContext:
    """Everything the built-in sections say, format-free; `extras` holds what study designs add."""

    experiment: str
    question: str | None  # the spec's description
    compare: Criterion
    baseline: str  # as written in the report ("a, b (best variant)" when none was named)
    shared: dict[str, dict[str, Any]]  # config section -> values every run shares
    varying: pd.DataFrame  # label -> varying config keys
    provenance: list[str]
    table: pd.DataFrame  # summary.csv rows
    figures: list[FigureFile]
    findings: list[str]  # the headline first
    headline: str
    design_notes: list[str] = field(default_factory=list)
    tests: str = ""  # how many tests, how corrected
    effects: pd.DataFrame = field(default_factory=pd.DataFrame)  # effects.csv rows
    params: dict[str, float] = field(default_factory=dict)  # label -> parameter count
    samples: list[Sample] = field(default_factory=list)
    sample_settings: str = ""
    # study-design data for sections that are not built in (tuning, adaptive rounds, scale), keyed
    # by the section that reads it; a section finding no key of its own returns []
    extras: dict[str, Any] = field(default_factory=dict)
