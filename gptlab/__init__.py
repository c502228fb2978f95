"""gptlab: a research harness for ablation studies on small GPT models."""
__version__ = "0.2.1"

from gptlab.plugins import register  # noqa: E402 - torch-free; the plugin API


def build_model(config):  # noqa: ANN001, ANN201 - re-exported, typed in gptlab.model
    """A GPT nn.Module from a ModelConfig or a dict of model keys (vocab_size included)."""
    from gptlab.model import build_model as _build

    return _build(config)


def __getattr__(name: str):  # noqa: ANN202 - lazy: pandas loads only when a notebook asks for runs
    if name in ("load_runs", "load_history"):
        from gptlab.analysis import load

        return getattr(load, name)
    raise AttributeError(f"module 'gptlab' has no attribute '{name}'")


__all__ = ["__version__", "build_model", "load_history", "load_runs", "register"]
