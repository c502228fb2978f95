"""Plain-language findings, generated from the numbers of the results table and effects.csv.

Every comparison ends in exactly one verdict, decided on p-values adjusted over the whole report:
"significantly better" / "significantly worse"; "equivalent within ±m" (both one-sided tests at the
margin reject); "inconclusive" (neither), with the smallest difference these seeds could detect and
about how many seeds would resolve the observed one; or "no uncertainty can be given" (one seed, or
every seed on both sides agreeing exactly). Each sentence names the figure it rests on.
"""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from gptlab.stats.summary import Criterion

FIG_METRIC, FIG_CURVES, FIG_EFFECTS = "metric_by_variant", "learning_curves", "effects"
_STATUS_VERBS = {"diverged": "diverged", "failed": "failed", "interrupted": "was interrupted",
                 "running": "is still running"}
_HEALTH_WORDS = {"not_learning": "never learned", "diverged": "diverged", "unstable": "trained unstably",
                 "overfit": "overfit"}


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


def fmt_padj(p: float) -> str:
    return "adjusted " + fmt_p(p)


def _seeds_phrase(n: float) -> str:
    if not math.isfinite(n):
        return ""
    return "more than 1000 seeds per variant" if n > 1000 else f"about {int(n)} seeds per variant"


def _is_finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def verdict(row: Any, compare: Criterion) -> str:
    """The verdict words of one tested two-sample comparison (a summary row or a one-factor effect)."""
    if row["exact"] and row.get("pairing") != "paired":
        return "every seed gave the same value on both sides, so no uncertainty can be given"
    if math.isnan(row["diff_ci_low"]):
        return "no uncertainty can be given with a single seed"
    if row["significant"]:
        better = row["diff"] * compare.sign > 0
        return f"significantly {'better' if better else 'worse'}"
    margin = f"{row['margin']:g}"
    if row["equivalent"]:
        if _is_finite(row.get("p_nominal")):  # decided by the paired adaptive design: no fixed-sample TOST p
            return (f"equivalent within ±{margin} (sequential TOST: its repeated interval at the look that "
                    f"stopped it lies within the margin, section Design)")
        return f"equivalent within ±{margin} (TOST, {fmt_padj(row['p_tost_adjusted'])})"
    places = decimals(row["mde"], row["diff"])
    text = "inconclusive"
    if math.isfinite(row["mde"]):
        text += f": these seeds detect a difference of {fmt(row['mde'], places)} or more (80% power)"
        seeds = _seeds_phrase(row["seeds_needed"])
        if seeds:
            goal = (f"tell {fmt(abs(row['diff']), places)} from 0" if abs(row["diff"]) >= row["margin"]
                    else f"show equivalence within ±{margin}")
            text += f"; {seeds} would {goal}"
    return text


def comparison(row: Any, base: Any, compare: Criterion) -> str:
    """One sentence comparing a label's row of the table with its baseline's row."""
    label, base_label, metric = row["variant"], base["variant"], compare.metric
    if row["n"] == 0:
        return f"{label} has no finished runs, so it cannot be compared with {base_label} (results table)."
    if base["n"] == 0:
        return f"{label} cannot be compared: the baseline {base_label} has no finished runs (results table)."
    diff = row["diff"]
    places = max(decimals(diff, row["diff_ci_low"], row["diff_ci_high"]), decimals(diff))
    if diff == 0:
        head = f"{label} has the same {metric} as {base_label}"
    else:
        head = (f"{label} has {fmt(abs(diff), places)} {'higher' if diff > 0 else 'lower'} {metric} "
                f"than {base_label}")
    seeds = f"{row['n']} vs {base['n']} seeds"
    if row.get("pairing") == "paired":
        left = int(row.get("only_a", 0) or 0) + int(row.get("only_b", 0) or 0)
        seeds = f"{int(row['pairs'])} seed pairs" + (f", {left} unpaired seed{'s' * (left != 1)} left out" if left else "")
    if math.isnan(row["diff_ci_low"]):
        return f"{head} ({seeds}): {verdict(row, compare)} (figure {FIG_METRIC})."
    level = row.get("ci_level")  # an adaptive study's interval is at the level its comparison was judged at
    level = f"{level:.1%}" if isinstance(level, float) and math.isfinite(level) else "95%"
    ci = f"{level} CI {fmt(row['diff_ci_low'], places)} to {fmt(row['diff_ci_high'], places)}"
    detail = f"({ci}, {seeds}, {fmt_p(row['p_value'])}, {fmt_padj(row['p_adjusted'])})"
    return f"{head} {detail}: {verdict(row, compare)} (figure {FIG_METRIC})."


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
            out.append(f"Status (results table): {text}.")
    return out


