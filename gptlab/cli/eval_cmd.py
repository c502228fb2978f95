"""`gptlab eval RUN_DIR [--block-size N ...]`: validation loss at the run's own and other context lengths."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gptlab.errors import UserError


def eval(run_dir: Annotated[Path, typer.Argument(help="A run directory (runs/<experiment>/<run>).")],
         more: Annotated[list[str] | None, typer.Argument(
             metavar="[N ...]", help="More context lengths: `--block-size 512 1024` reads both.")] = None,
         block_size: Annotated[list[str] | None, typer.Option(
             "--block-size", help="Context length(s) to evaluate at, besides the run's own; repeat the "
                                  "flag, list several after it, or comma-separate.")] = None,
         device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N, mps.")] = "auto",
         ) -> None:
    """Evaluate a trained run's val loss at its block size and at other context lengths; writes
    RUN_DIR/length_eval.json."""
    from gptlab.diagnostics.length import length_eval

    lengths = _lengths([*(block_size or []), *(more or [])])
    results = length_eval(run_dir, lengths, device)
    trained = results[0]["block_size"]
    print(f"{'block_size':>10}  {'val_loss':>8}")
    for row in results:
        note = "  (trained)" if row["block_size"] == trained else ""
        print(f"{row['block_size']:>10}  {row['val_loss']:8.4f}{note}")
    print(f"wrote {Path(run_dir) / 'length_eval.json'}")


def _lengths(values: list[str]) -> list[int]:
    out = []
    for value in values:
        for part in filter(None, value.split(",")):
            try:
                out.append(int(part))
            except ValueError:
                raise UserError(f"'{part}' is not a context length", key="--block-size",
                                fix="give whole numbers, e.g. --block-size 512 1024") from None
    return out
