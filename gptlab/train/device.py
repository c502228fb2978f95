"""Where and how a run computes: device, dtype, autocast and compile, resolved once from the config."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from gptlab.config import TrainConfig
from gptlab.errors import ConfigError

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    dtype: torch.dtype      # autocast dtype (float32 = no autocast)
    compile: bool
    cuda_graphs: bool = False      # torch.compile mode="reduce-overhead" (static shapes)
    fused_adamw: bool = False      # one fused kernel for the optimizer step
    device_sampling: bool = False  # batch offsets drawn by a generator on the device: no host->device copy
    attn_backend: str = "fused"    # "fused" (scaled_dot_product_attention) or "manual" (matmul + softmax)

    @property
    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    @property
    def needs_scaler(self) -> bool:
        return self.dtype == torch.float16


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("CUDA is not available on this machine", key="device", fix="use device=auto or cpu")
    if name.startswith("cuda:") and int(name[5:]) >= torch.cuda.device_count():
        raise ConfigError(f"no such GPU: {name} ({torch.cuda.device_count()} visible)", key="device",
                          fix="use a visible GPU index")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("MPS is not available on this machine", key="device", fix="use device=auto or cpu")
    return torch.device(name)


def native_bf16_cpu() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AVX512-BF16 or AMX). There, on nanoGPT's CPU
    recipe, a bf16 matmul runs 2-4x faster than an fp32 one (benchmarks/cpu_speed.md)."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def resolve_runtime(cfg: TrainConfig) -> Runtime:
    device = pick_device(cfg.device)
    cuda = device.type == "cuda"
    if cfg.dtype == "auto":
        # bf16 autocast wherever the hardware has bf16 matmuls, as nanoGPT does on its GPUs
        native_bf16 = torch.cuda.is_bf16_supported() if cuda else device.type == "cpu" and native_bf16_cpu()
        dtype = torch.bfloat16 if native_bf16 else torch.float32
    else:
        dtype = _DTYPES[cfg.dtype]
    # on CPU, the fused (flash) kernel's bf16 backward is slower than the whole manual path's bf16
    # matmuls: 41.5 vs 23.4 ms per step on the recipe (benchmarks/cpu_speed.md)
    low_precision_cpu = device.type == "cpu" and dtype != torch.float32
    attn_backend = cfg.attn_backend if cfg.attn_backend != "auto" else "manual" if low_precision_cpu else "fused"
    # auto compiles on CUDA only: on CPU a compiled step saves ~6% of its time but compiling costs tens of
    # seconds, more than a CPU-sized run gets back (benchmarks/compile_cpu.md)
    compile_ = _switch(cfg.compile, cuda)
    return Runtime(device, dtype, compile_, cuda_graphs=compile_ and cuda and _switch(cfg.cuda_graphs, True),
                   fused_adamw=_switch(cfg.fused_adamw, cuda), device_sampling=_switch(cfg.device_sampling, cuda),
                   attn_backend=attn_backend)


def _switch(value: bool | str, auto: bool) -> bool:
    return auto if value == "auto" else bool(value)


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)
