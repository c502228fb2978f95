"""Diagnostics as the trainer runs them: through the real TrainStep, in the runtime `dtype=auto` resolves
to (bf16 autocast on a CPU with bf16 matmuls, as this one has; float32 elsewhere), checked against a
reference forward/backward of the same batches on a copy of the weights, computed without gptlab.train.diag."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from gptlab.config import RunConfig, build_config
from gptlab.model import build_model
from gptlab.model.attention import attention_entropy
from gptlab.train.device import resolve_runtime
from gptlab.train.diag import build_diagnostics
from gptlab.train.diag.groups import layer_groups
from gptlab.train.diag.hardware import PEAK_FLOPS, flops_per_token, peak_flops
from gptlab.train.evaluate import lm_loss
from gptlab.train.step import TrainStep

V = 65
LR = 1e-2
# random tokens: each test's batches come from TrainStep's own seeded sampler over them
DATA = torch.randint(0, V, (4096,), generator=torch.Generator().manual_seed(7))
# how close the logged numbers are to the reference's: the same bf16 arithmetic on the same batches, so
# they differ only in float32 reduction order (measured: at most 5e-7 relative); 1.01x wrong still fails
REL = 1e-4


def run_config(level: str = "basic", *, log_interval: int = 1, grad_accum: int = 1, grad_clip: float = 1.0,
               seed: int = 0, **model) -> RunConfig:
    base = dict(n_layer=2, n_head=2, n_embd=32, block_size=16, dropout=0.0)
    cfg = build_config({**base, **model, "batch_size": 8, "grad_accum": grad_accum, "grad_clip": grad_clip,
                        "seed": seed, "device": "cpu", "dtype": "auto", "diagnostics": level,
                        "log_interval": log_interval, "wandb": "disabled"})
    return cfg.replace(vocab_size=V)


class Recorded:
    """TrainStep's sampler, keeping every micro-batch it hands out."""

    def __init__(self, sampler) -> None:
        self.sampler, self.batches = sampler, []

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.sampler()
        self.batches.append((x, y))
        return x, y


def train_step(cfg: RunConfig) -> TrainStep:
    torch.manual_seed(cfg.train.seed)
    step = TrainStep(cfg, build_model(cfg.model), resolve_runtime(cfg.train), DATA)
    step.sampler = Recorded(step.sampler)
    return step


def train(cfg: RunConfig, steps: int, *, check: bool = False) -> tuple[TrainStep, list[dict], list[dict]]:
    """`steps` updates driven as the trainer drives them; a row per log step and, with `check`, beside it
    the reference for that update."""
    step = train_step(cfg)
    rows, refs = [], []
    for n in range(steps):
        measure = step.diag.active(n + 1)
        before = copy.deepcopy(step.model) if measure and check else None
        drawn = len(step.sampler.batches)
        step(LR, measure)
        if measure:
            rows.append({"step": n + 1, **step.diag.collect(tokens_per_s=1000.0)})
        if before is not None:
            refs.append({**reference(before, step.sampler.batches[drawn:], step), **update_ratios(before, step.model)})
        # nothing stays switched on after a step
        assert all(not m._forward_hooks and not m._forward_pre_hooks for m in step.model.modules())
    return step, rows, refs


def group_of(name: str) -> str:
    """Layer group by parameter name (tok_emb.weight, blocks.1.mlp.fc.weight, norm_f.weight, lm_head.weight)."""
    part = name.split(".")[0]
    if part == "blocks":
        return f"block_{name.split('.')[1]}"
    return "embedding" if part in ("tok_emb", "pos_emb") else "head"


def norms_by_group(tensors: dict[str, torch.Tensor]) -> dict[str, float]:
    squares: dict[str, float] = {}
    for name, t in tensors.items():
        squares[group_of(name)] = squares.get(group_of(name), 0.0) + t.double().pow(2).sum().item()
    return {g: math.sqrt(s) for g, s in squares.items()}


