"""Every ablation axis of the model, declared once (torch-free).

An axis is a model config key whose value names a component: `norm: rmsnorm`. Its declaration here
is the one owner of
  * the valid values and the default (gptlab/config/ validates against them, with "did you mean"),
  * what each value is and where it comes from (docstrings, the README's axis table),
  * facts other code needs about a value (`traits`: an MLP is `gated`, an init's `embedding_std`),
  * invalid combinations with other keys (`excludes`: block=parallel needs norm_placement=pre),
  * which report figures the axis is relevant to (`figures`), the W&B tags (`tags`), and the
    ablation keys the report treats as factors (`ablation_keys`).
The torch implementations register against the declared names from gptlab/model/
(`@NORMS.register("layernorm")`, where NORMS is AXES["norm"]); a test checks that the two agree.
A user's component registers through `gptlab.register(axis, name, options)` (gptlab/plugins.py),
which declares and implements it in one go.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gptlab.errors import ConfigError, UserError, closest
from gptlab.registry import Registry

BUILTIN = "gptlab"  # origin of the shipped components


@dataclass(frozen=True)
class Choice:
    """One value of an axis: its name in the config, a one-line summary and the source it follows."""
    name: str
    summary: str
    source: str = ""
    traits: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)  # a plugin's own config keys -> defaults
    origin: str = BUILTIN  # the plugin module (or entry point) that registered it


class Axis:
    """A declared axis: its choices (declarations) and its registry of implementations."""

    def __init__(self, name: str, doc: str, choices: Iterable[Choice], *, boolean: bool = False,
                 extensible: bool = True, implemented: bool = True, figures: Iterable[str] = (),
                 traits: Mapping[str, Any] | None = None,
                 excludes: Mapping[str, Mapping[str, tuple[Any, ...]]] | None = None) -> None:
        self.name, self.doc = name, doc
        self.boolean = boolean          # values true/false (a switch), stored as bools
        self.extensible = extensible    # plugins may add values
        self.implemented = implemented  # the model registers a component per value
        self.figures = frozenset(figures)
        self.trait_defaults = dict(traits or {})
        self.excludes = {k: dict(v) for k, v in (excludes or {}).items()}  # value -> {key: bad values}
        self._choices: dict[str, Choice] = {c.name: c for c in choices}
        self._impl: Registry[Any] = Registry(name)

    # ---- values ----
    @property
    def default(self) -> Any:
        return self.value(next(iter(self._choices)))

    def value(self, name: str) -> Any:
        """Config value of a choice name ('true' -> True on a switch)."""
        return name == "true" if self.boolean else name

    @staticmethod
    def spell(value: Any) -> str:
        return str(value).lower() if isinstance(value, bool) else str(value)

    def choices(self, active: Callable[[str], bool] | None = None) -> list[Choice]:
        """Declared choices, built-ins first; `active(origin)` filters plugin ones."""
        return [c for c in self._choices.values() if c.origin == BUILTIN or active is None or active(c.origin)]

    def values(self, active: Callable[[str], bool] | None = None) -> list[Any]:
        return [self.value(c.name) for c in self.choices(active)]

    def names(self, active: Callable[[str], bool] | None = None) -> list[str]:
        """Choice names as written in a config ('true'/'false' on a switch)."""
        return [c.name for c in self.choices(active)]

    def choice(self, value: Any) -> Choice:
        name = self.spell(value)
        if name not in self._choices:
            raise ConfigError(f"unknown {self.name} '{name}'", key=self.name, fix=closest(name, self._choices))
        return self._choices[name]

    def trait(self, value: Any, key: str) -> Any:
        return self.choice(value).traits.get(key, self.trait_defaults[key])

    # ---- implementations ----
    def register(self, name: str) -> Callable[[Any], Any]:
        """Decorator for the built-in implementation of a declared choice."""
        if name not in self._choices:
            raise UserError(f"'{name}' is not declared on axis {self.name}", key=self.name,
                            fix="declare it in gptlab/axes.py or register it with gptlab.register")
        return self._impl.register(name)

    def get(self, value: Any) -> Any:
        """The implementation of a value (a component class or factory taking the ModelConfig)."""
        self.choice(value)  # unknown names fail with "did you mean"
        return self._impl.get(self.spell(value))

    def implementations(self) -> list[str]:
        """Values with a registered implementation (the built-ins once gptlab.model is imported)."""
        return self._impl.names()

    def add(self, choice: Choice, implementation: Any) -> None:
        """A plugin's choice, declared and implemented at once."""
        if not self.extensible:
            raise UserError(f"axis {self.name} takes no plugins", key=self.name,
                            fix="extensible axes: " + ", ".join(a.name for a in AXES.values() if a.extensible))
        if choice.name in self._choices:
            owner = self._choices[choice.name].origin
            raise UserError(f"{self.name} '{choice.name}' is registered twice (already by {owner})",
                            key=self.name, fix="give the component another name")
        self._choices[choice.name] = choice
        self._impl.register(choice.name)(implementation)


