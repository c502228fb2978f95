import pytest
import torch
from torch import nn

from gptlab.config import ModelConfig
from gptlab.errors import ConfigError
from gptlab.model.norms import NORMS


def tiny(**kw) -> ModelConfig:
    return ModelConfig(**{**dict(vocab_size=11, block_size=16, n_layer=2, n_head=4, n_embd=32, dropout=0.0), **kw})


def test_registry_covers_every_config_choice():
    assert set(NORMS.names()) == {"layernorm", "rmsnorm", "none"}


@pytest.mark.parametrize("bias", [True, False])
def test_layernorm_bias_follows_config(bias):
    norm = NORMS.get("layernorm")(tiny(bias=bias))
    assert isinstance(norm, nn.LayerNorm)
    assert (norm.bias is not None) == bias
    x = torch.randn(2, 5, 32) * 3 + 1
    y = norm(x)
    torch.testing.assert_close(y.mean(-1), torch.zeros(2, 5), atol=1e-5, rtol=0)


def test_rmsnorm_gives_unit_rms_without_centring():
    norm = NORMS.get("rmsnorm")(tiny())
    assert [n for n, _ in norm.named_parameters()] == ["weight"]
    x = torch.randn(2, 5, 32) * 3 + 1
    y = norm(x)
    torch.testing.assert_close(y.pow(2).mean(-1).sqrt(), torch.ones(2, 5), atol=1e-4, rtol=0)
    assert y.mean(-1).abs().max() > 0.1  # the mean survives: no centring


def test_none_is_identity():
    assert isinstance(NORMS.get("none")(tiny()), nn.Identity)


def test_unknown_norm_names_the_valid_ones():
    with pytest.raises(ConfigError, match="rmsnorm"):
        NORMS.get("rmsnrm")
