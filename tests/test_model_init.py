"""The `init` axis: nanogpt is nanoGPT's own initialisation (checked against a reference nanoGPT model
built here, drawn from gptlab's name-keyed streams), zero_proj is nanogpt with zero projections, xavier is Glorot-uniform per linear map, small is Nguyen & Salazar's N(0, sqrt(2/5C))."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gptlab.config import ModelConfig
from gptlab.model import build_model
from gptlab.model.init import param_stream

C, L, H, V, T = 64, 3, 4, 50, 32


def cfg(**kw) -> ModelConfig:
    return ModelConfig(**{**dict(vocab_size=V, block_size=T, n_layer=L, n_head=H, n_embd=C, dropout=0.0), **kw})


# ---- a reference nanoGPT (karpathy/nanoGPT model.py, bias=False, dropout 0), written out here -------

class RefAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_attn = nn.Linear(C, 3 * C, bias=False)
        self.c_proj = nn.Linear(C, C, bias=False)

    def forward(self, x):
        B, T_, _ = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T_, H, C // H).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T_, C))


class RefBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(C, bias=False)
        self.attn = RefAttention()
        self.ln_2 = nn.LayerNorm(C, bias=False)
        self.c_fc = nn.Linear(C, 4 * C, bias=False)
        self.c_proj = nn.Linear(4 * C, C, bias=False)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.c_proj(F.gelu(self.c_fc(self.ln_2(x))))


class RefGPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(T, C)
        self.h = nn.ModuleList(RefBlock() for _ in range(L))
        self.ln_f = nn.LayerNorm(C, bias=False)
        self.lm_head = nn.Linear(C, V, bias=False)
        self.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        for pn, p in self.named_parameters():
            if pn.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * L))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.size(1)))
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


# our parameter names for nanoGPT's (the same modules under gptlab's names)
REF_NAMES = {"wte.weight": "tok_emb.weight", "wpe.weight": "pos_emb.wpe.weight", "ln_f.weight": "norm_f.weight",
             **{f"h.{i}.{a}": f"blocks.{i}.{b}" for i in range(L) for a, b in [
                 ("ln_1.weight", "norm_1.weight"), ("attn.c_attn.weight", "attn.qkv.weight"),
                 ("attn.c_proj.weight", "attn.proj.weight"), ("ln_2.weight", "norm_2.weight"),
                 ("c_fc.weight", "mlp.fc.weight"), ("c_proj.weight", "mlp.proj.weight")]}}


def test_default_model_is_nanogpt_bit_for_bit():
    """nanoGPT's init rule (its _init_weights, then c_proj rescaled), each weight drawn from the stream
    gptlab keys by the same parameter's name: the same tensors, and the same function."""
    ours = build_model_seeded(cfg(bias=False), 1234)
    ref = RefGPT()
    with torch.no_grad():
        for pn, p in ref.named_parameters():
            if p.dim() < 2:
                continue
            std = 0.02 / math.sqrt(2 * L) if pn.endswith("c_proj.weight") else 0.02
            p.copy_(torch.empty(p.shape).normal_(0.0, std, generator=param_stream(REF_NAMES[pn], 1234)))
    mine = [p for _, p in ours.named_parameters()]
    theirs = [p for _, p in ref.named_parameters()]
    assert [p.shape for p in mine] == [p.shape for p in theirs]
    for a, b in zip(mine, theirs):
        assert torch.equal(a, b)
    idx = torch.randint(0, V, (2, T))
    torch.testing.assert_close(ours.eval()(idx), ref.eval()(idx), atol=1e-6, rtol=0)


def build_model_seeded(config, seed):
    torch.manual_seed(seed)  # the trainer's rule: the init seed, then build
    return build_model(config)


# ---- xavier and small ----------------------------------------------------------------------------

def _weights(model):
    return {n: p for n, p in model.named_parameters() if p.dim() == 2}


