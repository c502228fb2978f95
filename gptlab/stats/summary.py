"""Per-variant statistics and comparisons against a baseline.

A label's seeds are its samples of the compared metric, kept with their seed (`label_samples`). Two labels are
compared within each seed where both hold it (`compare: {pairing: auto}`, the default; `gptlab.stats.paired`),
else as independent samples (Welch; `pairing: none` always). Only finished runs
enter the numbers (a diverged run has no meaningful loss); the others are counted by status so
the report can say how often a variant broke. Raw p-values (paired or Welch) are computed here; whether a
difference is significant is decided on the p-value adjusted over all tests of the report
(`gptlab.stats.family`). With one seed, or seeds that agree exactly on both sides, no
uncertainty can be given and nothing is called significant.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from gptlab.stats.corrections import CORRECTIONS
from gptlab.stats.inference import mde, pooled_std, seeds_needed, tost, welch_se
from gptlab.stats.paired import PAIRINGS, pair_up, paired_stats, uses_pairs
from gptlab.store import STATUS_ORDER

CSV_COLUMNS = ["variant", "n", "metric", "mean", "std", "ci_low", "ci_high", "diff", "diff_ci_low",
               "diff_ci_high", "p_value", "p_adjusted", "significant", "equivalent", "mde", "health",
               "n_diverged", "n_failed", "pairing", "pairs", "pair_corr"]
SUMMARY_KEYS = ("best_val_loss", "final_val_loss", "tokens_per_s", "wall_s", "steps", "n_params")
LOSS_MARGIN = 0.02  # nats: the default equivalence margin for a loss


@dataclass(frozen=True)
class Criterion:
    """How an experiment's variants are judged: from the spec's `compare:` block, else val/loss,
    minimize, best variant as baseline, margin 0.02 for a loss, Holm correction, paired by seed where possible."""

    metric: str = "val/loss"
    goal: str = "minimize"
    baseline: str | None = None
    margin: float | None = None  # None: LOSS_MARGIN for a loss, else 2% of the baseline mean
    correction: str = "holm"
    pairing: str = "auto"  # auto | seed | none (gptlab.stats.paired)

    @classmethod
    def from_spec(cls, spec: dict[str, Any] | None) -> "Criterion":
        raw = (spec or {}).get("compare") or {}
        margin = raw.get("margin")
        correction = str(raw.get("correction", "holm"))
        pairing = str(raw.get("pairing", "auto"))
        return cls(str(raw.get("metric", "val/loss")), str(raw.get("goal", "minimize")),
                   None if raw.get("baseline") is None else str(raw["baseline"]),
                   None if margin is None else float(margin),
                   correction if correction in CORRECTIONS else "holm", pairing if pairing in PAIRINGS else "auto")

    @property
    def sign(self) -> int:
        """+1 when larger is better."""
        return 1 if self.goal == "maximize" else -1

    @property
    def is_loss(self) -> bool:
        return "loss" in self.metric

    def margin_for(self, reference: float) -> float:
        """The equivalence margin in metric units (`reference`: the baseline's mean)."""
        if self.margin is not None:
            return self.margin
        if self.is_loss or not math.isfinite(reference):
            return LOSS_MARGIN
        return 0.02 * abs(reference)


def metric_values(runs: pd.DataFrame, history: pd.DataFrame, compare: Criterion) -> pd.Series:
    """The compared value per run (aligned with `runs`): a summary key directly, or the best value
    of a history metric (min for minimize, max for maximize); `val/loss` falls back to best_val_loss."""
    if compare.metric in SUMMARY_KEYS and compare.metric in runs:
        return runs[compare.metric].astype(float)
    if compare.metric in history.columns and len(history):
        grouped = history.groupby("run")[compare.metric]
        best = grouped.max() if compare.goal == "maximize" else grouped.min()
        values = runs["run"].map(best).astype(float)
    else:
        values = pd.Series(np.nan, index=runs.index)
    if compare.metric == "val/loss" and "best_val_loss" in runs:
        values = values.fillna(runs["best_val_loss"].astype(float))
    return values


def t_interval(values: np.ndarray) -> tuple[float, float, float, float]:
    """mean, std (ddof=1), and the 95% t-interval; NaN where n < 2 gives no spread."""
    n = len(values)
    if n == 0:
        return (math.nan,) * 4
    mean = float(np.mean(values))
    if n < 2:
        return mean, math.nan, math.nan, math.nan
    std = float(np.std(values, ddof=1))
    half = float(sps.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float, float]:
    """mean(a) - mean(b), its 95% Welch interval and Welch's t-test p-value.

    NaN interval and p when either side has one seed, and when every seed on both sides gave the
    same value (zero spread): then no uncertainty can be given, which is not a certainty.
    """
    if len(a) == 0 or len(b) == 0:
        return (math.nan,) * 4
    diff = float(np.mean(a) - np.mean(b))
    se, dof = welch_se(a, b)
    if not se or math.isnan(se):
        return diff, math.nan, math.nan, math.nan
    t = diff / se
    half = float(sps.t.ppf(0.975, dof)) * se
    p = float(2 * sps.t.sf(abs(t), dof))
    return diff, diff - half, diff + half, p


def group_table(runs: pd.DataFrame, values: pd.Series, order: list[str], compare: Criterion) -> pd.DataFrame:
    """One row per label (in `order`): n finished, mean/std/CI, status counts, params, tokens/s."""
    rows = []
    for label in order:
        mask = runs["label"] == label
        status = runs.loc[mask, "status"]
        done = values[mask & (runs["status"] == "finished")].dropna().to_numpy(dtype=float)
        mean, std, lo, hi = t_interval(done)
        rows.append({
            "variant": label, "n": len(done), "metric": compare.metric, "mean": mean, "std": std,
            "ci_low": lo, "ci_high": hi, "n_runs": int(mask.sum()),
            **{f"n_{s}": int((status == s).sum()) for s in STATUS_ORDER},
            "n_params": _first(runs.loc[mask, "n_params"]),
            "error": next((str(e) for e in runs.loc[mask, "error"] if isinstance(e, str) and e), None),
            "tokens_per_s": float(runs.loc[mask, "tokens_per_s"].astype(float).mean()),
            "packed": float(runs.loc[mask, "packed"].astype(float).max()) if "packed" in runs else math.nan,
        })
    return pd.DataFrame(rows).set_index("variant", drop=False)


def best_label(groups: pd.DataFrame, compare: Criterion) -> str | None:
    """The label with the best mean (ties: first in order); None when nothing finished."""
    finite = groups.dropna(subset=["mean"])
    if finite.empty:
        return None
    key = finite["mean"] * -compare.sign
    return str(key.idxmin())


def resolve_baselines(runs: pd.DataFrame, groups: pd.DataFrame, compare: Criterion,
                      grid_keys: list[str]) -> tuple[dict[str, str | None], str | None]:
    """Baseline label for each label, and a note when the requested baseline was not found.

    The spec may name a variant (`pre_ln`) while labels also carry grid values (`pre_ln-lr=0.001`):
    each label is then compared with the baseline variant's label at the same grid values.
    """
    labels = list(groups.index)
    wanted, note = compare.baseline, None
    if wanted is not None and wanted not in labels:
        variant_labels = runs.loc[runs["variant"].astype(str) == wanted, "label"].unique()
        if len(variant_labels):
            signature = _grid_signatures(runs, grid_keys)
            by_sig = {signature[lab]: lab for lab in variant_labels}
            return {lab: by_sig.get(signature[lab]) for lab in labels}, None
        note = f"baseline '{wanted}' matches no variant; comparing against the best variant instead"
        wanted = None
    if wanted is None:
        wanted = best_label(groups, compare)
    return {lab: wanted for lab in labels}, note


def _grid_signatures(runs: pd.DataFrame, grid_keys: list[str]) -> dict[str, tuple[str, ...]]:
    first = runs.drop_duplicates("label")
    keys = [k for k in grid_keys if k in runs]
    return {row["label"]: tuple(repr(row[k]) for k in keys) for _, row in first.iterrows()}


def summary_table(runs: pd.DataFrame, values: pd.Series, order: list[str], compare: Criterion,
                  grid_keys: list[str], comparable: Callable[[str, str], bool] | None = None,
                  ) -> tuple[pd.DataFrame, str | None]:
    """The full results table: groups plus diff / CI / raw p / TOST p / mde against each baseline.

    `comparable(label, baseline)` says whether a pair may be tested (in a several-factor study:
    only cells that differ in exactly one factor); other rows keep their baseline but no numbers.
    `p_adjusted`, `significant` and `equivalent` are filled in by `family.adjust_family`.
    """
    groups = group_table(runs, values, order, compare)
    baselines, note = resolve_baselines(runs, groups, compare, grid_keys)
    samples = label_samples(runs, values, order)
    extra = []
    for label in order:
        base = baselines.get(label)
        row = {"baseline": base, "diff": math.nan, "diff_ci_low": math.nan, "diff_ci_high": math.nan,
               "p_value": math.nan, "p_tost": math.nan, "mde": math.nan, "seeds_needed": math.nan,
               "margin": math.nan, "exact": False, "tested": False, "several": False, "p_adjusted": math.nan,
               "significant": None, "equivalent": None, "pairing": None, "pairs": math.nan,
               "pair_corr": math.nan}
        a, b = samples[label], samples.get(base, _EMPTY)
        if base is not None and base != label and comparable is not None and not comparable(label, base):
            row["several"] = True
        elif base is not None and base != label and len(a) and len(b):
            row.update(pair_stats(a, b, compare.margin_for(float(np.mean(b))), compare.pairing), tested=True)
        extra.append(row)
    table = pd.concat([groups.reset_index(drop=True), pd.DataFrame(extra)], axis=1)
    return table, note


def pair_stats(a: pd.Series, b: pd.Series, margin: float, pairing: str = "none") -> dict[str, Any]:
    """Everything one comparison reports: the difference, its CI and p; TOST p at the margin; the detectable
    difference; seeds needed; whether seeds that agree exactly left no uncertainty; and the pairing used.
    Paired by seed (`gptlab.stats.paired`) when `pairing` allows it, else Welch on independent samples."""
    if pairing != "none":
        pairs = pair_up(a, b)
        if uses_pairs(pairing, pairs):
            return paired_stats(pairs, margin)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff, lo, hi, p = welch(a, b)
    return {"diff": diff, "diff_ci_low": lo, "diff_ci_high": hi, "p_value": p, "p_tost": tost(a, b, margin),
            "mde": mde(a, b), "seeds_needed": seeds_needed(diff, pooled_std(a, b), margin), "margin": margin,
            "exact": bool(len(a) > 1 and len(b) > 1 and math.isnan(p)), "pairing": "unpaired", "pairs": math.nan,
            "pair_corr": math.nan}


_EMPTY = pd.Series([], dtype=float)


def label_samples(runs: pd.DataFrame, values: pd.Series, order: list[str]) -> dict[str, pd.Series]:
    """The compared value of every finished run, per label, indexed by the run's seed."""
    finished = runs["status"] == "finished"
    out = {}
    for lab in order:
        mask = (runs["label"] == lab) & finished & values.notna()
        out[lab] = pd.Series(values[mask].to_numpy(dtype=float), index=runs.loc[mask, "seed"].to_numpy(),
                             dtype=float)
    return out


def _first(series: pd.Series) -> float:
    values = series.dropna()
    return float(values.iloc[0]) if len(values) else math.nan
