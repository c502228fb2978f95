"""What a study design adds to one experiment's analysis: which runs are compared (tuning runs and the
runs at the shared value are kept apart), the tuning choice, the adaptive rounds and the scale trend.

Everything here is read from the runs themselves (their `stage`, `at`, `size` and config) and the spec, so a
report from a store, from W&B or in a notebook says the same.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from gptlab.frames.records import LoadedRuns


@dataclass(frozen=True)
class StudyParts:
    main: LoadedRuns  # the compared runs (at the tuned values when tuned)
    tune: LoadedRuns  # stage 1 of a tuned study
    shared: LoadedRuns  # compare_shared: the same seeds at the base config's values (labels without -shared)


def _subset(loaded: LoadedRuns, mask: pd.Series) -> LoadedRuns:
    runs = loaded.runs[mask].reset_index(drop=True)
    history = loaded.history[loaded.history["run"].isin(set(runs["run"]))].reset_index(drop=True) \
        if len(loaded.history) else loaded.history
    return LoadedRuns(runs, history, loaded.specs, loaded.config_keys)


def split_study(sub: LoadedRuns) -> StudyParts:
    runs = sub.runs
    stage = runs["stage"].fillna("compare") if "stage" in runs else pd.Series("compare", index=runs.index)
    at = runs["at"] if "at" in runs else pd.Series(None, index=runs.index, dtype=object)
    shared_mask = (stage == "compare") & (at == "shared")
    shared = _subset(sub, shared_mask)
    if len(shared.runs):
        relabel = shared.runs["label"].str.replace(r"-shared$", "", regex=True)
        shared.runs = shared.runs.assign(label=relabel)
        if len(shared.history) and "label" in shared.history:
            shared.history = shared.history.assign(label=shared.history["label"].str.replace(r"-shared$", "",
                                                                                            regex=True))
    return StudyParts(_subset(sub, (stage == "compare") & ~shared_mask), _subset(sub, stage == "tune"), shared)


TUNE_OWN_KEYS = ("seeds", "compare_shared", "at")  # tune's keys that are not tuned (gptlab.runner.design's)


def tuned_keys(spec: dict[str, Any] | None) -> list[str]:
    tune = (spec or {}).get("tune") or {}
    return [str(k).split(".")[-1] for k in tune if k not in TUNE_OWN_KEYS] if isinstance(tune, dict) else []


@dataclass
class CellTuning:
    cell: str  # the compared label
    variant: str | None
    chosen: dict[str, Any]  # the value the comparison seeds ran at
    base: dict[str, Any] = field(default_factory=dict)  # the shared (base config's) value
    points: pd.DataFrame = field(default_factory=pd.DataFrame)  # tuning runs: keys, seed, value, status
    means: pd.DataFrame = field(default_factory=pd.DataFrame)  # per candidate: keys, mean, n
    edges: list[str] = field(default_factory=list)  # "the best lr of post is the smallest tried: extend the list"
    parametrization: str | None = None  # standard | mup (the runs' config), for tune.at's transfer sentence


@dataclass
class Tuning:
    keys: list[str]
    candidates: dict[str, list[Any]]
    seeds: list[int]
    cells: list[CellTuning]
    metric: str
    compare_shared: bool
    at: str | None = None  # "smallest": tuned at the smallest size, the choice reused at `transferred_to`
    transferred_to: list[str] = field(default_factory=list)  # the larger sizes, by parameter count


def tuning_of(parts: StudyParts, spec: dict[str, Any] | None, metric: str, values_tune: pd.Series) -> Tuning | None:
    """Per compared cell: the tuning runs' metric by candidate, the value its comparison seeds ran at, edges."""
    keys = tuned_keys(spec)
    if not keys or not len(parts.tune.runs):
        return None
    tune_spec = spec["tune"]
    candidates = {k: list(v) for k, v in tune_spec.items() if str(k).split(".")[-1] in keys}
    candidates = {str(k).split(".")[-1]: v for k, v in candidates.items()}
    tune_runs = parts.tune.runs.assign(value=values_tune.values, cell=parts.tune.runs["label"].str.replace(
        r"-tune-.*$", "", regex=True))
    cells = []
    main = parts.main.runs
    for cell in dict.fromkeys(main["label"]):
        mine = tune_runs[tune_runs["cell"] == cell]
        if not len(mine):
            continue
        mine_main = main[main["label"] == cell]
        first = mine_main.iloc[0]
        chosen = {k: _first_known(mine_main[k]) for k in keys if k in main}
        base = {}
        if len(parts.shared.runs):
            twin = parts.shared.runs[parts.shared.runs["label"] == cell]
            base = {k: _first_known(twin[k]) for k in keys if len(twin) and k in twin}
        points = mine[[*keys, "seed", "value", "status"]].reset_index(drop=True)
        means = points.groupby(keys, dropna=False)["value"].agg(["mean", "count"]).reset_index()
        edges = []
        for k in keys:
            numeric = [v for v in candidates.get(k, []) if isinstance(v, (int, float))]
            if len(numeric) >= 2 and k in chosen and chosen[k] in (min(numeric), max(numeric)):
                end = "smallest" if chosen[k] == min(numeric) else "largest"
                edges.append(f"the best {k} of {cell} is the {end} tried: extend the list")
        cells.append(CellTuning(cell, first.get("variant"), chosen, base, points, means, edges,
                                _first_known(mine_main["parametrization"]) if "parametrization" in main else None))
    seeds = sorted({int(s) for s in tune_runs["seed"].dropna()})
    at = tune_spec.get("at")
    larger = []
    if at == "smallest" and "size" in main:
        tuned_sizes = set(parts.tune.runs["size"].dropna()) if "size" in parts.tune.runs else set()
        ordered = main.sort_values("n_params", kind="stable") if "n_params" in main else main
        larger = [str(size) for size in dict.fromkeys(ordered["size"].dropna()) if size not in tuned_sizes]
    return Tuning(keys, candidates, seeds, cells, metric, bool(tune_spec.get("compare_shared", False)), at, larger)


