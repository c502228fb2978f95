"""Diagnostics hooks driven the way the trainer drives them: forward, backward, clip, step."""
from __future__ import annotations

import math

import pytest
import torch

from gptlab.config import ModelConfig, TrainConfig
from gptlab.train.diag import build_diagnostics
from gptlab.train.diag.groups import layer_groups
from gptlab.train.diag.hardware import PEAK_FLOPS, flops_per_token, peak_flops
from gptlab.model import build_model
from gptlab.model.attention import attention_entropy
from gptlab.train.device import Runtime
from gptlab.train.evaluate import lm_loss
from gptlab.train.optim import build_optimizer

CPU = Runtime(torch.device("cpu"), torch.float32, False)
V = 65


def tiny(**changes) -> ModelConfig:
    base = dict(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=V, dropout=0.0)
    return ModelConfig(**{**base, **changes})


def batch(cfg: ModelConfig, b: int = 8, seed: int = 123) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, V, (b, cfg.block_size), generator=g),
            torch.randint(0, V, (b, cfg.block_size), generator=g))


def train_steps(cfg: ModelConfig, level: str, steps: int, *, log_interval: int = 1, grad_accum: int = 1,
                grad_clip: float = 1.0, seed: int = 0):
    """The trainer's update, with the diagnostics calls where the trainer puts them; rows per step."""
    torch.manual_seed(seed)
    model = build_model(cfg)
    opt = build_optimizer(model, TrainConfig(lr=1e-2), CPU.device)
    diag = build_diagnostics(level, model, CPU, log_interval)
    rows, totals = [], []
    for step in range(steps):
        on = diag.active(step + 1)
        if on:
            diag.before_forward()
        for micro in range(grad_accum):
            x, y = batch(cfg, seed=100 * step + micro)
            (lm_loss(model(x), y) / grad_accum).backward()
        if on:
            diag.after_backward()
        totals.append(torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip))
        opt.step()
        opt.zero_grad(set_to_none=True)
        if on:
            diag.after_step()
            rows.append({"step": step + 1, **diag.collect(tokens_per_s=1000.0)})
        for block in model.blocks:  # nothing stays switched on after a log step
            assert not block.attn.record_stats and not block._forward_hooks and not block.attn._forward_pre_hooks
    return model, rows, totals


def basic_keys(n_layer: int) -> set[str]:
    groups = ["embedding", *(f"block_{i}" for i in range(n_layer)), "head"]
    keys = {"diag/grad_norm", "diag/peak_mem_mb"}
    keys |= {f"diag/grad_norm/{g}" for g in groups} | {f"diag/update_ratio/{g}" for g in groups}
    for i in range(n_layer):
        keys |= {f"diag/attn_logit_std/block_{i}", f"diag/attn_entropy/block_{i}", f"diag/act_rms/block_{i}"}
    return keys


def at_init(level: str = "basic", seed: int = 0, **changes) -> dict[str, float]:
    cfg = tiny(**changes)
    _, rows, _ = train_steps(cfg, level, 1, seed=seed)
    return rows[0]


# ---- levels and keys ---------------------------------------------------------------------------

def test_off_logs_nothing_and_is_never_active():
    model, rows, _ = train_steps(tiny(), "off", 3)
    assert rows == []
    diag = build_diagnostics("off", model, CPU, 1)
    assert not any(diag.active(s) for s in range(1, 50))
    assert diag.collect() == {}


def test_basic_logs_the_documented_keys_only_on_log_steps():
    _, rows, _ = train_steps(tiny(n_layer=3), "basic", 7, log_interval=3)
    assert [r["step"] for r in rows] == [3, 6]
    for row in rows:
        assert set(row) - {"step"} == basic_keys(3)  # CPU: no MFU (documented)
        assert all(isinstance(v, float) and math.isfinite(v) for k, v in row.items() if k != "step")


def test_full_adds_per_head_and_per_tensor_keys():
    row = at_init("full", n_head=4, n_embd=32)
    assert basic_keys(2) <= set(row)
    for i in range(2):
        for h in range(4):
            assert f"diag/attn_logit_std/block_{i}/head_{h}" in row
            assert f"diag/attn_entropy/block_{i}/head_{h}" in row
        heads = [row[f"diag/attn_entropy/block_{i}/head_{h}"] for h in range(4)]
        assert sum(heads) / 4 == pytest.approx(row[f"diag/attn_entropy/block_{i}"], rel=1e-5)
    assert "diag/grad_norm/param/blocks.0.attn.qkv.weight" in row
    assert "diag/grad_norm/param/lm_head.weight" not in row  # tied: counted once, as tok_emb.weight


def test_unknown_level_is_rejected():
    with pytest.raises(ValueError, match="basic, full, off"):
        build_diagnostics("verbose", build_model(tiny()), CPU, 10)


# ---- grad norms and update ratios --------------------------------------------------------------

@pytest.mark.parametrize("tie", [True, False])
def test_every_parameter_in_exactly_one_group(tie):
    model = build_model(tiny(tie_weights=tie, bias=True, pos_encoding="learned"))
    groups = layer_groups(model)
    ids = [id(p) for members in groups.values() for _, p in members]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert list(groups) == ["embedding", "block_0", "block_1", "head"]
    assert any(name == "lm_head.weight" for name, _ in groups["head"]) is not tie


