"""`gptlab memory [CONFIG.yaml] [OVERRIDE ...]`: peak memory and step time across batch sizes."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gptlab.cli.common import split_config_and_overrides
from gptlab.errors import UserError
from gptlab.overrides import parse_overrides, resolve


def memory(ctx: typer.Context,
           batch_sizes: Annotated[str | None, typer.Option(
               help="Comma-separated batch sizes (default: powers of 2 up to the config's batch_size, "
                    "up to twice it on CUDA).")] = None,
           limit_mb: Annotated[float | None, typer.Option(
               help="Memory budget in MB (default: the device's memory).")] = None,
           steps: Annotated[int, typer.Option(help="Timed steps per batch size (median).")] = 3,
           out: Annotated[Path | None, typer.Option(help="Also write the table as JSON here.")] = None,
           ) -> None:
    """Estimate and measure training memory and step time per batch size; the largest that fits."""
    from gptlab.diagnostics.memory import format_table, memory_table
    from gptlab.train.device import pick_device
    from gptlab.yamlio import atomic_write_json

    config_file, rest = split_config_and_overrides(list(ctx.args))
    cfg, _ = resolve(config_file, parse_overrides(rest))
    if limit_mb is not None and limit_mb <= 0:
        raise UserError("--limit-mb must be positive", key="--limit-mb", fix="give a budget in MB")
    if steps < 1:
        raise UserError("--steps must be at least 1", key="--steps", fix="give 1 or more")
    if batch_sizes is None:
        top = cfg.train.batch_size * (2 if pick_device(cfg.train.device).type == "cuda" else 1)
        sizes = [2**i for i in range(top.bit_length()) if 2**i <= top] + [top]
    else:
        sizes = _sizes(batch_sizes)
    result = memory_table(cfg, sizes, limit_mb, steps)
    print(format_table(result))
    if out is not None:
        atomic_write_json(out, result)
        print(f"wrote {out}")


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise UserError(f"invalid batch sizes '{text}'", key="--batch-sizes", fix="e.g. --batch-sizes 1,2,4,8")
    return sizes
