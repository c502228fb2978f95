"""The study's factors, read from the runs' configs, and the effects a factorial analysis estimates.

Factors are the config keys whose value differs between labels (seed excluded; `design.varying`);
keys that always change together (a variant setting `norm_placement: post` and `warmup_steps: 1000`)
are one factor, named `norm_placement+warmup_steps`, since their effects cannot be told apart.

With several factors, three kinds of rows go to effects.csv, each estimate being level - reference
in metric units (the reference level of a factor is the baseline's, else its first level):
    simple       two cells that differ in exactly this factor (Welch, as in summary.csv)
    main         level vs reference averaged over the other factors' levels
    interaction  the difference of those differences across two (or more) factors
Main effects and interactions come from one OLS fit (statsmodels) of the per-run metric on the
factors with sum-to-zero coding, seeds as replicates (blocked by seed when paired): all interactions
when every cell was run and seeds leave residual degrees of freedom, else main effects and two-factor
interactions, else main effects only. Estimates are averages of the model's cell means, so unequal seed counts per cell
(failed runs) weigh nothing twice, and cells nobody ran are filled by the model only when its terms
allow; what was left out is stated in `EffectModel.notes`.
"""
from __future__ import annotations

import itertools
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gptlab.stats.summary import pair_stats

EFFECT_COLUMNS = ["term", "contrast", "estimate", "ci_low", "ci_high", "p_value", "p_adjusted", "significant"]


@dataclass(frozen=True)
class Factors:
    names: list[str]  # "residual", "norm", "norm_placement+warmup_steps"
    levels: dict[str, list[str]]  # factor -> level texts, the reference first
    cells: dict[str, tuple[str, ...]]  # label -> its level of each factor (in `names` order)

    @property
    def reference(self) -> dict[str, str]:
        return {f: lv[0] for f, lv in self.levels.items()}

    def differing(self, a: str, b: str) -> list[str]:
        """The factors in which two labels differ."""
        return [f for f, x, y in zip(self.names, self.cells[a], self.cells[b]) if x != y]

    def crossed(self) -> bool:
        """Whether some cell changes two or more factors from the reference cell. A one-at-a-time design
        (each variant changes one thing from the baseline) is a one-factor study in disguise."""
        ref = tuple(self.levels[f][0] for f in self.names)
        return len(self.names) >= 2 and any(sum(x != y for x, y in zip(cell, ref)) >= 2
                                            for cell in self.cells.values())

    def one_apart(self, a: str, b: str) -> bool:
        return len(self.differing(a, b)) == 1

    def where(self, label: str, skip: tuple[str, ...] = ()) -> str:
        """'norm=layernorm, n_layer=2': a label's levels of every factor but `skip`."""
        return ", ".join(f"{f}={v}" for f, v in zip(self.names, self.cells[label]) if f not in skip)


def level_text(value: Any) -> str:
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return "none" if value is None else str(value)


def factors_of(label_config: pd.DataFrame, baseline: str | None) -> Factors:
    """Factors from the per-label values of the varying keys; aliased keys merged into one factor."""
    labels = list(label_config.index)
    groups: dict[tuple, list[str]] = {}
    for key in label_config.columns:
        texts = [level_text(v) for v in label_config[key]]
        first = {t: i for i, t in reversed(list(enumerate(texts)))}
        groups.setdefault(tuple(first[t] for t in texts), []).append(key)
    names, levels, columns = [], {}, []
    for keys in groups.values():
        name = "+".join(keys)
        col = [" ".join(level_text(label_config.at[lab, k]) for k in keys) for lab in labels]
        order = list(dict.fromkeys(col))
        if len(keys) == 1 and all(isinstance(label_config.at[lab, keys[0]], numbers.Real)
                                  and not isinstance(label_config.at[lab, keys[0]], bool) for lab in labels):
            order.sort(key=float)
        if baseline in labels:
            ref = col[labels.index(baseline)]
            order = [ref] + [lv for lv in order if lv != ref]
        names.append(name)
        levels[name] = order
        columns.append(col)
    cells = {lab: tuple(col[i] for col in columns) for i, lab in enumerate(labels)}
    return Factors(names, levels, cells)


# ---- simple effects -----------------------------------------------------------------------------

def simple_effects(factors: Factors, samples: dict[str, pd.Series], margin: float,
                   pairing: str = "none") -> list[dict[str, Any]]:
    """Every non-reference cell against the cell that differs from it only by being at the reference."""
    by_cell = {cell: lab for lab, cell in factors.cells.items()}
    rows = []
    for i, f in enumerate(factors.names):
        ref = factors.levels[f][0]
        for lab, cell in factors.cells.items():
            if cell[i] == ref:
                continue
            base = by_cell.get(cell[:i] + (ref,) + cell[i + 1:])
            if base is None or not len(samples.get(lab, ())) or not len(samples.get(base, ())):
                continue  # a cell nobody ran, or one without finished runs: nothing to compare
            others = factors.where(lab, skip=(f,))
            rows.append(pair_row(f, f"{f} {cell[i]} - {ref}" + (f" at {others}" if others else ""), "simple",
                                 (lab, base), samples, margin, pairing))
    return rows


