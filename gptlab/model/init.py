"""Weight initialisations, one per `init` value (gptlab/axes.py): nanogpt | xavier | small.

Each entry is a factory `cfg -> (model -> None)`: it returns the function that initialises a built
GPT in place. Norm gains stay at 1 and their biases at 0 (PyTorch's defaults) under all three; biases
of linear layers start at 0. A component of a plugin with its own parameters initialises them itself.
"""
from __future__ import annotations

import math
from collections.abc import Callable

from torch import nn

from gptlab.axes import AXES
from gptlab.config import ModelConfig

INITS = AXES["init"]
Init = Callable[[nn.Module], None]


def _residual_projection(name: str) -> bool:
    return name.endswith(".proj.weight")  # attn.proj and mlp.proj write into the residual stream


@INITS.register("nanogpt")
def nanogpt_init(cfg: ModelConfig) -> Init:
    """GPT-2 (Radford et al. 2019, sec. 2.3) as in nanoGPT: every Linear and Embedding weight
    N(0, 0.02), biases 0, then the residual projections N(0, 0.02 / sqrt(2 n_layer)), since each block
    adds two of them to the residual stream."""
    def init(model: nn.Module) -> None:
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        for name, p in model.named_parameters():
            if _residual_projection(name):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))
    return init


def _linears_and_embeddings(model: nn.Module) -> tuple[dict[str, nn.Linear], list[nn.Embedding]]:
    """Linear layers by name whose weight is not an embedding's (a tied LM head is initialised as the
    embedding it is), and the embeddings."""
    embeddings = [m for m in model.modules() if isinstance(m, nn.Embedding)]
    tied = {id(e.weight) for e in embeddings}
    linears = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear) and id(m.weight) not in tied}
    return linears, embeddings


@INITS.register("xavier")
def xavier_init(cfg: ModelConfig) -> Init:
    """Glorot & Bengio 2010, as in the original Transformer (tensor2tensor) and in the analysis of
    Xiong et al. 2020: every linear map W (fan_in, fan_out) ~ U(-a, a), a = sqrt(6 / (fan_in + fan_out));
    the fused q/k/v projection is three (C, C) maps, initialised one by one; biases 0; embeddings
    N(0, C^-1/2) (tensor2tensor, fairseq), so sqrt(C) * E would have unit entries. No depth scaling."""
    def init(model: nn.Module) -> None:
        linears, embeddings = _linears_and_embeddings(model)
        for emb in embeddings:
            nn.init.normal_(emb.weight, mean=0.0, std=cfg.n_embd ** -0.5)
        for name, lin in linears.items():
            parts = 3 if name.endswith("attn.qkv") else 1
            for w in lin.weight.data.chunk(parts, dim=0):  # q, k, v separately for the fused qkv
                nn.init.xavier_uniform_(w)
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)
    return init


@INITS.register("small")
def small_init(cfg: ModelConfig) -> Init:
    """SmallInit (Nguyen & Salazar 2019, "Transformers without Tears"; the `small_init` of
    GPT-NeoX): every weight, embeddings included, N(0, sqrt(2 / (5 C))), i.e. Xavier-normal with
    fan_in + fan_out = C + 4C; biases 0."""
    def init(model: nn.Module) -> None:
        std = math.sqrt(2 / (5 * cfg.n_embd))
        linears, embeddings = _linears_and_embeddings(model)
        for module in [*embeddings, *linears.values()]:
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
    return init
