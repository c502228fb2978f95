"""Bring your own component: `gptlab.register`, the `plugins` config key, the `gptlab.plugins` entry points.

    # my_norms.py
    import gptlab
    from torch import nn

    @gptlab.register("norm", "scalenorm", options={"scalenorm_g": 1.0})
    class ScaleNorm(nn.Module):
        def __init__(self, cfg):            # the ModelConfig, exactly like the built-ins
            super().__init__()
            self.g = nn.Parameter(torch.tensor(cfg.option("scalenorm_g")))
        ...

    gptlab train plugins=[my_norms] norm=scalenorm scalenorm_g=0.5

A plugin is an importable module. `plugins` entries are imported before the config is validated, with
the current working directory on the import path (as `python -m` would), so a module file in the
directory you run gptlab from works as is; elsewhere, put its directory on PYTHONPATH or install it.
The list is saved in config.yaml, so runner subprocesses, resumes, `wandb agent` runs and `generate`
/ `eval` on that run import the same modules. Installed packages can offer plugins through the
entry-point group `gptlab.plugins` (each entry point names a module); those load in every process.

A component's options are config keys of the model section: validated by the type of the default,
overridable everywhere a built-in key is (command line, specs, sweeps), saved, logged and reported.
A plugin that fails to import, registers a name twice, or declares a key that a built-in or another
plugin already owns is a UserError: one line, exit code 2.

This module is torch-free; importing a plugin imports whatever the plugin imports.
"""
from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any

from gptlab.axes import AXES, Choice
from gptlab.errors import ConfigError, UserError, closest

ENTRY_POINT_GROUP = "gptlab.plugins"
OPTION_TYPES = (bool, int, float, str)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")

_via_loader: set[str] = set()      # modules imported through a `plugins` list or an entry point
_entry_points: set[str] | None = None
_loading: list[str] = []            # the plugin being imported (registrations are credited to it)
_reserved: set[str] = set()         # names an option may not take: the built-in config keys and sections


def reserve_keys(keys: Iterable[str]) -> None:
    """Called by gptlab.config when it loads (this module sits below it and does not import it)."""
    _reserved.update(keys)


def option_keys() -> list[str]:
    """The option keys every registered component declares (config keys of the model section)."""
    return list(_option_owners())


def register(axis: str, name: str, options: dict[str, Any] | None = None) -> Callable[[Any], Any]:
    """Decorator: `obj` (a class or factory taking the ModelConfig) becomes value `name` of `axis`.

    `options` declares the component's own config keys with their defaults; the component reads them
    with `cfg.option(key)`. Axis facts other code needs are read from attributes of `obj` when present
    (`gated = True` on an activation; `embedding_std = staticmethod(lambda C: ...)` on an init).
    """
    if axis not in AXES:
        raise UserError(f"unknown axis '{axis}'", key="gptlab.register", fix=closest(axis, AXES))
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.+-]+", name):
        raise UserError(f"component name {name!r} must be a plain word", key=f"{axis}",
                        fix="use letters, digits, _ . + -")
    if name in AXES[axis].names():
        raise UserError(f"{axis} '{name}' is registered twice (already by "
                        f"{AXES[axis].choice(AXES[axis].value(name)).origin})", key=axis,
                        fix="give the component another name")
    options = dict(options or {})
    taken = _option_owners()
    for key, default in options.items():
        if key in _reserved:
            raise UserError(f"option '{key}' of {axis} '{name}' clashes with the built-in config key",
                            key=key, fix="give the option a name of its own, e.g. prefixed with the component")
        if key in taken:
            raise UserError(f"option '{key}' of {axis} '{name}' is already declared by {taken[key]}",
                            key=key, fix="give the option a name of its own")
        if type(default) not in OPTION_TYPES:
            raise UserError(f"option '{key}' has a default of type {type(default).__name__}", key=key,
                            fix="defaults are bool, int, float or str (the type validates the option)")

    def add(obj: Any) -> Any:
        traits = {k: getattr(obj, k) for k in AXES[axis].trait_defaults if hasattr(obj, k)}
        origin = _loading[-1] if _loading else getattr(obj, "__module__", "__main__")
        doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
        AXES[axis].add(Choice(name, doc[0] if doc else "", "plugin", traits, options, origin), obj)
        return obj
    return add


def names_of(value: Any) -> tuple[str, ...]:
    """The `plugins` value as a tuple of module names: a list, or a string `a`, `a,b`, `[a, b]`."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [v.strip().strip("'\"") for v in value.strip().strip("[]").split(",")]
        value = [v for v in value if v]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"expected a list of module names, got {value!r}", key="plugins",
                          fix="write plugins=[my_module] or plugins: [my_package.my_module]")
    for v in value:
        if not _NAME.fullmatch(v) or v.endswith(".py"):
            raise ConfigError(f"'{v}' is not an importable module name", key="plugins",
                              fix="give a dotted module name (my_pkg.my_module), not a file path")
    return tuple(value)


def load(names: Iterable[str]) -> None:
    """Import each plugin module once (idempotent); failure is a one-line ConfigError."""
    for name in names:
        if name in _via_loader:
            continue
        _import(name, key="plugins")


def load_entry_points() -> None:
    """Import every plugin installed under the `gptlab.plugins` entry-point group, once per process."""
    global _entry_points
    if _entry_points is not None:
        return
    _entry_points = set()
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        _entry_points.add(ep.value.split(":")[0])
        _import(ep.value.split(":")[0], key=f"entry point {ENTRY_POINT_GROUP}:{ep.name}")


def active(plugins: Iterable[str]) -> Callable[[str], bool]:
    """Whether a component registered by `origin` is available to a config loading `plugins`: its
    module is listed, installed as an entry point, or was registered directly in this process (a
    notebook), not through some other config's `plugins`."""
    listed = set(plugins) | (_entry_points or set())
    return lambda origin: origin in listed or origin not in _via_loader


def origin_of_option(key: str) -> str:
    return _option_owners().get(key, "the plugin that declares it")


def _option_owners() -> dict[str, str]:
    return {k: c.origin for a in AXES.values() for c in a.choices() for k in c.options}


def _import(name: str, *, key: str) -> None:
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)  # last, so the directory never shadows an installed module
    _via_loader.add(name)
    _loading.append(name)
    try:
        importlib.import_module(name)
    except UserError as err:
        _via_loader.discard(name)
        raise ConfigError(f"plugin '{name}': {err.one_line()}", key=key) from None
    except Exception as err:  # noqa: BLE001 - any failure of user code becomes one line
        _via_loader.discard(name)
        hint = ("put its directory on PYTHONPATH, run gptlab from that directory, or install it"
                if isinstance(err, ModuleNotFoundError) and err.name == name.split(".")[0] else "fix the plugin")
        raise ConfigError(f"cannot import plugin '{name}': {type(err).__name__}: {err}", key=key,
                          fix=hint) from None
    finally:
        _loading.pop()
