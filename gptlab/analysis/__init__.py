"""Deprecated (0.4): the analysis moved to three layers, `gptlab.frames` (store -> DataFrames), `gptlab.stats`
(pure statistics) and `gptlab.report` (words and pictures). This shim keeps the package's own names for one
release: `gptlab.analysis.load_runs`, `load_history`, `load_store` and `write_reports`.
"""
from __future__ import annotations

import warnings

__all__ = ["load_history", "load_runs", "load_store", "write_reports"]


def __getattr__(name: str):  # noqa: ANN202 - lazy: pandas/matplotlib load only when used
    if name in __all__:
        warnings.warn(f"gptlab.analysis.{name} moved: use gptlab.frames.load / gptlab.report.build "
                      "(gptlab.analysis goes away in 0.5)", DeprecationWarning, stacklevel=2)
        if name == "write_reports":
            from gptlab.report.build import write_reports

            return write_reports
        from gptlab.frames import load

        return getattr(load, name)
    raise AttributeError(f"module 'gptlab.analysis' has no attribute '{name}'")
