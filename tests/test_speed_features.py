"""Every speed feature has an off switch, and switching it gives the same training on the same seed."""
import json
import math
from pathlib import Path

import pytest
import torch
from scipy import stats

from gptlab.config import build_config
from gptlab.dataset import load_data
from gptlab.model import build_model
from gptlab.train.device import resolve_runtime
from gptlab.train.step import BatchSampler, TrainStep
from tests.conftest import TINY, cli, tiny_args

CUDA = torch.cuda.is_available()


def train_step(**changes) -> TrainStep:
    """The trainer's own step for a tiny real model (2 layers, 32 wide), seeded."""
    cfg = build_config({**TINY, "n_layer": 2, "n_embd": 32, "wandb": "disabled", "diagnostics": "off", **changes})
    data = load_data(cfg.data, cfg.model.block_size)
    cfg = cfg.replace(vocab_size=data.tokenizer.vocab_size)
    runtime = resolve_runtime(cfg.train)
    torch.manual_seed(0)
    model = build_model(cfg.model).to(runtime.device)
    return TrainStep(cfg, model, runtime, data.train.to(runtime.device))


def losses(**changes) -> list[float]:
    """Six real training steps of a tiny model; the losses as floats."""
    step = train_step(**changes)
    return [step(1e-2).item() for _ in range(6)]


def test_cpu_auto_is_eager_with_bf16_only_where_the_cpu_multiplies_bf16(monkeypatch):
    """auto on CPU: no compile, CUDA graphs, fused AdamW or device sampling; bf16 autocast with the manual
    attention path where the CPU has bf16 matmuls, else float32 with the fused kernel; explicit keys win."""
    import gptlab.train.device as device

    for native in (False, True):
        monkeypatch.setattr(device, "native_bf16_cpu", lambda: native)
        rt = resolve_runtime(build_config({"device": "cpu"}).train)
        assert (rt.compile, rt.cuda_graphs, rt.fused_adamw, rt.device_sampling) == (False, False, False, False)
        assert (rt.dtype, rt.attn_backend) == ((torch.bfloat16, "manual") if native else (torch.float32, "fused"))
        step = train_step(device="cpu")  # the trainer puts every attention layer on the runtime's kernel
        assert {block.attn.backend for block in step.model.blocks} == {rt.attn_backend}
    rt = resolve_runtime(build_config({"device": "cpu", "dtype": "float32"}).train)
    assert (rt.dtype, rt.attn_backend) == (torch.float32, "fused")
    rt = resolve_runtime(build_config({"device": "cpu", "attn_backend": "fused"}).train)
    assert (rt.dtype, rt.attn_backend) == (torch.bfloat16, "fused")


