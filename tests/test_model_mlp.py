import pytest
import torch

from gptlab.config import ModelConfig
from gptlab.model.mlp import MLPS


def tiny(**kw) -> ModelConfig:
    return ModelConfig(**{**dict(vocab_size=11, block_size=16, n_layer=2, n_head=4, n_embd=32, dropout=0.0), **kw})


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_registry_covers_every_config_choice():
    assert set(MLPS.names()) == {"gelu", "relu", "swiglu", "relu2"}


@pytest.mark.parametrize("activation", ["gelu", "relu", "swiglu", "relu2"])
@pytest.mark.parametrize("bias", [True, False])
def test_every_activation_runs_and_backprops(activation, bias):
    torch.manual_seed(0)
    mlp = MLPS.get(activation)(tiny(activation=activation, bias=bias))
    x = torch.randn(2, 5, 32, requires_grad=True)
    y = mlp(x)
    assert y.shape == x.shape
    y.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mlp.parameters())


@pytest.mark.parametrize("bias", [True, False])
def test_parameter_counts(bias):
    C, H = 32, 128
    b = int(bias)
    assert n_params(MLPS.get("gelu")(tiny(bias=bias))) == 2 * C * H + b * (H + C)
    hidden = tiny(bias=bias, activation="swiglu").mlp_hidden  # Shazeer's 2/3: 85.3 -> 85 (no bias)
    assert abs(hidden - 2 / 3 * H) <= 1
    assert n_params(MLPS.get("swiglu")(tiny(bias=bias, activation="swiglu"))) == 3 * C * hidden + b * (2 * hidden + C)


@pytest.mark.parametrize("C,ratio,bias", [(16, 4, False), (16, 4, True), (32, 4, True), (64, 4, False),
                                          (384, 4, False), (48, 2.5, True), (24, 8 / 3, False)])
def test_swiglu_matches_the_gelu_mlp_in_parameters(C, ratio, bias):
    kw = dict(n_embd=C, n_head=4, mlp_ratio=ratio, bias=bias)
    gelu = n_params(MLPS.get("gelu")(tiny(**kw)))
    swiglu = n_params(MLPS.get("swiglu")(tiny(activation="swiglu", **kw)))
    assert abs(swiglu - gelu) / gelu < 0.01


def test_swiglu_computes_silu_gate_times_up():
    torch.manual_seed(0)
    mlp = MLPS.get("swiglu")(tiny(activation="swiglu")).eval()
    x = torch.randn(3, 32)
    want = mlp.proj(torch.nn.functional.silu(x @ mlp.fc_gate.weight.T) * (x @ mlp.fc_up.weight.T))
    torch.testing.assert_close(mlp(x), want)


def test_relu_and_gelu_differ_on_the_same_weights():
    torch.manual_seed(0)
    relu = MLPS.get("relu")(tiny())
    gelu = MLPS.get("gelu")(tiny())
    gelu.load_state_dict(relu.state_dict())
    x = torch.randn(4, 32)
    assert not torch.allclose(relu(x), gelu(x))
