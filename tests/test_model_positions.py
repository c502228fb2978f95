import math

import pytest
import torch

from gptlab.config import ModelConfig
from gptlab.model.positions import (POSITIONS, Alibi, LearnedEmbedding, Rotary, SinusoidalEmbedding,
                                    alibi_slopes)


def tiny(**kw) -> ModelConfig:
    return ModelConfig(**{**dict(vocab_size=11, block_size=16, n_layer=2, n_head=4, n_embd=32, dropout=0.0), **kw})


def test_registry_covers_every_config_choice():
    assert set(POSITIONS.names()) == {"learned", "sinusoidal", "rope", "alibi", "none"}


@pytest.mark.parametrize("T,init,scale", [(16, "nanogpt", 0.02), (40, "nanogpt", 0.02),  # 40: extended
                                           (16, "xavier", 32 ** -0.5), (16, "small", (2 / (5 * 32)) ** 0.5)])
def test_sinusoidal_matches_closed_form(T, init, scale):
    """Vaswani's table, times the token embedding's init std (the same signal ratio as the paper)."""
    cfg = tiny(init=init)
    emb = SinusoidalEmbedding(cfg)
    assert list(emb.parameters()) == [] and "table" in dict(emb.named_buffers())
    d = cfg.n_embd
    want = torch.zeros(T, d)
    for pos in range(T):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            want[pos, 2 * i] = math.sin(angle)
            want[pos, 2 * i + 1] = math.cos(angle)
    torch.testing.assert_close(emb(torch.zeros(1, T, d))[0], scale * want, atol=1e-7, rtol=0)
    tokens = torch.randn(2, T, d)
    torch.testing.assert_close(emb(tokens), tokens + scale * want, atol=1e-6, rtol=0)


def test_learned_refuses_beyond_block_size():
    emb = LearnedEmbedding(tiny())
    assert emb(torch.zeros(1, 16, 32)).shape == (1, 16, 32)
    with pytest.raises(ValueError, match="learned positions cannot go beyond block_size=16"):
        emb(torch.zeros(1, 17, 32))


def test_rope_preserves_norms():
    torch.manual_seed(0)
    rope = Rotary(tiny(pos_encoding="rope"))
    q, k = torch.randn(2, 4, 24, 8), torch.randn(2, 4, 24, 8)  # T 24 > block_size 16
    rq, rk = rope.rotate(q, k)
    torch.testing.assert_close(rq.norm(dim=-1), q.norm(dim=-1))
    torch.testing.assert_close(rk.norm(dim=-1), k.norm(dim=-1))
    assert not torch.allclose(rq[:, :, 1:], q[:, :, 1:])  # position 0 is unrotated, the rest are not
    torch.testing.assert_close(rq[:, :, 0], q[:, :, 0])


def test_rope_dot_product_depends_only_on_relative_position():
    torch.manual_seed(0)
    rope = Rotary(tiny(pos_encoding="rope"))
    T = 20
    q0, k0 = torch.randn(8), torch.randn(8)
    rq, rk = rope.rotate(q0.expand(1, 1, T, 8), k0.expand(1, 1, T, 8))
    dots = rq[0, 0] @ rk[0, 0].T  # (T, T): q at position m . k at position n
    for offset in range(-5, 6):
        diag = torch.diagonal(dots, offset=offset)
        torch.testing.assert_close(diag, diag[0].expand_as(diag), atol=1e-5, rtol=0)
    assert not torch.allclose(dots[0, 0], dots[0, 3])  # but it does depend on the offset


def test_alibi_slopes_power_of_two():
    assert alibi_slopes(8) == pytest.approx([1 / 2 ** i for i in range(1, 9)])


def test_alibi_slopes_non_power_of_two_follow_the_paper():
    # 6 heads: the 4-head slopes, then every other 8-head slope
    assert alibi_slopes(6) == pytest.approx([1 / 4, 1 / 16, 1 / 64, 1 / 256, 1 / 2, 1 / 8])
    assert len(alibi_slopes(12)) == 12


def test_alibi_bias_is_linear_in_distance_and_extends():
    alibi = Alibi(tiny(n_head=8, pos_encoding="alibi"))
    bias = alibi.bias(30, torch.device("cpu"))  # 30 > block_size 16
    assert bias.shape == (8, 30, 30)
    i, j = 29, 4
    torch.testing.assert_close(bias[:, i, j], -alibi.slopes * (i - j))
    torch.testing.assert_close(bias[:, 7, 7], torch.zeros(8))


def test_position_tables_are_not_saved_in_checkpoints():
    for name in POSITIONS.names():
        scheme = POSITIONS.get(name)
        cfg = tiny(pos_encoding=name)
        for module in (scheme.embedding(cfg), scheme.attention(cfg)):
            assert all(k.endswith("weight") for k in module.state_dict())