# ---- the declarations ---------------------------------------------------------------------------

GRADS, ATTN, EARLY = "grad_norm_by_layer", "attention_stats", "early_training"  # report figures

AXES: dict[str, Axis] = {a.name: a for a in [
    Axis("block", "how attention and MLP are wired into the residual stream", [
        Choice("sequential", "x + attn(norm(x)), then + mlp(norm(.)): two residual adds per block",
               "Radford et al. 2019 (GPT-2); Vaswani et al. 2017"),
        Choice("parallel", "x + attn(norm(x)) + mlp(norm(x)) with one shared norm",
               "Wang & Komatsuzaki 2021 (GPT-J); Chowdhery et al. 2022 (PaLM, sec. 2)"),
    ], figures=(GRADS, EARLY), excludes={"parallel": {"norm_placement": ("post",)}}),
    Axis("pos_encoding", "how token positions enter the model", [
        Choice("learned", "a trained (block_size, C) table added to the token embeddings",
               "Radford et al. 2018/2019 (GPT, GPT-2)", traits={"any_length": False}),
        Choice("sinusoidal", "the fixed sin/cos table, scaled to the token embedding's init std",
               "Vaswani et al. 2017, sec. 3.4-3.5"),
        Choice("rope", "q and k rotated by position-dependent angles (base 10000)",
               "Su et al. 2021 (RoFormer)"),
        Choice("alibi", "a per-head linear distance penalty on the attention logits",
               "Press et al. 2022 (ALiBi)"),
        Choice("none", "no positions: causal attention alone", "Haviv et al. 2022"),
    ], traits={"any_length": True}),  # any_length: defined beyond the trained block_size
    Axis("norm_placement", "where the norm sits relative to the residual add", [
        Choice("pre", "x + f(norm(x)), and a final norm before the LM head",
               "Xiong et al. 2020; Radford et al. 2019 (GPT-2)"),
        Choice("post", "norm(x + f(x)), no final norm", "Vaswani et al. 2017"),
    ], figures=(GRADS, EARLY)),
    Axis("norm", "the normalisation layer", [
        Choice("layernorm", "(x - mean) / std * gain (+ bias iff bias=true)", "Ba et al. 2016"),
        Choice("rmsnorm", "x / rms(x) * gain, no centring", "Zhang & Sennrich 2019"),
        Choice("none", "identity", ""),
    ], figures=(GRADS,)),
    Axis("residual", "whether sublayers add to the residual stream", [
        Choice("true", "x + f(x)", "He et al. 2016"),
        Choice("false", "f(x) alone", ""),
    ], boolean=True, extensible=False, figures=(GRADS,)),
    Axis("attn_scale", "the attention logit scale", [
        Choice("scaled", "q.k / sqrt(head_size)", "Vaswani et al. 2017, eq. 1"),
        Choice("unscaled", "q.k", ""),
    ], figures=(ATTN,)),
    Axis("qk_norm", "whether each head's queries and keys are RMS-normalised before their dot product", [
        Choice("false", "q.k as the projection gives them", ""),
        Choice("true", "RMSNorm over head_size (a learned gain per head dimension) on q and k, before rope",
               "Dehghani et al. 2023 (ViT-22B, sec. 2); OLMo 2 (Team OLMo 2024); modded-nanogpt"),
    ], boolean=True, extensible=False, figures=(ATTN,)),
    Axis("activation", "the MLP", [
        Choice("gelu", "proj(gelu(fc x)), hidden mlp_ratio * C", "Hendrycks & Gimpel 2016; GPT-2"),
        Choice("relu", "proj(relu(fc x)), hidden mlp_ratio * C", "Vaswani et al. 2017, eq. 2"),
        Choice("swiglu", "proj(silu(gate x) * up x), hidden 2/3 of mlp_ratio * C (same parameters)",
               "Shazeer 2020", traits={"gated": True}),
        Choice("relu2", "proj(relu(fc x)^2), hidden mlp_ratio * C", "So et al. 2021 (Primer, sec. 3)"),
    ], traits={"gated": False}),
    Axis("init", "the weight initialisation", [
        Choice("nanogpt", "N(0, 0.02); residual projections N(0, 0.02 / sqrt(2 n_layer))",
               "Radford et al. 2019 (GPT-2, sec. 2.3); nanoGPT", traits={"embedding_std": lambda C: 0.02}),
        Choice("xavier", "Xavier-uniform linear layers; embeddings N(0, 1/sqrt(C))",
               "Glorot & Bengio 2010; Vaswani et al. 2017; Xiong et al. 2020",
               traits={"embedding_std": lambda C: C ** -0.5}),
        Choice("small", "every weight N(0, sqrt(2 / (5 C)))", "Nguyen & Salazar 2019",
               traits={"embedding_std": lambda C: math.sqrt(2 / (5 * C))}),
        Choice("zero_proj", "nanogpt, with the residual projections (attn.proj, mlp.proj) at exactly 0",
               "modded-nanogpt (Jordan et al. 2024)", traits={"embedding_std": lambda C: 0.02}),
    ], figures=(GRADS, EARLY), traits={"embedding_std": lambda C: 0.02}),
    Axis("tie_weights", "whether the LM head shares the token embedding matrix", [
        Choice("true", "one (V, C) matrix for input and output", "Press & Wolf 2017"),
        Choice("false", "a separate LM head", ""),
    ], boolean=True, extensible=False, implemented=False),
    Axis("parametrization", "how init, lr and logit multipliers scale with width (n_embd vs mup_base_width)", [
        Choice("standard", "every width alike: the init, lr and attn_scale the other keys give",
               "Radford et al. 2019 (GPT-2); nanoGPT"),
        Choice("mup", "hidden matrices' init std * sqrt(b/C) and AdamW lr * b/C, attention q.k / head_size, "
               "logits * b/C (b = mup_base_width)", "Yang et al. 2022 (Tensor Programs V, table 3); nanoGPT-mup",
               traits={"mup": True}),
    ], extensible=False, figures=(ATTN, EARLY), traits={"mup": False},
       excludes={"mup": {"attn_scale": ("unscaled",), "init": ("xavier", "small")}}),
]}