def test_group_norms_add_in_quadrature_to_the_global_pre_clip_norm():
    _, rows, totals = train_steps(tiny(n_layer=3), "basic", 4, log_interval=2, grad_accum=2, grad_clip=0.5)
    for row in rows:
        groups = [row[f"diag/grad_norm/{g}"] for g in ("embedding", "block_0", "block_1", "block_2", "head")]
        assert math.sqrt(sum(g * g for g in groups)) == pytest.approx(row["diag/grad_norm"], rel=1e-5)
        assert row["diag/grad_norm"] == pytest.approx(totals[row["step"] - 1].item(), rel=1e-5)  # pre-clip


def test_update_ratio_is_the_relative_change_of_the_step():
    cfg = tiny()
    torch.manual_seed(0)
    model = build_model(cfg)
    opt = build_optimizer(model, TrainConfig(lr=1e-2), CPU.device)
    diag = build_diagnostics("basic", model, CPU, 1)
    block = [p for p in model.blocks[1].parameters()]
    before = [p.detach().clone() for p in block]
    diag.before_forward()
    lm_loss(model(batch(cfg)[0]), batch(cfg)[1]).backward()
    diag.after_backward()
    opt.step()
    diag.after_step()
    row = diag.collect()
    delta = math.sqrt(sum(((p.detach() - b) ** 2).sum().item() for p, b in zip(block, before)))
    weight = math.sqrt(sum((b ** 2).sum().item() for b in before))
    assert row["diag/update_ratio/block_1"] == pytest.approx(delta / weight, rel=1e-4)


def test_without_residuals_or_norms_no_gradient_reaches_the_embedding_at_depth():
    # untied, so the embedding group holds only what flows back through all 8 blocks
    common = dict(n_layer=8, n_embd=64, n_head=4, block_size=32, tie_weights=False)
    res = at_init(norm="none", residual=True, **common)["diag/grad_norm/embedding"]
    nores = at_init(norm="none", residual=False, **common)["diag/grad_norm/embedding"]
    assert res > 1e-3
    assert nores / res < 1e-6  # measured: exactly 0 in float32 (vanished); 1e-8 already at 2 layers
    res_ln = at_init(norm="layernorm", residual=True, **common)["diag/grad_norm/embedding"]
    nores_ln = at_init(norm="layernorm", residual=False, **common)["diag/grad_norm/embedding"]
    assert 0.1 < nores_ln / res_ln < 10  # measured ~0.6: LayerNorm rescales the signal in each block


def test_unscaled_attention_logits_are_sqrt_head_size_wider():
    # head size 64: the missing 1/sqrt(64) makes logits 8x wider (different seeds: a real estimate)
    common = dict(n_layer=2, n_embd=128, n_head=2, block_size=32)
    scaled = at_init(attn_scale="scaled", seed=0, **common)
    unscaled = at_init(attn_scale="unscaled", seed=1, **common)
    for i in range(2):
        ratio = unscaled[f"diag/attn_logit_std/block_{i}"] / scaled[f"diag/attn_logit_std/block_{i}"]
        assert ratio == pytest.approx(8.0, rel=0.15)


# ---- attention helpers -------------------------------------------------------------------------

def test_entropy_of_a_uniform_causal_pattern_is_log_t_plus_one():
    T = 12
    att = torch.tril(torch.ones(T, T)) / torch.arange(1, T + 1, dtype=torch.float32)[:, None]  # row t: 1/(t+1)
    per_row = torch.stack([attention_entropy(att[t:t + 1]) for t in range(T)])
    assert torch.allclose(per_row, torch.log(torch.arange(1, T + 1, dtype=torch.float32)), atol=1e-6)
    assert attention_entropy(att[None, None]).item() == pytest.approx(per_row.mean().item(), rel=1e-6)
    uniform = torch.full((2, 3, 5, T), 1.0 / T)  # every row uniform over all T keys
    assert attention_entropy(uniform).item() == pytest.approx(math.log(T), rel=1e-6)


def test_entropy_at_init_is_near_uniform():
    # tiny init logits: attention is almost uniform over the visible keys, mean log(t+1)
    row = at_init(n_embd=32, n_head=2, block_size=16)
    expected = sum(math.log(t + 1) for t in range(16)) / 16
    assert row["diag/attn_entropy/block_0"] == pytest.approx(expected, rel=1e-3)


# ---- MFU and hardware --------------------------------------------------------------------------

def test_flops_per_token_counts_matmul_weights_and_attention():
    cfg = tiny(n_layer=2, n_embd=32, block_size=16)
    model = build_model(cfg)
    n = model.num_params() - cfg.block_size * cfg.n_embd  # every weight but the learned position table
    assert flops_per_token(model, 16) == 6 * n + 12 * 2 * 16 * 32


def test_peak_flops_table(monkeypatch):
    assert peak_flops(torch.device("cpu"), torch.bfloat16) is None
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    assert peak_flops(torch.device("cuda"), torch.bfloat16) == 989e12
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    assert peak_flops(torch.device("cuda"), torch.bfloat16) == 989e12
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A100-SXM4-80GB")
    assert peak_flops(torch.device("cuda"), torch.bfloat16) == 312e12
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some Future GPU")
    assert peak_flops(torch.device("cuda"), torch.bfloat16) is None
    assert all(set(peaks) == {"bf16", "tf32", "fp32"} for _, peaks in PEAK_FLOPS)


def test_mfu_is_logged_when_the_peak_is_known():
    model = build_model(tiny())
    diag = build_diagnostics("basic", model, CPU, 1)
    diag.peak_flops = 1e12  # as on a known GPU
    diag.before_forward()
    lm_loss(model(batch(tiny())[0]), batch(tiny())[1]).backward()
    diag.after_backward()
    diag.after_step()
    row = diag.collect(tokens_per_s=2000.0)
    assert row["diag/mfu"] == pytest.approx(diag.flops_per_token * 2000.0 / 1e12)
