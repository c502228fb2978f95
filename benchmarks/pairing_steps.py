"""Where in training the initial weights' pairing shows: the correlation across seeds of a variant's val loss with
the baseline's at every evaluation, not only the last (benchmarks/pairing.md, part 1c). Same recipe and arms as
benchmarks/pairing_cpu.py (name-keyed 0.4.0 code and 0.3.1's from a worktree), more seeds, an evaluation every
`steps / evals` steps.

    git worktree add /tmp/v031 06f51c0
    OMP_NUM_THREADS=1 python benchmarks/pairing_steps.py --before-worktree /tmp/v031 --seeds 32 --steps 250 \
        --evals 10 --variants tie_weights=false,pos_encoding=rope --work /tmp/psteps \
        --out benchmarks/results/pairing_steps.json
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import pairing_cpu as pc  # noqa: E402 - the recipe, arms and statistics of part 1


def curves(run_dir: Path) -> dict[str, dict[int, dict[int, float]]]:
    """variant -> seed -> {step: val loss} from every finished run's metrics.jsonl."""
    out: dict[str, dict[int, dict[int, float]]] = {}
    for summary in sorted(run_dir.glob("*/summary.json")):
        if json.loads(summary.read_text()).get("status") != "finished":
            continue
        run = yaml.safe_load((summary.parent / "config.yaml").read_text())["run"]
        rows = [json.loads(line) for line in (summary.parent / "metrics.jsonl").read_text().splitlines()]
        out.setdefault(run["variant"], {})[int(run["seed"])] = {r["step"]: r["val/loss"] for r in rows
                                                              if r.get("val/loss") is not None}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before-worktree", type=Path, required=True)
    ap.add_argument("--seeds", type=int, default=32)
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--evals", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--variants", default="tie_weights=false,pos_encoding=rope")
    ap.add_argument("--work", type=Path, default=Path("/tmp/gptlab_pairing_steps"))
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    every = pc.variants()
    chosen = {"base": {}, **{v: every[v] for v in args.variants.split(",")}}
    interval = args.steps // args.evals
    t0 = time.time()
    procs = {arm: pc.start(arm, chosen, args) for arm in ("keyed", "before")}
    for arm, (proc, _) in procs.items():
        if proc.wait() != 0:
            raise SystemExit(f"{arm} arm failed: see {args.work}/pairing_{arm}.log")
    result: dict = {"command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "wall_s": round(time.time() - t0, 1), "seeds": args.seeds, "steps": args.steps,
                    "eval_interval": interval, "cpu": pc.platform.processor() or pc.platform.machine(),
                    "load_end": os.getloadavg()[0], "variants": {}}
    got = {arm: curves(store) for arm, (_, store) in procs.items()}
    for v in chosen:
        if v == "base":
            continue
        key = v.replace("=", "_")
        rows = {}
        for arm in got:
            base, var = got[arm]["base"], got[arm][key]
            steps = sorted(set.intersection(*(set(c) for c in [*base.values(), *var.values()])))
            rows[arm] = {s: pc.pairing({k: c[s] for k, c in base.items()}, {k: c[s] for k, c in var.items()})
                         for s in steps}
        result["variants"][v] = {arm: {str(s): r for s, r in by.items()} for arm, by in rows.items()}
        print(f"\n{v}: corr with the baseline at each evaluation, {args.seeds} seeds")
        print("| step | name-keyed (0.4.0) [95%] | 0.3.1 [95%] | change [z 95%] |\n|---|---|---|---|")
        for s in rows["keyed"]:
            k, b = rows["keyed"][s], rows["before"].get(s)
            c = pc.change(k, b) if b and all(-1 < x["corr"] < 1 for x in (k, b)) else None
            cell = lambda x: f"{x['corr']:.3f} [{x['corr_95'][0]:.2f}, {x['corr_95'][1]:.2f}]"  # noqa: E731
            ch = f"{c['corr_change']:+.3f} [{c['z_change_95'][0]:+.2f}, {c['z_change_95'][1]:+.2f}]" if c else "-"
            print(f"| {s} | {cell(k)} | {cell(b) if b else '-'} | {ch} |")
    args.out.write_text(json.dumps(result, indent=1, default=lambda x: None if isinstance(x, float) and
                                   math.isnan(x) else x))


if __name__ == "__main__":
    main()
