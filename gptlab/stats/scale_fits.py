"""Power laws of the compared metric (a loss) against model size N and training compute C, per variant.

Two forms, fitted on the finished runs with seeds as points:
    Kaplan       L = (X_c / X)^alpha             log L = alpha log X_c - alpha log X, by OLS on the logs
                                                 (`gptlab.stats.compute.power_law`), 3 or more sizes
    irreducible  L = E + (X_c / X)^alpha          nonlinear least squares (scipy's curve_fit), 4 or more sizes
X is the parameter count N, or the training FLOPs C = 6 N D (D = training tokens). Intervals are 95%:
Kaplan's from the OLS slope, the irreducible form's from curve_fit's covariance with a t quantile on
n - 3 degrees of freedom (a local, linearised interval). A fit that does not converge is left out.
Below them, the fits of a scale study compared within seed: each effect's per-seed differences on ln N.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from gptlab.stats.compute import n_sizes, power_law
from gptlab.stats.paired import MIN_PAIRS, pair_up, paired_t, paired_tost

KAPLAN_SIZES = 3
IRREDUCIBLE_SIZES = 4
AXES = {"N": "n_params", "C": "flops"}  # symbol -> column of the runs frame


@dataclass(frozen=True)
class PowerLaw:
    """One fitted power law of one variant's metric against X (N or C)."""

    variant: str
    x: str  # "N" (parameters) or "C" (training FLOPs, 6 N D)
    form: str  # "kaplan" | "irreducible"
    alpha: float
    alpha_low: float
    alpha_high: float
    x_c: float  # N_c or C_c
    e: float  # irreducible term E (0 for the Kaplan form)
    e_low: float
    e_high: float
    n_runs: int
    n_sizes: int

    def predict(self, x: np.ndarray | float) -> np.ndarray:
        """L at X: E + (X_c / X)^alpha."""
        return self.e + (self.x_c / np.asarray(x, dtype=float)) ** self.alpha

    @property
    def formula(self) -> str:
        core = f"({self.x}_c/{self.x})^alpha"
        return core if self.form == "kaplan" else f"E + {core}"


def power_laws(runs: pd.DataFrame, variants: list[str]) -> list[PowerLaw]:
    """Every fit that applies, per variant, against N then C (runs: variant, size, value, n_params, tokens)."""
    frame = runs.assign(flops=6.0 * runs["n_params"].astype(float) * runs["tokens"].astype(float),
                        status="finished")
    out = []
    for variant in variants:
        mine = frame[(frame["variant"] == variant) & (frame["value"] > 0)]
        for symbol, column in AXES.items():
            ok = mine[mine[column] > 0].dropna(subset=[column, "value"])
            fit = kaplan(ok, variant, symbol, column)
            if fit:
                out.append(fit)
            fit = irreducible(ok, variant, symbol, column)
            if fit:
                out.append(fit)
    return out


def kaplan(ok: pd.DataFrame, variant: str, symbol: str, column: str) -> PowerLaw | None:
    """L = (X_c/X)^alpha from compute.power_law's log-log OLS (log L = log a + b log X, alpha = -b)."""
    if ok["size"].nunique() < KAPLAN_SIZES:
        return None
    fit = power_law(ok, column)
    if fit is None:
        return None
    alpha = -fit["b"]
    x_c = fit["a"] ** (1.0 / alpha) if alpha > 0 else math.nan  # a = X_c^alpha
    return PowerLaw(variant, symbol, "kaplan", alpha, -fit["b_high"], -fit["b_low"], x_c, 0.0, 0.0, 0.0,
                    fit["n"], fit["sizes"])


def irreducible(ok: pd.DataFrame, variant: str, symbol: str, column: str) -> PowerLaw | None:
    """L = E + (X_c/X)^alpha by curve_fit, parametrised as E + exp(k - alpha u), u = log(X / X_ref),
    from a few starting values of E (the best fit kept); None below 4 sizes or when nothing converges."""
    if ok["size"].nunique() < IRREDUCIBLE_SIZES:
        return None
    from scipy.optimize import OptimizeWarning, curve_fit

    x = ok[column].to_numpy(float)
    y = ok["value"].to_numpy(float)
    ref = float(np.exp(np.mean(np.log(x))))
    u = np.log(x / ref)

    def model(u: np.ndarray, e: float, alpha: float, k: float) -> np.ndarray:
        return e + np.exp(k - alpha * u)

    best = None
    for share in (0.0, 0.5, 0.9):
        e0 = share * float(y.min())
        slope, intercept = np.polyfit(u, np.log(np.maximum(y - e0, 1e-12)), 1)
        p0 = (e0, float(np.clip(-slope, 1e-3, 5.0)), float(intercept))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)  # no covariance: NaN intervals below
                params, cov = curve_fit(model, u, y, p0=p0, bounds=([0.0, 1e-6, -50.0], [float(y.min()), 10.0, 50.0]),
                                        max_nfev=20000)
        except (RuntimeError, ValueError):
            continue
        sse = float(np.sum((model(u, *params) - y) ** 2))
        if best is None or sse < best[0]:
            best = (sse, params, cov)
    if best is None:
        return None
    _, (e, alpha, k), cov = best
    dof = len(y) - 3
    half = np.full(3, math.nan)
    if dof > 0 and np.all(np.isfinite(np.diag(cov))):
        half = float(sps.t.ppf(0.975, dof)) * np.sqrt(np.maximum(np.diag(cov), 0.0))
    return PowerLaw(variant, symbol, "irreducible", float(alpha), float(alpha - half[1]), float(alpha + half[1]),
                    ref * math.exp(k / alpha), float(e), float(e - half[0]), float(e + half[0]), len(y),
                    n_sizes(x))


