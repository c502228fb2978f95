"""The compute findings in words: the size warning, matched parameters, the fitted power laws."""
from __future__ import annotations

import pandas as pd

from gptlab.stats.compute import (FIG_SCALING, MATCHED_TOL, SIZE_KEYS, SIZE_TOL, ratio, compute_frame, count,
                                  differs_in_size, label_params, power_law)


def size_warning(params: dict[str, float], varying: list[str], label_config: pd.DataFrame) -> str | None:
    """Variants that differ only in non-size keys but by more than SIZE_TOL in parameters."""
    size_cols = [k for k in varying if k in SIZE_KEYS]
    groups: dict[tuple, list[str]] = {}
    for lab in params:
        key = tuple(repr(label_config.at[lab, k]) for k in size_cols) if lab in label_config.index else ()
        groups.setdefault(key, []).append(lab)
    worst = None
    for labs in groups.values():
        if len(labs) < 2:
            continue
        lo, hi = min(labs, key=params.get), max(labs, key=params.get)
        gap = ratio(params[hi], params[lo])
        if gap > SIZE_TOL and (worst is None or gap > worst[0]):
            worst = (gap, lo, hi)
    if worst is None:
        return None
    gap, lo, hi = worst
    return (f"Warning: {hi} has {gap:.0%} more parameters than {lo} ({count(params[hi])} vs {count(params[lo])}) "
            "although the study does not vary model size; part of any difference may be capacity.")


def compute_findings(runs: pd.DataFrame, labels: list[str], metric: str, varying: list[str],
                     label_config: pd.DataFrame) -> list[str]:
    """The size warning, and for studies that differ in size the fitted power laws."""
    params = label_params(runs, labels)
    out = []
    warning = size_warning(params, varying, label_config)
    if warning:
        out.append(warning.removesuffix(".") + " (results table, params column).")
    values = list(params.values())
    if SIZE_KEYS & set(varying) and len(values) >= 2 and ratio(max(values), min(values)) <= MATCHED_TOL:
        out.append(f"All variants are matched in parameters ({count(min(values))} to {count(max(values))}, "
                   f"within {ratio(max(values), min(values)):.1%}) although their shapes differ: every "
                   "comparison here is at matched parameters (results table, params column).")
    if differs_in_size(params, varying):
        frame = compute_frame(runs)
        for x, name in (("n_params", "parameters N"), ("flops", "training FLOPs C (6ND)")):
            fit = power_law(frame, x)
            if fit:
                sym = "N" if x == "n_params" else "C"
                out.append(f"{metric} scales as {fit['a']:.3g} x {sym}^{fit['b']:.3f} over {fit['sizes']} sizes "
                           f"of {name} (exponent 95% CI {fit['b_low']:.3f} to {fit['b_high']:.3f}, "
                           f"R^2 {fit['r2']:.2f}, {fit['n']} runs) (figure {FIG_SCALING}).")
    return out
