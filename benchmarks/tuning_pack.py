"""Wall time of a tuning stage trained packed (`--pack auto`, what the study planner does) vs unpacked.

The tuning stage of experiments/tuned_norm_placement.yaml is 2 variants x 3 lr on seed 100. Its runs are written
as a plain grid in benchmarks/specs/tuning_pack_grid.yaml (same configs, other names), so the same 6 runs can
be trained both ways: `--pack auto` (2 packs of 3 lr, as the planner's stage 1) and `--jobs 1` with no pack
(6 processes one after the other). Each arm is a real `gptlab run` into a fresh store; arms alternate
A, B, A, B so outside load falls on both; `uptime` is recorded before and after each arm.

    python benchmarks/tuning_pack.py --repeats 2 --out benchmarks/results/tuning_pack.json
    python benchmarks/tuning_pack.py --repeats 1 --reverse --out benchmarks/results/tuning_pack_reversed.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GRID = ROOT / "benchmarks/specs/tuning_pack_grid.yaml"
TUNED = ROOT / "experiments/tuned_norm_placement.yaml"
# tuned_norm_placement's CPU recipe (its header), shrunk to 200 steps so an arm stays within minutes
SETS = ["max_steps=200", "eval_interval=200", "n_layer=4", "n_head=4", "n_embd=128", "block_size=64",
        "batch_size=12", "dropout=0", "eval_steps=20"]
ARMS = {"packed": ["--pack", "auto"], "unpacked": ["--jobs", "1"]}


def gptlab() -> list[str]:
    return [sys.executable, "-m", "gptlab"]


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def timed(cmd: list[str], env: dict) -> dict:
    """Run a command from the repository root; its wall and CPU seconds (children) and the load around it."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load0 = uptime()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"command": " ".join(cmd[2:]), "exit_code": proc.returncode, "wall_s": round(wall, 2),
            "cpu_s": round(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, 2),
            "uptime_before": load0, "uptime_after": uptime(), "stdout": proc.stdout, "stderr_tail": proc.stderr[-2000:]}


def machine() -> dict:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((ln.split(":", 1)[1].strip() for ln in lscpu.splitlines() if ln.startswith("Model name")), "?")
    import torch

    return {"cpu_model": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform(),
            "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}


def run_arm(arm: str, store: Path, env: dict) -> dict:
    shutil.rmtree(store, ignore_errors=True)
    cmd = [*gptlab(), "run", str(GRID.relative_to(ROOT)), "--runs", str(store), *ARMS[arm]]
    for s in SETS:
        cmd += ["--set", s]
    timing = timed(cmd, env)
    runs = {}
    for summary in sorted((store / "tuning_pack_grid").glob("*/summary.json")):
        s = json.loads(summary.read_text())
        runs[summary.parent.name] = {"status": s.get("status"), "best_val_loss": s.get("best_val_loss")}
    return {"arm": arm, "command": timing["command"].replace(str(store), "STORE"), "exit_code": timing["exit_code"],
            "wall_s": timing["wall_s"], "cpu_s": timing["cpu_s"], "uptime_before": timing["uptime_before"],
            "uptime_after": timing["uptime_after"], "runs": runs, "stdout_tail": timing["stdout"][-1500:],
            "stderr_tail": timing["stderr_tail"][-1500:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--store", default="/tmp/gptlab_tuning_pack")
    ap.add_argument("--out", default="benchmarks/results/tuning_pack.json")
    ap.add_argument("--reverse", action="store_true", help="unpacked first in each repeat (B, A, B, A)")
    args = ap.parse_args()
    arms = list(ARMS)[::-1] if args.reverse else list(ARMS)
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    sets = [a for s in SETS for a in ("--set", s)]
    dry = subprocess.run([*gptlab(), "run", str(TUNED.relative_to(ROOT)), "--dry-run", "--runs", args.store + "_dry",
                          *sets], cwd=ROOT, env=env, capture_output=True, text=True).stdout
    out = {"what": "tuning stage of tuned_norm_placement (2 variants x 3 lr, seed 100): --pack auto vs --jobs 1",
           "machine": machine(), "env": {"OMP_NUM_THREADS": env["OMP_NUM_THREADS"], "WANDB_MODE": "offline"},
           "sets": SETS, "tuned_spec_dry_run": dry, "measurements": []}
    for rep in range(args.repeats):
        for arm in arms:  # A, B, A, B (or B, A, B, A with --reverse)
            m = run_arm(arm, Path(args.store) / f"{arm}{rep}", env)
            m["repeat"] = rep
            out["measurements"].append(m)
            print(f"repeat {rep} {arm}: {m['wall_s']} s wall, {m['cpu_s']} s cpu, exit {m['exit_code']}, "
                  f"{m['uptime_after']}", flush=True)
            Path(args.out).write_text(json.dumps(out, indent=1))
    walls = {a: [m["wall_s"] for m in out["measurements"] if m["arm"] == a] for a in ARMS}
    cpus = {a: [m["cpu_s"] for m in out["measurements"] if m["arm"] == a] for a in ARMS}
    per_repeat = [p / u for p, u in zip(walls["packed"], walls["unpacked"])]
    packed_l = {n: r["best_val_loss"] for m in out["measurements"] if m["arm"] == "packed" for n, r in m["runs"].items()}
    unpacked_l = {n: r["best_val_loss"] for m in out["measurements"] if m["arm"] == "unpacked"
                  for n, r in m["runs"].items()}
    out["result"] = {
        "median_wall_s": {a: statistics.median(w) for a, w in walls.items()},
        "median_cpu_s": {a: statistics.median(c) for a, c in cpus.items()},
        "ratio_packed_over_unpacked_of_medians": statistics.median(walls["packed"]) / statistics.median(walls["unpacked"]),
        "ratio_packed_over_unpacked_per_repeat": per_repeat,
        "max_abs_best_val_loss_diff_packed_vs_unpacked": max(
            abs(packed_l[n] - unpacked_l[n]) for n in packed_l if n in unpacked_l and packed_l[n] is not None
            and unpacked_l[n] is not None) if packed_l else None,
        "runs_per_arm": [len(m["runs"]) for m in out["measurements"]]}
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps(out["result"], indent=1))


if __name__ == "__main__":
    main()
