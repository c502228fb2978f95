"""Field checks of the config sections: each value coerced to its field's type (1 -> 1.0, '1e-3' -> 0.001),
a choice or axis value checked against its declared names, a failing check raised as one ConfigError
naming the key and the fix."""
from __future__ import annotations

import math
import types
import typing
from dataclasses import fields
from typing import Any, Union

from gptlab.axes import AXES, Axis
from gptlab.errors import ConfigError, closest


def _require(ok: bool, key: str, message: str, fix: str | None = None) -> None:
    if not ok:
        raise ConfigError(message, key=key, fix=fix)


def _check_axis(axis: Axis, value: Any, active: Any) -> Any:
    """A declared axis value (bools for switches), or ConfigError with "did you mean"."""
    valid = axis.values(active)
    if axis.boolean and isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    if value in valid and isinstance(value, bool) == axis.boolean:
        return value
    shown = Axis.spell(value)
    hidden = [c for c in axis.choices() if c.name == shown and c not in axis.choices(active)]
    if hidden:
        raise ConfigError(f"'{shown}' comes from plugin {hidden[0].origin}, which this config does not load",
                          key=axis.name, fix=f"add {hidden[0].origin} to plugins")
    if axis.boolean:
        raise ConfigError(f"expected a boolean (true/false), got {value!r}", key=axis.name,
                          fix="give true or false")
    names = [Axis.spell(v) for v in valid]
    fix = closest(shown, names)
    raise ConfigError(f"invalid choice '{shown}'", key=axis.name, fix=fix if "did you mean" in fix
                      else "choose one of: " + ", ".join(names))


def _check_options(cfg: Any, active: Any) -> dict[str, Any]:
    """The options of the plugins this config loads: defaults, then the given values, each coerced to
    the type of its default. Options of plugins it does not load are dropped (build_config refuses
    them when they are given explicitly)."""
    out: dict[str, Any] = {}
    for axis in AXES.values():
        for choice in axis.choices(active):
            for key, default in choice.options.items():
                value = cfg.options.get(key, default)
                out[key] = _coerce(key, value, type(default))
    return out


def _check_types(obj: Any) -> None:
    """Coerce each field to its annotated type (1 -> 1.0, '1e-3' -> 0.001) or raise ConfigError."""
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        if "axis" in f.metadata or "internal" in f.metadata or f.name == "plugins":
            continue  # checked by ModelConfig against the declared axes and plugins
        value = getattr(obj, f.name)
        choices = f.metadata.get("choices")
        if choices is not None:
            if isinstance(value, str) and value.lower() in ("true", "false") and True in choices:
                value = value.lower() == "true"
            if isinstance(value, bool) and True not in choices:
                value = _yaml11_word(value, choices)
            if value not in choices or (isinstance(value, bool) != any(
                    isinstance(c, bool) and c == value for c in choices) and True in choices):
                shown = ", ".join(str(c).lower() if isinstance(c, bool) else str(c) for c in choices)
                raise ConfigError(f"invalid choice '{value}'", key=f.name, fix=f"choose one of: {shown}")
        else:
            value = _coerce(f.name, value, hints[f.name])
        object.__setattr__(obj, f.name, value)


_YAML11_BOOLS = {True: ("on", "yes", "y", "true"), False: ("off", "no", "n", "false")}


def _yaml11_word(value: bool, choices: tuple) -> Any:
    """The choice that YAML 1.1 (PyYAML) read as a boolean: `diagnostics: off` arrives as False."""
    words = [c for c in choices if isinstance(c, str) and c.lower() in _YAML11_BOOLS[value]]
    return words[0] if len(words) == 1 else value


def _coerce(key: str, value: Any, hint: Any) -> Any:
    options = typing.get_args(hint) if typing.get_origin(hint) in (Union, types.UnionType) else (hint,)
    if value is None:
        if type(None) in options:
            return None
        raise ConfigError("must not be empty", key=key, fix=f"give {_type_name(options)}")
    for t in options:
        if t is type(None):
            continue
        if t is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
        elif t is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            number = _number(value)
            if number is not None and float(number).is_integer():
                return int(number)
        elif t is float:
            number = _number(value)
            if number is not None and math.isfinite(number):
                return float(number)
        elif t is str:
            if isinstance(value, str):
                return value
    raise ConfigError(f"expected {_type_name(options)}, got {value!r}", key=key,
                      fix=f"give {_type_name(options)}")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _type_name(options: tuple[Any, ...]) -> str:
    names = {bool: "a boolean (true/false)", int: "an integer", float: "a number", str: "a string"}
    return " or ".join(names.get(t, str(t)) for t in options if t is not type(None))

