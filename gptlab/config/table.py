"""The README's config table, generated from the section dataclasses (a test compares README.md to it)."""
from __future__ import annotations

import dataclasses
from dataclasses import fields
from typing import Any

from gptlab.axes import AXES, Axis
from gptlab.config.sections import SECTIONS


_TABLE_NOTES = {"path": "(Tiny Shakespeare, shipped)", "entity": "(none)",
                "device": "auto\\|cpu\\|cuda\\|cuda:N\\|mps"}


def config_table() -> str:
    """The README's config table: every key of every section with its default (choices: the default
    first); README.md carries this text verbatim between its `config-table` markers (a test checks)."""
    rows = ["| section | keys (defaults) |", "| --- | --- |"]
    for section, cls in SECTIONS.items():
        cells = []
        for f in fields(cls):
            if "internal" in f.metadata or f.name == "vocab_size":
                continue
            if "axis" in f.metadata:
                shown = "\\|".join(AXES[f.name].names(lambda origin: False))
            elif "choices" in f.metadata:
                shown = "\\|".join(Axis.spell(c) for c in f.metadata["choices"])
            elif f.name in _TABLE_NOTES:
                shown = _TABLE_NOTES[f.name]
            else:
                shown = _doc_value(f.default if f.default is not dataclasses.MISSING else f.default_factory())
            cells.append(f"`{f.name}` {shown}")
        rows.append(f"| {section} | {', '.join(cells)} |")
    return "\n".join(rows)


def _doc_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "[]" if not value else "[" + ", ".join(value) + "]"
    if isinstance(value, float) and 0 < value < 0.01:
        mantissa, exponent = f"{value:.0e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    if isinstance(value, float):
        return f"{value:g}" if not value.is_integer() else str(value)
    return str(value)
