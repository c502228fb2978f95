import itertools
import math

import pytest
import torch
from torch import nn

from gptlab.axes import AXES, check_combination
from gptlab.config import ModelConfig
from gptlab.errors import ConfigError
from gptlab.model import GPT, build_model

V = 13
POSITIONS = AXES["pos_encoding"].values()
BASE = dict(vocab_size=V, block_size=16, n_layer=2, n_head=4, n_embd=32, dropout=0.0)


def tiny(**kw) -> ModelConfig:
    return ModelConfig(**{**BASE, **kw})


def model(**kw) -> GPT:
    torch.manual_seed(0)
    return build_model(tiny(**kw)).eval()



def _valid(kw: dict) -> bool:
    try:
        check_combination(kw)
    except ConfigError:
        return False
    return True


# every combination of the structural axes (as declared in gptlab/axes.py, so a new value is covered),
# then every value of every axis on its own, then a few mixed cases
WIRING = ["pos_encoding", "norm_placement", "residual", "attn_scale", "block"]
STRUCTURE = [kw for kw in (dict(zip(WIRING, values)) for values in itertools.product(
    *(AXES[a].values() for a in WIRING))) if _valid(kw)]
EACH_VALUE = [{a: v} for a in AXES for v in AXES[a].values() if a not in WIRING]
EXTRA = EACH_VALUE + [dict(block="parallel", norm="rmsnorm", activation="swiglu", init="xavier", bias=True),dict(norm="rmsnorm", activation="swiglu"), dict(norm="none", activation="relu"),
         dict(norm="rmsnorm", norm_placement="post", activation="relu", pos_encoding="rope"),
         dict(norm="none", norm_placement="post", activation="swiglu", pos_encoding="alibi", bias=True),
         dict(tie_weights=False, bias=True, pos_encoding="sinusoidal", activation="swiglu")]


def ident(kw: dict) -> str:
    return "-".join(f"{k}={v}" for k, v in kw.items())


@pytest.mark.parametrize("kw", STRUCTURE + EXTRA, ids=ident)
@pytest.mark.parametrize("backend", ["fused", "manual"])
def test_causality(kw, backend):
    m = model(**kw)
    m.set_attention_backend(backend)
    idx = torch.randint(0, V, (2, 16))
    t = 7
    changed = idx.clone()
    changed[:, t + 1:] = (idx[:, t + 1:] + 1) % V
    with torch.no_grad():
        a, b = m(idx), m(changed)
    assert a.shape == (2, 16, V)
    torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1], atol=1e-5, rtol=0)
    assert not torch.allclose(a[:, t + 1:], b[:, t + 1:])  # the future did change something


def test_final_norm_only_for_pre_norm():
    assert isinstance(model(norm_placement="pre").norm_f, nn.LayerNorm)
    assert isinstance(model(norm_placement="pre", norm="rmsnorm").norm_f, nn.RMSNorm)
    assert isinstance(model(norm_placement="post").norm_f, nn.Identity)


def test_sinusoidal_input_is_token_embedding_plus_table():
    m = model(pos_encoding="sinusoidal")
    idx = torch.randint(0, V, (1, 16))
    torch.testing.assert_close(m.pos_emb(m.tok_emb(idx)), m.tok_emb(idx) + m.pos_emb.table[:16])
    assert all("table" not in n for n, _ in m.named_parameters())


def test_tied_weights_share_one_tensor_and_count_once():
    tied, untied = model(tie_weights=True), model(tie_weights=False)
    assert tied.lm_head.weight is tied.tok_emb.weight
    assert untied.lm_head.weight is not untied.tok_emb.weight
    assert tied.num_params() == sum(p.numel() for p in set(tied.parameters()))
    assert untied.num_params() - tied.num_params() == V * 32
    # a gradient step on the head moves the embedding too
    tied(torch.randint(0, V, (1, 4))).sum().backward()
    assert tied.tok_emb.weight.grad is tied.lm_head.weight.grad


def test_num_params_non_embedding():
    m = model(pos_encoding="learned")
    assert m.num_params(non_embedding=True) == m.num_params() - V * 32 - 16 * 32
    r = model(pos_encoding="rope", tie_weights=False)
    assert r.num_params(non_embedding=True) == r.num_params() - V * 32


def test_bias_false_leaves_no_bias_parameters():
    names = [n for n, _ in model(bias=False).named_parameters()]
    assert not any("bias" in n for n in names)
    assert any(n.endswith("bias") for n, _ in model(bias=True).named_parameters())


@pytest.mark.parametrize("kw", [{}, dict(norm="rmsnorm", activation="swiglu", pos_encoding="learned", bias=True),
                                dict(pos_encoding="sinusoidal", tie_weights=False, bias=True, norm_placement="post")])
