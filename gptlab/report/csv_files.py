"""summary.csv and effects.csv: the report's two tables as files (the contract's columns, `%.6g` floats)."""
from __future__ import annotations

from typing import Any

import pandas as pd

from gptlab.stats.effects import EFFECT_COLUMNS
from gptlab.stats.summary import CSV_COLUMNS
from gptlab.yamlio import atomic_write_text


def write_summary_csv(table: pd.DataFrame, path: Any, extra: list[str] | tuple[str, ...] = ()) -> str:
    """summary.csv text: fixed columns (then a study design's `extra` ones), `%.6g` floats, empty cells for NaN;
    returned and written."""
    out = table.reindex(columns=[*CSV_COLUMNS, *extra]).copy()
    for col in ("significant", "equivalent"):
        out[col] = out[col].map({True: "True", False: "False"}).fillna("")
    text = out.to_csv(index=False, float_format="%.6g", lineterminator="\n")
    atomic_write_text(path, text)
    return text


def write_effects_csv(frame: pd.DataFrame, path: Any, extra: list[str] | tuple[str, ...] = ()) -> str:
    """effects.csv: the contract's columns, then `extra` (a study's `at`: tuned | shared | a size | the slope)."""
    out = frame.reindex(columns=[*EFFECT_COLUMNS, *extra]).copy()
    out["significant"] = out["significant"].map({True: "True", False: "False"}).fillna("")
    text = out.to_csv(index=False, float_format="%.6g", lineterminator="\n")
    atomic_write_text(path, text)
    return text
