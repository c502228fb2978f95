"""Per-variant statistics and comparisons against a baseline.

Seeds of a label are treated as independent samples of the compared metric. Only finished runs
enter the numbers (a diverged run has no meaningful loss); the others are counted by status so
the report can say how often a variant broke. A difference is called significant only when its
95% Welch interval excludes zero; with a single seed no uncertainty can be given.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

CSV_COLUMNS = ["variant", "n", "metric", "mean", "std", "ci_low", "ci_high", "diff", "diff_ci_low",
               "diff_ci_high", "p_value", "significant", "n_diverged", "n_failed"]
SUMMARY_KEYS = ("best_val_loss", "final_val_loss", "tokens_per_s", "wall_s", "steps", "n_params")


@dataclass(frozen=True)
class Compare:
    """What an experiment compares: from the spec's `compare:`, else val/loss, minimize, best."""

    metric: str = "val/loss"
    goal: str = "minimize"
    baseline: str | None = None

    @classmethod
    def from_spec(cls, spec: dict[str, Any] | None) -> "Compare":
        raw = (spec or {}).get("compare") or {}
        return cls(str(raw.get("metric", "val/loss")), str(raw.get("goal", "minimize")),
                   None if raw.get("baseline") is None else str(raw["baseline"]))

    @property
    def sign(self) -> int:
        """+1 when larger is better."""
        return 1 if self.goal == "maximize" else -1


def metric_values(runs: pd.DataFrame, history: pd.DataFrame, compare: Compare) -> pd.Series:
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
    """mean(a) - mean(b), its 95% Welch interval and Welch's t-test p-value (NaN when n < 2)."""
    if len(a) == 0 or len(b) == 0:
        return (math.nan,) * 4
    diff = float(np.mean(a) - np.mean(b))
    if len(a) < 2 or len(b) < 2:
        return diff, math.nan, math.nan, math.nan
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0.0:  # identical seeds on both sides: the difference is exact
        return diff, diff, diff, 0.0 if diff != 0 else 1.0
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(sps.t.ppf(0.975, dof)) * se
    with warnings.catch_warnings():  # seeds that agree to float precision: the p-value is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(sps.ttest_ind(a, b, equal_var=False).pvalue)
    return diff, diff - half, diff + half, p


def group_table(runs: pd.DataFrame, values: pd.Series, order: list[str], compare: Compare) -> pd.DataFrame:
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
            **{f"n_{s}": int((status == s).sum()) for s in ("finished", "diverged", "failed",
                                                           "interrupted", "running")},
            "n_params": _first(runs.loc[mask, "n_params"]),
            "error": next((str(e) for e in runs.loc[mask, "error"] if isinstance(e, str) and e), None),
            "tokens_per_s": float(runs.loc[mask, "tokens_per_s"].astype(float).mean()),
        })
    return pd.DataFrame(rows).set_index("variant", drop=False)


def best_label(groups: pd.DataFrame, compare: Compare) -> str | None:
    """The label with the best mean (ties: first in order); None when nothing finished."""
    finite = groups.dropna(subset=["mean"])
    if finite.empty:
        return None
    key = finite["mean"] * -compare.sign
    return str(key.idxmin())


def resolve_baselines(runs: pd.DataFrame, groups: pd.DataFrame, compare: Compare,
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


def summary_table(runs: pd.DataFrame, values: pd.Series, order: list[str], compare: Compare,
                  grid_keys: list[str]) -> tuple[pd.DataFrame, str | None]:
    """The full results table: groups plus diff / CI / p / significance against each baseline."""
    groups = group_table(runs, values, order, compare)
    baselines, note = resolve_baselines(runs, groups, compare, grid_keys)
    finished = runs["status"] == "finished"
    samples = {lab: values[(runs["label"] == lab) & finished].dropna().to_numpy(dtype=float)
               for lab in order}
    extra = []
    for label in order:
        base = baselines.get(label)
        row = {"baseline": base, "diff": math.nan, "diff_ci_low": math.nan, "diff_ci_high": math.nan,
               "p_value": math.nan, "significant": None}
        if base is not None and base != label:
            diff, lo, hi, p = welch(samples[label], samples[base])
            row.update(diff=diff, diff_ci_low=lo, diff_ci_high=hi, p_value=p,
                       significant=None if math.isnan(lo) else bool(lo > 0 or hi < 0))
        extra.append(row)
    table = pd.concat([groups.reset_index(drop=True), pd.DataFrame(extra)], axis=1)
    return table, note


def write_summary_csv(table: pd.DataFrame, path: Any) -> str:
    """summary.csv text: fixed columns, `%.6g` floats, empty cells for NaN; returned and written."""
    out = table[CSV_COLUMNS].copy()
    out["significant"] = out["significant"].map({True: "True", False: "False"}).fillna("")
    text = out.to_csv(index=False, float_format="%.6g", lineterminator="\n")
    from gptlab.yamlio import atomic_write_text

    atomic_write_text(path, text)
    return text


def _first(series: pd.Series) -> float:
    values = series.dropna()
    return float(values.iloc[0]) if len(values) else math.nan
