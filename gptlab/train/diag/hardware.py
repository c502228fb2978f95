"""Model FLOPs per token, device peak FLOP/s and peak memory: the inputs of MFU and `diag/peak_mem_mb`.

FLOPs per trained token follow PaLM (Chowdhery et al. 2022, appendix B): 6 N for the matmuls of the
forward and backward pass, N the matmul weights (every parameter except the embedding tables, plus
the LM head, which multiplies even when it is tied to tok_emb), and 12 L T C for the attention
scores and weighted sums (the causal half is not subtracted, as in PaLM and nanoGPT).

Peak FLOP/s are dense (no sparsity) tensor-core numbers from the vendors' data sheets, looked up by
the CUDA device name. MFU is omitted (no `diag/mfu` key) on CPU, MPS and unknown GPUs: a CPU's peak
depends on cores, SIMD width and clocks under load, and a nominal number would make the ratio look
more precise than it is.
"""
from __future__ import annotations

import resource
import sys

import torch
from torch import nn

# name fragment (matched in order, case-insensitive) -> peak FLOP/s by compute type
PEAK_FLOPS: list[tuple[str, dict[str, float]]] = [
    ("H100 PCIe", {"bf16": 756e12, "tf32": 378e12, "fp32": 51e12}),
    ("H100", {"bf16": 989e12, "tf32": 494e12, "fp32": 67e12}),   # SXM; NVL is close
    ("H200", {"bf16": 989e12, "tf32": 494e12, "fp32": 67e12}),   # same compute as H100 SXM
    ("A100", {"bf16": 312e12, "tf32": 156e12, "fp32": 19.5e12}),
    ("L4", {"bf16": 121e12, "tf32": 60e12, "fp32": 30e12}),
    ("V100", {"bf16": 125e12, "tf32": 15.7e12, "fp32": 15.7e12}),  # no bf16: fp16 tensor cores
]


def flops_per_token(model: nn.Module, seq_len: int, members: int = 1) -> float:
    """Training FLOPs (forward + backward) per token at context length `seq_len`; of one member
    when `model` stacks `members` models (every weight (M, ...))."""
    cfg = model.config
    n_matmul = model.num_params(non_embedding=True)
    if cfg.tie_weights:
        n_matmul += model.tok_emb.weight.numel()  # the tied LM head still multiplies (V, C)
    n_matmul //= members
    return 6.0 * n_matmul + 12.0 * cfg.n_layer * seq_len * cfg.n_embd


def compute_type(dtype: torch.dtype) -> str:
    if dtype in (torch.bfloat16, torch.float16):
        return "bf16"
    return "tf32" if torch.get_float32_matmul_precision() != "highest" else "fp32"


def peak_flops(device: torch.device, dtype: torch.dtype) -> float | None:
    """Dense peak FLOP/s of a known CUDA GPU for this autocast dtype; None elsewhere."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device).lower()
    for fragment, peaks in PEAK_FLOPS:
        if fragment.lower() in name:
            return peaks[compute_type(dtype)]
    return None


def peak_memory_mb(device: torch.device) -> float | None:
    """CUDA: the allocator's peak since start (or the last reset). Elsewhere: the process's peak RSS,
    which also counts Python, torch and the data, so it is an upper bound of the training memory."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return peak_rss_mb()


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux
