"""A whole run's configuration (RunConfig) and the ways it is built: bare-name overrides, sectioned or
dotted mappings, a saved config.yaml."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gptlab import plugins as _plugins
from gptlab.config.sections import (BUILTIN_KEYS, KEY_SECTION, SECTIONS, DataConfig, LogConfig, ModelConfig,
                                    TrainConfig, settable)
from gptlab.errors import ConfigError, closest


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {"model": self.model.values(), **{s: dataclasses.asdict(getattr(self, s)) for s in SECTIONS
                                                   if s != "model"}}

    def flat(self) -> dict[str, Any]:
        return {k: v for section in self.to_dict().values() for k, v in section.items()}

    def identity(self) -> dict[str, Any]:
        """What a run's results depend on: everything but the log section (W&B mode, log cadence,
        diagnostics) and the data-derived vocab_size."""
        return {k: v for k, v in self.flat().items() if KEY_SECTION[k] != "log" and k != "vocab_size"}

    def diff(self, other: "RunConfig") -> list[str]:
        """['max_steps: 200 -> 5000', ...] over the keys of identity()."""
        mine, theirs = self.identity(), other.identity()
        return [f"{k}: {mine[k]} -> {theirs[k]}" for k in mine if mine[k] != theirs[k]]

    def replace(self, **flat: Any) -> "RunConfig":
        """A copy with some leaves changed (bare names), validated again."""
        return build_config(flat, base=self)


def flatten_overrides(raw: Any, *, allow_vocab: bool = False) -> dict[str, Any]:
    """{'train': {'lr': 1}, 'n_layer': 2, 'model.dropout': 0} -> {'lr': 1, 'n_layer': 2, 'dropout': 0}.

    Raises ConfigError with the offending key (dotted) for unknown names or misplaced keys.
    """
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"expected a mapping of config keys, got {type(raw).__name__}")
    import_plugins(raw)  # their option keys become known config keys
    out: dict[str, Any] = {}
    for key, value in raw.items():
        key = str(key)
        if key in SECTIONS and (value is None or isinstance(value, dict)):
            for sub, subvalue in (value or {}).items():
                _put(out, str(sub), subvalue, section=key, allow_vocab=allow_vocab)
        elif "." in key:
            section, _, sub = key.partition(".")
            if section not in SECTIONS:
                raise ConfigError(f"unknown section '{section}'", key=key, fix=closest(section, SECTIONS))
            _put(out, sub, value, section=section, allow_vocab=allow_vocab)
        else:
            _put(out, key, value, section=None, allow_vocab=allow_vocab)
    return out


def _put(out: dict[str, Any], key: str, value: Any, *, section: str | None, allow_vocab: bool) -> None:
    shown = f"{section}.{key}" if section else key
    if key not in KEY_SECTION:
        pool = [k for k, s in KEY_SECTION.items() if s == section] if section else settable()
        raise ConfigError("unknown config key", key=shown, fix=closest(key, pool))
    if section and KEY_SECTION[key] != section:
        raise ConfigError(f"'{key}' belongs to section '{KEY_SECTION[key]}'", key=shown,
                          fix=f"write {KEY_SECTION[key]}.{key}")
    if key == "vocab_size" and not allow_vocab:
        raise ConfigError("vocab_size comes from the data and cannot be set", key=shown,
                          fix="remove it")
    out[key] = value


def build_config(flat: dict[str, Any], base: RunConfig | None = None) -> RunConfig:
    """Defaults (or `base`) with bare-name overrides applied; validated on construction.
    A `plugins` entry is imported first, so the components and options it registers are valid."""
    import_plugins(flat)
    if base is None and "n_embd" in flat and "n_head" not in flat:
        flat = {**flat, "n_head": default_n_head(flat["n_embd"])}
    base = base or RunConfig()
    unknown = set(flat) - set(KEY_SECTION)
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError("unknown config key", key=key, fix=closest(key, settable()))
    parts = {}
    for section, cls in SECTIONS.items():
        changes = {k: v for k, v in flat.items() if KEY_SECTION.get(k) == section}
        if section == "model":
            options = {k: changes.pop(k) for k in list(changes) if k not in BUILTIN_KEYS}
            if options:
                changes["options"] = {**base.model.options, **options}
        parts[section] = dataclasses.replace(getattr(base, section), **changes) if changes else getattr(base, section)
    for key in flat:
        if key not in BUILTIN_KEYS and key not in parts["model"].options:
            raise ConfigError("is an option of a plugin this config does not load", key=key,
                              fix=f"add {_plugins.origin_of_option(key)} to plugins")
    return RunConfig(**parts)


def import_plugins(raw: Mapping[str, Any]) -> None:
    """Import the plugins a raw (flat, dotted or sectioned) mapping names, before its keys are checked."""
    _plugins.load_entry_points()
    model = raw.get("model")
    for names in (raw.get("plugins"), raw.get("model.plugins"),
                  model.get("plugins") if isinstance(model, Mapping) else None):
        if isinstance(names, (str, list, tuple)):  # anything else fails validation with its key
            _plugins.load(_plugins.names_of(names))


def default_n_head(n_embd: Any, preferred: int = ModelConfig.n_head) -> int:
    """n_head when only n_embd was given: the default 6 if it divides n_embd, else the largest divisor of
    n_embd below it (n_embd=64 -> 4 heads), so `n_embd=64` alone is a valid model. An explicit n_head is
    never changed: n_embd=64 n_head=6 is an error."""
    try:
        width = int(n_embd)
    except (TypeError, ValueError):
        return preferred  # the type check reports the bad n_embd
    if width < 1:
        return preferred
    return next(h for h in range(min(preferred, width), 0, -1) if width % h == 0)


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """A saved config.yaml (sectioned, vocab_size included) back into a RunConfig."""
    return build_config(flatten_overrides({s: data.get(s, {}) for s in SECTIONS}, allow_vocab=True))

