"""Fabricated run stores with known numbers, and loading them into frames.

`write_run` / `write_spec` / `make_ablation_store` are imported by the other report tests.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from gptlab.config import RunConfig, build_config

# val/loss best values per label (seeds 0, 1, 2); sinusoidal is planted much worse, rope equal
LEARNED = [1.500, 1.520, 1.510]
SINUSOIDAL = [1.800, 1.830, 1.810]
ROPE = [1.512, 1.498, 1.521]
ALIBI = [1.700]  # one seed only


def write_run(root: Path, experiment: str, name: str, *, best: float | None, status: str = "finished",
              variant: str | None = None, overrides: dict[str, Any] | None = None, seed: int = 0,
              label: str | None = None, steps: int = 100, n_params: int = 10_000,
              blow_up: bool = False) -> Path:
    """One run directory as the trainer writes it, with a curve ending at `best`."""
    overrides = dict(overrides or {})
    cfg = build_config({**overrides, "seed": seed}).to_dict()
    cfg["model"]["vocab_size"] = 65
    label = label or name.rsplit("-seed", 1)[0]
    cfg["run"] = {"experiment": experiment, "name": name, "label": label, "variant": variant, "seed": seed,
                  "overrides": {**overrides, "seed": seed}}
    cfg["provenance"] = {"gptlab_version": "0.1.0", "git_commit": "abc123", "torch_version": "2.4",
                         "device": "cpu"}
    run_dir = root / experiment / name
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    rows = []
    end = best if best is not None else 2.0
    for i, step in enumerate(range(0, steps + 1, 10)):
        frac = i / (steps // 10)
        loss = end if frac == 1 else 4.2 + (end - 4.2) * frac
        if blow_up and frac > 0.5:
            loss = 1e6 if frac < 0.8 else math.inf
        row = {"step": step, "train/loss": loss + 0.05, "lr": 1e-3}
        if step % 50 == 0:
            row["val/loss"] = loss
        rows.append(row)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = {"status": status, "best_val_loss": best, "final_val_loss": best, "steps": steps,
               "wall_s": 10.0, "tokens_per_s": 5000.0 + seed, "n_params": n_params}
    if status == "failed":
        summary["error"] = "RuntimeError: boom"
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def write_spec(root: Path, experiment: str, spec: dict[str, Any]) -> None:
    (root / experiment).mkdir(parents=True, exist_ok=True)
    (root / experiment / "spec.yaml").write_text(yaml.safe_dump({"name": experiment, **spec}, sort_keys=False))


def make_ablation_store(root: Path) -> Path:
    """Experiment `pos`: learned (baseline), sinusoidal (big effect), rope (null effect), alibi (1 seed),
    post_ln (all diverged, with a 1e6 / inf blow-up in its history) and none (one failed run)."""
    write_spec(root, "pos", {
        "description": "Does the position encoding matter?", "base": {"max_steps": 100},
        "variants": {"learned": {"pos_encoding": "learned"}, "sinusoidal": {"pos_encoding": "sinusoidal"},
                     "rope": {"pos_encoding": "rope"}, "alibi": {"pos_encoding": "alibi"},
                     "post_ln": {"norm_placement": "post"}, "none": {"pos_encoding": "none"}},
        "seeds": [0, 1, 2], "compare": {"metric": "val/loss", "goal": "minimize", "baseline": "learned",
                                                "pairing": "none"}})  # the unpaired (Welch) numbers
    groups = {"learned": LEARNED, "sinusoidal": SINUSOIDAL, "rope": ROPE, "alibi": ALIBI}
    for variant, values in groups.items():
        for seed, best in enumerate(values):
            write_run(root, "pos", f"{variant}-seed{seed}", best=best, variant=variant, seed=seed,
                      overrides={"max_steps": 100, "pos_encoding": variant})
    for seed in range(3):
        write_run(root, "pos", f"post_ln-seed{seed}", best=3.9, status="diverged", variant="post_ln",
                  seed=seed, overrides={"max_steps": 100, "norm_placement": "post"}, blow_up=True)
    write_run(root, "pos", "none-seed0", best=None, status="failed", variant="none",
              overrides={"max_steps": 100, "pos_encoding": "none"})
    return root


def test_load_store_frames(tmp_path: Path) -> None:
    from gptlab.frames.load import load_store

    store = load_store(make_ablation_store(tmp_path))
    assert len(store.runs) == 3 + 3 + 3 + 1 + 3 + 1
    assert store.runs["run"].is_unique
    assert set(store.runs["status"]) == {"finished", "diverged", "failed"}  # nothing dropped
    row = store.runs.set_index("run").loc["rope-seed1"]
    assert row["label"] == "rope" and row["variant"] == "rope" and row["seed"] == 1
    assert row["pos_encoding"] == "rope" and row["max_steps"] == 100 and row["n_layer"] == RunConfig().model.n_layer
    assert row["best_val_loss"] == ROPE[1] and row["provenance.device"] == "cpu"
    assert json.loads(row["overrides"]) == {"max_steps": 100, "pos_encoding": "rope", "seed": 1}
    assert store.config_keys["pos_encoding"] == "model" and store.config_keys["lr"] == "train"
    hist = store.history
    assert {"experiment", "run", "step", "train/loss", "val/loss", "lr"} <= set(hist.columns)
    one = hist[hist["run"] == "rope-seed1"]
    assert one["step"].is_monotonic_increasing and one["val/loss"].min() == ROPE[1]
    blown = hist[hist["run"] == "post_ln-seed0"]["train/loss"]
    assert blown.isna().any() and not (blown == math.inf).any()  # inf read as NaN, never plotted
    assert store.specs["pos"]["compare"]["baseline"] == "learned"


def test_torn_metrics_line_is_skipped(tmp_path: Path) -> None:
    from gptlab.frames.load import load_store

    run_dir = write_run(tmp_path, "adhoc", "lr=0.001", best=1.5)
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write('{"step": 200, "train/lo')
    store = load_store(tmp_path)
    assert store.history["step"].max() == 100 and store.specs == {}
