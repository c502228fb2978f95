"""A study design's additions to an analysis (`Analysis.extras`) and to its tables: the tuning choice and the
verdicts at the shared value (`tuning`, `shared`, `flips`), the adaptive rounds with their sequential intervals
(`adaptive`), the scale trend (`scale`). The report's study sections read these; summary.csv and effects.csv
gain the columns named in `csv_columns`."""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from gptlab.stats.summary import metric_values
from gptlab.report.stages import StudyParts, flip_sentences, tuning_of
from gptlab.store import ENDED
from gptlab.yamlio import parse_scalar

# summary.csv's study-design columns; p_nominal and ci_level: a paired adaptive study's (see _adaptive)
STUDY_COLUMNS = ("at", "rounds", "stopped", "p_nominal", "ci_level", "size", "n_params")


def study_extras(a, parts: StudyParts, shared) -> None:  # noqa: ANN001 - Analysis, Analysis | None
    extras = a.extras
    spec = a.spec or {}
    if len(parts.tune.runs):
        values = metric_values(parts.tune.runs, parts.tune.history, a.compare)
        tuning = tuning_of(parts, spec, a.compare.metric, values)
        if tuning is not None:
            extras["tuning"] = tuning
            _tuned_columns(a.table, a.store.runs, tuning.keys, "tuned")
            if shared is not None:
                _tuned_columns(shared.table, shared.store.runs, tuning.keys, "shared")
                extras["shared"] = shared
                margin = float(a.table["margin"].dropna().iloc[0]) if a.table["margin"].notna().any() else 0.02
                extras["flips"], extras["flipped"] = flip_sentences(tuning, a.table, shared.table, a.compare.sign,
                                                                    margin)
    if isinstance(spec.get("seeds"), dict) and a.compare.baseline:
        _adaptive(a, spec)
    if spec.get("scale") and "size" in a.store.runs and a.store.runs["size"].notna().any():
        _scale(a, spec)


def _tuned_columns(table: pd.DataFrame, runs: pd.DataFrame, keys: list[str], at: str) -> None:
    """summary.csv's `at` and the tuned value of each row (the value its runs trained at)."""
    table["at"] = at
    for key in keys:
        if key in runs:
            table[key] = table["variant"].map(runs.groupby("label")[key].first())  # first known value


def csv_columns(a) -> list[str]:  # noqa: ANN001
    """The study columns summary.csv carries for this analysis (after the contract's columns)."""
    keys = list(getattr(a.extras.get("tuning"), "keys", []))
    scale = "scale" in a.extras
    return [c for c in STUDY_COLUMNS if c in a.table and (scale or c not in ("size", "n_params"))] + \
        [k for k in keys if k in a.table]


def summary_frame(a) -> pd.DataFrame:  # noqa: ANN001
    """summary.csv's rows: the compared table, then (compare_shared) the same comparisons at the shared value."""
    shared = a.extras.get("shared")
    return pd.concat([a.table, shared.table], ignore_index=True) if shared is not None else a.table


def effects_frame_of(a) -> pd.DataFrame:  # noqa: ANN001
    """effects.csv's rows: the analysis' effects, the shared value's (at=shared), the scale rows (at=size)."""
    frames = []
    if len(a.effects):
        frames.append(a.effects.assign(at="tuned") if "tuning" in a.extras else a.effects)
    adaptive = a.extras.get("adaptive")
    if frames and adaptive is not None and adaptive.paired:
        frames[-1] = sequential_effects(frames[-1], adaptive)
    shared = a.extras.get("shared")
    if shared is not None and len(shared.effects):
        frames.append(shared.effects.assign(at="shared"))
    scale = a.extras.get("scale")
    if scale is not None:
        frames.append(pd.DataFrame(scale.effects_rows()))
    return pd.concat(frames, ignore_index=True) if frames else a.effects


# ---- adaptive seeds ---------------------------------------------------------------------------------

