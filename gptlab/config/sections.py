"""The four config sections, typed and frozen, whose leaf names are unique across sections.

Defaults reproduce nanoGPT's shakespeare-char "baby GPT". Values arrive as plain dicts (YAML files,
command-line overrides, W&B sweep args) and are checked field by field on construction (check.py); a bad
value raises ConfigError naming the key and the fix.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Union

from gptlab import plugins as _plugins
from gptlab.axes import AXES, check_combination
from gptlab.axes import tags as _axes_tags
from gptlab.config.check import _check_axis, _check_options, _check_types, _require, _yaml11_word
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
    qk_norm: bool = _axis("qk_norm")
    logit_softcap: float = 0.0  # c > 0: logits <- c * tanh(logits / c) (Gemma 2); 0: off
    z_loss: float = 0.0         # w > 0: w * mean(logsumexp(logits)^2) added to the training loss (PaLM)
    parametrization: str = _axis("parametrization")
    mup_base_width: int = 384   # the n_embd at which mup equals standard (the width the lr was tuned at)
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
        for key in ("block_size", "n_layer", "n_head", "n_embd", "mup_base_width"):
            _require(getattr(self, key) >= 1, key, "must be at least 1")
        _require(self.logit_softcap >= 0, "logit_softcap", f"must not be negative, got {self.logit_softcap}",
                 "use 0 (off) or a positive cap, e.g. logit_softcap=30")
        _require(self.z_loss >= 0, "z_loss", f"must not be negative, got {self.z_loss}",
                 "use 0 (off) or a positive weight, e.g. z_loss=1e-4")
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
    # optimizer=muon: torch.optim.Muon on the 2-D hidden matrices, AdamW (lr, betas) on the rest
    optimizer: str = _choice("adamw", "muon", default="adamw")
    muon_lr: float = 0.02
    muon_momentum: float = 0.95
    muon_adjust_lr: str = _choice("original", "match_rms_adamw", default="original")  # torch's adjust_lr_fn
    eval_interval: int = 250
    eval_steps: int = 200
    seed: int = 0
    # the streams a seed splits into (gptlab/train/streams.py); null = seed. One held, the other varied.
    data_seed: int | None = None   # which training windows, in which order
    init_seed: int | None = None   # the initial weights
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
        _require(self.muon_lr > 0, "muon_lr", "must be > 0 (with muon_lr=0 the hidden matrices never move)",
                 "use e.g. muon_lr=0.02")
        _require(0.0 <= self.muon_momentum < 1.0, "muon_momentum", "must be in [0, 1)", "use e.g. muon_momentum=0.95")
        _require(0 <= self.seed < 2**63, "seed", "must be in [0, 2^63)")
        for key in ("data_seed", "init_seed"):
            value = getattr(self, key)
            _require(value is None or 0 <= value < 2**63, key, f"must be in [0, 2^63) or null, got {value}",
                     f"use {key}=null (the run's seed) or a seed such as {key}=1")
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

