"""The headline: one sentence answering the spec's description, from the numbers alone.

With several factors it names the factor that matters most (largest significant main effect), its
size and certainty, and the significant interactions; with one it names the strongest significant
difference from the baseline, else says what the comparisons came to (equivalent / inconclusive).
Variants that never trained or broke are appended, since they qualify every comparison.
"""
from __future__ import annotations

import pandas as pd

from gptlab.report.findings import decimals, fmt, fmt_padj, spread_sentence
from gptlab.stats.summary import Criterion


def _signed(value: float, places: int) -> str:
    return ("+" if value > 0 else "") + fmt(value, places)


def _effect_words(row: pd.Series) -> str:
    contrast = str(row["contrast"]).split(" (averaged over")[0]
    places = decimals(row["estimate"], row["ci_low"], row["ci_high"])
    return (f"{contrast} changes it by {_signed(row['estimate'], places)} (95% CI {fmt(row['ci_low'], places)} "
            f"to {fmt(row['ci_high'], places)}, {fmt_padj(row['p_adjusted'])})")


def effects_headline(effects: pd.DataFrame, compare: Criterion) -> str | None:
    model = effects[effects["kind"].isin(["main", "interaction"])] if len(effects) else effects
    if not len(model):
        return None
    main = model[model["kind"] == "main"]
    sig = main[main["significant"] == True]  # noqa: E712 - object column of True/False/None
    inter = model[(model["kind"] == "interaction") & (model["significant"] == True)]  # noqa: E712
    if not len(sig):
        biggest = main.loc[main["estimate"].abs().idxmax()] if len(main) else model.iloc[0]
        return (f"No factor has a significant effect on {compare.metric}; the largest, {biggest['term']}, "
                f"{_effect_words(biggest)} (figure effects).")
    order = sig.assign(size=sig["estimate"].abs()).sort_values("size", ascending=False)
    top = order.iloc[0]
    line = f"{top['term']} matters most for {compare.metric}: {_effect_words(top)}"
    rest = [r for _, r in order.iloc[1:].iterrows() if r["term"] != top["term"]]
    if rest:
        line += "; then " + ", ".join(
            f"{r['term']} ({_signed(r['estimate'], decimals(r['estimate']))})" for r in rest[:3])
    if len(inter):
        terms = list(dict.fromkeys(inter["term"]))
        line += f"; significant interaction{'s' if len(terms) > 1 else ''}: {', '.join(terms)}"
    else:
        line += "; no significant interaction"
    return line + " (figure effects)."


def comparisons_headline(table: pd.DataFrame, compare: Criterion, baseline_is_best: bool) -> str:
    from gptlab.report.findings import comparison

    rows = table.set_index("variant", drop=False)
    compared = table[table["tested"] == True]  # noqa: E712
    significant = compared[compared["significant"] == True]  # noqa: E712
    if baseline_is_best and len(compared):
        best = rows.loc[compared["baseline"].iloc[0]]
        lead = spread_sentence(best, compare).removesuffix(".").replace(" reaches ", " has the best ", 1)
        if compared["p_value"].isna().all():
            return f"{lead}; no difference can be tested (one seed, or seeds that agree exactly)."
        return f"{lead}; {len(significant)} of {len(compared)} other variants are significantly worse."
    if len(significant):
        gain = significant["diff"] * compare.sign
        best = significant.loc[gain.idxmax() if gain.max() > 0 else gain.abs().idxmax()]
        sentence = comparison(best, rows.loc[best["baseline"]], compare)
        if gain.max() > 0:
            return sentence
        bases = ", ".join(sorted(set(compared["baseline"])))
        return f"No variant beats {bases} on {compare.metric}; {sentence}"
    if len(compared) and compared["p_value"].isna().all():
        return f"No uncertainty can be given on {compare.metric} (one seed, or seeds that agree exactly)."
    if len(compared):
        bases = ", ".join(sorted(set(compared["baseline"])))
        n_eq = int((compared["equivalent"] == True).sum())  # noqa: E712
        margin = compared["margin"].dropna()
        m = f"{float(margin.iloc[0]):g}" if len(margin) else "?"
        if n_eq == len(compared):
            return f"Every variant is equivalent within ±{m} to {bases} on {compare.metric}."
        return (f"No significant difference from {bases} on {compare.metric}: {n_eq} of {len(compared)} "
                f"comparisons equivalent within ±{m}, {len(compared) - n_eq} inconclusive.")
    if len(table) == 1:
        return spread_sentence(table.iloc[0], compare)
    finished = table[table["n"] > 0]
    if len(finished):
        return (f"Nothing to compare against: the baseline has no finished runs "
                f"({len(finished)} of {len(table)} variants finished).")
    return f"No finished runs to compare on {compare.metric}."


def headline(table: pd.DataFrame, compare: Criterion, effects: pd.DataFrame | None = None,
             baseline_is_best: bool = False) -> str:
    """The first finding and the index line."""
    line = (effects_headline(effects, compare) if effects is not None else None) or \
        comparisons_headline(table, compare, baseline_is_best)
    problems = []
    for health in ("not_learning", "diverged", "unstable", "overfit"):
        names = [str(v) for v, h in zip(table["variant"], table.get("health", [])) if h == health]
        if names:
            word = {"not_learning": "did not learn", "diverged": "diverged", "unstable": "trained unstably",
                    "overfit": "overfit"}[health]
            problems.append(f"{', '.join(names)} {word}")
    return f"{line} Health: {'; '.join(problems)}." if problems else line
