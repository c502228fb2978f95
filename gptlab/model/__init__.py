"""gptlab's decoder-only GPT, built from one ModelConfig; each ablation axis is a registered component."""
from gptlab.model.gpt import GPT, build_model

__all__ = ["GPT", "build_model"]