def pair_row(term: str, contrast: str, kind: str, pair: tuple[str, str], samples: dict[str, pd.Series],
             margin: float, pairing: str = "none") -> dict[str, Any]:
    """An effects row comparing two cells, with the same statistics as a summary.csv comparison."""
    empty = pd.Series([], dtype=float)
    stats = pair_stats(samples.get(pair[0], empty), samples.get(pair[1], empty), margin, pairing)
    return {"term": term, "contrast": contrast, "kind": kind, "pair": pair, "order": 1, **stats,
            "estimate": stats["diff"], "ci_low": stats["diff_ci_low"], "ci_high": stats["diff_ci_high"]}


# ---- the factorial model ------------------------------------------------------------------------

@dataclass
class EffectModel:
    order: int  # highest interaction order fitted (0: no model)
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    df_resid: float = math.nan
    blocked: bool = False  # seed entered as a block factor


def fit_effects(factors: Factors, runs: pd.DataFrame, values: pd.Series, blocks: bool = False) -> EffectModel:
    """OLS on the finished runs' values; main effects and interactions as averaged cell-mean contrasts.

    `blocks` (a paired analysis): seed enters as a block factor (sum-to-zero coded, so the contrasts, averaged
    over seeds, keep their meaning), taking the seed-to-seed noise that every cell shares out of the residual:
    the randomized complete block design of the factorial (Montgomery, Design and Analysis of Experiments,
    ch. 4 and 5). Without enough seeds shared by the cells it is left out, and said so."""
    finished = (runs["status"] == "finished") & values.notna() & runs["label"].isin(factors.cells)
    cells = [factors.cells[lab] for lab in runs.loc[finished, "label"]]
    y = values[finished].astype(float).to_numpy()
    index = {f: i for i, f in enumerate(factors.names)}
    present = {f: [lv for lv in factors.levels[f] if lv in {c[index[f]] for c in cells}] for f in factors.names}
    used = [f for f in factors.names if len(present[f]) >= 2]
    model = EffectModel(0)
    dropped = [f for f in factors.names if f not in used]
    if dropped:
        model.notes.append(f"{', '.join(dropped)}: fewer than two levels with finished runs, left out of the model")
    if not used or len(y) < 3:
        model.notes.append("too few finished runs for a factorial model")
        return model
    rows = [{f: c[index[f]] for f in used} for c in cells]
    n_cells = math.prod(len(present[f]) for f in used)
    full = len({tuple(r.values()) for r in rows}) == n_cells
    coding = _Coding(used, present)
    result, order = None, 0
    seeds = runs.loc[finished, "seed"].to_numpy() if blocks else None
    block = _seed_block(seeds)
    for order in range(len(used) if full else min(2, len(used)), 0, -1):
        X = np.array([coding.row(r, order) for r in rows])
        for B in ((block, None) if block is not None else (None,)):
            XB = X if B is None else np.hstack([X, B])
            if XB.shape[0] > XB.shape[1] and np.linalg.matrix_rank(XB) == XB.shape[1]:
                import statsmodels.api as sm

                result = sm.OLS(y, XB).fit()
                model.blocked = B is not None
                break
        if result is not None:
            break
    if block is not None and result is not None and not model.blocked:
        model.notes.append("seed left out of the model as a block factor (too few seeds shared by the cells)")
    if result is None:
        model.notes.append("the runs cannot separate the factors (too few cells or seeds): no effects estimated")
        return model
    model.order, model.df_resid = order, float(result.df_resid)
    extra = result.params.shape[0] - coding.row(rows[0], order).shape[0]  # the seed columns, if any
    if order < len(used):
        why = "not every cell was run" if not full else "seeds leave no residual degrees of freedom"
        if order == 1:
            model.notes.append(f"interactions not estimated ({why}); the main effects assume there are none")
        else:
            model.notes.append(f"interactions of more than {order} factors not estimated ({why})")
    for size in range(1, order + 1):
        for term in itertools.combinations(used, size):
            for chosen in itertools.product(*(present[f][1:] for f in term)):
                model.rows.append(_contrast(result, coding, order, present, dict(zip(term, chosen)), extra))
    return model


def _seed_block(seeds: np.ndarray | None) -> np.ndarray | None:
    """Sum-to-zero coded seed columns (one fewer than the seeds), or None below two seeds."""
    if seeds is None:
        return None
    levels = sorted(set(seeds.tolist()), key=lambda s: (str(type(s)), s))
    if len(levels) < 2:
        return None
    out = np.zeros((len(seeds), len(levels) - 1))
    for i, s in enumerate(seeds.tolist()):
        j = levels.index(s)
        out[i] = -1.0 if j == len(levels) - 1 else np.eye(len(levels) - 1)[j]
    return out


