"""Weight initialisations, one per `init` value (gptlab/axes.py): nanogpt | xavier | small | zero_proj.

Each entry is a factory `cfg -> (model -> None)`: it returns the function that initialises a built
GPT in place. Norm gains stay at 1 and their biases at 0 (PyTorch's defaults) under all of them; biases
of linear layers start at 0. A component of a plugin with its own parameters initialises them itself.

Name-keyed streams. Every weight is drawn from its own generator, seeded by a stable hash of the init
seed and the parameter's qualified name (`blocks.0.attn.qkv.weight`), not from one stream consumed in
module order. So two variants of a model share the initial values of every parameter they both have
(same name, same shape), whatever modules one of them adds or removes: rope vs learned positions
(`pos_emb.wpe.weight` exists in one only), a tied vs an untied LM head, SwiGLU's extra matrix. With one
shared stream, one extra table shifted every later draw and the two variants started from unrelated
weights, which throws away most of the pairing of a seed across variants. The init seed is the seed
torch's global generator was last given (`torch.manual_seed(init_seed)` before build_model, as the
trainer does), so `manual_seed(s); build_model(cfg)` stays the whole recipe for a model's weights.

GPTLAB_INIT_STREAMS=shared (an internal switch for benchmarks/pairing_cpu.py only) draws every weight
from the global generator in module order instead: one shared stream, as gptlab <= 0.3 did.
"""
from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Iterator

import torch
from torch import nn

from gptlab.axes import AXES
from gptlab.config import ModelConfig
from gptlab.model.mup import multiplier, mup_init_multipliers

INITS = AXES["init"]
Init = Callable[[nn.Module], None]
SHARED_ENV = "GPTLAB_INIT_STREAMS"  # = "shared": the one-stream init, for the pairing benchmark only


def stream_seed(seed: int, name: str) -> int:
    """A 63-bit seed for parameter `name` under init seed `seed`: blake2b of both (stable across
    processes and machines, unlike Python's salted hash())."""
    digest = hashlib.blake2b(f"{seed}/{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


# an untied LM head draws from the token embedding's stream: a tied model's head IS the embedding, so tied and
# untied models start with the same head (the one parameter they "both have") and pair at step 0
STREAM_OF = {"lm_head.weight": "tok_emb.weight"}


def param_stream(name: str, seed: int | None = None) -> torch.Generator | None:
    """The CPU generator parameter `name` draws from (None, the global one, under the shared switch)."""
    if os.environ.get(SHARED_ENV) == "shared":
        return None
    name = STREAM_OF.get(name, name)
    return torch.Generator().manual_seed(stream_seed(torch.initial_seed() if seed is None else seed, name))


def _weights(model: nn.Module) -> Iterator[tuple[str, nn.Module, nn.Parameter]]:
    """(qualified name, module, weight) of every Linear and Embedding, each tensor once under its first
    name (a tied LM head is the token embedding: `tok_emb.weight`), in module order."""
    names = {id(p): n for n, p in model.named_parameters()}
    seen: set[int] = set()
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)) and id(module.weight) not in seen:
            seen.add(id(module.weight))
            yield names[id(module.weight)], module, module.weight


@torch.no_grad()
def _draw(p: nn.Parameter, name: str, fill: Callable[[torch.Tensor, torch.Generator | None], None]) -> None:
    """Fill `p` from its own stream: drawn on the CPU (the same bits on every machine) and copied in."""
    if p.is_meta:  # a shape-only build (the pack planner's check): nothing to draw
        return
    values = torch.empty(p.shape, dtype=torch.float32, device="cpu")
    fill(values, param_stream(name))
    p.copy_(values)


def _normal(std: float) -> Callable[[torch.Tensor, torch.Generator | None], None]:
    return lambda t, g: nn.init.normal_(t, mean=0.0, std=std, generator=g)


def _zero_biases(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)


def _residual_projection(name: str) -> bool:
    return name.endswith(".proj.weight")  # attn.proj and mlp.proj write into the residual stream