def verdict_word(row: Any, sign: int) -> str:
    """better | worse | equivalent | inconclusive, from a results-table row."""
    if row.get("significant") is True:
        return "better" if row["diff"] * sign > 0 else "worse"
    if row.get("equivalent") is True:
        return "equivalent"
    return "inconclusive"


def flip_sentences(tuning: Tuning, tuned: pd.DataFrame, shared: pd.DataFrame, sign: int, margin: float
                   ) -> tuple[list[str], bool]:
    """Per comparison, the verdict at the shared value against the verdict at the tuned values; True when any
    verdict differs (then the sentences lead the findings)."""
    from gptlab.report.findings import decimals

    t, s = tuned.set_index("variant"), shared.set_index("variant")
    by_cell = {c.cell: c for c in tuning.cells}
    out, flipped = [], False
    for label, row in t.iterrows():
        base = row.get("baseline")
        if base is None or base != base or base == label or label not in s.index or row.get("several"):
            continue
        srow = s.loc[label]
        vt, vs = verdict_word(row, sign), verdict_word(srow, sign)
        places = decimals(row["diff"], srow["diff"])

        def said(word: str, r: Any) -> str:
            if word in ("better", "worse"):
                return f"{word} by {abs(r['diff']):.{places}f}"
            if word == "equivalent":
                return f"equivalent within ±{margin:g}"
            return f"inconclusive ({r['diff']:+.{places}f})" if math.isfinite(r["diff"]) else "inconclusive"

        keys = tuning.keys
        shared_v = " ".join(f"{k} {_v(by_cell[label].base.get(k))}" for k in keys) if label in by_cell else ""
        tuned_v = " ".join(f"{k}s ({_v(by_cell[label].chosen.get(k))} vs {_v(by_cell[base].chosen.get(k))})"
                           for k in keys) if label in by_cell and base in by_cell else "tuned values"
        changed = vt != vs
        flipped |= changed
        verb = "tuning changes the verdict" if changed else "the same verdict"
        out.append(f"{label} vs {base}: {said(vs, srow)} at the shared {shared_v}, {said(vt, row)} at tuned "
                   f"{tuned_v}: {verb}.")
    return out, flipped


def _first_known(column: pd.Series) -> Any:
    """A value every run of a cell shares (the first run with a config: one killed at start has none)."""
    known = column.dropna()
    return known.iloc[0] if len(known) else None


def _v(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
