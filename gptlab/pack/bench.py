"""`gptlab bench --pack`: runs per hour of one seed study executed three ways, side by side.

Arms: sequential (`gptlab run --jobs 1`), processes (`--jobs 2`), packed (`--pack seeds`: one process) and
packed_x2 (`--pack seeds --jobs 2`: two packs, one per core), each a real
`gptlab run` of the same spec into its own store, in rotating order per repeat so that load from
anything else on the machine falls on every arm alike; the report gives every wall time, the medians and
the ratios of medians. The packed arm's best val losses are checked against the sequential arm's.

`step_kernels` times one training step of M members three ways (M separate models, the stacked bmm
model gptlab.pack uses, torch.func vmap over stacked weights): the measurement behind that choice.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ARMS = {"sequential": ["--jobs", "1"], "processes": ["--jobs", "2"], "packed": ["--pack", "seeds"],
        "packed_x2": ["--pack", "seeds", "--jobs", "2"]}  # two packs of half the seeds, one per core


def pack_study(flat: dict[str, Any], seeds: int = 6, repeats: int = 3, wandb: str | None = None,
               workdir: Path | None = None) -> dict[str, Any]:
    """Wall time of a `seeds`-seed study of config `flat` per arm, `repeats` times."""
    from gptlab.store import RunStore

    work = Path(workdir or tempfile.mkdtemp(prefix="gptlab-bench-pack-"))
    spec = work / "pack_bench.yaml"
    spec.write_text(yaml.safe_dump({"name": "pack_bench", "base": dict(flat), "seeds": list(range(seeds))}))
    walls: dict[str, list[float]] = {arm: [] for arm in ARMS}
    best: dict[str, list[float]] = {}
    names = list(ARMS)
    for rep in range(repeats):
        for arm in names[rep % len(names):] + names[:rep % len(names)]:
            root = work / f"{arm}-{rep}"
            argv = [sys.executable, "-m", "gptlab", "run", str(spec), "--runs", str(root), *ARMS[arm]]
            if wandb:
                argv += ["--wandb", wandb]
            t0 = time.perf_counter()
            out = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            wall = time.perf_counter() - t0
            if out.returncode != 0:
                raise RuntimeError(f"{arm} arm failed ({out.returncode}): {(out.stderr or out.stdout)[-500:]}")
            walls[arm].append(round(wall, 2))
            if rep == 0:
                best[arm] = [RunStore(root / "pack_bench" / f"seed{s}").summary()["best_val_loss"]
                             for s in range(seeds)]
            print(f"  repeat {rep + 1}/{repeats}: {arm:<10} {wall:7.1f} s", flush=True)
    medians = {arm: statistics.median(w) for arm, w in walls.items()}
    return {"runs": seeds, "repeats": repeats, "config": dict(flat), "wandb": wandb or "auto",
            "arms": {arm: " ".join(a) for arm, a in ARMS.items()},
            "wall_s": walls, "median_wall_s": medians,
            "runs_per_hour": {arm: round(seeds * 3600 / m, 1) for arm, m in medians.items()},
            "speedup_packed_vs_sequential": round(medians["sequential"] / medians["packed"], 2),
            "speedup_packed_vs_processes": round(medians["processes"] / medians["packed"], 2),
            "speedup_packed_x2_vs_sequential": round(medians["sequential"] / medians["packed_x2"], 2),
            "speedup_packed_x2_vs_processes": round(medians["processes"] / medians["packed_x2"], 2),
            "speedup_ratios_per_repeat": {
                f"{p}_vs_{o}": [round(a / b, 2) for a, b in zip(walls[o], walls[p])]
                for p in ("packed", "packed_x2") for o in ("sequential", "processes")},
            "max_abs_best_val_diff_packed_vs_sequential": max(
                abs(a - b) for a, b in zip(best["packed"], best["sequential"])),
            "workdir": str(work)}


def step_kernels(flat: dict[str, Any], members: int = 6, steps: int = 30, warmup: int = 5) -> dict[str, Any]:
    """Median ms of one forward+backward of `members` models: separately, stacked (bmm), vmap."""
    import copy

    import torch
    import torch.nn.functional as F
    from torch.func import functional_call, stack_module_state, vmap

    from gptlab.config import build_config
    from gptlab.model import build_model
    from gptlab.pack.stacked import stack_models

    cfg = build_config({**flat, "vocab_size": 65})
    B, T, V = cfg.train.batch_size, cfg.model.block_size, 65
    models = []
    for seed in range(members):
        torch.manual_seed(seed)
        models.append(build_model(cfg.model))
    x = torch.randint(0, V, (members, B, T))
    y = torch.randint(0, V, (members, B, T))
    stacked, _ = stack_models(models, [cfg.model.dropout] * members)
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0])

    def one(p, b, xi, yi):  # noqa: ANN001, ANN202
        return F.cross_entropy(functional_call(base, (p, b), (xi,)).view(-1, V), yi.reshape(-1))

    vmapped = vmap(one, randomness="different")

    def separate() -> None:
        for i, model in enumerate(models):
            F.cross_entropy(model(x[i]).view(-1, V), y[i].reshape(-1)).backward()

    def bmm() -> None:
        logits = stacked(x.view(members * B, T))
        F.cross_entropy(logits.view(-1, V), y.reshape(-1), reduction="none").view(members, -1).mean(1).sum().backward()

    def with_vmap() -> None:
        vmapped(params, buffers, x, y).sum().backward()

    out = {"members": members, "steps": steps, "threads": torch.get_num_threads()}
    import warnings

    for name, fn in (("separate models", separate), ("stacked bmm (gptlab.pack)", bmm), ("torch.func vmap", with_vmap)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # vmap's "no batching rule" warning for CPU fused attention
            for _ in range(warmup):
                fn()
            times = []
            for _ in range(steps):
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1000)
        out[name] = round(statistics.median(times), 3)
    return out


def print_pack(report: dict[str, Any]) -> None:
    kernels = report.get("step_kernels")
    if kernels:
        print(f"one step of {kernels['members']} members (fwd+bwd, median ms, {kernels['threads']} threads): "
              + ", ".join(f"{k} {v}" for k, v in kernels.items() if k not in ("members", "steps", "threads")))
    study = report["study"]
    print(f"{study['runs']}-seed study, {study['repeats']} repeats, medians:")
    for arm in ARMS:
        print(f"  {arm:<10} ({study['arms'][arm]}): {study['median_wall_s'][arm]:7.1f} s wall, "
              f"{study['runs_per_hour'][arm]:8.1f} runs/hour   (walls {study['wall_s'][arm]})")
    print(f"  packed is {study['speedup_packed_vs_sequential']}x sequential and "
          f"{study['speedup_packed_vs_processes']}x processes; packed_x2 is "
          f"{study['speedup_packed_x2_vs_sequential']}x sequential and {study['speedup_packed_x2_vs_processes']}x "
          f"processes; best val packed vs sequential differs by at most "
          f"{study['max_abs_best_val_diff_packed_vs_sequential']:.2e}")


def run_pack_bench(flat: dict[str, Any], seeds: int, repeats: int, machine: dict[str, Any],
                   out: Path | None) -> dict[str, Any]:
    """`gptlab bench --pack`: the step kernels, then the whole study; printed, and saved to `out`."""
    from datetime import datetime, timezone

    from gptlab.yamlio import atomic_write_json

    if seeds < 2 or repeats < 1:
        from gptlab.errors import UserError

        raise UserError("--pack-seeds must be >= 2 and --pack-repeats >= 1", fix="e.g. --pack-seeds 6")
    flat = {k: v for k, v in flat.items() if k != "seed"}
    report: dict[str, Any] = {"machine": machine, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                              "command": " ".join(["gptlab", *sys.argv[1:]]) if sys.argv else None,
                              "load_average_before": os.getloadavg()}
    report["step_kernels"] = step_kernels(flat, members=seeds)
    report["study"] = pack_study(flat, seeds, repeats, wandb=flat.get("wandb"))
    report["load_average_after"] = os.getloadavg()
    print_pack(report)
    if out:
        atomic_write_json(out, report)
        print(f"wrote {out}")
    return report
