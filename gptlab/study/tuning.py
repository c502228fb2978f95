"""The tuning policy: every cell first trains each candidate value on the tuning seeds; the value with the best
compared metric (mean over the tuning seeds, compared within seed: `gptlab.stats.tuning.choose`) is the cell's
choice, written once to tuning.json and reused.

The tuning seeds never overlap the comparison seeds (checked when the spec loads): choosing the best of
several runs and then testing on those same runs would favour the tuned side.

`tune.at: smallest` (scale studies): only the cells at the smallest size (by parameter count) are tuned, one
stage, and every other size reuses the choice of its variant and grid point there (`source`): μP's
zero-shot transfer (Yang et al. 2022, Tensor Programs V), untested at the larger sizes under `standard`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from gptlab.runner.spec import Cell, PlannedRun, Spec
from gptlab.stats.tuning import choose, common_seeds
from gptlab.store.study import read_tuning, write_tuning
from gptlab.study.values import Stored


def tuned_cells(spec: Spec) -> list[Cell]:
    """The cells stage 1 tunes: every cell, or with `at: smallest` those at the smallest size."""
    if spec.tune.at != "smallest":
        return list(spec.cells)
    smallest = min(spec.cells, key=lambda c: c.n_params).size
    return [c for c in spec.cells if c.size == smallest]


def source(spec: Spec, cell: Cell) -> Cell:
    """The tuned cell whose choice `cell` runs at: itself, or (`at: smallest`) its variant and grid point at
    the smallest size."""
    if spec.tune.at != "smallest":
        return cell
    return next(c for c in tuned_cells(spec) if c.variant == cell.variant and c.point == cell.point)


def tuning_runs(spec: Spec) -> list[PlannedRun]:
    """Stage 1: each tuned cell x candidate x tuning seed (candidates of one cell differ only in scalar
    training keys, so `--pack auto` trains them as one process)."""
    assert spec.tune is not None
    return [spec.planned(cell, seed, values, stage="tune")
            for cell in tuned_cells(spec) for seed in spec.tune.seeds for values in spec.tune.candidates()]


def base_values(spec: Spec, cell: Cell) -> dict[str, Any]:
    """The tuned keys' values in the cell's own config (the shared value of `compare_shared`)."""
    flat = spec.planned(cell, spec.seed_list()[0]).config.flat()
    return {k: flat[k] for k in spec.tune.values}


def _signature(spec: Spec) -> dict[str, Any]:
    """What a stored choice was decided over; a stored choice is reused only when this is unchanged."""
    return {"keys": list(spec.tune.values), "candidates": spec.tune.candidates(), "seeds": list(spec.tune.seeds),
            "metric": spec.compare.metric, "goal": spec.compare.goal}  # not `at`: a cell's choice is the same


def stored_choice(spec: Spec, runs_root: Path) -> dict[str, dict[str, Any]] | None:
    """cell name -> chosen values from tuning.json, if it was decided over this spec's candidates."""
    record = read_tuning(Path(runs_root) / spec.name)
    if not record or record.get("signature") != _signature(spec):
        return None
    cells = record.get("cells") or {}
    if not all(c.name in cells and isinstance(cells[c.name].get("chosen"), dict) for c in tuned_cells(spec)):
        return None
    return {c.name: cells[source(spec, c).name]["chosen"] for c in spec.cells}


def decide(spec: Spec, runs_root: Path, results: dict[str, Stored]) -> dict[str, dict[str, Any]]:
    """Choose each tuned cell's values from its tuning runs, write tuning.json (every run's metric), return the
    choice of every cell (its source's). A candidate with no finished tuning seed is not chosen; a cell with
    none finished keeps its base value."""
    sign = 1 if spec.compare.goal == "maximize" else -1
    cells: dict[str, Any] = {}
    for cell in tuned_cells(spec):
        runs, means, by_seed = [], [], []
        for values in spec.tune.candidates():
            metrics: dict[int, float] = {}
            for seed in spec.tune.seeds:
                run = spec.planned(cell, seed, values, stage="tune")
                got = results.get(run.name, Stored(None, math.nan))
                runs.append({"run": run.name, "values": values, "seed": seed, "status": got.status,
                             "metric": None if math.isnan(got.value) else got.value})
                if not math.isnan(got.value):
                    metrics[seed] = got.value
            by_seed.append(metrics)
            means.append({"values": values, "mean": sum(metrics.values()) / len(metrics) if metrics else None,
                          "n": len(metrics)})
        index = choose(by_seed, sign, spec.compare.pairing)  # within seed where the seeds allow (gptlab.stats)
        best = means[index] if index is not None else None
        chosen = dict(best["values"]) if best else base_values(spec, cell)
        paired_on = common_seeds(by_seed) if spec.compare.pairing != "none" else []
        cells[cell.name] = {"variant": cell.variant, "size": cell.size, "chosen": chosen,
                            "base": base_values(spec, cell), "decided": best is not None,
                            "edges": edges(spec, chosen) if best else [], "means": means, "runs": runs,
                            **({"paired_on": paired_on} if len(paired_on) < len(spec.tune.seeds) else {})}
    transferred = {c.name: source(spec, c).name for c in spec.cells if source(spec, c) is not c}
    write_tuning(Path(runs_root) / spec.name, {"signature": _signature(spec), "cells": cells,
                                               **({"transferred": transferred} if transferred else {})})
    return {c.name: cells[source(spec, c).name]["chosen"] for c in spec.cells}


def edges(spec: Spec, chosen: dict[str, Any]) -> list[str]:
    """'smallest' / 'largest' per tuned key whose chosen value is at an end of its (numeric) list."""
    out = []
    for key, values in spec.tune.values.items():
        numeric = [v for v in values if isinstance(v, (int, float))]
        if len(numeric) < 2 or len(numeric) != len(values):
            continue
        if chosen[key] == min(numeric):
            out.append(f"{key}:smallest")
        elif chosen[key] == max(numeric):
            out.append(f"{key}:largest")
    return out


def compare_runs(spec: Spec, chosen: dict[str, dict[str, Any]] | None, seeds_of: dict[str, tuple[int, ...]]
                 ) -> list[PlannedRun]:
    """The comparison runs: each cell's seeds at its chosen values (and at the base values with
    compare_shared); `chosen` None: not tuned."""
    runs = []
    for cell in spec.cells:
        for seed in seeds_of[cell.name]:
            if spec.tune is None:
                runs.append(spec.planned(cell, seed))
                continue
            runs.append(spec.planned(cell, seed, chosen[cell.name], at="tuned"))
            if spec.tune.compare_shared:
                runs.append(spec.planned(cell, seed, base_values(spec, cell), at="shared"))
    return runs