def _adaptive(a, spec: dict[str, Any]) -> None:  # noqa: ANN001
    """Replay the rounds from the runs; the table's intervals, p-values and verdicts become the sequential ones.
    `pairing: none` keeps 0.3's table exactly; paired (auto | seed) makes its columns say what they hold (see
    `_sequential_row`)."""
    from gptlab.stats.adaptive import design_of, pairs, replay

    runs = a.store.runs
    labels = runs.drop_duplicates("label").set_index("label")["variant"]
    cells = [(lab, None if v != v else str(v)) for lab, v in labels.items()]
    family = pairs(cells, a.compare.baseline)
    if not family:
        return
    table = a.table.set_index("variant")
    base_mean = table["mean"].get(family[0].baseline, math.nan)
    margin = a.compare.margin_for(float(base_mean))
    design = design_of(spec["seeds"], margin, len(family))
    by = {(r["label"], int(r["seed"])): r for _, r in runs.iterrows() if r["seed"] == r["seed"]}
    state = replay(design, family,
                   ended=lambda c, s: (c, s) in by and by[(c, s)]["status"] in ENDED,
                   values=lambda c, s: float(by[(c, s)]["value"]) if (c, s) in by and
                   by[(c, s)]["status"] == "finished" else math.nan, sign=a.compare.sign,
                   paired=a.compare.pairing != "none")
    a.extras["adaptive"] = state
    t = a.table
    t["rounds"] = t["variant"].map(lambda v: state.outcomes[v].round if v in state.outcomes else
                                   max((o.round or 0) for o in state.outcomes.values()) or None)
    t["stopped"] = t["variant"].map(lambda v: state.outcomes[v].stopped if v in state.outcomes else None)
    for i, row in t.iterrows():
        out = state.outcomes.get(row["variant"])
        if out is None or out.result is None:
            continue
        r = out.result
        if state.paired:
            for key, value in _sequential_row(out, design).items():
                t.loc[i, key] = value
            continue
        # the sequential interval and a p-value on the family's scale: significant iff the boundary was crossed
        t.loc[i, ["diff", "diff_ci_low", "diff_ci_high"]] = [r.diff, r.ci_low, r.ci_high]
        t.loc[i, "p_value"] = r.p_value
        t.loc[i, "p_adjusted"] = min(1.0, r.p_value * design.alpha / r.p_boundary) if r.p_value == r.p_value \
            else math.nan
        t.loc[i, "significant"] = r.verdict == "different"
        t.loc[i, "equivalent"] = r.verdict == "equivalent"


def _sequential_row(out, design) -> dict[str, Any]:  # noqa: ANN001 - Outcome, SequentialDesign
    """A paired adaptive comparison's summary.csv cells, each what its name says:
    diff and diff_ci_*: the estimate at the stopping look and the repeated interval computed there, at level
    `ci_level` = 1 - alpha / kd (kd: the comparisons not yet decided different when it was judged);
    p_value: the sequential p of diff = 0 (stagewise ordering, `sequential.stagewise_p`), 1 for a comparison that
    stopped equivalent before its test of no difference crossed (that test was abandoned, never rejecting);
    p_nominal: the fixed-sample p of that look's test (paired t and Hall's T both) (not valid under the stopping);
    p_adjusted = min(1, kd * p_value): below alpha exactly when the boundary was crossed, so `significant`
    (the design rejected diff = 0) agrees with it; `equivalent`: the design rejected |diff| >= margin."""
    from gptlab.stats.adaptive import reported_p
    from gptlab.stats.sequential import rejects

    r = out.result
    crossed, inside = (bool(x) for x in rejects(design, r))
    kd = (r.shares or (design.n_comparisons,) * 2)[0]
    p = reported_p(out, design)
    return {"diff": r.diff, "diff_ci_low": r.ci_low, "diff_ci_high": r.ci_high, "p_value": p,
            "p_nominal": r.p_value, "p_adjusted": min(1.0, kd * p) if p == p else math.nan,
            "ci_level": 1 - design.alpha / kd, "significant": crossed, "equivalent": inside,
            "pairing": "paired", "pairs": r.used}


