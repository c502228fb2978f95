"""Muon vs AdamW on a small CPU recipe: steps for Muon to reach AdamW's final val loss at AdamW's step budget,
each at its own tuned lr, and the wall time per step of each measured side by side.

Recipe (smoke's model widened: 4 layers, width 128, 4 heads, context 64, batch 16, no dropout), cosine
schedule to lr/10 after 20 warmup steps, `--steps` steps (300), val loss every 25 steps on 10 fixed batches.

1. Tune on seed 0: AdamW at lr in --adamw-lrs; Muon (muon_lr in --muon-lrs on the hidden matrices, the
   embeddings/head/gains on AdamW at AdamW's tuned lr). Best = lowest final val loss.
2. Compare on seeds 0 and --fresh-seed (1, unseen by the tuning): AdamW's final val loss is the target;
   Muon's steps to reach it are interpolated linearly between its val evaluations.
3. Wall per step: both optimizers' TrainSteps built in one process, timed in alternating blocks of 10
   steps (so any outside load falls on both), median per block.

    python benchmarks/muon_cpu.py --out benchmarks/results/muon_cpu.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RECIPE = {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "batch_size": 16, "dropout": 0.0,
          "warmup_steps": 20, "eval_interval": 25, "eval_steps": 10, "log_interval": 25, "wandb": "disabled",
          "diagnostics": "off", "device": "cpu"}


def config(steps: int, seed: int, lr: float, muon_lr: float | None = None):  # noqa: ANN201
    from gptlab.config import build_config

    extra = {"optimizer": "muon", "muon_lr": muon_lr} if muon_lr is not None else {}
    return build_config({**RECIPE, "max_steps": steps, "seed": seed, "lr": lr, "min_lr": lr / 10, **extra})


def train(cfg, runs: Path, name: str) -> dict:  # noqa: ANN001
    from gptlab.train import RunMeta, run_training

    t0 = time.perf_counter()
    summary = run_training(cfg, runs, RunMeta(experiment="muon_cpu", name=name))
    rows = [json.loads(line) for line in (runs / "muon_cpu" / name / "metrics.jsonl").read_text().splitlines()]
    curve = [(r["step"], r["val/loss"]) for r in rows if "val/loss" in r]
    print(f"{name}: final val {summary['final_val_loss']:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return {"name": name, "final": summary["final_val_loss"], "curve": curve, "status": summary["status"],
            "train_time": summary.get("train_time"), "steps": summary["steps"]}


def steps_to_reach(curve: list[tuple[int, float]], target: float) -> float | None:
    """First step where the val curve reaches target, interpolated linearly between evaluations."""
    for (s0, v0), (s1, v1) in zip(curve, curve[1:]):
        if v1 <= target:
            return s1 if v0 == v1 else s0 + (v0 - target) / (v0 - v1) * (s1 - s0)
    return None


def wall_per_step(steps: int, adamw_lr: float, muon_lr: float, blocks: int) -> dict:
    import torch

    from gptlab.dataset import load_data
    from gptlab.model import build_model
    from gptlab.train.device import resolve_runtime
    from gptlab.train.step import TrainStep

    sides = {}
    for side, cfg in (("adamw", config(steps, 0, adamw_lr)), ("muon", config(steps, 0, adamw_lr, muon_lr))):
        data = load_data(cfg.data, cfg.model.block_size)
        cfg = cfg.replace(vocab_size=data.tokenizer.vocab_size)
        runtime = resolve_runtime(cfg.train)
        torch.manual_seed(0)
        sides[side] = TrainStep(cfg, build_model(cfg.model), runtime, data.train)
        for _ in range(3):  # warm-up
            sides[side](cfg.train.lr)
    times: dict[str, list[float]] = {side: [] for side in sides}
    for _ in range(blocks):
        for side, step in sides.items():
            t0 = time.perf_counter()
            for _ in range(10):
                step(1e-3)
            times[side].append((time.perf_counter() - t0) / 10)
    med = {side: statistics.median(ts) for side, ts in times.items()}
    return {"median_s": med, "blocks_s": times, "ratio_muon_over_adamw": med["muon"] / med["adamw"],
            "dtype": str(runtime.dtype)}


def machine() -> dict:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((ln.split(":", 1)[1].strip() for ln in lscpu.splitlines() if ln.startswith("Model name")), "?")
    import torch

    return {"cpu": model, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M %Z"), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--adamw-lrs", default="1e-3,3e-3,1e-2")
    parser.add_argument("--muon-lrs", default="0.01,0.02,0.05")
    parser.add_argument("--fresh-seed", type=int, default=1)
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/muon_cpu.json")
    args = parser.parse_args()
    load = [subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()]
    result = {"machine": machine(), "recipe": RECIPE, "steps": args.steps, "command": " ".join(sys.argv)}
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        adamw = {lr: train(config(args.steps, 0, lr), runs, f"adamw-lr{lr}")
                 for lr in map(float, args.adamw_lrs.split(","))}
        best_lr = min(adamw, key=lambda lr: adamw[lr]["final"])
        muon = {m: train(config(args.steps, 0, best_lr, m), runs, f"muon-mlr{m}")
                for m in map(float, args.muon_lrs.split(","))}
        best_muon = min(muon, key=lambda m: muon[m]["final"])
        result["tuning"] = {"adamw": {str(k): v["final"] for k, v in adamw.items()}, "adamw_best_lr": best_lr,
                            "muon": {str(k): v["final"] for k, v in muon.items()}, "muon_best_lr": best_muon}
        compare = {}
        for seed in (0, args.fresh_seed):
            a = adamw[best_lr] if seed == 0 else train(config(args.steps, seed, best_lr), runs, f"adamw-seed{seed}")
            m = muon[best_muon] if seed == 0 else train(config(args.steps, seed, best_lr, best_muon), runs,
                                                          f"muon-seed{seed}")
            reach = steps_to_reach(m["curve"], a["final"])
            compare[seed] = {"adamw_final": a["final"], "muon_final": m["final"], "muon_steps_to_adamw_final": reach,
                             "ratio": None if reach is None else reach / args.steps,
                             "adamw_curve": a["curve"], "muon_curve": m["curve"]}
            print(f"seed {seed}: AdamW final {a['final']:.4f}; Muon reaches it at step {reach} "
                  f"({'never' if reach is None else f'{reach / args.steps:.2f}x'}), Muon final {m['final']:.4f}")
        result["compare"] = compare
    load.append(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    result["wall"] = wall_per_step(args.steps, best_lr, best_muon, args.blocks)
    load.append(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    result["load"] = load
    w = result["wall"]
    print(f"wall per step: AdamW {w['median_s']['adamw'] * 1e3:.1f} ms, Muon {w['median_s']['muon'] * 1e3:.1f} ms "
          f"(Muon/AdamW {w['ratio_muon_over_adamw']:.2f}x)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