class _Coding:
    """Sum-to-zero (deviation) coding of the factors and their products up to an interaction order."""

    def __init__(self, used: list[str], present: dict[str, list[str]]) -> None:
        self.used, self.present = used, present

    def _code(self, factor: str, level: str) -> np.ndarray:
        levels = self.present[factor]
        if level == levels[-1]:
            return -np.ones(len(levels) - 1)
        out = np.zeros(len(levels) - 1)
        out[levels.index(level)] = 1.0
        return out

    def row(self, cell: dict[str, str], order: int) -> np.ndarray:
        parts = [np.ones(1)]
        for size in range(1, order + 1):
            for term in itertools.combinations(self.used, size):
                vec = np.ones(1)
                for f in term:
                    vec = np.kron(vec, self._code(f, cell[f]))
                parts.append(vec)
        return np.concatenate(parts)


def _contrast(result: Any, coding: _Coding, order: int, present: dict[str, list[str]],
              chosen: dict[str, str], extra: int = 0) -> dict[str, Any]:
    """Mixed difference of model cell means over the term's factors, averaged over the others."""
    term = list(chosen)
    others = [f for f in coding.used if f not in chosen]
    combos = list(itertools.product(*(present[f] for f in others)))
    vector = 0.0
    for combo in combos:
        for bits in itertools.product((0, 1), repeat=len(term)):
            cell = dict(zip(others, combo))
            cell.update({f: chosen[f] if bit else present[f][0] for f, bit in zip(term, bits)})
            vector = vector + (-1) ** (len(term) - sum(bits)) / len(combos) * coding.row(cell, order)
    vector = np.concatenate([np.asarray(vector, dtype=float), np.zeros(extra)])  # seed blocks average to zero
    estimate = float(vector @ np.asarray(result.params))
    lo = hi = p = math.nan
    if result.scale > 0 and math.isfinite(result.scale):
        test = result.t_test(vector.reshape(1, -1))
        lo, hi = (float(x) for x in np.ravel(test.conf_int(alpha=0.05))[:2])
        p = float(np.ravel(test.pvalue)[0])
    parts = [f"{f} {chosen[f]} - {present[f][0]}" for f in term]
    contrast = " x ".join(parts) + (f" (averaged over {', '.join(others)})" if others else "")
    return {"term": ":".join(term), "contrast": contrast, "estimate": estimate, "ci_low": lo, "ci_high": hi,
            "p_value": p, "kind": "main" if len(term) == 1 else "interaction", "order": len(term), "pair": None}


# ---- the design in words ------------------------------------------------------------------------

def describe_design(factors: Factors, runs: pd.DataFrame, labels: list[str], model: EffectModel,
                    metric: str) -> list[str]:
    """What was crossed, which cells are missing or short of seeds, and which model was fitted."""
    sizes = " x ".join(str(len(factors.levels[f])) for f in factors.names)
    n_cells = math.prod(len(factors.levels[f]) for f in factors.names)
    counts = {lab: int(((runs["label"] == lab) & (runs["status"] == "finished")).sum()) for lab in labels}
    ran = [lab for lab in labels if counts[lab] > 0]
    out = [f"Design: {sizes} ({', '.join(factors.names)}); {len(ran)} of {n_cells} cells have finished runs"]
    empty = [lab for lab in labels if counts[lab] == 0]
    if empty:
        out[-1] += f" (no finished run: {', '.join(empty)})"
    seeds = sorted({counts[lab] for lab in ran})
    if len(seeds) > 1:
        short = [f"{lab} {counts[lab]}" for lab in ran if counts[lab] < seeds[-1]]
        out[-1] += f"; unbalanced, seeds per cell {seeds[0]}-{seeds[-1]} ({', '.join(short)})"
    elif seeds:
        out[-1] += f"; {seeds[0]} seed{'s' if seeds[0] != 1 else ''} per cell"
    out[-1] += "."
    if model.order:
        what = {1: "main effects only", 2: "main effects and two-factor interactions"}.get(
            model.order, f"main effects and all interactions up to {model.order} factors")
        seeds = ("seed as a block factor, so the seed-to-seed noise all cells share is taken out" if model.blocked
                 else "seeds as replicates")
        out.append(f"Effects: OLS of the per-run {metric} on the factors (sum-to-zero coding, {seeds}), "
                   f"{what}, {model.df_resid:.0f} residual df; each effect is an average of "
                   "the model's cell means, so unequal seed counts do not bias it.")
    out += [note[0].upper() + note[1:] + "." for note in model.notes]
    return out


def effects_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Model rows (main, then interactions by order) then simple effects; all columns kept."""
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=[*EFFECT_COLUMNS, "kind", "order", "pair"])
    rank = frame["kind"].map({"main": 0, "interaction": 1, "simple": 2, "matched": 3})
    frame = frame.assign(_rank=rank).sort_values(["_rank", "order"], kind="stable").drop(columns="_rank")
    for col in ("p_adjusted", "significant"):
        if col not in frame:
            frame[col] = math.nan if col == "p_adjusted" else None
    return frame.reset_index(drop=True)
