"""Every speed feature has an off switch, and switching it gives the same training on the same seed."""
import json

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


def losses(**changes) -> list[float]:
    """Six real training steps of a tiny model; the losses as floats."""
    cfg = build_config({**TINY, "n_layer": 2, "n_embd": 32, "wandb": "disabled", "diagnostics": "off", **changes})
    data = load_data(cfg.data, cfg.model.block_size)
    cfg = cfg.replace(vocab_size=data.tokenizer.vocab_size)
    runtime = resolve_runtime(cfg.train)
    torch.manual_seed(0)
    model = build_model(cfg.model).to(runtime.device)
    step = TrainStep(cfg, model, runtime, data.train.to(runtime.device))
    return [step(1e-2).item() for _ in range(6)]


def test_cpu_defaults_are_the_plain_path():
    rt = resolve_runtime(build_config({"device": "cpu"}).train)
    assert (rt.compile, rt.cuda_graphs, rt.fused_adamw, rt.device_sampling, rt.dtype) == \
        (False, False, False, False, torch.float32)


@pytest.mark.parametrize("on,off", [
    ({"attn_backend": "fused"}, {"attn_backend": "manual"}),
    ({"fused_adamw": True}, {"fused_adamw": False}),
    ({"device_sampling": True}, {"device_sampling": False}),
    ({"diagnostics": "basic", "log_interval": 2}, {"diagnostics": "off"}),
])
def test_feature_on_and_off_train_the_same(on, off):
    assert losses(**on) == pytest.approx(losses(**off), rel=1e-4, abs=1e-5)


def test_bf16_autocast_stays_close_to_float32():
    assert losses(dtype="bfloat16") == pytest.approx(losses(dtype="float32"), abs=0.05)


def test_torch_compile_trains_the_same():
    pytest.importorskip("torch._inductor")
    assert losses(compile=True) == pytest.approx(losses(compile=False), rel=1e-3, abs=1e-4)


@pytest.mark.skipif(not CUDA, reason="CUDA graphs need a GPU")
def test_cuda_graphs_train_the_same():
    assert losses(compile=True, cuda_graphs=True, device="cuda") == \
        pytest.approx(losses(compile=True, cuda_graphs=False, device="cuda"), rel=1e-3, abs=1e-3)


def test_device_sampler_draws_uniform_windows_like_the_plain_one():
    data = torch.arange(1000)
    device = "cuda" if CUDA else "cpu"
    draws = {}
    for on_device in (True, False):
        sampler = BatchSampler(data.to(device), batch_size=500, block_size=8, seed=0, on_device=on_device)
        starts = torch.cat([sampler()[0][:, 0].cpu() for _ in range(40)])  # 20,000 window starts
        x, y = sampler()
        assert x.device.type == device and torch.equal(x[:, 1:], y[:, :-1]) and torch.equal(y[:, 0], x[:, 0] + 1)
        draws[on_device] = starts.numpy()
        assert stats.kstest(starts.numpy() / 992, "uniform").pvalue > 1e-3
    assert stats.ks_2samp(draws[True], draws[False]).pvalue > 1e-3


def test_bench_runs_on_cpu_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    result = cli("bench", *tiny_args(), "--steps", "3", "--warmup", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    labels = [r["label"] for r in data["results"]]
    assert labels[0].startswith("gptlab") and "plain eager loop" in labels and "fused attention off" in labels
    assert all(r["median_ms"] > 0 and r["tokens_per_s"] > 0 for r in data["results"])
    assert "torch.compile" in data["features_off_on_this_device"]
    assert "median ms" in result.stdout
