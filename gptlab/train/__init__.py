"""Training: one run end to end, from a RunConfig to a run directory."""
from gptlab.train.trainer import RunMeta, run_training

__all__ = ["RunMeta", "run_training"]
