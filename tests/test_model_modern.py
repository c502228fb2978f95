"""The modern axes of the model (issue 31), each against its formula on a tiny tensor: QK-norm, ReLU², the
logit soft cap, the z-loss, μP's attention scale and output multiplier; standard is today's model; every
new axis trains; bad values exit 2 in one line."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import TINY, assert_user_error, cli
from gptlab.config import build_config
from gptlab.model import build_model
from gptlab.model.logits import LogitMultiplier, LogitSoftcap
from gptlab.model.mlp import ReLU2
from gptlab.model.mup import HIDDEN, multiplier, mup_init_multipliers, mup_lr_multipliers
from gptlab.model.qk_norm import NoQKNorm, QKNorm
from gptlab.train import RunMeta, run_training
from gptlab.train.evaluate import lm_loss, z_loss

SHAPE = {"n_layer": 2, "n_head": 2, "n_embd": 16, "block_size": 8, "vocab_size": 11, "dropout": 0.0}


def model_cfg(**changes):
    return build_config({**SHAPE, **changes}).model


def tokens(B: int = 3, T: int = 8, V: int = 11, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


# ---- each component against its formula -------------------------------------------------------

def test_relu2_is_the_square_of_relu():
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 3.0])
    assert torch.equal(ReLU2()(x), torch.tensor([0.0, 0.0, 0.0, 0.25, 9.0]))
    mlp = build_model(model_cfg(activation="relu2")).blocks[0].mlp
    h = torch.randn(2, 4, 16)
    expected = mlp.proj(torch.where(mlp.fc(h) > 0, mlp.fc(h) * mlp.fc(h), torch.zeros(())))
    assert torch.allclose(mlp(h), expected, atol=1e-6)


def test_softcap_is_c_tanh_x_over_c():
    x = torch.tensor([-100.0, -3.0, 0.0, 1e-3, 2.0, 50.0])
    c = 5.0
    expected = torch.tensor([c * math.tanh(v / c) for v in x.tolist()])
    assert torch.allclose(LogitSoftcap(c)(x), expected, atol=1e-6)
    assert LogitSoftcap(c)(x).abs().max() <= c  # tanh saturates to exactly 1 in float32


def test_the_model_caps_its_logits_in_its_forward():
    torch.manual_seed(0)
    plain = build_model(model_cfg())
    torch.manual_seed(0)
    capped = build_model(model_cfg(logit_softcap=0.5))
    capped.load_state_dict(plain.state_dict())
    x = tokens()
    assert torch.allclose(capped(x), 0.5 * torch.tanh(plain(x) / 0.5), atol=1e-6)


def test_z_loss_is_the_mean_squared_log_partition_function():
    logits = torch.randn(2, 3, 7, generator=torch.Generator().manual_seed(1)) * 4
    a = logits.double().numpy()
    log_z = np.log(np.exp(a).sum(-1))  # (2, 3): log of the softmax normaliser per token
    assert z_loss(logits).item() == pytest.approx((log_z ** 2).mean(), rel=1e-6)


def test_qk_norm_normalises_each_head_over_head_size_with_its_gain():
    cfg = model_cfg(qk_norm=True)
    norm = QKNorm(cfg)
    assert norm.q_norm.weight.shape == norm.k_norm.weight.shape == (cfg.head_size,)
    with torch.no_grad():
        norm.q_norm.weight.copy_(torch.arange(1.0, cfg.head_size + 1))
    q, k = torch.randn(2, cfg.n_head, 5, cfg.head_size) * 7, torch.randn(2, cfg.n_head, 5, cfg.head_size) * 0.1
    nq, nk = norm(q, k)
    assert nq.shape == q.shape and nk.shape == k.shape
    rms = lambda t: t.pow(2).mean(-1, keepdim=True).add(1e-5).sqrt()  # noqa: E731
    assert torch.allclose(nq, q / rms(q) * torch.arange(1.0, cfg.head_size + 1), atol=1e-5)
    assert torch.allclose(nk, k / rms(k), atol=1e-5)  # gain 1: unit rms (up to eps), whatever k's size


def test_qk_norm_comes_before_rope_in_attention():
    """The attention output recomputed by hand: qkv, per-head RMSNorm with a non-uniform gain (so the
    order against rope matters), rope, causal softmax(q.k / sqrt(hs)) v, proj."""
    torch.manual_seed(0)
    attn = build_model(model_cfg(qk_norm=True, pos_encoding="rope")).blocks[0].attn
    with torch.no_grad():
        attn.qk_norm.q_norm.weight.copy_(torch.linspace(0.2, 3.0, 8))
        attn.qk_norm.k_norm.weight.copy_(torch.linspace(2.0, 0.5, 8))
    x = torch.randn(2, 6, 16)
    q, k, v = (t.view(2, 6, 2, 8).transpose(1, 2) for t in attn.qkv(x).split(16, dim=2))
    q = F.rms_norm(q, (8,), attn.qk_norm.q_norm.weight, 1e-5)
    k = F.rms_norm(k, (8,), attn.qk_norm.k_norm.weight, 1e-5)
    q, k = attn.positions.rotate(q, k)
    att = (q @ k.transpose(-2, -1)) / math.sqrt(8)
    att = att.masked_fill(~torch.ones(6, 6, dtype=torch.bool).tril(), float("-inf")).softmax(-1)
    expected = attn.proj((att @ v).transpose(1, 2).reshape(2, 6, 16))
    attn.eval()
    for backend in ("manual", "fused"):
        attn.backend = backend
        assert torch.allclose(attn(x), expected, atol=1e-5), backend


def test_mup_scales_attention_by_one_over_head_size_and_the_logits_by_base_over_width():
    std, mup = model_cfg(), model_cfg(parametrization="mup", mup_base_width=4)
    assert build_model(std).blocks[0].attn.scale == 8 ** -0.5
    assert build_model(mup).blocks[0].attn.scale == 1 / 8
    torch.manual_seed(0)
    model = build_model(mup)
    assert isinstance(model.out[0], LogitMultiplier) and model.out[0].factor == 4 / 16
    seen = {}
    model.lm_head.register_forward_hook(lambda m, i, o: seen.update(head=o))
    logits = model(tokens())
    assert torch.allclose(logits, seen["head"] * 0.25)
    with pytest.raises(Exception, match="attn_scale"):
        model_cfg(parametrization="mup", attn_scale="unscaled")


def test_standard_is_todays_model():
    """Defaults: no new module acts (identity logits, no QK-norm, no new parameter), the scale is
    1/sqrt(hs), and the forward is the plain composition of the parts, bit for bit."""
    torch.manual_seed(0)
    model = build_model(model_cfg())
    assert isinstance(model.out, torch.nn.Identity)
    assert all(isinstance(b.attn.qk_norm, NoQKNorm) and b.attn.scale == 8 ** -0.5 for b in model.blocks)
    assert not [n for n in dict(model.named_parameters()) if "qk_norm" in n]
    x = tokens()
    h = model.drop(model.pos_emb(model.tok_emb(x)))
    for block in model.blocks:
        h = block(h)
    assert torch.equal(model(x), model.lm_head(model.norm_f(h)))


@pytest.mark.parametrize("activation", ["gelu", "swiglu", "relu2"])
def test_mup_multipliers_name_exactly_the_hidden_matrices(activation):
    from gptlab.train.muon import split_parameters

    cfg = model_cfg(parametrization="mup", mup_base_width=4, n_embd=16, activation=activation, bias=True,
                    qk_norm=True, tie_weights=False)
    model = build_model(cfg)
    hidden = {n for n, _ in split_parameters(model)["hidden"]}
    init, lr = mup_init_multipliers(cfg), mup_lr_multipliers(cfg)
    for name, _ in model.named_parameters():
        assert multiplier(name, init) == (0.5 if name in hidden else 1.0), name  # sqrt(4 / 16)
        assert multiplier(name, lr) == (0.25 if name in hidden else 1.0), name
    assert list(init) == [HIDDEN]
    assert mup_init_multipliers(model_cfg()) == mup_lr_multipliers(model_cfg()) == {}


def test_muon_adjust_lr_choices_are_torchs():
    from gptlab.config import SECTIONS

    choices = next(f for f in SECTIONS["train"].__dataclass_fields__.values() if f.name == "muon_adjust_lr")
    p = [torch.nn.Parameter(torch.zeros(2, 2))]
    for name in choices.metadata["choices"]:
        torch.optim.Muon(p, adjust_lr_fn=name)
    with pytest.raises(ValueError):
        torch.optim.Muon(p, adjust_lr_fn="bogus")


# ---- the z-loss in the training step ----------------------------------------------------------------

def test_the_step_backpropagates_cross_entropy_plus_z_loss_and_reports_them_apart():
    from gptlab.train.device import resolve_runtime
    from gptlab.train.step import BatchSampler, TrainStep
    from gptlab.train.streams import run_streams

    w = 0.05
    cfg = build_config({**SHAPE, "z_loss": w, "batch_size": 3, "grad_clip": 0.0, "device": "cpu",
                        "dtype": "float32", "compile": False, "diagnostics": "off"})
    data = torch.randint(0, 11, (400,), generator=torch.Generator().manual_seed(3))
    torch.manual_seed(0)
    model = build_model(cfg.model)
    reference = copy.deepcopy(model)
    step = TrainStep(cfg, model, resolve_runtime(cfg.train), data)
    grads = {}
    step.opt.step = lambda *a, **k: grads.update({n: p.grad.clone() for n, p in model.named_parameters()})
    ce = step(1e-3)

    x, y = BatchSampler(data, 3, 8, run_streams(cfg.train).data, False)()  # the same window the step drew
    logits = reference(x)
    want_ce = F.cross_entropy(logits.reshape(-1, 11), y.reshape(-1))
    want_z = w * torch.logsumexp(logits, -1).pow(2).mean()
    (want_ce + want_z).backward()
    assert ce.item() == pytest.approx(want_ce.item(), abs=1e-6)
    assert step.last_z_loss.item() == pytest.approx(want_z.item(), rel=1e-5)
    for name, p in reference.named_parameters():
        assert torch.allclose(grads[name], p.grad, atol=1e-6), name


# ---- every new axis trains -----------------------------------------------------------------------

AXES_ON = {
    "qk_norm": {"qk_norm": True, "pos_encoding": "rope"},
    "relu2": {"activation": "relu2"},
    "logit_softcap": {"logit_softcap": 3.0},
    "z_loss": {"z_loss": 1e-2},
    "mup": {"parametrization": "mup", "mup_base_width": 8},
    "muon": {"optimizer": "muon", "muon_adjust_lr": "match_rms_adamw"},
}


@pytest.mark.parametrize("axis", list(AXES_ON))
def test_each_new_axis_trains(axis, tmp_path):
    cfg = build_config({**TINY, "max_steps": 20, "wandb": "disabled", "dtype": "float32", **AXES_ON[axis]})
    summary = run_training(cfg, tmp_path, RunMeta("modern", axis))
    assert summary["status"] == "finished", summary
    from gptlab.store import RunStore

    rows = RunStore(tmp_path / "modern" / axis).metrics()
    train = [r for r in rows if "train/loss" in r]
    assert train and all(math.isfinite(r["train/loss"]) for r in train)
    assert train[-1]["train/loss"] < train[0]["train/loss"] + 0.5
    assert all(("train/z_loss" in r) == (axis == "z_loss") for r in train)
    if axis == "z_loss":
        assert all(r["train/z_loss"] > 0 for r in train)
    assert math.isfinite(summary["final_val_loss"])


# ---- bad values --------------------------------------------------------------------------------

@pytest.mark.parametrize("arg,key", [("logit_softcap=-1", "logit_softcap"), ("z_loss=-0.001", "z_loss"),
                                     ("optimizer=sgd", "optimizer"), ("parametrization=ntk", "parametrization")])
def test_bad_values_exit_2_in_one_line(arg, key, tmp_path):
    assert_user_error(cli("train", arg, "max_steps=1", cwd=tmp_path), key)
