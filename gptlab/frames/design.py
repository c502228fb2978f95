"""What an experiment varies: label order, swept numeric keys, shared and per-variant config.

Read from the spec when there is one (variant order, grid keys) and inferred from the run
configs otherwise, so ad-hoc runs and W&B sweeps get the same report layout.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import pandas as pd

from gptlab.frames.load import LoadedRuns
from gptlab.config import SECTIONS

_IGNORED = {"seed", "device", "vocab_size"}  # differ per run or per machine, not per variant


@dataclass(frozen=True)
class Design:
    labels: list[str]  # display / table order
    grid_keys: list[str]  # numeric keys swept by the grid (figures plot the metric against them)
    varying: list[str]  # config keys whose value differs between labels
    shared: dict[str, dict[str, Any]]  # section -> {key: value} common to every run
    label_config: pd.DataFrame  # label -> values of the varying keys (first run of each label)


def design_of(store: LoadedRuns, spec: dict[str, Any] | None) -> Design:
    """Derive the design of one experiment's runs (already selected)."""
    runs = store.runs
    config_cols = [k for k in store.config_keys if k in runs]
    varying, shared = [], {s: {} for s in SECTIONS}
    for key in config_cols:
        known = runs[key].notna()  # a run that failed before writing its config knows no values
        text = runs.loc[known, key].map(repr)
        if text.nunique() == 1:
            shared[store.config_keys[key]][key] = runs.loc[known, key].iloc[0]
        elif key not in _IGNORED and text.groupby(runs.loc[known, "label"]).nunique().max() == 1:
            varying.append(key)
    grid_keys = _grid_keys(runs, spec, varying)
    labels = _order(runs, spec, grid_keys)
    first = _first_known(runs, varying)
    label_config = first.loc[labels, varying] if varying else pd.DataFrame(index=labels)
    return Design(labels, grid_keys, varying, {s: v for s, v in shared.items() if v}, label_config)


def _first_known(runs: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per label: the first run that has a config (else the first run)."""
    known = runs[keys].notna().all(axis=1) if keys else pd.Series(True, index=runs.index)
    ordered = pd.concat([runs[known], runs[~known]])
    return ordered.drop_duplicates("label").set_index("label")


def _grid_keys(runs: pd.DataFrame, spec: dict[str, Any] | None, varying: list[str]) -> list[str]:
    if spec is not None:
        keys = [str(k).split(".")[-1] for k in (spec.get("grid") or {})]
    elif runs["variant"].isna().all():
        keys = list(varying)
    else:
        keys = []
    return [k for k in keys if k in runs and k not in _IGNORED and _numeric(runs[k])]


def _numeric(column: pd.Series) -> bool:
    return all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in column.dropna())


def _order(runs: pd.DataFrame, spec: dict[str, Any] | None, grid_keys: list[str]) -> list[str]:
    """Spec variant order, then grid values ascending, then the label (deterministic)."""
    variant_rank = {str(v): i for i, v in enumerate((spec or {}).get("variants") or {})}
    first = runs.drop_duplicates("label")

    def key(row: pd.Series) -> tuple:
        variant = row["variant"]
        rank = variant_rank.get(str(variant), len(variant_rank))
        grid = tuple(_sortable(row[k]) for k in grid_keys)
        return (rank, "" if variant is None or variant != variant else str(variant), grid, row["label"])

    return [row["label"] for _, row in sorted(first.iterrows(), key=lambda item: key(item[1]))]


def _sortable(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.inf
    return number if math.isfinite(number) else math.inf