def _gpt2(cfg: ModelConfig, projection_std: float) -> Init:
    """GPT-2's normal init; under μP each hidden matrix's std scaled by gptlab/model/mup.py's factor."""
    scale = mup_init_multipliers(cfg)  # {} under standard

    def init(model: nn.Module) -> None:
        for name, _, weight in _weights(model):
            std = (projection_std if _residual_projection(name) else 0.02) * multiplier(name, scale)
            if std == 0.0:
                with torch.no_grad():
                    weight.zero_()
            else:
                _draw(weight, name, _normal(std))
        _zero_biases(model)
    return init


@INITS.register("nanogpt")
def nanogpt_init(cfg: ModelConfig) -> Init:
    """GPT-2 (Radford et al. 2019, sec. 2.3) as in nanoGPT: every Linear and Embedding weight
    N(0, 0.02), biases 0, the residual projections N(0, 0.02 / sqrt(2 n_layer)), since each block
    adds two of them to the residual stream."""
    return _gpt2(cfg, 0.02 / math.sqrt(2 * cfg.n_layer))


@INITS.register("zero_proj")
def zero_proj_init(cfg: ModelConfig) -> Init:
    """nanogpt's init with the residual projections (attn.proj, mlp.proj) at exactly zero, as
    modded-nanogpt does (KellerJordan/modded-nanogpt, train_gpt.py: `self.c_proj.weight.data.zero_()`,
    "zero init suggested by @Grad62304977"): every block starts as the identity on the residual stream,
    and the projections grow from their first gradient (nonzero, since fc / qkv are not zero)."""
    return _gpt2(cfg, 0.0)


def _xavier_uniform(parts: int) -> Callable[[torch.Tensor, torch.Generator | None], None]:
    def fill(t: torch.Tensor, g: torch.Generator | None) -> None:
        for w in t.chunk(parts, dim=0):  # q, k, v separately for the fused qkv, one after another
            nn.init.xavier_uniform_(w, generator=g)
    return fill


def _linears_and_embeddings(model: nn.Module) -> tuple[list[tuple[str, nn.Linear]], list[tuple[str, nn.Embedding]]]:
    """(weight name, module) of the linear layers whose weight is not an embedding's (a tied LM head is
    initialised as the embedding it is), and of the embeddings."""
    weights = list(_weights(model))
    return ([(n, m) for n, m, _ in weights if isinstance(m, nn.Linear)],
            [(n, m) for n, m, _ in weights if isinstance(m, nn.Embedding)])


@INITS.register("xavier")
def xavier_init(cfg: ModelConfig) -> Init:
    """Glorot & Bengio 2010, as in the original Transformer (tensor2tensor) and in the analysis of
    Xiong et al. 2020: every linear map W (fan_in, fan_out) ~ U(-a, a), a = sqrt(6 / (fan_in + fan_out));
    the fused q/k/v projection is three (C, C) maps, initialised one by one; biases 0; embeddings
    N(0, C^-1/2) (tensor2tensor, fairseq), so sqrt(C) * E would have unit entries. No depth scaling."""
    def init(model: nn.Module) -> None:
        linears, embeddings = _linears_and_embeddings(model)
        for name, emb in embeddings:
            _draw(emb.weight, name, _normal(cfg.n_embd ** -0.5))
        for name, lin in linears:
            _draw(lin.weight, name, _xavier_uniform(3 if name.endswith("attn.qkv.weight") else 1))
        _zero_biases(model)
    return init


@INITS.register("small")
def small_init(cfg: ModelConfig) -> Init:
    """SmallInit (Nguyen & Salazar 2019, "Transformers without Tears"; the `small_init` of
    GPT-NeoX): every weight, embeddings included, N(0, sqrt(2 / (5 C))), i.e. Xavier-normal with
    fan_in + fan_out = C + 4C; biases 0."""
    def init(model: nn.Module) -> None:
        std = math.sqrt(2 / (5 * cfg.n_embd))
        for name, _, weight in _weights(model):
            _draw(weight, name, _normal(std))
        _zero_biases(model)
    return init
