"""Plain-language findings from the results table: direction, size, CI and significance.

The wording is deliberately fixed: "a significant difference" only when the 95% interval excludes
zero, "no detectable difference" otherwise, and "no uncertainty can be given" with one seed.
"""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from gptlab.analysis.stats import Compare

_STATUS_VERBS = {"diverged": "diverged", "failed": "failed", "interrupted": "was interrupted",
                 "running": "is still running"}


def decimals(*values: float) -> int:
    """Decimals that show the largest magnitude with about three significant digits."""
    finite = [abs(v) for v in values if v is not None and math.isfinite(v) and v != 0]
    if not finite:
        return 3
    m = max(finite)
    if m >= 1000:
        return 0
    if m >= 10:
        return 1
    return min(6, max(3, 1 - math.floor(math.log10(m))))


def fmt(value: float, places: int) -> str:
    text = f"{value:.{places}f}"
    return "0" + text[2:] if text.startswith("-0") and float(text) == 0 else text


def fmt_p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.2g}"


def comparison(row: Any, base: Any, compare: Compare) -> str:
    """One sentence comparing a label's row of the table with its baseline's row."""
    label, base_label, metric = row["variant"], base["variant"], compare.metric
    if row["n"] == 0:
        return f"{label} has no finished runs, so it cannot be compared with {base_label}."
    if base["n"] == 0:
        return f"{label} cannot be compared: the baseline {base_label} has no finished runs."
    diff = row["diff"]
    places = max(decimals(diff, row["diff_ci_low"], row["diff_ci_high"]), decimals(diff))
    if diff == 0:
        head = f"{label} has the same {metric} as {base_label}"
    else:
        head = (f"{label} has {fmt(abs(diff), places)} {'higher' if diff > 0 else 'lower'} {metric} "
                f"than {base_label}")
    seeds = f"{row['n']} vs {base['n']} seeds"
    if math.isnan(row["diff_ci_low"]):
        return f"{head} ({seeds}): no uncertainty can be given with a single seed."
    ci = f"95% CI {fmt(row['diff_ci_low'], places)} to {fmt(row['diff_ci_high'], places)}"
    detail = f"({ci}, {seeds}, {fmt_p(row['p_value'])})"
    if not row["significant"]:
        return f"{head} {detail}: no detectable difference."
    better = diff * compare.sign > 0
    return f"{head} {detail}: a significant difference; {label} is {'better' if better else 'worse'}."


def status_sentences(row: Any) -> list[str]:
    """'post_ln diverged in 3 of 3 seeds.' for every non-finished status present."""
    out = []
    for status, verb in _STATUS_VERBS.items():
        if row[f"n_{status}"]:
            text = f"{row['variant']} {verb} in {int(row[f'n_{status}'])} of {int(row['n_runs'])} seeds"
            error = row.get("error") if status == "failed" else None
            if isinstance(error, str) and error:  # the first error says why, in one short line
                first = error.strip().splitlines()[0] if error.strip() else ""
                text += f" (first error: {first[:120]})" if first else ""
            out.append(text + ".")
    return out


def spread_sentence(row: Any, compare: Compare) -> str:
    """The mean of one label, for experiments with nothing to compare against."""
    if row["n"] == 0:
        return f"{row['variant']} has no finished runs."
    places = decimals(row["mean"])
    if math.isnan(row["ci_low"]):
        return (f"{row['variant']} reaches {compare.metric} {fmt(row['mean'], places)} "
                f"(1 seed: no uncertainty can be given).")
    return (f"{row['variant']} reaches {compare.metric} {fmt(row['mean'], places)} (95% CI "
            f"{fmt(row['ci_low'], places)} to {fmt(row['ci_high'], places)}, {row['n']} seeds).")


def findings(table: pd.DataFrame, compare: Compare, note: str | None = None) -> list[str]:
    """All findings in table order: comparisons first, then divergence / failure counts."""
    rows = table.set_index("variant", drop=False)
    out = [note[0].upper() + note[1:] + "."] if note else []
    compared = False
    for _, row in table.iterrows():
        base = row["baseline"]
        if base is not None and base == base and base != row["variant"]:
            out.append(comparison(row, rows.loc[base], compare))
            compared = True
    if not compared:
        out += [spread_sentence(row, compare) for _, row in table.iterrows()]
    for _, row in table.iterrows():
        out += status_sentences(row)
    return out


def headline(table: pd.DataFrame, compare: Compare, baseline_is_best: bool = False) -> str:
    """The index line: the verdict of _verdict, plus which variants diverged (a finding in itself)."""
    line = _verdict(table, compare, baseline_is_best)
    broken = [f"{r['variant']} diverged in {int(r['n_diverged'])} seed{'s' if r['n_diverged'] != 1 else ''}"
              for _, r in table.iterrows() if r.get("n_diverged", 0) > 0]
    return f"{line} {'; '.join(broken)}." if broken else line


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _verdict(table: pd.DataFrame, compare: Compare, baseline_is_best: bool = False) -> str:
    """One line for the index: the strongest significant improvement, else the overall verdict.

    When the baseline was picked as the best variant (no spec baseline), nothing can beat it, so
    the line names it and counts how many others are detectably worse.
    """
    rows = table.set_index("variant", drop=False)
    compared = table[table["baseline"].notna() & (table["baseline"] != table["variant"])
                     & table["diff"].notna()]
    significant = compared[compared["significant"].map(lambda v: v is True or v == 1)]
    if baseline_is_best and len(compared):
        best = rows.loc[compared["baseline"].iloc[0]]
        lead = spread_sentence(best, compare).removesuffix(".").replace(" reaches ", " has the best ", 1)
        if compared["diff_ci_low"].isna().all():
            return f"{lead}; with one seed per variant no difference can be tested."
        return (f"{lead}; {len(significant)} of {len(compared)} other variants are detectably worse "
                f"(95% CI of the difference excludes 0).")
    if len(significant):
        gain = significant["diff"] * compare.sign
        best = significant.loc[gain.idxmax() if gain.max() > 0 else gain.idxmin()]
        sentence = comparison(best, rows.loc[best["baseline"]], compare)
        if gain.max() > 0:
            return sentence
        bases = ", ".join(sorted(set(compared["baseline"])))
        return f"No variant beats {bases} on {compare.metric}; {sentence}"
    if len(compared) and compared["diff_ci_low"].isna().all():
        return (f"One seed per variant: no uncertainty can be given "
                f"({_plural(len(compared), 'comparison')} on {compare.metric}).")
    if len(compared):
        bases = ", ".join(sorted(set(compared["baseline"])))
        return f"No detectable difference from {bases} in {compare.metric} ({_plural(len(compared), 'comparison')})."
    if len(table) == 1:
        return spread_sentence(table.iloc[0], compare)
    finished = table[table["n"] > 0]
    if len(finished):
        return (f"Nothing to compare against: the baseline has no finished runs "
                f"({_plural(len(finished), 'variant')} of {len(table)} finished).")
    return f"No finished runs to compare on {compare.metric}."