def test_native_bf16_detection_agrees_with_the_cpu_flags():
    """Checked against the kernel's own list of CPU features, not torch's."""
    from gptlab.train.device import native_bf16_cpu

    cpuinfo = Path("/proc/cpuinfo")
    lines = [line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")] if cpuinfo.exists() else []
    if not lines:
        pytest.skip("no x86 feature flags in /proc/cpuinfo")
    flags = set(lines[0].split())
    assert native_bf16_cpu() == bool({"avx512_bf16", "amx_bf16"} & flags)


@pytest.mark.parametrize("on,off", [
    ({"attn_backend": "fused"}, {"attn_backend": "manual"}),
    ({"fused_adamw": True}, {"fused_adamw": False}),
])
def test_feature_on_and_off_train_the_same(on, off):
    assert losses(dtype="float32", **on) == pytest.approx(losses(dtype="float32", **off), rel=1e-4, abs=1e-5)


def test_bf16_autocast_stays_close_to_float32():
    assert losses(dtype="bfloat16") == pytest.approx(losses(dtype="float32"), abs=0.05)


def test_torch_compile_trains_the_same():
    """At TINY's shape (1 layer, 16 wide): where dtype auto is float32, test_compile.py's runs compile this same
    train graph, and inductor's on-disk cache spares the second file's cold compile (~30 s on a CPU)."""
    pytest.importorskip("torch._inductor")
    tiny = {"n_layer": TINY["n_layer"], "n_embd": TINY["n_embd"], "dtype": "float32"}
    assert losses(compile=True, **tiny) == pytest.approx(losses(compile=False, **tiny), rel=1e-3, abs=1e-4)


@pytest.mark.skipif(not CUDA, reason="CUDA graphs need a GPU")
def test_cuda_graphs_train_the_same():
    assert losses(compile=True, cuda_graphs=True, device="cuda") == \
        pytest.approx(losses(compile=True, cuda_graphs=False, device="cuda"), rel=1e-3, abs=1e-3)


def test_diagnostics_on_and_off_train_the_same():
    """The trainer's schedule: measure on log steps only. On: hooks fire and metrics appear; off: nothing."""
    results = {}
    for level in ("basic", "off"):
        step = train_step(diagnostics=level, log_interval=2)
        measured, row_losses, rows = [], [], []
        for n in range(1, 7):
            measure = step.diag.active(n)
            measured.append(measure)
            row_losses.append(step(1e-2, measure=measure).item())
            if measure:
                rows.append(step.diag.collect())
        for block in step.model.blocks:  # everything switched off again after a measured step
            assert not block._forward_hooks and not block.attn.record_stats and block.attn.last_attn is None
        results[level] = (measured, row_losses, rows)
    measured, on_losses, rows = results["basic"]
    assert measured == [False, True] * 3 and len(rows) == 3
    T = TINY["block_size"]
    for row in rows:
        assert row["diag/grad_norm"] > 0
        for i in range(2):
            assert row[f"diag/act_rms/block_{i}"] > 0 and row[f"diag/update_ratio/block_{i}"] > 0
            assert 0 < row[f"diag/attn_entropy/block_{i}"] < math.log(T)
            assert row[f"diag/attn_logit_std/block_{i}"] > 0
    assert results["off"][0] == [False] * 6 and results["off"][2] == []
    assert on_losses == pytest.approx(results["off"][1], rel=1e-4, abs=1e-5)


@pytest.mark.skipif(not CUDA, reason="on CPU, device_sampling=true and false both draw from the same CPU "
                                     "generator: there is no second path to compare")
def test_device_sampling_on_and_off_train_alike():
    on, off = train_step(device="cuda", device_sampling=True), train_step(device="cuda", device_sampling=False)
    assert on.sampler.generator.device.type == "cuda" and off.sampler.generator.device.type == "cpu"
    a, b = [on(1e-2).item() for _ in range(20)], [off(1e-2).item() for _ in range(20)]
    # other batches, so not the same numbers: the same model at init, and the same descent. On CPU, four
    # sampler seeds give first losses within 0.011 and last-5-step means within 0.1 of each other.
    assert a[0] == pytest.approx(b[0], abs=0.05)
    end_a, end_b = sum(a[-5:]) / 5, sum(b[-5:]) / 5
    assert end_a < a[0] - 0.5 and end_b < b[0] - 0.5 and end_a == pytest.approx(end_b, abs=0.2)


@pytest.mark.skipif(not CUDA, reason="on CPU, device_sampling=true and false both draw from the same CPU "
                                     "generator: there is no second distribution to compare")
def test_device_sampler_draws_uniform_windows_like_the_plain_one():
    data = torch.arange(1000)
    draws = {}
    for on_device in (True, False):
        sampler = BatchSampler(data.to("cuda"), batch_size=500, block_size=8, seed=0, on_device=on_device)
        assert sampler.generator.device.type == ("cuda" if on_device else "cpu")
        starts = torch.cat([sampler()[0][:, 0].cpu() for _ in range(40)])  # 20,000 window starts
        x, y = sampler()
        assert x.device.type == "cuda" and torch.equal(x[:, 1:], y[:, :-1]) and torch.equal(y[:, 0], x[:, 0] + 1)
        draws[on_device] = starts.numpy()
        assert stats.kstest(starts.numpy() / 992, "uniform").pvalue > 1e-3
    assert stats.ks_2samp(draws[True], draws[False]).pvalue > 1e-3


def test_cpu_sampler_draws_uniform_shifted_windows():
    sampler = BatchSampler(torch.arange(1000), batch_size=500, block_size=8, seed=0, on_device=False)
    starts = torch.cat([sampler()[0][:, 0] for _ in range(40)])  # 20,000 window starts
    x, y = sampler()
    assert torch.equal(x[:, 1:], y[:, :-1]) and torch.equal(y[:, 0], x[:, 0] + 1)
    assert stats.kstest(starts.numpy() / 992, "uniform").pvalue > 1e-3


def test_bench_runs_on_cpu_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    result = cli("bench", *tiny_args(), "--steps", "3", "--warmup", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    labels = [r["label"] for r in data["results"]]
    # each feature that is on here gets a row with it off; on a CPU with bf16 matmuls that is bf16 autocast
    # (whose auto attention is the manual path), elsewhere the fused attention kernel
    rt = resolve_runtime(build_config(TINY).train)
    on_here = "bf16 autocast" if rt.dtype == torch.bfloat16 else "fused attention"
    assert labels[0].startswith("gptlab") and "plain eager loop" in labels and f"{on_here} off" in labels
    if rt.attn_backend == "manual":  # auto's kernel choice has its own row
        assert "manual attention off" in labels
    assert all(r["median_ms"] > 0 and r["tokens_per_s"] > 0 for r in data["results"])
    assert "torch.compile" in data["features_off_on_this_device"]
    assert "median ms" in result.stdout
