"""Typed, frozen run configuration: four sections whose leaf names are unique across sections.

Defaults reproduce nanoGPT's shakespeare-char "baby GPT". Values arrive as plain dicts (YAML files,
command-line overrides, W&B sweep args) and are checked field by field on construction; a bad value
raises ConfigError naming the key and the fix.
"""
from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field, fields
from collections.abc import Mapping
from typing import Any, Union

from gptlab import plugins as _plugins
from gptlab.axes import AXES, Axis, check_combination
from gptlab.axes import tags as _axes_tags
from gptlab.errors import ConfigError, closest


def _choice(*names: Any, default: Any) -> Any:
    return field(default=default, metadata={"choices": names})


def _axis(name: str) -> Any:
    """A field whose value names a component of a declared axis (gptlab/axes.py)."""
    return field(default=AXES[name].default, metadata={"axis": name})


@dataclass(frozen=True)
class ModelConfig:
    plugins: tuple[str, ...] = ()  # modules imported before validation; they register components
    block: str = _axis("block")
    block_size: int = 256
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    dropout: float = 0.2
    bias: bool = False
    pos_encoding: str = _axis("pos_encoding")
    norm_placement: str = _axis("norm_placement")
    norm: str = _axis("norm")
    residual: bool = _axis("residual")
    attn_scale: str = _axis("attn_scale")
    activation: str = _axis("activation")
    mlp_ratio: float = 4
    tie_weights: bool = _axis("tie_weights")
    init: str = _axis("init")
    vocab_size: int | None = None  # comes from the data
    # plugin components' own keys (gptlab.register(..., options=...)): saved as model leaves
    options: Mapping[str, Any] = field(default_factory=dict, hash=False, metadata={"internal": True})

    def __post_init__(self) -> None:
        object.__setattr__(self, "plugins", _plugins.names_of(self.plugins))
        _plugins.load(self.plugins)
        _check_types(self)
        active = _plugins.active(self.plugins)
        for f in fields(self):
            if "axis" in f.metadata:
                object.__setattr__(self, f.name, _check_axis(AXES[f.name], getattr(self, f.name), active))
        object.__setattr__(self, "options", _check_options(self, active))
        check_combination(self.values())
        for key in ("block_size", "n_layer", "n_head", "n_embd"):
            _require(getattr(self, key) >= 1, key, "must be at least 1")
        _require(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
        _require(self.mlp_hidden >= 1, "mlp_ratio", f"mlp_ratio={self.mlp_ratio} leaves the MLP no units",
                 "use a larger mlp_ratio")
        _require(self.vocab_size is None or self.vocab_size >= 1, "vocab_size", "must be at least 1")
        _require(self.n_embd % self.n_head == 0, "n_embd",
                 f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}",
                 "choose n_embd a multiple of n_head")
        if self.pos_encoding == "rope":
            _require(self.head_size % 2 == 0, "pos_encoding",
                     f"rope needs an even head size, got n_embd/n_head={self.head_size}",
                     "change n_embd or n_head")
        if self.pos_encoding == "sinusoidal":
            _require(self.n_embd % 2 == 0, "n_embd", "sinusoidal positions need an even n_embd")

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    @property
    def mlp_hidden(self) -> int:
        """MLP hidden width: mlp_ratio * C; for a gated MLP (SwiGLU, three matrices instead of two) the
        width whose parameter count matches the two-matrix MLP's, about 2/3 of it (Shazeer 2020)."""
        hidden = int(round(self.mlp_ratio * self.n_embd))
        if not self.trait("activation", "gated"):
            return hidden
        b = int(self.bias)
        return max(1, round((2 * self.n_embd * hidden + b * hidden) / (3 * self.n_embd + 2 * b)))

    def trait(self, axis: str, key: str) -> Any:
        """A declared fact about the component this config selects on `axis` (gptlab/axes.py)."""
        return AXES[axis].trait(getattr(self, axis), key)

    def option(self, key: str) -> Any:
        """A plugin component's own config key (declared with gptlab.register(..., options=...))."""
        try:
            return self.options[key]
        except KeyError:
            fix = closest(key, self.options) if self.options else "declare it in gptlab.register"
            raise ConfigError("not an option of any plugin this config loads", key=key, fix=fix) from None

    def values(self) -> dict[str, Any]:
        """The flat model section as saved: fields (plugins as a list) then plugin options."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if "internal" not in f.metadata}
        return {**out, "plugins": list(self.plugins), **self.options}

    def tags(self) -> list[str]:
        """W&B tags: every axis as `axis=value`, and the options of the plugin components selected."""
        return _axes_tags(self.values())


@dataclass(frozen=True)
class TrainConfig:
    max_steps: int = 5000
    batch_size: int = 64
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr: float = 1e-4
    lr_schedule: str = _choice("cosine", "linear", "constant", default="cosine")
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    eval_interval: int = 250
    eval_steps: int = 200
    seed: int = 0
    device: str = "auto"
    # auto: bf16 autocast where the hardware multiplies bf16 (CUDA with bf16, AVX512-BF16/AMX CPUs), else float32
    dtype: str = _choice("auto", "float32", "bfloat16", "float16", default="auto")
    compile: Union[bool, str] = _choice("auto", True, False, default="auto")
    # speed features, each with an off switch; auto = on where it helps (CUDA), off on CPU, except
    # attn_backend: auto = manual under bf16/fp16 on a CPU, else fused (gptlab/train/device.py)
    cuda_graphs: Union[bool, str] = _choice("auto", True, False, default="auto")
    fused_adamw: Union[bool, str] = _choice("auto", True, False, default="auto")
    attn_backend: str = _choice("auto", "fused", "manual", default="auto")
    device_sampling: Union[bool, str] = _choice("auto", True, False, default="auto")

    def __post_init__(self) -> None:
        _check_types(self)
        for key in ("max_steps", "batch_size", "grad_accum", "eval_interval", "eval_steps"):
            _require(getattr(self, key) >= 1, key, "must be at least 1")
        for key in ("lr", "min_lr", "weight_decay", "grad_clip", "warmup_steps"):
            _require(getattr(self, key) >= 0, key, "must not be negative")
        _require(self.lr > 0, "lr", "must be > 0 (with lr=0 nothing is learned)", "use e.g. lr=1e-3")
        _require(0 <= self.seed < 2**63, "seed", "must be in [0, 2^63)")
        for key in ("beta1", "beta2"):
            _require(0.0 <= getattr(self, key) < 1.0, key, "must be in [0, 1)")
        _require(bool(re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device)), "device",
                 f"invalid device '{self.device}'", "use auto, cpu, cuda, cuda:N or mps")


@dataclass(frozen=True)
class DataConfig:
    path: str | None = None  # None: Tiny Shakespeare shipped in the package
    val_fraction: float = 0.1

    def __post_init__(self) -> None:
        _check_types(self)
        _require(0.0 < self.val_fraction < 1.0, "val_fraction", "must be in (0, 1)")


@dataclass(frozen=True)
class LogConfig:
    wandb: str = _choice("auto", "online", "offline", "disabled", default="auto")
    project: str = "gptlab"
    entity: str | None = None
    log_interval: int = 10
    diagnostics: str = _choice("basic", "full", "off", default="basic")  # training-dynamics metrics

    def __post_init__(self) -> None:
        _check_types(self)
        _require(self.log_interval >= 1, "log_interval", "must be at least 1")


SECTIONS: dict[str, type] = {"model": ModelConfig, "train": TrainConfig, "data": DataConfig, "log": LogConfig}
# every leaf name is unique across sections, so a bare name is unambiguous
BUILTIN_KEYS: dict[str, str] = {f.name: s for s, cls in SECTIONS.items() for f in fields(cls)
                                if "internal" not in f.metadata}
_plugins.reserve_keys([*BUILTIN_KEYS, *SECTIONS])  # a plugin option may not take a built-in name


class _KeySections(Mapping[str, str]):
    """Every config key -> its section: the built-ins, then the options of every registered plugin
    component (model section), read live from the plugin registry (gptlab/plugins.py)."""

    def _all(self) -> dict[str, str]:
        return {**BUILTIN_KEYS, **{k: "model" for k in _plugins.option_keys() if k not in BUILTIN_KEYS}}

    def __getitem__(self, key: str) -> str:
        return self._all()[key]

    def __iter__(self):  # noqa: ANN204
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


KEY_SECTION: Mapping[str, str] = _KeySections()


def spelled_choice(key: str, value: Any) -> Any:
    """`value` as the choice it spells when YAML 1.1 read a word as a boolean (`diagnostics=off` arrives as
    False), for names and records; validation maps it the same way (_check_types)."""
    if not isinstance(value, bool) or key not in BUILTIN_KEYS:
        return value
    field_ = next(f for f in fields(SECTIONS[BUILTIN_KEYS[key]]) if f.name == key)
    choices = field_.metadata.get("choices")
    return _yaml11_word(value, choices) if choices and True not in choices else value


def settable() -> set[str]:
    """Every key a user may set: the built-ins and the options of the plugins imported so far."""
    return set(KEY_SECTION) - {"vocab_size"}


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


# ---- field checking ----------------------------------------------------------------------------

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


def _check_options(cfg: ModelConfig, active: Any) -> dict[str, Any]:
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


# ---- documentation -------------------------------------------------------------------------------

_TABLE_NOTES = {"path": "(Tiny Shakespeare, shipped)", "entity": "(none)",
                "device": "auto\\|cpu\\|cuda\\|cuda:N\\|mps"}


def config_table() -> str:
    """The README's config table: every key of every section with its default (choices: the default
    first); README.md carries this text verbatim between its `config-table` markers (a test checks)."""
    rows = ["| section | keys (defaults) |", "| --- | --- |"]
    for section, cls in SECTIONS.items():
        cells = []
        for f in fields(cls):
            if "internal" in f.metadata or f.name == "vocab_size":
                continue
            if "axis" in f.metadata:
                shown = "\\|".join(AXES[f.name].names(lambda origin: False))
            elif "choices" in f.metadata:
                shown = "\\|".join(Axis.spell(c) for c in f.metadata["choices"])
            elif f.name in _TABLE_NOTES:
                shown = _TABLE_NOTES[f.name]
            else:
                shown = _doc_value(f.default if f.default is not dataclasses.MISSING else f.default_factory())
            cells.append(f"`{f.name}` {shown}")
        rows.append(f"| {section} | {', '.join(cells)} |")
    return "\n".join(rows)


def _doc_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "[]" if not value else "[" + ", ".join(value) + "]"
    if isinstance(value, float) and 0 < value < 0.01:
        mantissa, exponent = f"{value:.0e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    if isinstance(value, float):
        return f"{value:g}" if not value.is_integer() else str(value)
    return str(value)