def reference(before: torch.nn.Module, batches: list, step: TrainStep) -> dict[str, float]:
    """What the diagnostics of one update should read, from a copy of the weights the update started from:
    the same micro-batches in the same autocast, the attention's own record_stats path for logit std and
    entropy, and plain forward hooks for the block outputs (both of the last micro-batch)."""
    model, out = copy.deepcopy(before), {}

    def rms(i: int):
        def hook(module, inputs, y):
            out[f"diag/act_rms/block_{i}"] = y.detach().double().pow(2).mean().sqrt().item()
        return hook

    for i, block in enumerate(model.blocks):
        block.register_forward_hook(rms(i))
        block.attn.record_stats = True
    for x, y in batches:
        with step.rt.autocast:
            loss = lm_loss(model(x), y)
        (loss / len(batches)).backward()
    for i, block in enumerate(model.blocks):
        out[f"diag/attn_logit_std/block_{i}"] = block.attn.last_logit_std.item()
        out[f"diag/attn_entropy/block_{i}"] = block.attn.last_entropy.item()
        ent = torch.special.entr(block.attn.last_attn.float()).sum(-1).mean(dim=(0, 2))  # (B, nh, T, T) -> (nh,)
        out.update({f"diag/attn_entropy/block_{i}/head_{h}": e for h, e in enumerate(ent.tolist())})
    grads = {name: p.grad for name, p in model.named_parameters()}  # a tied weight once, as tok_emb.weight
    out.update({f"diag/grad_norm/{g}": v for g, v in norms_by_group(grads).items()})
    out.update({f"diag/grad_norm/param/{name}": g.double().norm().item() for name, g in grads.items()})
    out["diag/grad_norm"] = torch.nn.utils.get_total_norm(list(grads.values())).item()  # what clipping sees
    return out


def update_ratios(before: torch.nn.Module, after: torch.nn.Module) -> dict[str, float]:
    """||W_after - W_before|| / ||W_before|| per group, from the weights themselves."""
    old = dict(before.named_parameters())
    delta = norms_by_group({n: p.detach() - old[n].detach() for n, p in after.named_parameters()})
    weight = norms_by_group({n: p.detach() for n, p in old.items()})
    return {f"diag/update_ratio/{g}": delta[g] / weight[g] for g in delta}


def basic_keys(n_layer: int) -> set[str]:
    groups = ["embedding", *(f"block_{i}" for i in range(n_layer)), "head"]
    keys = {"diag/grad_norm", "diag/peak_mem_mb"}
    keys |= {f"diag/grad_norm/{g}" for g in groups} | {f"diag/update_ratio/{g}" for g in groups}
    for i in range(n_layer):
        keys |= {f"diag/attn_logit_std/block_{i}", f"diag/attn_entropy/block_{i}", f"diag/act_rms/block_{i}"}
    return keys


def at_init(level: str = "basic", seed: int = 0, **model) -> dict[str, float]:
    _, rows, _ = train(run_config(level, seed=seed, **model), 1)
    return rows[0]


def test_auto_trains_in_bf16_where_the_cpu_multiplies_bf16():
    from gptlab.train.device import native_bf16_cpu

    rt = train_step(run_config()).rt
    assert rt.dtype == (torch.bfloat16 if native_bf16_cpu() else torch.float32)


# ---- levels and keys ---------------------------------------------------------------------------

def test_off_logs_nothing_and_is_never_active():
    step, rows, _ = train(run_config("off"), 3)
    assert rows == []
    assert not any(step.diag.active(s) for s in range(1, 50))
    assert step.diag.collect() == {}


def test_basic_logs_the_documented_keys_only_on_log_steps():
    _, rows, _ = train(run_config(n_layer=3, log_interval=3), 7)
    assert [r["step"] for r in rows] == [3, 6]
    for row in rows:
        assert set(row) - {"step"} == basic_keys(3)  # CPU: no MFU (documented)
        assert all(isinstance(v, float) and math.isfinite(v) for k, v in row.items() if k != "step")


