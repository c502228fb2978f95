"""gptlab's version: a leaf module, so what records it (a run's provenance) imports nothing else."""
__version__ = "0.4.0"
