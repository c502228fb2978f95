import pytest
import torch
from torch import nn

from gptlab.config import ModelConfig
from gptlab.errors import ConfigError
from gptlab.model.block import PLACEMENTS, Block


def tiny(**kw) -> ModelConfig:
    return ModelConfig(**{**dict(vocab_size=11, block_size=16, n_layer=2, n_head=4, n_embd=32, dropout=0.0), **kw})


def zero_output_projections(block: Block) -> None:
    with torch.no_grad():
        for sublayer in (block.attn, block.mlp):
            sublayer.proj.weight.zero_()
            if sublayer.proj.bias is not None:
                sublayer.proj.bias.zero_()


def test_registry_covers_every_config_choice():
    assert set(PLACEMENTS.names()) == {"pre", "post"}
    with pytest.raises(ConfigError, match="norm_placement"):
        PLACEMENTS.get("sandwich")


def test_pre_and_post_differ_on_the_same_weights():
    torch.manual_seed(0)
    pre = Block(tiny(norm_placement="pre")).eval()
    post = Block(tiny(norm_placement="post")).eval()
    post.load_state_dict(pre.state_dict())
    x = torch.randn(2, 8, 32)
    assert not torch.allclose(pre(x), post(x), atol=1e-3)


def capture(module: nn.Module, store: dict, key: str):
    def hook(mod, args, out):
        store[key + "_in"], store[key + "_out"] = args[0].detach(), out.detach()
    return module.register_forward_hook(hook)


@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
def test_post_norm_normalises_the_residual_sum(norm):
    torch.manual_seed(0)
    block = Block(tiny(norm_placement="post", norm=norm)).eval()
    seen: dict = {}
    for name in ("norm_1", "attn", "norm_2", "mlp"):
        capture(getattr(block, name), seen, name)
    x = torch.randn(2, 8, 32)
    out = block(x)
    torch.testing.assert_close(seen["attn_in"], x)                                  # f sees raw x
    torch.testing.assert_close(seen["norm_1_in"], x + seen["attn_out"])             # norm(x + f(x))
    torch.testing.assert_close(seen["mlp_in"], seen["norm_1_out"])
    torch.testing.assert_close(seen["norm_2_in"], seen["norm_1_out"] + seen["mlp_out"])
    torch.testing.assert_close(out, seen["norm_2_out"])                             # block ends in a norm


def test_pre_norm_normalises_the_sublayer_input_only():
    torch.manual_seed(0)
    block = Block(tiny(norm_placement="pre")).eval()
    seen: dict = {}
    for name in ("norm_1", "attn", "norm_2", "mlp"):
        capture(getattr(block, name), seen, name)
    x = torch.randn(2, 8, 32)
    out = block(x)
    torch.testing.assert_close(seen["norm_1_in"], x)
    torch.testing.assert_close(seen["attn_in"], seen["norm_1_out"])
    mid = x + seen["attn_out"]
    torch.testing.assert_close(seen["norm_2_in"], mid)
    torch.testing.assert_close(out, mid + seen["mlp_out"])                          # no norm on the stream


@pytest.mark.parametrize("norm_placement", ["pre", "post"])
def test_residual_false_removes_the_skip(norm_placement):
    torch.manual_seed(0)
    x = torch.randn(2, 8, 32)
    with_skip = Block(tiny(norm_placement=norm_placement, norm="none", residual=True, bias=True)).eval()
    zero_output_projections(with_skip)
    torch.testing.assert_close(with_skip(x), x)
    without = Block(tiny(norm_placement=norm_placement, norm="none", residual=False, bias=True)).eval()
    zero_output_projections(without)
    torch.testing.assert_close(without(x), torch.zeros_like(x))


@pytest.mark.parametrize("norm_placement", ["pre", "post"])
def test_residual_false_is_the_plain_composition(norm_placement):
    torch.manual_seed(0)
    block = Block(tiny(norm_placement=norm_placement, residual=False)).eval()
    x = torch.randn(2, 8, 32)
    if norm_placement == "pre":
        want = block.mlp(block.norm_2(block.attn(block.norm_1(x))))
    else:
        want = block.norm_2(block.mlp(block.norm_1(block.attn(x))))
    torch.testing.assert_close(block(x), want)


def test_norm_none_has_no_norm_parameters():
    block = Block(tiny(norm="none"))
    assert isinstance(block.norm_1, nn.Identity) and isinstance(block.norm_2, nn.Identity)
