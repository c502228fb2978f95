"""gptlab: a research harness for ablation studies on small GPT models."""
from gptlab.version import __version__

# This file runs before any gptlab module: it imports nothing else at load time. Its names reach
# upward (model, analysis) lazily, as the public facade above every layer.


def register(axis: str, name: str, options: dict | None = None):  # noqa: ANN201 - typed in gptlab.plugins
    """Decorator: a user's component becomes value `name` of `axis` (see gptlab.plugins.register)."""
    import gptlab.config  # noqa: F401 - reserves the built-in keys a component's options must not take
    from gptlab.plugins import register as _register

    return _register(axis, name, options)


def build_model(config):  # noqa: ANN001, ANN201 - re-exported, typed in gptlab.model
    """A GPT nn.Module from a ModelConfig or a dict of model keys (vocab_size included)."""
    from gptlab.model import build_model as _build

    return _build(config)


def __getattr__(name: str):  # noqa: ANN202 - lazy: pandas loads only when a notebook asks for runs
    if name in ("load_runs", "load_history"):
        from gptlab.frames import load

        return getattr(load, name)
    raise AttributeError(f"module 'gptlab' has no attribute '{name}'")


__all__ = ["__version__", "build_model", "load_history", "load_runs", "register"]