def test_xavier_is_glorot_uniform_per_linear_map_and_embeddings_at_c_to_the_minus_half():
    torch.manual_seed(0)
    model = build_model(cfg(init="xavier", tie_weights=False, bias=True))
    for name, w in _weights(model).items():
        if "emb" in name:
            assert w.std().item() == pytest.approx(C ** -0.5, rel=0.1), name
            continue
        parts = w.chunk(3, dim=0) if name.endswith("attn.qkv.weight") else [w]  # q, k, v: (C, C) each
        for part in parts:
            fan_out, fan_in = part.shape
            bound = math.sqrt(6 / (fan_in + fan_out))
            assert part.abs().max().item() <= bound + 1e-7, name
            assert part.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1), name
    assert all(torch.count_nonzero(p) == 0 for n, p in model.named_parameters() if n.endswith(".bias")
               and "norm" not in n)
    assert all(torch.equal(p, torch.ones_like(p)) for n, p in model.named_parameters() if "norm" in n
               and n.endswith("weight"))


def test_small_init_is_one_normal_for_every_weight():
    torch.manual_seed(0)
    model = build_model(cfg(init="small", tie_weights=False))
    std = math.sqrt(2 / (5 * C))
    for name, w in _weights(model).items():
        assert w.std().item() == pytest.approx(std, rel=0.1), name
        assert abs(w.mean().item()) < 0.2 * std, name


def test_nanogpt_init_scales_only_the_residual_projections():
    torch.manual_seed(0)
    model = build_model(cfg(activation="swiglu", block="parallel"))
    for name, w in _weights(model).items():
        want = 0.02 / math.sqrt(2 * L) if name.endswith(".proj.weight") else 0.02
        assert w.std().item() == pytest.approx(want, rel=0.15), name


@pytest.mark.parametrize("init", ["nanogpt", "xavier", "small"])
def test_sinusoidal_and_token_signals_have_the_papers_ratio_at_init(init):
    torch.manual_seed(0)
    model = build_model(cfg(init=init, pos_encoding="sinusoidal", block_size=256))
    token = model.tok_emb.weight.pow(2).mean().sqrt()
    position = model.pos_emb.table.pow(2).mean().sqrt()
    assert (position / token).item() == pytest.approx(2 ** -0.5, rel=0.1)  # Vaswani: RMS 1/sqrt(2) vs 1


def test_zero_proj_is_nanogpt_with_the_residual_projections_at_zero():
    ref = dict(build_model_seeded(cfg(activation="swiglu"), 5).named_parameters())
    zero = dict(build_model_seeded(cfg(activation="swiglu", init="zero_proj"), 5).named_parameters())
    projections = [n for n in zero if n.endswith((".attn.proj.weight", ".mlp.proj.weight"))]
    assert len(projections) == 2 * L
    for name, p in zero.items():
        if name in projections:
            assert torch.count_nonzero(p) == 0, name
        else:
            assert torch.equal(p, ref[name]), name


def test_mup_scales_the_hidden_matrices_init_by_sqrt_of_the_width_ratio():
    """Tensor Programs V, table 3 (Adam): hidden weights' variance ~ 1/fan_in, i.e. std * sqrt(base / width);
    embeddings and the LM head keep 0.02. Drawn from the same name-keyed streams, so each hidden matrix is
    exactly its standard draw times the factor."""
    import math

    import torch

    from gptlab.model import build_model

    common = dict(vocab_size=65, n_layer=2, n_head=2, n_embd=64, block_size=16, init="nanogpt")
    std = build_model({**common})
    mup = build_model({**common, "parametrization": "mup", "mup_base_width": 16})
    factor = math.sqrt(16 / 64)
    for (name, a), (_, b) in zip(std.named_parameters(), mup.named_parameters()):
        hidden = any(k in name for k in ("attn.qkv.weight", "attn.proj.weight", "mlp.fc.weight", "mlp.proj.weight"))
        want = a * factor if hidden else a
        assert torch.equal(b, want) or torch.allclose(b, want, rtol=1e-6, atol=0), name
    assert any("mlp.fc.weight" in n for n, _ in mup.named_parameters())
