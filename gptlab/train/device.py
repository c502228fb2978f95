"""Where and how a run computes: device, dtype, autocast and compile, resolved once from the config."""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """`model` on this runtime's device with every attention layer on this runtime's kernel: how a
        model trains, is evaluated and is measured."""
        model.to(self.device)
        model.set_attention_backend(self.attn_backend)
        return model

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
    recipe's shapes, a bf16 matmul runs 3.3-4.3x faster than a float32 one (benchmarks/cpu_speed.md)."""
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
    # on CPU, the fused (flash) kernel is slow in bf16: a bf16 step of the recipe takes 36.6 ms with it and
    # 20.0 ms with the manual path (benchmarks/cpu_speed.md)
    low_precision_cpu = device.type == "cpu" and dtype != torch.float32
    attn_backend = cfg.attn_backend if cfg.attn_backend != "auto" else "manual" if low_precision_cpu else "fused"
    # auto compiles on CUDA only: on CPU a compiled step saves ~6% of its time but compiling costs tens of
    # seconds, more than a CPU-sized run gets back (benchmarks/compile_cpu.md)
    compile_ = _switch(cfg.compile, cuda)
    return Runtime(device, dtype, compile_, cuda_graphs=compile_ and cuda and _switch(cfg.cuda_graphs, True),
                   fused_adamw=_switch(cfg.fused_adamw, cuda), device_sampling=_switch(cfg.device_sampling, cuda),
                   attn_backend=attn_backend)


def kept_runtime(runtime: Runtime, cfg: TrainConfig, stored: Mapping[str, Any] | None) -> Runtime:
    """`runtime` with the dtype and attention kernel a stored run trained with (its config.yaml's
    `provenance`), for resuming or re-scoring it: a run never changes arithmetic between attempts (a
    resume on another machine) or between training and `gptlab eval`. Runs stored before provenance
    recorded them (gptlab 0.2.0 and earlier) had resolved `auto` to float32 on a CPU and to the fused
    kernel everywhere."""
    if stored is None:  # nothing readable on disk: this machine's resolution
        return runtime
    prov = stored.get("provenance") or {}
    if prov.get("dtype") in _DTYPES:
        dtype = _DTYPES[prov["dtype"]]
    elif "dtype" not in prov and cfg.dtype == "auto" and runtime.device.type == "cpu":
        dtype = torch.float32
    else:
        dtype = runtime.dtype
    if prov.get("attention") in ("fused", "manual"):
        attention = prov["attention"]
    elif "attention" not in prov and cfg.attn_backend == "auto":
        attention = "fused"
    else:
        attention = runtime.attn_backend
    return dataclasses.replace(runtime, dtype=dtype, attn_backend=attention)


def _switch(value: bool | str, auto: bool) -> bool:
    return auto if value == "auto" else bool(value)


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)
