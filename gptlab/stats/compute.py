"""Compute-aware views: parameters, training tokens and FLOPs per variant, scaling fits, size checks.

Training FLOPs are estimated as 6 x N x D (N parameters, D training tokens = steps x batch_size x
block_size x grad_accum), the usual forward+backward count that ignores attention's own cost.
A study "differs in size" when its variants' parameter counts differ by more than SIZE_TOL; the
metric is then drawn against parameters and FLOPs, with a power law `metric = a * N^b` fitted on
the finished runs (log-log least squares, seeds as points) when there are at least 3 sizes.
Variants within MATCHED_TOL of each other count as matched in parameters.
The `scaling` figure is drawn by `gptlab.report.figures.compute`.
"""
from __future__ import annotations

import math
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

SIZE_TOL = 0.02  # variants differing by more than 2% in parameters differ in size
MATCHED_TOL = 0.05
SIZE_KEYS = {"n_layer", "n_embd", "mlp_ratio"}  # a study varying one of these is about size
FIG_SCALING = "scaling"


def tokens_per_step(runs: pd.DataFrame) -> pd.Series:
    """Training tokens one optimizer step consumes, per run: batch_size x block_size x grad_accum."""
    def col(key: str, default: float) -> pd.Series:
        return runs[key].astype(float).fillna(default) if key in runs else pd.Series(default, index=runs.index)

    return col("batch_size", math.nan) * col("block_size", math.nan) * col("grad_accum", 1.0)


def compute_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """Per run: label, status, value, n_params, tokens (trained), flops (6 N D)."""
    steps = runs["steps"].astype(float) if "steps" in runs else pd.Series(math.nan, index=runs.index)
    tokens = steps * tokens_per_step(runs)
    params = runs["n_params"].astype(float)
    return pd.DataFrame({"label": runs["label"], "status": runs["status"], "value": runs.get("value"),
                         "n_params": params, "tokens": tokens, "flops": 6.0 * params * tokens})


def label_params(runs: pd.DataFrame, labels: list[str]) -> dict[str, float]:
    first = runs.dropna(subset=["n_params"]).drop_duplicates("label").set_index("label")["n_params"]
    return {lab: float(first[lab]) for lab in labels if lab in first}


def ratio(a: float, b: float) -> float:
    return max(a, b) / min(a, b) - 1 if min(a, b) > 0 else math.inf


def differs_in_size(params: dict[str, float], varying: list[str]) -> bool:
    """A study about size: it varies a size key and its variants' parameter counts differ."""
    values = list(params.values())
    return (bool(SIZE_KEYS & set(varying)) and len(values) >= 2
            and ratio(max(values), min(values)) > SIZE_TOL)


def matched_pairs(params: dict[str, float], varying: list[str], label_config: pd.DataFrame) -> list[tuple[str, str]]:
    """Pairs of labels shaped differently (another n_layer, n_embd or mlp_ratio) but matched in
    parameters (within MATCHED_TOL), in a study that differs in size: depth vs width at a fixed budget."""
    if not differs_in_size(params, varying):
        return []
    size_cols = [k for k in varying if k in SIZE_KEYS and k in label_config]

    def shape(lab: str) -> tuple:
        return tuple(repr(label_config.at[lab, k]) for k in size_cols) if lab in label_config.index else ()

    return [(a, b) for a, b in combinations(params, 2)
            if ratio(params[a], params[b]) <= MATCHED_TOL and shape(a) != shape(b)]


def n_sizes(values: np.ndarray) -> int:
    """Distinct sizes among positive values, those within SIZE_TOL of the previous one counting as one
    (a LayerNorm's few hundred weights do not make another model size)."""
    ordered = np.sort(values[values > 0])
    if not len(ordered):
        return 0
    return 1 + int((ordered[1:] / ordered[:-1] - 1 > SIZE_TOL).sum())


def power_law(frame: pd.DataFrame, x: str) -> dict[str, float] | None:
    """Fit log(value) = log(a) + b log(x) on finished runs; None below 3 distinct sizes."""
    ok = frame[(frame["status"] == "finished") & (frame["value"] > 0) & (frame[x] > 0)].dropna(subset=["value", x])
    sizes = n_sizes(ok[x].to_numpy(float))
    if sizes < 3:
        return None
    import statsmodels.api as sm

    X = sm.add_constant(np.log(ok[x].to_numpy(float)))
    fit = sm.OLS(np.log(ok["value"].to_numpy(float)), X).fit()
    lo, hi = (float(v) for v in fit.conf_int(0.05)[1])
    return {"a": float(math.exp(fit.params[0])), "b": float(fit.params[1]), "b_low": lo, "b_high": hi,
            "r2": float(fit.rsquared), "n": int(len(ok)), "sizes": sizes}


def count(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k" if n >= 1e3 else f"{n:.0f}"


def matched_rows(pairs: list[tuple[str, str]], params: dict[str, float], samples: dict[str, Any],
                 already: set[tuple[str, str]], margin: float, pairing: str = "none") -> list[dict[str, Any]]:
    """Comparisons of matched-parameter pairs not already tested, as effects rows."""
    from gptlab.stats.effects import pair_row

    return [pair_row("matched parameters", f"{a} - {b} at matched parameters ({count(params[a])} vs "
                     f"{count(params[b])})", "matched", (a, b), samples, margin, pairing)
            for a, b in pairs if (a, b) not in already and (b, a) not in already]
