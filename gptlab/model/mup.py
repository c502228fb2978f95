"""The `parametrization` axis (gptlab/axes.py): standard | mup, and μP's init and lr multipliers.

μP (Yang et al. 2022, "Tensor Programs V: Tuning Large Neural Networks via Zero-Shot Hyperparameter
Transfer", table 3 and its multiplier form, table 9 / the mup package's MuReadout) makes every layer's
update move its activations by an amount that does not depend on the width, so an lr tuned at
n_embd = mup_base_width (b) transfers to any width C. With r = b / C (1 at the base width), for Adam:

    hidden matrices (attn.qkv, attn.proj, mlp.fc / fc_gate / fc_up, mlp.proj)
                         init std * sqrt(r), AdamW lr * r          (fan_in grows with C)
    attention logits     q.k / head_size instead of q.k / sqrt(head_size)
    output logits        lm_head(x) * r; the LM head's (or the tied embedding's) init and lr unchanged
    embeddings, gains, biases                 unchanged

The forward part (the attention scale and the logit multiplier) is the component registered here; the
init part is applied by gptlab/model/init.py and the lr part by the optimizer (gptlab/train/optim.py,
gptlab/pack/optim.py), each reading mup_init_multipliers / mup_lr_multipliers. nanoGPT-mup
(EleutherAI, github.com/EleutherAI/nanoGPT-mup) is the reference for the size of the change: the same
four lines, for the same GPT-2 init. The init rule assumes an init whose std does not depend on the width
(nanogpt, zero_proj); with xavier or small (std already ~ C^-1/2) μP is refused (axes.py `excludes`), as
is attn_scale=unscaled. μP's depth extensions (depth-μP) are out of scope: n_layer is not scaled.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from gptlab.axes import AXES
from gptlab.config import ModelConfig

PARAMETRIZATIONS = AXES["parametrization"]
# the hidden matrices of the built-in blocks, by parameter name (2-D weights; no norm gain, no bias)
HIDDEN = r"blocks\.\d+\.(attn\.(qkv|proj)|mlp\.(fc|fc_gate|fc_up|proj))\.weight"


@dataclass(frozen=True)
class Parametrization:
    """What a parametrization changes in the forward pass."""
    attention_scale: Callable[[ModelConfig, float], float]  # (cfg, attn_scale's own scale) -> logit scale
    output_multiplier: Callable[[ModelConfig], float]       # cfg -> factor on the LM head's logits


def width_ratio(cfg: ModelConfig) -> float:
    """r = mup_base_width / n_embd: 1 at the base width, 1/2 at twice it."""
    return cfg.mup_base_width / cfg.n_embd


PARAMETRIZATIONS.register("standard")(Parametrization(lambda cfg, scale: scale, lambda cfg: 1.0))
PARAMETRIZATIONS.register("mup")(Parametrization(lambda cfg, scale: 1.0 / cfg.head_size, width_ratio))


def mup_init_multipliers(cfg: ModelConfig) -> dict[str, float]:
    """{parameter-name regex (re.fullmatch): factor on the init std}; a name no pattern matches keeps its
    std. Under mup the hidden matrices' std * sqrt(mup_base_width / n_embd) (their variance ~ 1/fan_in);
    under standard nothing: {}."""
    if not cfg.trait("parametrization", "mup"):
        return {}
    return {HIDDEN: math.sqrt(width_ratio(cfg))}


def mup_lr_multipliers(cfg: ModelConfig) -> dict[str, float]:
    """{parameter-name regex: factor on the AdamW lr}: under mup the hidden matrices' lr * mup_base_width
    / n_embd (Adam column of table 3: hidden lr ~ 1/fan_in); the embeddings, the LM head, gains and biases
    keep the base lr. Under standard: {}. (Muon's update is already width-free: gptlab/train/muon.py.)"""
    if not cfg.trait("parametrization", "mup"):
        return {}
    return {HIDDEN: width_ratio(cfg)}


def multiplier(name: str, table: dict[str, float]) -> float:
    """The factor a multiplier table gives parameter `name` (1.0 when no pattern matches)."""
    return next((f for pattern, f in table.items() if re.fullmatch(pattern, name)), 1.0)