# ---- the paired fits: a scale study compared within seed ----
# A scale study compared within seed (`compare: {pairing: auto|seed}`): at each size, seed s of the variant and
# seed s of the baseline share data order and initial weights, so each size's effect is the paired one
# (`gptlab.stats.paired`), and the trend is fitted on the per-seed differences themselves:
# 
#     d ~ 1 + log(N)          per variant, d = value(variant, seed s, size) - value(baseline, seed s, size)
# 
# an OLS whose slope is the effect's change per e-fold of N (the unpaired model's `C(variant):log(N)`), its
# residual the pairs' own noise rather than the sum of both arms'. A prediction at an N not run has the 95%
# prediction interval of one new pair's difference (variance c'Vc + sigma_d^2).

PAIRED_FORMULA = "d ~ log(N) per variant, d = the per-seed difference from the baseline at each size"


def pair_frame(data: pd.DataFrame, variant: str, baseline: str, sizes: list[str]) -> pd.DataFrame:
    """One row per (size, seed) held by both sides: size, seed, d."""
    rows = []
    for size in sizes:
        here = data[data["size"] == size]
        side = lambda v: here[here["variant"] == v].set_index("seed")["value"]  # noqa: E731
        pairs = pair_up(side(variant), side(baseline))
        rows += [{"size": size, "seed": s, "d": d} for s, d in zip(pairs.seeds, pairs.d)]
    return pd.DataFrame(rows, columns=["size", "seed", "d"])


def paired_size_effects(data: pd.DataFrame, variant: str, baseline: str, sizes: list[str],
                        size_params: dict[str, float], margin: float) -> list[dict[str, Any]]:
    """Per size with at least two pairs: the paired difference, its interval and p, and the paired TOST."""
    out = []
    for size in sizes:
        here = data[data["size"] == size]
        pairs = pair_up(here[here["variant"] == variant].set_index("seed")["value"],
                        here[here["variant"] == baseline].set_index("seed")["value"])
        if pairs.n < MIN_PAIRS:
            continue
        diff, lo, hi, p = paired_t(pairs.d)
        out.append({"variant": variant, "size": size, "n_params": size_params[size], "n": pairs.n,
                    "n_baseline": pairs.n, "estimate": diff, "ci_low": lo, "ci_high": hi, "p_value": p,
                    "p_tost": paired_tost(pairs.d, margin)})
    return out


def paired_fit(data: pd.DataFrame, variant: str, baseline: str, sizes: list[str],
               size_params: dict[str, float]) -> Any:
    """The OLS of the variant's per-seed differences on ln N (None below 3 sizes with pairs)."""
    import statsmodels.api as sm

    frame = pair_frame(data, variant, baseline, sizes)
    if frame["size"].nunique() < 3:
        return None
    X = sm.add_constant(np.log(frame["size"].map(size_params).astype(float).to_numpy()))
    return sm.OLS(frame["d"].to_numpy(float), X).fit()


def paired_slope(fit: Any) -> dict[str, float]:
    usable = fit.df_resid > 0 and math.isfinite(fit.scale) and fit.scale > 0
    ci = np.asarray(fit.conf_int(0.05))
    return {"estimate": float(fit.params[1]), "intercept": float(fit.params[0]),
            "ci_low": float(ci[1, 0]) if usable else math.nan, "ci_high": float(ci[1, 1]) if usable else math.nan,
            "p_value": float(fit.pvalues[1]) if usable else math.nan}


def paired_prediction(fit: Any, n_params: float) -> tuple[float, float, float, float, float]:
    """(estimate, CI low, CI high, PI low, PI high) of the effect at n_params."""
    row = np.array([[1.0, math.log(n_params)]])
    pred = fit.get_prediction(exog=row).summary_frame(alpha=0.05).iloc[0]
    mean, se_mean = float(pred["mean"]), float(pred["mean_se"])
    half = float(sps.t.ppf(0.975, fit.df_resid)) * math.sqrt(se_mean ** 2 + fit.scale)
    return mean, float(pred["mean_ci_lower"]), float(pred["mean_ci_upper"]), mean - half, mean + half
