"""`gptlab generate RUN_DIR`: sample text from a trained run."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gptlab.errors import UserError


def generate(run_dir: Annotated[Path, typer.Argument(help="A run directory (runs/<experiment>/<run>).")],
             prompt: Annotated[str, typer.Option(help="Text to continue.")] = "\n",
             max_new_tokens: Annotated[int, typer.Option(help="Characters to generate.")] = 500,
             temperature: Annotated[float, typer.Option(help="0 = greedy; <1 sharper, >1 flatter.")] = 0.8,
             top_k: Annotated[int | None, typer.Option(help="Sample only from the k most likely tokens.")] = None,
             top_p: Annotated[float | None, typer.Option(help="Nucleus: smallest set with this mass.")] = None,
             seed: Annotated[int, typer.Option(help="Sampling seed (same seed, same text).")] = 0,
             device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N, mps.")] = "auto",
             ) -> None:
    """Sample text from a trained run; deterministic for a fixed seed."""
    import torch

    from gptlab.sample import generate as sample
    from gptlab.train.device import pick_device
    from gptlab.train.loading import load_run

    if max_new_tokens < 0 or temperature < 0 or (top_k is not None and top_k < 1) or \
            (top_p is not None and not 0 < top_p <= 1):
        raise UserError("invalid sampling options", fix="max-new-tokens >= 0, temperature >= 0, top-k >= 1, "
                        "0 < top-p <= 1")
    dev = pick_device(device)
    run = load_run(run_dir, dev)
    if not prompt:
        raise UserError("empty prompt", key="--prompt", fix="give at least one character")
    ids = torch.tensor([run.tokenizer.encode(prompt)], dtype=torch.long, device=dev)  # (1, T)
    gen = torch.Generator(device=dev).manual_seed(seed)
    out = sample(run.model, ids, max_new_tokens, run.config.model.block_size, temperature=temperature,
                 top_k=top_k, top_p=top_p, generator=gen)
    print(run.tokenizer.decode(out[0].tolist()))
