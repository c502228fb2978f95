"""The speed features and the override that turns each one off."""
from __future__ import annotations

from gptlab.config import RunConfig
from gptlab.train.device import resolve_runtime

# feature -> (is it on for this config?, overrides that switch it off)
FEATURES: dict[str, tuple[object, dict]] = {
    "torch.compile": (lambda rt, cfg: rt.compile, {"compile": False}),
    "cuda graphs": (lambda rt, cfg: rt.cuda_graphs, {"cuda_graphs": False}),
    "bf16 autocast": (lambda rt, cfg: str(rt.dtype) != "torch.float32", {"dtype": "float32"}),
    "fused AdamW": (lambda rt, cfg: rt.fused_adamw, {"fused_adamw": False}),
    "fused attention": (lambda rt, cfg: rt.attn_backend == "fused", {"attn_backend": "manual"}),
    # auto's choice of the manual path (bf16 on a CPU): its row puts the fused kernel back
    "manual attention": (lambda rt, cfg: rt.attn_backend == "manual" and cfg.train.attn_backend == "auto",
                         {"attn_backend": "fused"}),
    "device sampling": (lambda rt, cfg: rt.device_sampling, {"device_sampling": False}),
    "diagnostics": (lambda rt, cfg: cfg.log.diagnostics != "off", {"diagnostics": "off"}),
}


def feature_variants(cfg: RunConfig) -> list[tuple[str, RunConfig | None]]:
    """[(feature, config with it off)] for every feature; None where it is already off on this device."""
    runtime = resolve_runtime(cfg.train)
    out = []
    for name, (is_on, off) in FEATURES.items():
        out.append((name, cfg.replace(**off) if is_on(runtime, cfg) else None))
    return out