def health_sentences(table: pd.DataFrame) -> list[str]:
    """One sentence per variant whose health is not ok, naming the number it rests on."""
    out = []
    for _, r in table.iterrows():
        health = r.get("health", "ok")
        if health not in _HEALTH_WORDS:
            continue
        of = f"{int(r['health_n'])} of {int(r['health_of'])} seeds"
        why = f": {r['health_reason']}" if r.get("health_reason") else ""
        consequence = ("; its comparisons say nothing about the ablation" if health == "not_learning"
                       else "")
        words = _HEALTH_WORDS[health]
        if health == "not_learning" and "unigram" in str(r.get("health_reason")):
            words = "learned no more than the character frequencies"
        out.append(f"Health: {r['variant']} {words} ({health}, {of}{why}){consequence} "
                   f"(figure {FIG_CURVES}).")
    return out


def spread_sentence(row: Any, compare: Criterion) -> str:
    """The mean of one label, for experiments with nothing to compare against."""
    if row["n"] == 0:
        return f"{row['variant']} has no finished runs (results table)."
    places = decimals(row["mean"])
    if math.isnan(row["ci_low"]):
        return (f"{row['variant']} reaches {compare.metric} {fmt(row['mean'], places)} "
                f"(1 seed: no uncertainty can be given).")
    return (f"{row['variant']} reaches {compare.metric} {fmt(row['mean'], places)} (95% CI "
            f"{fmt(row['ci_low'], places)} to {fmt(row['ci_high'], places)}, {row['n']} seeds).")


def effect_sentence(row: Any, compare: Criterion, rank: dict[str, float] | None = None) -> str:
    """A main effect, interaction or simple effect from effects.csv, in words. A two-factor interaction
    is told as the larger factor's effect (by `rank`, |main effect|) changing with the other's level."""
    est, lo, hi = row["estimate"], row["ci_low"], row["ci_high"]
    places = decimals(est, lo, hi)
    kind = {"main": "Main effect", "interaction": "Interaction", "simple": "Effect",
            "matched": "Comparison"}[row["kind"]]
    head = f"{kind} {row['contrast']}: {'+' if est > 0 else ''}{fmt(est, places)} {compare.metric}"
    if row["kind"] in ("simple", "matched"):  # two cells: the same verdicts as a summary comparison
        detail = "" if not math.isfinite(lo) else \
            f" (95% CI {fmt(lo, places)} to {fmt(hi, places)}, {fmt_padj(row['p_adjusted'])})"
        return f"{head}{detail}: {verdict(row, compare)} (figure {FIG_EFFECTS})."
    if not math.isfinite(lo):
        return f"{head}: no uncertainty can be given (figure {FIG_EFFECTS})."
    detail = f"(95% CI {fmt(lo, places)} to {fmt(hi, places)}, {fmt_padj(row['p_adjusted'])})"
    parts = str(row["contrast"]).split(" (averaged over")[0].split(" x ")
    if row["kind"] == "interaction" and len(parts) == 2:  # the difference of two one-factor effects
        rank = rank or {}
        if rank.get(parts[1].partition(" ")[0], 0) > rank.get(parts[0].partition(" ")[0], 0):
            parts = parts[::-1]
        name, _, levels = parts[1].partition(" ")
        level, _, ref = levels.partition(" - ")
        head = (f"Interaction {row['term']}: the {parts[0]} effect on {compare.metric} is {fmt(abs(est), places)} "
                f"{'larger' if est > 0 else 'smaller'} at {name}={level} than at {name}={ref}")
    if row["significant"]:
        word = "significant"
        if row["kind"] != "interaction":
            word += f", {'better' if est * compare.sign > 0 else 'worse'}"
    else:
        word = "not significant"
    return f"{head} {detail}: {word} (figure {FIG_EFFECTS})."


def findings(table: pd.DataFrame, compare: Criterion, note: str | None = None,
             effects: pd.DataFrame | None = None) -> list[str]:
    """Health first, then comparisons (or effects), then divergence / failure counts."""
    rows = table.set_index("variant", drop=False)
    out = health_sentences(table) if "health" in table else []
    out += [note[0].upper() + note[1:] + "."] if note else []
    effects = effects if effects is not None else pd.DataFrame()
    if len(effects):
        main = effects[effects["kind"] == "main"]
        rank = main.assign(size=main["estimate"].abs()).groupby("term")["size"].max().to_dict()
        out += [effect_sentence(r, compare, rank) for _, r in effects.iterrows() if r["kind"] in ("main", "interaction")]
    pairs = {tuple(r["pair"]) for _, r in effects.iterrows() if r["kind"] in ("simple", "matched")} \
        if len(effects) else set()
    compared = False
    for _, row in table.iterrows():  # comparisons with the baseline, unless said below as effects
        base = row["baseline"]
        if base is None or base != base or base == row["variant"] or (row["variant"], base) in pairs:
            continue
        if row["tested"] or row["n"] == 0 or rows.loc[base, "n"] == 0:
            out.append(comparison(row, rows.loc[base], compare))
            compared = True
    if len(effects):  # one-factor effects, factor by factor (each at every level of the others)
        out += [effect_sentence(r, compare) for _, r in effects.iterrows() if r["kind"] in ("simple", "matched")]
    elif not compared:
        out += [spread_sentence(row, compare) for _, row in table.iterrows()]
    for _, row in table.iterrows():
        out += status_sentences(row)
    return out
