"""Training-time diagnostics: hooks the training step runs on log steps (see diagnostics.py), the
layer groups they report by, and hardware figures (FLOPs, peak FLOP/s, peak memory)."""
from gptlab.train.diag.diagnostics import LEVELS, Diagnostics, build_diagnostics

__all__ = ["LEVELS", "Diagnostics", "build_diagnostics"]
