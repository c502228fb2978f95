import math

import pytest
import torch

from gptlab.config import ModelConfig
from gptlab.model import build_model
from gptlab.model.attention import ATTN_SCALES, CausalSelfAttention, attention_logits, logit_std

POSITIONS = ["learned", "sinusoidal", "rope", "alibi", "none"]


def tiny(**kw) -> ModelConfig:
    return ModelConfig(**{**dict(vocab_size=11, block_size=16, n_layer=2, n_head=4, n_embd=32, dropout=0.0), **kw})


def test_scales():
    assert ATTN_SCALES.get("scaled")(64) == pytest.approx(1 / 8)
    assert ATTN_SCALES.get("unscaled")(64) == 1.0
    assert CausalSelfAttention(tiny(attn_scale="scaled")).scale == pytest.approx(1 / math.sqrt(8))
    assert CausalSelfAttention(tiny(attn_scale="unscaled")).scale == 1.0


@pytest.mark.parametrize("attn_scale, want", [("unscaled", 8.0), ("scaled", 1.0)])
def test_logit_std_for_unit_variance_q_k_at_head_size_64(attn_scale, want):
    torch.manual_seed(0)
    q, k = torch.randn(4, 4, 64, 64), torch.randn(4, 4, 64, 64)  # (B, nh, T, hs)
    logits = attention_logits(q, k, ATTN_SCALES.get(attn_scale)(64))
    assert logit_std(logits).item() == pytest.approx(want, rel=0.05)


@pytest.mark.parametrize("attn_scale, want", [("unscaled", 8.0), ("scaled", 1.0)])
def test_recorded_logit_std_through_the_module(attn_scale, want):
    # 2 heads of 64: wire qkv so head 0 sees q = x[:64], k = x[64:] and head 1 the other way round,
    # giving independent unit-variance q and k from unit-variance input
    torch.manual_seed(0)
    attn = CausalSelfAttention(tiny(n_embd=128, n_head=2, attn_scale=attn_scale)).eval()
    eye = torch.eye(128)
    swap = torch.cat((eye[64:], eye[:64]))
    with torch.no_grad():
        attn.qkv.weight.copy_(torch.cat((eye, swap, eye)))
    attn.record_stats = True
    attn(torch.randn(8, 64, 128))
    assert attn.last_logit_std.item() == pytest.approx(want, rel=0.05)


def test_recorded_attention_is_causal_and_normalised():
    torch.manual_seed(0)
    attn = CausalSelfAttention(tiny()).eval()
    attn.record_stats = True
    attn(torch.randn(2, 10, 32))
    att = attn.last_attn
    assert att.shape == (2, 4, 10, 10) and not att.requires_grad
    torch.testing.assert_close(att.sum(-1), torch.ones(2, 4, 10))
    assert att.triu(diagonal=1).abs().max() == 0
    # entropy is between 0 and that of uniform attention over the visible keys
    max_entropy = torch.log(torch.arange(1, 11).float()).mean()
    assert 0 < attn.last_entropy.item() <= max_entropy.item() + 1e-5


def test_uniform_attention_has_maximal_entropy():
    attn = CausalSelfAttention(tiny(pos_encoding="none")).eval()
    with torch.no_grad():
        attn.qkv.weight.zero_()  # q = k = 0: every visible key equally likely
    attn.record_stats = True
    attn(torch.randn(1, 10, 32))
    want = torch.log(torch.arange(1, 11).float()).mean()
    assert attn.last_entropy.item() == pytest.approx(want.item(), abs=1e-5)


@pytest.mark.parametrize("pos_encoding", POSITIONS)
@pytest.mark.parametrize("attn_scale", ["scaled", "unscaled"])
@pytest.mark.parametrize("T", [16, 24])
def test_fused_and_manual_agree(pos_encoding, attn_scale, T):
    if pos_encoding == "learned" and T > 16:
        pytest.skip("learned positions stop at block_size")
    torch.manual_seed(0)
    model = build_model(tiny(pos_encoding=pos_encoding, attn_scale=attn_scale, n_head=2)).eval()
    idx = torch.randint(0, 11, (2, T))
    model.set_attention_backend("fused")
    fused = model(idx)
    model.set_attention_backend("manual")
    manual = model(idx)
    torch.testing.assert_close(fused, manual, atol=1e-5, rtol=0)


def test_record_stats_forces_manual_and_matches():
    torch.manual_seed(0)
    attn = CausalSelfAttention(tiny(pos_encoding="alibi"), backend="fused").eval()
    x = torch.randn(2, 12, 32)
    fused = attn(x)
    assert attn.last_attn is None
    attn.record_stats = True
    torch.testing.assert_close(attn(x), fused, atol=1e-5, rtol=0)
    assert attn.last_attn is not None


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="manual"):
        CausalSelfAttention(tiny(), backend="flash")
    with pytest.raises(ValueError, match="fused"):
        build_model(tiny()).set_attention_backend("sdpa")


def test_one_batched_qkv_projection():
    attn = CausalSelfAttention(tiny(bias=True))
    shapes = {n: tuple(p.shape) for n, p in attn.named_parameters()}
    assert shapes == {"qkv.weight": (96, 32), "qkv.bias": (96,), "proj.weight": (32, 32), "proj.bias": (32,)}
