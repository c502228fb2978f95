"""All tests of one report adjusted together, so "significant" keeps its meaning however many were run.

The family: every tested comparison in summary.csv (a difference test and an equivalence test each)
and every row of effects.csv (main effects, interactions, one-factor and matched-parameter pairs). A summary row and a simple effect that compare the same two cells are
one test, counted once. `significant` and `equivalent` are decided on the adjusted p-values at 0.05;
a comparison without a p-value (one seed, seeds that agree exactly) is never significant.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gptlab.stats.inference import ALPHA, CORRECTION_NAMES, adjust


PAIR_KINDS = ("simple", "matched")  # effects rows that compare two cells (as summary rows do)


@dataclass(frozen=True)
class Family:
    method: str
    n_difference: int  # difference tests (summary comparisons and simple effects, each pair once)
    n_equivalence: int
    n_model: int  # main effects and interactions

    @property
    def total(self) -> int:
        return self.n_difference + self.n_equivalence + self.n_model

    def sentence(self) -> str:
        if not self.total:
            return "No tests were run."
        parts = [f"{self.n_difference} difference", f"{self.n_equivalence} equivalence (TOST)"]
        if self.n_model:
            parts.append(f"{self.n_model} main-effect/interaction")
        how = ("not corrected for multiple comparisons" if self.method == "none"
               else f"adjusted together by {CORRECTION_NAMES[self.method]}")
        return (f"{self.total} tests ({', '.join(parts)}), {how}; significant and equivalent mean an adjusted "
                f"p below {ALPHA:g}.")


def adjust_family(table: pd.DataFrame, effects: pd.DataFrame, method: str) -> Family:
    """Fill p_adjusted / significant / equivalent in both frames (in place) and say what was done."""
    keys: dict[tuple, float] = {}
    for _, row in table.iterrows():
        if row["tested"]:
            keys[("pair", row["variant"], row["baseline"])] = row["p_value"]
            keys[("tost", row["variant"], row["baseline"])] = row["p_tost"]
    for i, row in effects.iterrows():
        keys[_key(i, row)] = row["p_value"]
        if row["kind"] in PAIR_KINDS:
            keys[("tost", *row["pair"])] = row["p_tost"]
    tested = {k: p for k, p in keys.items() if isinstance(p, float) and math.isfinite(p)}
    adjusted = dict(zip(tested, adjust(tested.values(), method)))
    get = lambda key: adjusted.get(key, math.nan)  # noqa: E731
    p_adj = [get(("pair", r["variant"], r["baseline"])) if r["tested"] else math.nan for _, r in table.iterrows()]
    p_eq = [get(("tost", r["variant"], r["baseline"])) if r["tested"] else math.nan for _, r in table.iterrows()]
    table["p_adjusted"] = p_adj
    table["significant"] = [_decide(p, t) for p, t in zip(p_adj, table["tested"])]
    table["equivalent"] = [_decide(p, t) for p, t in zip(p_eq, table["tested"])]
    table["p_tost_adjusted"] = p_eq
    if len(effects):
        e_adj = [get(_key(i, r)) for i, r in effects.iterrows()]
        effects["p_adjusted"] = e_adj
        effects["significant"] = [_decide(p, True) for p in e_adj]
        e_eq = [get(("tost", *r["pair"])) if r["kind"] in PAIR_KINDS else math.nan for _, r in effects.iterrows()]
        effects["p_tost_adjusted"] = e_eq
        effects["equivalent"] = [_decide(p, r["kind"] in PAIR_KINDS) for p, (_, r) in zip(e_eq, effects.iterrows())]
    kinds = [k[0] for k in tested]
    return Family(method, kinds.count("pair"), kinds.count("tost"), kinds.count("model"))


def _key(i: int, row: pd.Series) -> tuple:
    """Two-cell comparisons are keyed by their cells (shared with summary rows); model rows by position."""
    return ("pair", *row["pair"]) if row["kind"] in PAIR_KINDS else ("model", i)


def _decide(p: float, tested: bool) -> bool | None:
    """True/False on the adjusted p; None when no test was possible (not compared, or no p-value)."""
    if not tested or not np.isfinite(p):
        return None
    return bool(p < ALPHA)
