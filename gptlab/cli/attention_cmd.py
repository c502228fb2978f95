"""`gptlab attention RUN_DIR --prompt TEXT [--out DIR]`: every head's attention pattern for a prompt."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def attention(run_dir: Annotated[Path, typer.Argument(help="A run directory (runs/<experiment>/<run>).")],
              prompt: Annotated[str | None, typer.Option(
                  help="Text to run through the model (default: the start of the validation text).")] = None,
              out: Annotated[Path | None, typer.Option(help="Output folder (default: RUN_DIR/attention).")] = None,
              device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N, mps.")] = "cpu",
              ) -> None:
    """Figure (PNG and SVG) of every layer's and head's attention over the prompt."""
    from gptlab.diagnostics.attention_maps import attention_figure
    from gptlab.train.device import pick_device

    for path in attention_figure(run_dir, prompt, out, pick_device(device)):
        print(path)
