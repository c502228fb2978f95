"""The coordinate check of μP (Yang et al. 2022, Tensor Programs V, sec. 7 / fig. 5; the `mup` package's
`get_coord_data`): train a few steps at several widths and record each layer's activation scale,
mean |x| over every coordinate, after each step. Under μP every curve is flat in width; under the
standard parametrization the layers that updates make correlated with their input (the logits first)
grow with width.

Widths keep the config's head size and change n_head (n_head = width / head_size), as μP keeps the
head dimension fixed and counts width in heads; everything else (depth, mlp_ratio, mup_base_width,
lr, seed) stays the config's. Each width trains through the trainer's own step (gptlab/train/step.py:
its optimizer, clipping, micro-batches, the same batches for every width), at the config's peak lr
held constant (no warmup: a few steps are the point). After step k (k = 0 is the initial model) one
fixed validation batch runs through the model in eval mode with forward hooks on:

    embedding          the token embedding's output (before positions and dropout)
    block.i.attn       block i's attention output (before the residual add)
    block.i.mlp        block i's MLP output
    block.i            block i's output (the residual stream)
    logits             the model's output

Depth is out of scope (μP's depth extensions, e.g. Depth-μP, are not implemented).
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from gptlab.config import RunConfig
from gptlab.dataset import load_data, sample_batch
from gptlab.errors import ConfigError, UserError
from gptlab.model import build_model
from gptlab.train.device import resolve_runtime
from gptlab.train.step import TrainStep

FIELDS = ("width", "n_head", "step", "layer", "scale")


@dataclass(frozen=True)
class CoordCheck:
    """One row per (width, step, layer): mean |activation| of that layer's output."""
    rows: list[dict]
    parametrization: str

    def layers(self) -> list[str]:
        return list(dict.fromkeys(r["layer"] for r in self.rows))

    def steps(self) -> list[int]:
        return sorted({r["step"] for r in self.rows})

    def widths(self) -> list[int]:
        return sorted({r["width"] for r in self.rows})

    def scales(self, layer: str, step: int) -> list[float]:
        """The layer's scale at each width (widths() order)."""
        by_width = {r["width"]: r["scale"] for r in self.rows if r["layer"] == layer and r["step"] == step}
        return [by_width[w] for w in self.widths()]

    def slope(self, layer: str, step: int) -> float:
        """Least-squares slope of log(scale) against log(width): 0 = flat, 1 = grows like width."""
        xs = [math.log(w) for w in self.widths()]
        ys = [math.log(s) for s in self.scales(layer, step)]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def width_config(cfg: RunConfig, width: int) -> RunConfig:
    """The config at `width` with the head size kept; UserError (exit 2) when it cannot be built."""
    head = cfg.model.head_size
    if width < head or width % head:
        raise UserError(f"width {width} cannot be built: it must be a multiple of the head size {head} "
                        f"(n_embd {cfg.model.n_embd} / n_head {cfg.model.n_head})", key="--widths",
                        fix=f"use multiples of {head}, or change n_embd / n_head")
    try:
        return cfg.replace(n_embd=width, n_head=width // head)
    except ConfigError as err:
        raise UserError(f"width {width} cannot be built: {err.one_line()}", key="--widths") from None


def _probes(model: nn.Module) -> dict[str, nn.Module]:
    probes = {"embedding": model.tok_emb}
    for i, block in enumerate(model.blocks):
        for part in ("attn", "mlp"):
            if isinstance(getattr(block, part, None), nn.Module):
                probes[f"block.{i}.{part}"] = getattr(block, part)
        probes[f"block.{i}"] = block
    probes["logits"] = model
    return probes


@torch.no_grad()
def _measure(model: nn.Module, x: torch.Tensor, autocast) -> dict[str, float]:  # noqa: ANN001
    """mean |output| of every probed module on batch x (B, T), eval mode."""
    seen: dict[str, torch.Tensor] = {}

    def hook(name: str):  # noqa: ANN202
        return lambda _module, _inputs, out: seen.__setitem__(name, out.float().abs().mean())

    hooks = [m.register_forward_hook(hook(name)) for name, m in _probes(model).items()]
    was_training = model.training
    model.eval()
    try:
        with autocast:
            model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return {name: float(v) for name, v in seen.items()}


def coord_check(cfg: RunConfig, widths: list[int], steps: int) -> CoordCheck:
    """Train `steps` steps at each width; every layer's scale after each step (0 = at init)."""
    configs = [width_config(cfg, w) for w in widths]  # every width checked before any trains
    data = load_data(cfg.data, cfg.model.block_size)
    rows = []
    for w, c in zip(widths, configs):
        c = c.replace(vocab_size=data.tokenizer.vocab_size, compile=False, diagnostics="off", warmup_steps=0)
        runtime = resolve_runtime(c.train)
        torch.manual_seed(c.train.seed)
        model = build_model(c.model).to(runtime.device)
        step = TrainStep(c, model, runtime, data.train.to(runtime.device))
        probe, _ = sample_batch(data.val.to(runtime.device), c.train.batch_size, c.model.block_size,
                                torch.Generator(device=runtime.device if runtime.device_sampling else "cpu")
                                .manual_seed(0))
        for k in range(steps + 1):
            if k:
                step(c.train.lr)
            for layer, scale in _measure(model, probe, runtime.autocast).items():
                rows.append({"width": w, "n_head": c.model.n_head, "step": k, "layer": layer, "scale": scale})
    return CoordCheck(rows, getattr(cfg.model, "parametrization", "standard"))


def write_csv(result: CoordCheck, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(result.rows)
    return path


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return [{"width": int(r["width"]), "n_head": int(r["n_head"]), "step": int(r["step"]),
                 "layer": r["layer"], "scale": float(r["scale"])} for r in csv.DictReader(f)]


def figure(result: CoordCheck, path: Path) -> Path:
    """One panel per step shown (up to four, always the first and the last), x = width (log 2),
    y = mean |x| (log), one line per layer: the mup package's coord-check plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = result.steps()
    shown = sorted({steps[round(i * (len(steps) - 1) / 3)] for i in range(4)}) if len(steps) > 4 else steps
    layers = result.layers()
    colors = plt.get_cmap("viridis")
    fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown), 3.2), sharey=True, squeeze=False)
    for ax, k in zip(axes[0], shown):
        for j, layer in enumerate(layers):
            special = {"logits": ("black", 2.0), "embedding": ("tab:red", 1.5)}.get(layer)
            color, lw = special or (colors(j / max(1, len(layers) - 1)), 0.8)
            ax.plot(result.widths(), result.scales(layer, k), marker=".", color=color, lw=lw,
                    label=layer if special or len(layers) <= 8 else None)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("width (n_embd)")
        ax.set_title(f"{result.parametrization}, after step {k}", fontsize=9)
    axes[0][0].set_ylabel("mean |activation|")
    axes[0][-1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def summary_lines(result: CoordCheck) -> list[str]:
    """The slope of log(scale) against log(width) per layer at the last step (0 = flat)."""
    last = result.steps()[-1]
    lines = [f"coord check ({result.parametrization}), widths {', '.join(map(str, result.widths()))}: "
             f"slope of log mean|x| vs log width after step {last}"]
    lines += [f"  {layer:<16} {result.slope(layer, last):+.2f}" for layer in result.layers()]
    return lines
