"""Text samples for the report: per variant, a continuation generated from its best seed's checkpoint.

Uses the loader (gptlab/trained.py, below the trainer) and sampler of `gptlab generate`, imported inside
the function so that `import gptlab.report` stays free of torch. Fixed prompt, seed, temperature and
top-k on the CPU, so the same checkpoint always gives the same text and `gptlab report` stays idempotent.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

PROMPT, SEED, TEMPERATURE, TOP_K, LENGTH = "\n", 0, 0.8, 40, 300


@dataclass(frozen=True)
class Sample:
    variant: str
    run: str | None  # the run it came from (None: no finished run)
    text: str | None  # None: no checkpoint
    why: str = ""  # why there is no text


def settings() -> str:
    return (f"prompt {PROMPT!r}, {LENGTH} characters, temperature {TEMPERATURE}, top-k {TOP_K}, "
            f"sampling seed {SEED}, on the CPU")


def best_runs(runs: pd.DataFrame, labels: list[str], sign: int) -> dict[str, str | None]:
    """Per label, the finished run with the best compared value (ties: first run name)."""
    out: dict[str, str | None] = {}
    for label in labels:
        done = runs[(runs["label"] == label) & (runs["status"] == "finished")].dropna(subset=["value"])
        if not len(done):
            out[label] = None
            continue
        ranked = done.assign(key=done["value"] * -sign).sort_values(["key", "run"], kind="stable")
        out[label] = str(ranked["run"].iloc[0])
    return out


def generate_samples(runs: pd.DataFrame, labels: list[str], sign: int, runs_root: Path | None,
                     experiment: str) -> list[Sample]:
    """One sample per label; a label whose best run has no checkpoint (or no local directory) says so."""
    chosen = best_runs(runs, labels, sign)
    out = []
    for label in labels:
        run = chosen[label]
        if run is None:
            out.append(Sample(label, None, None, "no finished run"))
            continue
        run_dir = Path(runs_root) / experiment / run if runs_root is not None else None
        if run_dir is None or not run_dir.is_dir():
            out.append(Sample(label, run, None, "no checkpoint (run not in a local store)"))
            continue
        out.append(_sample(label, run, run_dir))
    return out


def _sample(label: str, run: str, run_dir: Path) -> Sample:
    import torch

    from gptlab.errors import UserError
    from gptlab.sample import generate
    from gptlab.trained import load_run

    try:
        trained = load_run(run_dir, "cpu")
    except UserError:
        return Sample(label, run, None, "no checkpoint")
    except (OSError, RuntimeError, KeyError, ValueError) as exc:  # a damaged or incompatible checkpoint
        return Sample(label, run, None, f"checkpoint unreadable ({type(exc).__name__})")
    prompt = PROMPT
    try:
        ids = trained.tokenizer.encode(prompt)
    except UserError:  # a vocabulary without a newline: start from its first character
        prompt = trained.tokenizer.decode([0])
        ids = trained.tokenizer.encode(prompt)
    gen = torch.Generator(device="cpu").manual_seed(SEED)
    with torch.no_grad():
        out = generate(trained.model, torch.tensor([ids], dtype=torch.long), LENGTH,
                       trained.config.model.block_size, temperature=TEMPERATURE, top_k=TOP_K, generator=gen)
    text = trained.tokenizer.decode(out[0].tolist()[len(ids):])
    return Sample(label, run, prompt + text)
