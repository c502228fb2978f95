"""The decoder-only GPT: token embedding, positions, blocks, final norm, LM head.

    idx (B, T) -> tok_emb -> pos_emb -> dropout -> blocks x n_layer -> norm_f -> lm_head -> out -> logits (B, T, V)

`norm_f` is the configured norm for pre-norm models and nn.Identity for post-norm ones (each post-norm
block already ends in a norm, as in the original Transformer). `out` is μP's logit multiplier and the
logit soft cap when they are on, else nn.Identity (gptlab/model/logits.py). Every part is the component
its axis names (gptlab/axes.py); weights start as `init` says. No loss inside: the trainer owns it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from gptlab.config import BUILTIN_KEYS, KEY_SECTION, ModelConfig, import_plugins
from gptlab.errors import ConfigError, closest
from gptlab.model.attention import check_backend
from gptlab.model.block import BLOCKS, PLACEMENTS
from gptlab.model.dropout import Dropout
from gptlab.model.init import INITS
from gptlab.model.logits import output_logits
from gptlab.model.norms import NORMS
from gptlab.model.positions import POSITIONS


class GPT(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.vocab_size is None:
            raise ConfigError("vocab_size is missing", key="vocab_size", fix="take it from the data")
        self.config = config
        C, V = config.n_embd, config.vocab_size
        self.tok_emb = nn.Embedding(V, C)
        self.pos_emb = POSITIONS.get(config.pos_encoding).embedding(config)  # adds positions, or not
        self.drop = Dropout(config.dropout)
        self.blocks = nn.ModuleList(BLOCKS.get(config.block)(config) for _ in range(config.n_layer))
        final_norm = PLACEMENTS.get(config.norm_placement).final_norm
        self.norm_f = NORMS.get(config.norm)(config) if final_norm else nn.Identity()
        self.lm_head = nn.Linear(C, V, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.tok_emb.weight  # one tensor, (V, C)
        self.out = output_logits(config)  # μP multiplier, soft cap; nn.Identity by default
        INITS.get(config.init)(config)(self)

    def forward(self, idx: Tensor) -> Tensor:
        x = self.drop(self.pos_emb(self.tok_emb(idx)))  # (B, T) -> (B, T, C)
        for block in self.blocks:
            x = block(x)                                 # (B, T, C)
        return self.out(self.lm_head(self.norm_f(x)))    # (B, T, V)

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameter count, tied weights once. `non_embedding` leaves out the token and position
        embedding tables (Kaplan et al.); an untied LM head is still counted."""
        n = sum(p.numel() for p in self.parameters())  # parameters() yields a shared tensor once
        if non_embedding:
            n -= self.tok_emb.weight.numel() + sum(p.numel() for p in self.pos_emb.parameters())
        return n

    def set_attention_backend(self, name: str) -> None:
        """Switch every attention layer to the "auto", "fused" or "manual" kernel."""
        check_backend(name)
        for block in self.blocks:
            block.attn.backend = name


def build_model(config: ModelConfig | Mapping[str, Any]) -> GPT:
    """A GPT from a ModelConfig or a flat dict of model keys (vocab_size required; plugin options by
    their bare names, their plugins listed under `plugins` or already imported)."""
    if isinstance(config, Mapping):
        import_plugins(config)
        names = {k for k, s in KEY_SECTION.items() if s == "model"}
        for key in config:
            if key not in names:
                raise ConfigError("unknown model key", key=str(key), fix=closest(str(key), names))
        if config.get("vocab_size") is None:
            raise ConfigError("vocab_size is missing", key="vocab_size", fix="take it from the data")
        fields = {k: v for k, v in config.items() if k in BUILTIN_KEYS}
        config = ModelConfig(**fields, options={k: v for k, v in config.items() if k not in BUILTIN_KEYS})
    return GPT(config)