def sequential_effects(effects: pd.DataFrame, state) -> pd.DataFrame:  # noqa: ANN001 - Replay
    """effects.csv of a paired adaptive study: a row comparing a decided pair carries the sequential numbers
    (`_sequential_row`; `at` = sequential); any other row keeps its fixed-sample Holm numbers, marked
    `at` = fixed-sample (not valid under the stopping)."""
    from gptlab.stats.sequential import rejects

    out = effects.copy()
    tag = (out["at"].astype(str) + ", ") if "at" in out else ""  # a tuned study's rows keep `tuned`
    out["at"] = tag + "fixed-sample"
    by_pair = {(o.pair.variant, o.pair.baseline): o for o in state.outcomes.values() if o.result is not None}
    for i, row in out.iterrows():
        o = by_pair.get(tuple(row["pair"])) if isinstance(row.get("pair"), (tuple, list)) else None
        if o is None:
            continue
        cells = _sequential_row(o, state.design)
        out.loc[i, ["estimate", "ci_low", "ci_high", "p_value", "p_adjusted"]] = [
            cells["diff"], cells["diff_ci_low"], cells["diff_ci_high"], cells["p_value"], cells["p_adjusted"]]
        out.loc[i, "significant"] = bool(rejects(state.design, o.result)[0])
        out.loc[i, "at"] = (f"{effects.loc[i, 'at']}, " if "at" in effects else "") + "sequential"
    return out


# ---- scale ------------------------------------------------------------------------------------------

def _scale(a, spec: dict[str, Any]) -> None:  # noqa: ANN001
    from gptlab.stats.scale import scale_study

    runs = a.store.runs
    ok = runs[runs["status"] == "finished"]
    tokens = ok["max_steps"] * ok["batch_size"] * ok.get("grad_accum", 1) * ok["block_size"]
    variants = ok["variant"].where(ok["variant"].notna(), "base").astype(str)  # a study of sizes alone: "base"
    baseline = a.compare.baseline or "base"
    frame = pd.DataFrame({"variant": variants, "size": ok["size"], "n_params": ok["n_params"],
                          "tokens": tokens, "seed": ok["seed"], "value": ok["value"]})
    if frame["size"].nunique() < 2 or baseline not in set(frame["variant"]):
        return
    predict = (spec.get("scale") or {}).get("predict") or {}
    target = parse_scalar(predict["n_params"]) if isinstance(predict.get("n_params"), str) else predict.get("n_params")
    base_mean = float(frame.loc[frame["variant"] == baseline, "value"].mean())
    a.extras["scale"] = scale_study(frame, baseline, margin=a.compare.margin_for(base_mean),
                                    sign=a.compare.sign, correction=a.compare.correction,
                                    predict_n_params=target, metric=a.compare.metric, pairing=a.compare.pairing)
    a.table["size"] = a.table["variant"].map(runs.groupby("label")["size"].first())
    a.extras["scale_budget"] = _budget(spec, ok.assign(tokens=tokens))


def _budget(spec: dict[str, Any], ok: pd.DataFrame) -> str:
    """How the sizes were trained: compute-optimally (tokens_per_param) or at a fixed or per-size budget."""
    per_size = ok.groupby("size").agg(steps=("max_steps", "median"), tokens=("tokens", "median"),
                                      n=("n_params", "median")).sort_values("n")
    listed = ", ".join(f"{size} {int(r.steps)} steps ({r.tokens / r.n:.1f} tokens per parameter)"
                       for size, r in per_size.iterrows())
    tpp = (spec.get("scale") or {}).get("tokens_per_param")
    if tpp is not None:
        return f"Each size was trained compute-optimally at {tpp} tokens per parameter (tokens_per_param): {listed}."
    if per_size["steps"].nunique() == 1:
        return f"Every size was trained at one fixed budget of {int(per_size['steps'].iloc[0])} steps: {listed}."
    return f"Each size was trained at the steps its spec entry sets: {listed}."
