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
from typing import Any, Union

from gptlab.errors import ConfigError, closest


def _choice(*names: Any, default: Any) -> Any:
    return field(default=default, metadata={"choices": names})


@dataclass(frozen=True)
class ModelConfig:
    block_size: int = 256
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    dropout: float = 0.2
    bias: bool = False
    pos_encoding: str = _choice("learned", "sinusoidal", "rope", "alibi", "none", default="learned")
    norm_placement: str = _choice("pre", "post", default="pre")
    norm: str = _choice("layernorm", "rmsnorm", "none", default="layernorm")
    residual: bool = True
    attn_scale: str = _choice("scaled", "unscaled", default="scaled")
    activation: str = _choice("gelu", "relu", "swiglu", default="gelu")
    mlp_ratio: float = 4
    tie_weights: bool = True
    vocab_size: int | None = None  # comes from the data

    def __post_init__(self) -> None:
        _check_types(self)
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
        return int(round(self.mlp_ratio * self.n_embd))


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
    dtype: str = _choice("auto", "float32", "bfloat16", "float16", default="auto")
    compile: Union[bool, str] = _choice("auto", True, False, default="auto")
    # speed features, each with an off switch; auto = on where it helps (CUDA), off on CPU
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
KEY_SECTION: dict[str, str] = {f.name: s for s, cls in SECTIONS.items() for f in fields(cls)}
SETTABLE = frozenset(KEY_SECTION) - {"vocab_size"}


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {s: dataclasses.asdict(getattr(self, s)) for s in SECTIONS}

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
        pool = [k for k, s in KEY_SECTION.items() if s == section] if section else SETTABLE
        raise ConfigError("unknown config key", key=shown, fix=closest(key, pool))
    if section and KEY_SECTION[key] != section:
        raise ConfigError(f"'{key}' belongs to section '{KEY_SECTION[key]}'", key=shown,
                          fix=f"write {KEY_SECTION[key]}.{key}")
    if key == "vocab_size" and not allow_vocab:
        raise ConfigError("vocab_size comes from the data and cannot be set", key=shown,
                          fix="remove it")
    out[key] = value


def build_config(flat: dict[str, Any], base: RunConfig | None = None) -> RunConfig:
    """Defaults (or `base`) with bare-name overrides applied; validated on construction."""
    if base is None and "n_embd" in flat and "n_head" not in flat:
        flat = {**flat, "n_head": default_n_head(flat["n_embd"])}
    base = base or RunConfig()
    parts = {}
    for section, cls in SECTIONS.items():
        changes = {k: v for k, v in flat.items() if KEY_SECTION.get(k) == section}
        parts[section] = dataclasses.replace(getattr(base, section), **changes) if changes else getattr(base, section)
    unknown = set(flat) - set(KEY_SECTION)
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError("unknown config key", key=key, fix=closest(key, SETTABLE))
    return RunConfig(**parts)


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


def _check_types(obj: Any) -> None:
    """Coerce each field to its annotated type (1 -> 1.0, '1e-3' -> 0.001) or raise ConfigError."""
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        value = getattr(obj, f.name)
        choices = f.metadata.get("choices")
        if choices is not None:
            if isinstance(value, str) and value.lower() in ("true", "false") and True in choices:
                value = value.lower() == "true"
            if value not in choices or (isinstance(value, bool) != any(
                    isinstance(c, bool) and c == value for c in choices) and True in choices):
                shown = ", ".join(str(c).lower() if isinstance(c, bool) else str(c) for c in choices)
                raise ConfigError(f"invalid choice '{value}'", key=f.name, fix=f"choose one of: {shown}")
        else:
            value = _coerce(f.name, value, hints[f.name])
        object.__setattr__(obj, f.name, value)


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
