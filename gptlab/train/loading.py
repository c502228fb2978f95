"""Load a trained run back from its directory (moved below train and analysis: gptlab/trained.py)."""
from gptlab.trained import TrainedRun, load_run  # noqa: F401 - re-exported