def test_full_adds_per_head_and_per_tensor_keys():
    _, rows, refs = train(run_config("full", n_head=4, n_embd=32), 1, check=True)
    row, ref = rows[0], refs[0]
    assert basic_keys(2) <= set(row)
    for i in range(2):
        heads = [row[f"diag/attn_entropy/block_{i}/head_{h}"] for h in range(4)]
        assert heads == pytest.approx([ref[f"diag/attn_entropy/block_{i}/head_{h}"] for h in range(4)], rel=REL)
        assert sum(heads) / 4 == pytest.approx(row[f"diag/attn_entropy/block_{i}"], rel=1e-5)
        stds = [row[f"diag/attn_logit_std/block_{i}/head_{h}"] for h in range(4)]
        assert all(s > 0 for s in stds)
    params = {k: v for k, v in row.items() if k.startswith("diag/grad_norm/param/")}
    assert params == pytest.approx({k: v for k, v in ref.items() if k.startswith("diag/grad_norm/param/")}, rel=REL)
    assert "diag/grad_norm/param/blocks.0.attn.qkv.weight" in row
    assert "diag/grad_norm/param/lm_head.weight" not in row  # tied: counted once, as tok_emb.weight


def test_unknown_level_is_rejected():
    with pytest.raises(ValueError, match="basic, full, off"):
        build_diagnostics("verbose", build_model(run_config().model), resolve_runtime(run_config().train), 10)


# ---- grad norms, update ratios, activations and attention against the reference ------------------

@pytest.mark.parametrize("tie", [True, False])
def test_every_parameter_in_exactly_one_group(tie):
    model = build_model(run_config(tie_weights=tie, bias=True, pos_encoding="learned").model)
    groups = layer_groups(model)
    ids = [id(p) for members in groups.values() for _, p in members]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert list(groups) == ["embedding", "block_0", "block_1", "head"]
    assert any(name == "lm_head.weight" for name, _ in groups["head"]) is not tie


def test_every_number_equals_a_reference_update_of_the_same_batches():
    # two micro-batches, clipping at 0.2 (so the pre-clip norm is not the clipped one), every second step
    cfg = run_config(n_layer=3, log_interval=2, grad_accum=2, grad_clip=0.2, tie_weights=False)
    step, rows, refs = train(cfg, 4, check=True)
    assert [r["step"] for r in rows] == [2, 4] and len(step.sampler.batches) == 8
    for row, ref in zip(rows, refs):
        assert ref["diag/grad_norm"] > 0.2  # clipping acted on this update
        logged = {k: v for k, v in row.items() if k in ref}
        assert set(logged) == set(row) - {"step", "diag/peak_mem_mb"}
        assert logged == pytest.approx({k: ref[k] for k in logged}, rel=REL)
        groups = [row[f"diag/grad_norm/{g}"] for g in ("embedding", "block_0", "block_1", "block_2", "head")]
        assert math.sqrt(sum(g * g for g in groups)) == pytest.approx(row["diag/grad_norm"], rel=1e-5)


def test_without_residuals_or_norms_no_gradient_reaches_the_embedding_at_depth():
    # untied, so the embedding group holds only what flows back through all 8 blocks
    common = dict(n_layer=8, n_embd=64, n_head=4, block_size=32, tie_weights=False)
    res = at_init(norm="none", residual=True, **common)["diag/grad_norm/embedding"]
    nores = at_init(norm="none", residual=False, **common)["diag/grad_norm/embedding"]
    assert res > 1e-3
    assert nores / res < 1e-6  # measured: exactly 0 in bf16 autocast as in float32 (vanished); 1e-8 at 2 layers
    res_ln = at_init(norm="layernorm", residual=True, **common)["diag/grad_norm/embedding"]
    nores_ln = at_init(norm="layernorm", residual=False, **common)["diag/grad_norm/embedding"]
    assert 0.1 < nores_ln / res_ln < 10  # measured ~1.3 (float32: ~0.6): LayerNorm rescales the signal in each block


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
    cfg = run_config(n_layer=2, n_embd=32, block_size=16).model
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
    step = train_step(run_config())
    step.diag.peak_flops = 1e12  # as on a known GPU
    step(LR, measure=True)
    row = step.diag.collect(tokens_per_s=2000.0)
    assert row["diag/mfu"] == pytest.approx(step.diag.flops_per_token * 2000.0 / 1e12)