# ---- what derives from them ---------------------------------------------------------------------

def ablation_keys() -> list[str]:
    """The axis keys, in declaration order: what a study varies to ablate a component. Torch-free."""
    return list(AXES)


def option_keys() -> dict[str, Any]:
    """Every plugin option registered in this process -> its default."""
    return {k: v for a in AXES.values() for c in a.choices() for k, v in c.options.items()}


def figure_axes(figure: str) -> set[str]:
    """Axes a diagnostics figure is relevant to (analysis/diag_figures.RELEVANT)."""
    return {a.name for a in AXES.values() if figure in a.figures}


def tags(values: Mapping[str, Any]) -> list[str]:
    """W&B tags of a model config (its flat dict): `axis=value` for every axis, then `key=value` for
    the options of the plugin components it selects."""
    out = [f"{name}={values[name]}" for name in AXES]
    for name, axis in AXES.items():
        out += [f"{k}={values[k]}" for k in axis.choice(values[name]).options if k in values]
    return out


def check_combination(values: Mapping[str, Any]) -> None:
    """Raise ConfigError for a declared invalid combination (block=parallel with norm_placement=post)."""
    for name, axis in AXES.items():
        banned = axis.excludes.get(Axis.spell(values.get(name)), {})
        for key, bad in banned.items():
            if values.get(key) in bad:
                ok = [Axis.spell(v) for v in AXES[key].values() if v not in bad] if key in AXES else []
                raise ConfigError(f"{name}={Axis.spell(values[name])} cannot be combined with "
                                  f"{key}={Axis.spell(values[key])}", key=f"{name}, {key}",
                                  fix=f"use {key}={'|'.join(ok)} or another {name}")


def axes_table() -> str:
    """The README's table of axes: every value with what it is and its source (built-ins only)."""
    rows = ["| axis | value | what it is | source |", "| --- | --- | --- | --- |"]
    for axis in AXES.values():
        for i, c in enumerate(axis.choices(lambda origin: False)):
            shown = f"`{c.name}`" + (" (default)" if i == 0 else "")
            rows.append(f"| {f'`{axis.name}`' if i == 0 else ''} | {shown} | {c.summary} | {c.source} |")
    return "\n".join(rows)
