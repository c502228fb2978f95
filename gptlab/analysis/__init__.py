"""Analysis of stored runs: load them into DataFrames, compare variants, write reports.

Import the submodules directly (`gptlab.analysis.load`, `.stats`, `.report`); this package keeps
its import light so the CLI stays fast.
"""
from __future__ import annotations

__all__ = ["load_history", "load_runs", "load_store", "write_reports"]


def __getattr__(name: str):  # lazy: pandas/matplotlib load only when used
    if name in ("load_store", "load_runs", "load_history"):
        from gptlab.analysis import load

        return getattr(load, name)
    if name == "write_reports":
        from gptlab.analysis.report import write_reports

        return write_reports
    raise AttributeError(name)
