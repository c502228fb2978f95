"""Length generalisation: a trained run's validation loss at its own context length and at others.

Each length L tiles the validation split with non-overlapping windows of L tokens (`eval_windows`),
so every length scores (up to the run's eval budget) the same text, each token predicted from up to
L - 1 tokens of context. Batches hold about as many tokens as a training batch.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from gptlab.dataset import eval_windows, load_data
from gptlab.errors import UserError
from gptlab.store import RunStore
from gptlab.train.device import kept_runtime, resolve_runtime
from gptlab.train.evaluate import evaluate
from gptlab.train.loading import load_run
from gptlab.yamlio import atomic_write_json


def length_eval(run_dir: str | Path, block_sizes: list[int], device: str = "auto") -> list[dict[str, float]]:
    """[{"block_size": N, "val_loss": x}] for the run's own block size first, then the others
    (ascending, duplicates dropped). Writes RUN_DIR/length_eval.json atomically."""
    for n in block_sizes:
        if n < 1:
            raise UserError(f"invalid context length {n}", key="--block-size", fix="give lengths of at least 1")
    run = load_run(run_dir, "cpu")
    cfg = run.config
    trained = cfg.model.block_size
    longest = max([trained, *block_sizes])
    if not cfg.model.trait("pos_encoding", "any_length") and longest > trained:  # gptlab/axes.py
        raise UserError(f"learned positions cannot evaluate beyond block_size={trained}", key="--block-size",
                        fix=f"give lengths up to {trained}, or evaluate a run with sinusoidal, rope, alibi or "
                            f"none positions")
    # scored with the arithmetic the run trained with (its provenance), whatever this machine's auto says
    runtime = kept_runtime(resolve_runtime(dataclasses.replace(cfg.train, device=device, compile=False)),
                           cfg.train, RunStore(run_dir).config())
    model = runtime.prepare(run.model)
    data = load_data(cfg.data, longest)
    val = data.val.to(runtime.device)
    budget = cfg.train.eval_steps * cfg.train.batch_size * trained  # tokens, as the run's own eval
    results = []
    for n in [trained, *sorted(set(block_sizes) - {trained})]:
        starts = eval_windows(data.val, n, max(1, budget // n))
        batch = max(1, cfg.train.batch_size * trained // n)
        loss = evaluate(model, val, starts, n, batch, runtime)
        results.append({"block_size": n, "val_loss": loss})
    path = Path(run_dir) / "length_eval.json"
    merged = {row["block_size"]: row for row in _previous(path)}  # earlier lengths stay; re-evaluated replace
    merged.update({row["block_size"]: row for row in results})
    atomic_write_json(path, [merged.pop(trained)] + [merged[n] for n in sorted(merged)])  # trained length first
    return results


def _previous(path: Path) -> list[dict]:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return []
    return [r for r in rows if isinstance(r, dict) and "block_size" in r] if isinstance(rows, list) else []
