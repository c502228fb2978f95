"""Every head's attention pattern for one prompt: a layers x heads grid of (T, T) maps, PNG and SVG."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from gptlab.dataset import read_text
from gptlab.errors import UserError
from gptlab.train.loading import TrainedRun, load_run

MAX_TICK_LABELS = 48  # longer prompts get no per-character ticks: they would overlap
_SHOWN = {"\n": "\\n", " ": "␣", "\t": "\\t"}


@torch.no_grad()
def attention_maps(model: nn.Module, ids: Tensor) -> Tensor:
    """(n_layer, nh, T, T) attention probabilities for ids (1, T); the model is left as it was."""
    attns = [block.attn for block in model.blocks]
    was_training = model.training
    model.eval()
    try:
        for attn in attns:
            attn.record_stats = True
        model(ids)
        maps = torch.stack([attn.last_attn[0].float().cpu() for attn in attns])  # (L, nh, T, T)
    finally:
        for attn in attns:
            attn.record_stats = False
            attn.last_logit_std = attn.last_entropy = attn.last_attn = None
        model.train(was_training)
    return maps


def default_prompt(run: TrainedRun, length: int) -> str:
    """The start of the run's validation text, when no prompt is given."""
    try:
        text, _ = read_text(run.config.data.path)
    except UserError:
        raise UserError("the run's data file is not available for a default prompt", key="--prompt",
                        fix="give --prompt TEXT") from None
    n_val = int(len(text) * run.config.data.val_fraction)
    return text[len(text) - n_val:][:length]


def draw(maps: Tensor, tokens: list[str], title: str, out_dir: Path, stem: str = "attention") -> list[Path]:
    """Grid of imshow panels, rows = layers, columns = heads; returns [png, svg]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    L, H, T, _ = maps.shape
    size = min(4.0, max(2.2, 0.11 * T)) if T <= MAX_TICK_LABELS else 2.2
    norm = matplotlib.colors.PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0)  # shows the small weights too
    with matplotlib.rc_context({"svg.hashsalt": "gptlab", "svg.fonttype": "path", "font.size": 7}):
        fig, axes = plt.subplots(L, H, figsize=(size * H + 1.0, size * L + 0.6), squeeze=False)
        labels = [_SHOWN.get(c, c) for c in tokens] if T <= MAX_TICK_LABELS else None
        for i in range(L):
            for h in range(H):
                ax = axes[i][h]
                image = ax.imshow(maps[i, h].numpy(), cmap="viridis", norm=norm, interpolation="nearest")
                if labels:
                    ax.set_xticks(range(T), labels, fontsize=6)
                    ax.set_yticks(range(T), labels, fontsize=6)
                else:
                    ax.set_xticks([])
                    ax.set_yticks([])
                ax.tick_params(length=0, pad=1)
                if i == 0:
                    ax.set_title(f"head {h}")
                if h == 0:
                    ax.set_ylabel(f"layer {i}\nquery", fontsize=7)
                if i == L - 1:
                    ax.set_xlabel("key")
        fig.suptitle(title, fontsize=8)
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, label="attention (sqrt scale)")
        out_dir.mkdir(parents=True, exist_ok=True)
        png, svg = out_dir / f"{stem}.png", out_dir / f"{stem}.svg"
        fig.savefig(png, metadata={"Software": None}, dpi=120)
        fig.savefig(svg, metadata={"Date": None, "Creator": None})
        plt.close(fig)
    return [png, svg]


def attention_figure(run_dir: str | Path, prompt: str | None, out_dir: str | Path | None = None,
                     device: str = "cpu") -> list[Path]:
    """Load the run, run the prompt through it, draw every head; default out = RUN_DIR/attention/."""
    run = load_run(run_dir, device)
    cfg = run.config.model
    if prompt is None:
        prompt = default_prompt(run, min(cfg.block_size, 32))
    if not prompt:
        raise UserError("empty prompt", key="--prompt", fix="give at least one character")
    if not cfg.trait("pos_encoding", "any_length") and len(prompt) > cfg.block_size:
        raise UserError(f"the prompt has {len(prompt)} characters; learned positions stop at "
                        f"block_size={cfg.block_size}", key="--prompt", fix="give a shorter prompt")
    ids = torch.tensor([run.tokenizer.encode(prompt)], dtype=torch.long, device=device)  # (1, T)
    maps = attention_maps(run.model, ids)
    title = f"{Path(run_dir).name}: {cfg.n_layer} layers x {cfg.n_head} heads, {len(prompt)} tokens"
    return draw(maps, list(prompt), title, Path(out_dir) if out_dir else Path(run_dir) / "attention")