def test_weight_decay_split_is_matrices_vs_gains_and_biases(kw):
    """build_optimizer's groups: Linear and Embedding weights decay; biases and norm gains do not; every
    parameter (a tied one once) in exactly one group; and a zero-gradient step only decays the first group."""
    from gptlab.config import build_config
    from gptlab.train.optim import build_optimizer

    m = model(**kw)
    expected_decay, expected_plain = set(), set()
    for module in m.modules():
        for pname, p in module.named_parameters(recurse=False):
            if isinstance(module, (nn.Linear, nn.Embedding)) and pname == "weight":
                expected_decay.add(id(p))
            elif isinstance(module, nn.Linear) and pname == "bias" or isinstance(module, (nn.LayerNorm, nn.RMSNorm)):
                expected_plain.add(id(p))
            else:
                raise AssertionError(f"no decay rule for {type(module).__name__}.{pname}")
    train = build_config({"weight_decay": 0.1, "lr": 0.5}).train
    opt = build_optimizer(m, train)
    decay, plain = opt.param_groups
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(m.parameters()))  # each once, nothing left out
    assert {id(p) for p in decay["params"]} == expected_decay and decay["weight_decay"] == 0.1
    assert {id(p) for p in plain["params"]} == expected_plain and plain["weight_decay"] == 0.0
    if kw.get("bias"):
        assert any(p.dim() == 1 for p in plain["params"]) and len(expected_plain) > 2 * m.config.n_layer
    before = {id(p): p.detach().clone() for p in m.parameters()}
    for p in m.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()  # zero gradient: Adam's update is 0, only decoupled weight decay moves weights
    for p in m.parameters():
        factor = 1 - 0.5 * 0.1 if id(p) in expected_decay else 1.0
        torch.testing.assert_close(p.detach(), before[id(p)] * factor)


def test_init_follows_nanogpt():
    torch.manual_seed(0)
    m = build_model(tiny(n_embd=64, n_layer=4, bias=True))
    for name, p in m.named_parameters():
        if name.endswith(".proj.weight"):
            assert p.std().item() == pytest.approx(0.02 / math.sqrt(8), rel=0.15), name
        elif p.dim() == 2:
            assert p.std().item() == pytest.approx(0.02, rel=0.15), name
        elif name.endswith("bias") and "norm" not in name:
            assert p.abs().max() == 0, name


def test_build_model_from_dict_equals_from_config():
    torch.manual_seed(0)
    a = build_model(dict(BASE, pos_encoding="rope", activation="swiglu"))
    torch.manual_seed(0)
    b = build_model(tiny(pos_encoding="rope", activation="swiglu"))
    assert a.config == b.config
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_build_model_needs_vocab_size():
    without = {k: v for k, v in BASE.items() if k != "vocab_size"}
    with pytest.raises(ConfigError, match="vocab_size"):
        build_model(without)
    with pytest.raises(ConfigError, match="vocab_size"):
        build_model(ModelConfig())


def test_build_model_rejects_unknown_and_invalid_keys():
    with pytest.raises(ConfigError, match="n_head"):
        build_model(dict(BASE, n_heads=4))
    with pytest.raises(ConfigError, match="pos_encoding"):
        build_model(dict(BASE, pos_encoding="xpos"))


@pytest.mark.parametrize("pos_encoding", ["sinusoidal", "rope", "alibi", "none"])
def test_longer_than_block_size_works_without_learned_positions(pos_encoding):
    m = model(pos_encoding=pos_encoding)
    idx = torch.randint(0, V, (2, 40))
    with torch.no_grad():
        long = m(idx)
        short = m(idx[:, :16])
    assert long.shape == (2, 40, V)
    torch.testing.assert_close(long[:, :16], short, atol=1e-5, rtol=0)  # causal: prefix unchanged


def test_learned_positions_refuse_longer_sequences():
    m = model(pos_encoding="learned")
    with pytest.raises(ValueError, match="learned positions cannot go beyond block_size=16"):
        m(torch.randint(0, V, (1, 17)))


@pytest.mark.parametrize("kw", [{}, dict(activation="swiglu", norm="rmsnorm", pos_encoding="rope", bias=True)])
def test_backward_reaches_every_parameter(kw):
    torch.manual_seed(0)
    m = build_model(tiny(dropout=0.2, **kw)).train()  # default dropout as in the baby GPT recipe
    idx = torch.randint(0, V, (4, 16))
    logits = m(idx)
    loss = nn.functional.cross_entropy(logits.view(-1, V), idx.roll(-1, 1).view(-1))
    loss.backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_dropout_only_in_training():
    torch.manual_seed(0)
    m = build_model(tiny(dropout=0.5))
    idx = torch.randint(0, V, (2, 16))
    m.train()
    assert not torch.allclose(m(idx), m(idx))
    m.eval()
    torch.testing.assert_close(m(idx), m(idx))
